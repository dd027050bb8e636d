"""The authorization_code grant at POST /oauth/token: what a code is bound to, PKCE, replay,
client authentication, request format, and bearer verification of the tokens it yields."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from aiconnector.core.clients import register_dynamic_client
from aiconnector.core.code_grant import s256
from aiconnector.core.connections import get_connection, revoke_connection
from aiconnector.core.scopes import DEFAULT_SCOPES
from aiconnector.core.tokens import create_authorization_code, verify_access_token
from aiconnector.db.models import AuditEvent, AuthorizationCode, Connection, OAuthClient, OAuthToken, utcnow
from aiconnector.errors import OAuthError
from aiconnector.security import sha256_hex
from tests.oauth.conftest import REDIRECT, AuthServer, Flow, new_verifier


def assert_error(response, status: int, error: str) -> None:  # noqa: ANN001
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == error, response.text


async def test_code_grant_issues_a_bound_token_pair(flow: Flow) -> None:
    verifier = new_verifier()
    response = await flow.redeem(await flow.code(verifier, agent_name="Claude on laptop"), verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store" and response.headers["pragma"] == "no-cache"
    assert response.headers["access-control-allow-origin"] == "*"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "content:read"
    assert body["access_token"].startswith("aic_at_") and body["refresh_token"].startswith("aic_rt_")

    verified = await verify_access_token(
        flow.rt.sessions, body["access_token"], resource=flow.server.settings.mcp_url
    )
    assert verified is not None
    principal, expires = verified
    assert principal.actor.username == "admin" and principal.method == "oauth"
    assert principal.scopes == {"content:read"} and principal.agent_name == "Claude on laptop"
    assert timedelta(minutes=59) < expires - utcnow() <= timedelta(hours=1)
    conn = await get_connection(flow.rt.sessions, principal.connection_id)
    assert conn.client_id == flow.client.client_id and conn.scopes == "content:read"
    async with flow.rt.sessions() as s:
        stored = (await s.scalars(select(OAuthToken).where(OAuthToken.connection_id == conn.id))).all()
        created = await s.scalar(
            select(AuditEvent).where(
                AuditEvent.event == "connection.created", AuditEvent.connection_id == conn.id
            )
        )
    # Only hashes are stored, bound to the connection, the client and the audience.
    assert {t.token_hash for t in stored} == {
        sha256_hex(body["access_token"]),
        sha256_hex(body["refresh_token"]),
    }
    assert all(
        t.resource == flow.server.settings.mcp_url and t.client_id == flow.client.client_id for t in stored
    )
    assert created is not None and created.detail["client_id"] == flow.client.client_id


async def test_the_code_carries_the_granted_scopes(flow: Flow) -> None:
    body = await flow.tokens(scopes=frozenset({"content:write", "content:read"}))
    assert body["scope"] == "content:read content:write"


async def test_pkce_verifier_is_required(flow: Flow) -> None:
    verifier = new_verifier()
    code = await flow.code(verifier)
    assert_error(await flow.redeem(code, None), 400, "invalid_request")
    assert_error(await flow.redeem(code, new_verifier()), 400, "invalid_grant")
    assert_error(await flow.redeem(code, "short"), 400, "invalid_grant")
    # The failed attempts did not burn the code for the client holding the right verifier.
    assert (await flow.redeem(code, verifier)).status_code == 200


async def test_plain_pkce_is_not_accepted(flow: Flow) -> None:
    """A challenge equal to the verifier (the ``plain`` method) never verifies as S256."""
    verifier = new_verifier()
    code = await flow.code(verifier, challenge=verifier[:43])
    assert_error(await flow.redeem(code, verifier[:43]), 400, "invalid_grant")


async def test_code_replay_is_refused_and_revokes_the_connection(flow: Flow) -> None:
    verifier = new_verifier()
    code = await flow.code(verifier)
    first = await flow.redeem(code, verifier)
    assert first.status_code == 200
    access = first.json()["access_token"]
    settings = flow.server.settings
    principal, _ = await verify_access_token(flow.rt.sessions, access, resource=settings.mcp_url)
    assert_error(await flow.redeem(code, verifier), 400, "invalid_grant")
    conn = await get_connection(flow.rt.sessions, principal.connection_id)
    assert conn.revoked_at is not None and conn.revoke_reason == "authorization code replayed"
    assert await verify_access_token(flow.rt.sessions, access, resource=settings.mcp_url) is None
    assert (await flow.refresh(first.json()["refresh_token"])).json()["error"] == "invalid_grant"
    async with flow.rt.sessions() as s:
        event = await s.scalar(
            select(AuditEvent).where(
                AuditEvent.event == "security.code_replay", AuditEvent.connection_id == conn.id
            )
        )
    assert event is not None and event.outcome == "failure"


async def test_expired_code_is_refused(flow: Flow) -> None:
    verifier = new_verifier()
    code = await flow.code(verifier)
    async with flow.rt.sessions.begin() as s:
        await s.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.code_hash == sha256_hex(code))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert_error(await flow.redeem(code, verifier), 400, "invalid_grant")


async def test_code_lives_at_most_ten_minutes(flow: Flow) -> None:
    code = await flow.code(new_verifier())
    async with flow.rt.sessions() as s:
        row = await s.get(AuthorizationCode, sha256_hex(code))
    assert row.expires_at - row.created_at <= timedelta(minutes=10)


async def test_redirect_uri_must_match(flow: Flow) -> None:
    verifier = new_verifier()
    code = await flow.code(verifier)
    assert_error(
        await flow.redeem(code, verifier, redirect_uri="http://127.0.0.1:7778/callback"), 400, "invalid_grant"
    )
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, **flow.auth()}
    assert_error(await flow.post(form), 400, "invalid_request")  # redirect_uri missing


async def test_redirect_uri_is_optional_when_the_authorization_request_left_it_out(flow: Flow) -> None:
    """OAuth 2.1 §4.1.3: REQUIRED only if the authorization request included it; if sent
    anyway it must still match."""
    verifier = new_verifier()
    code = await flow.code(verifier, redirect_uri_required=False)
    assert_error(
        await flow.redeem(code, verifier, redirect_uri="http://127.0.0.1:7778/callback"), 400, "invalid_grant"
    )
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, **flow.auth()}
    response = await flow.post(form)
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"]


async def test_code_is_bound_to_its_client(flow: Flow, confidential_flow: Flow) -> None:
    verifier = new_verifier()
    code = await flow.code(verifier)
    assert_error(await confidential_flow.redeem(code, verifier), 400, "invalid_grant")
    assert (await flow.redeem(code, verifier)).status_code == 200


async def test_resource_must_be_this_server(flow: Flow) -> None:
    verifier = new_verifier()
    code = await flow.code(verifier)
    assert_error(
        await flow.redeem(code, verifier, resource="https://other.example/mcp"), 400, "invalid_target"
    )
    ok = await flow.redeem(code, verifier, resource=flow.server.settings.mcp_url)
    assert ok.status_code == 200
    foreign = await flow.code(verifier, resource="https://other.example/mcp")
    assert_error(await flow.redeem(foreign, verifier), 400, "invalid_target")


async def test_access_token_audience_is_checked(flow: Flow) -> None:
    access = (await flow.tokens())["access_token"]
    settings = flow.server.settings
    assert await verify_access_token(flow.rt.sessions, access, resource=settings.mcp_url) is not None
    assert await verify_access_token(flow.rt.sessions, access, resource="https://other.example/mcp") is None
    assert await verify_access_token(flow.rt.sessions, access + "x", resource=settings.mcp_url) is None


async def test_expired_access_token_and_revoked_connection_fail_verification(flow: Flow) -> None:
    settings = flow.server.settings
    first, second = (await flow.tokens())["access_token"], (await flow.tokens())["access_token"]
    async with flow.rt.sessions.begin() as s:
        await s.execute(
            update(OAuthToken)
            .where(OAuthToken.token_hash == sha256_hex(first))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await verify_access_token(flow.rt.sessions, first, resource=settings.mcp_url) is None
    principal, _ = await verify_access_token(flow.rt.sessions, second, resource=settings.mcp_url)
    await revoke_connection(flow.rt.sessions, principal.connection_id, audit=flow.rt.audit)
    assert await verify_access_token(flow.rt.sessions, second, resource=settings.mcp_url) is None


async def test_reauthorizing_a_dynamic_client_replaces_its_older_connection(flow: Flow) -> None:
    """Each install of a dynamically registered client has its own id, so an older
    connection of the same user and id is that install's abandoned one."""
    registered = await register_dynamic_client(
        flow.rt.sessions,
        {"client_name": "Cursor", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"},
        settings=flow.server.settings,
    )
    flow = Flow(flow.server, flow.rt, flow.http, registered.record)
    old = (await flow.tokens())["access_token"]
    new = (await flow.tokens())["access_token"]
    settings = flow.server.settings
    assert await verify_access_token(flow.rt.sessions, old, resource=settings.mcp_url) is None
    assert await verify_access_token(flow.rt.sessions, new, resource=settings.mcp_url) is not None
    async with flow.rt.sessions() as s:
        rows = (
            await s.scalars(select(Connection).where(Connection.client_id == flow.client.client_id))
        ).all()
    assert [c.revoke_reason for c in rows if c.revoked_at is not None] == ["replaced"]
    assert len([c for c in rows if c.revoked_at is None]) == 1


async def test_reauthorizing_a_pre_registered_client_keeps_both_connections(flow: Flow) -> None:
    """A pre-registered client id may be shared by several installs: no replacing."""
    assert flow.client.kind == "pre_registered"
    first = (await flow.tokens())["access_token"]
    second = (await flow.tokens())["access_token"]
    for token in (first, second):
        assert await verify_access_token(flow.rt.sessions, token, resource=flow.server.settings.mcp_url)


async def test_unsupported_grant_type(flow: Flow) -> None:
    response = await flow.post(
        {"grant_type": "password", "username": "admin", "password": "x", **flow.auth()}
    )
    assert_error(response, 400, "unsupported_grant_type")
    # The device grant exists, but this client did not register for it.
    device = await flow.post({"grant_type": "urn:ietf:params:oauth:grant-type:device_code", **flow.auth()})
    assert_error(device, 400, "unauthorized_client")


async def test_token_endpoint_wants_a_form(flow: Flow, auth_server: AuthServer) -> None:
    verifier = new_verifier()
    code = await flow.code(verifier)
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT,
    }
    as_json = await flow.http.post(auth_server.token_url, json={**body, **flow.auth()})
    assert_error(as_json, 400, "invalid_request")
    repeated = await flow.http.post(
        auth_server.token_url,
        content=f"grant_type=authorization_code&code={code}&code={code}&client_id={flow.client.client_id}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(repeated, 400, "invalid_request")
    assert_error(await flow.post({"client_id": flow.client.client_id}), 400, "invalid_request")


async def test_unknown_client_is_invalid_client_401(flow: Flow, auth_server: AuthServer) -> None:
    verifier = new_verifier()
    code = await flow.code(verifier)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT,
    }
    response = await flow.post({**form, "client_id": "dyn_doesnotexist"})
    assert_error(response, 401, "invalid_client")
    assert "www-authenticate" not in response.headers
    basic = base64.b64encode(b"dyn_doesnotexist:secret").decode()
    response = await flow.post(form, headers={"Authorization": f"Basic {basic}"})
    assert_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")


async def test_confidential_client_must_authenticate(confidential_flow: Flow) -> None:
    flow = confidential_flow
    assert flow.secret and flow.secret.startswith("aic_cs_")
    verifier = new_verifier()
    code = await flow.code(verifier)
    base = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT,
    }
    cid = flow.client.client_id
    assert_error(await flow.post({**base, "client_id": cid}), 401, "invalid_client")
    assert_error(
        await flow.post({**base, "client_id": cid, "client_secret": flow.secret + "x"}), 401, "invalid_client"
    )
    wrong_basic = base64.b64encode(f"{cid}:{flow.secret[:-1]}".encode()).decode()
    response = await flow.post(base, headers={"Authorization": f"Basic {wrong_basic}"})
    assert_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")
    both = base64.b64encode(f"{cid}:{flow.secret}".encode()).decode()
    response = await flow.post(
        {**base, "client_secret": flow.secret}, headers={"Authorization": f"Basic {both}"}
    )
    assert_error(response, 400, "invalid_request")  # two methods at once
    good = await flow.post(base, headers={"Authorization": f"Basic {both}"})
    assert good.status_code == 200, good.text
    # client_secret_post works as well, for clients that cannot send headers.
    verifier = new_verifier()
    code = await flow.code(verifier)
    assert (await flow.redeem(code, verifier)).status_code == 200


async def test_public_client_must_not_send_a_secret(flow: Flow) -> None:
    verifier = new_verifier()
    code = await flow.code(verifier)
    assert_error(await flow.redeem(code, verifier, client_secret="guess"), 401, "invalid_client")


async def test_client_secret_is_stored_hashed(confidential_flow: Flow) -> None:
    async with confidential_flow.rt.sessions() as s:
        row = await s.get(OAuthClient, confidential_flow.client.client_id)
    assert row.secret_hash == sha256_hex(confidential_flow.secret)
    assert confidential_flow.secret not in str(row.document)


async def test_code_challenge_and_resource_are_validated_when_minting(flow: Flow) -> None:
    async def mint(challenge: str, resource: str, method: str = "S256") -> str:
        return await create_authorization_code(
            flow.rt.sessions,
            client=flow.client,
            user_id=1,
            redirect_uri=REDIRECT,
            code_challenge=challenge,
            scopes=DEFAULT_SCOPES,
            resource=resource,
            agent_name="a",
            code_challenge_method=method,
        )

    good = s256(new_verifier())
    mcp_url = flow.server.settings.mcp_url
    with pytest.raises(OAuthError, match="code_challenge"):
        await mint("plain-challenge", mcp_url)
    with pytest.raises(OAuthError, match="S256"):
        await mint(good, mcp_url, method="plain")
    with pytest.raises(OAuthError, match="resource"):
        await mint(good, "")
    with pytest.raises(OAuthError, match="redirect_uri"):
        await create_authorization_code(
            flow.rt.sessions,
            client=flow.client,
            user_id=1,
            redirect_uri="https://attacker.example/cb",
            code_challenge=good,
            scopes=DEFAULT_SCOPES,
            resource=mcp_url,
            agent_name="a",
        )


async def test_a_code_issued_before_a_revocation_cannot_open_a_connection(flow: Flow) -> None:
    """The code makes its connection only when redeemed; revoking the app's connection voids
    the codes it held from before, and codes issued afterwards still work."""
    first_verifier, later_verifier = new_verifier(), new_verifier()
    first_code = await flow.code(first_verifier)
    held_code = await flow.code(later_verifier)  # e.g. a second consent, not yet redeemed
    first = await flow.redeem(first_code, first_verifier)
    assert first.status_code == 200, first.text
    settings = flow.server.settings
    principal, _ = await verify_access_token(
        flow.rt.sessions, first.json()["access_token"], resource=settings.mcp_url
    )
    await revoke_connection(flow.rt.sessions, principal.connection_id, audit=flow.rt.audit, revoked_by=1)
    assert_error(await flow.redeem(held_code, later_verifier), 400, "invalid_grant")
    async with flow.rt.sessions() as s:
        active = await s.scalar(
            select(Connection.id).where(
                Connection.client_id == flow.client.client_id, Connection.revoked_at.is_(None)
            )
        )
    assert active is None, "the held code opened no connection"
    await flow.tokens()  # a code issued after the revocation is fine


async def test_a_connection_replaced_by_a_newer_authorization_voids_no_code(flow: Flow) -> None:
    """A dynamic client's older connection ends as ``replaced`` when a newer one is made;
    that is not a revocation, so a code the app holds still redeems."""
    new = await register_dynamic_client(
        flow.rt.sessions, {"redirect_uris": [REDIRECT]}, settings=flow.server.settings
    )
    dynamic = Flow(flow.server, flow.rt, flow.http, new.record)
    verifiers = [new_verifier() for _ in range(3)]
    codes = [await dynamic.code(v) for v in verifiers]
    for code, verifier in zip(codes, verifiers, strict=True):
        response = await dynamic.redeem(code, verifier)
        assert response.status_code == 200, response.text
