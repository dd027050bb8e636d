"""Every way of revoking a credential ends it on the very next request (security review,
issue 12 finding 3), on the full server with both databases.

Each test first uses the credential on /mcp, so the server holds it in its credential cache
(30 s by default), then revokes it the way a person or a client would — RFC 7009 with either
token kind, the connection's revoke button, the application password's revoke and rotate
buttons, deleting the client — and the next /mcp request must be refused (401). User removal
does not exist in this product (users are never deleted), so it has no path to test.

Revokes made by other instances are covered in tests/multi/test_revocation_bus.py."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from aiconnector import mcp
from aiconnector.core.app_passwords import AppPasswordRecord, create_app_password
from aiconnector.core.clients import ClientRecord, create_pre_registered_client
from aiconnector.core.code_grant import s256
from aiconnector.core.connections import ActivityTracker
from aiconnector.core.ratelimit import FailureLimiter
from aiconnector.core.tokens import create_authorization_code, revoke_token
from aiconnector.errors import AuthenticationFailed
from aiconnector.mcp.auth import RequestAuthenticator
from aiconnector.runtime import open_runtime
from tests.admin.conftest import admin_client, csrf_of
from tests.conftest import LiveServer
from tests.integration.test_auth import call
from tests.oauth.conftest import REDIRECT, new_verifier


def whoami(server: LiveServer, headers: dict[str, str]) -> int:
    return call(server, headers, "whoami").status_code


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def oauth_tokens(server: LiveServer, name: str) -> tuple[ClientRecord, dict[str, Any]]:
    """A pre-registered public client and a fresh connection's tokens from the code grant."""
    verifier = new_verifier()

    async def make(rt: Any) -> tuple[ClientRecord, str]:  # noqa: ANN401 - Runtime
        client = (await create_pre_registered_client(rt.sessions, name=name, redirect_uris=[REDIRECT])).record
        code = await create_authorization_code(
            rt.sessions,
            client=client,
            user_id=1,
            redirect_uri=REDIRECT,
            code_challenge=s256(verifier),
            scopes=frozenset({"content:read"}),
            resource=server.settings.mcp_url,
            agent_name=name,
        )
        return client, code

    client, code = server.run(make)
    response = httpx.post(
        f"{server.base_url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": client.client_id,
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return client, response.json()


def rfc7009_revoke(server: LiveServer, client: ClientRecord, token: str) -> None:
    response = httpx.post(
        f"{server.base_url}/oauth/revoke", data={"token": token, "client_id": client.client_id}, timeout=30
    )
    assert response.status_code == 200, response.text


def app_password(server: LiveServer, name: str) -> tuple[str, AppPasswordRecord]:
    return server.run(lambda rt: create_app_password(rt.sessions, "admin", name=name, audit=rt.audit))


def test_revoking_an_access_token_refuses_it_on_the_next_request(live_server: LiveServer) -> None:
    client, tokens = oauth_tokens(live_server, "rfc7009 access")
    assert whoami(live_server, bearer(tokens["access_token"])) == 200  # now cached
    rfc7009_revoke(live_server, client, tokens["access_token"])
    assert whoami(live_server, bearer(tokens["access_token"])) == 401
    # Only that token ended: the connection refreshes and its new token works.
    refreshed = httpx.post(
        f"{live_server.base_url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client.client_id,
        },
        timeout=30,
    )
    assert refreshed.status_code == 200, refreshed.text
    assert whoami(live_server, bearer(refreshed.json()["access_token"])) == 200


def test_revoking_a_refresh_token_refuses_its_access_token_on_the_next_request(
    live_server: LiveServer,
) -> None:
    client, tokens = oauth_tokens(live_server, "rfc7009 refresh")
    assert whoami(live_server, bearer(tokens["access_token"])) == 200
    rfc7009_revoke(live_server, client, tokens["refresh_token"])
    assert whoami(live_server, bearer(tokens["access_token"])) == 401


def test_the_connection_revoke_button_refuses_the_next_request(live_server: LiveServer) -> None:
    _client, tokens = oauth_tokens(live_server, "revoke button")
    password, record = app_password(live_server, "revoke button password")
    headers = [bearer(tokens["access_token"]), live_server.basic_header("admin", password)]
    assert [whoami(live_server, h) for h in headers] == [200, 200]
    with admin_client(live_server) as admin:
        for connection_id in (connection_of(live_server, tokens["access_token"]), record.connection_id):
            page = admin.get(f"/admin/connections/{connection_id}/revoke")
            done = admin.post(f"/admin/connections/{connection_id}/revoke", data={"csrf": csrf_of(page.text)})
            assert done.status_code == 303, done.text
    assert [whoami(live_server, h) for h in headers] == [401, 401]


@pytest.mark.parametrize("action", ["revoke", "rotate"])
def test_the_application_password_buttons_refuse_the_old_password_next(
    live_server: LiveServer, action: str
) -> None:
    password, record = app_password(live_server, f"profile {action}")
    headers = live_server.basic_header("admin", password)
    assert whoami(live_server, headers) == 200
    with admin_client(live_server) as admin:
        csrf = csrf_of(admin.get("/admin/profile").text)
        done = admin.post(f"/admin/profile/passwords/{record.id}/{action}", data={"csrf": csrf})
        assert done.status_code in (200, 303), done.text
    assert whoami(live_server, headers) == 401


def test_deleting_the_client_refuses_its_tokens_on_the_next_request(live_server: LiveServer) -> None:
    client, tokens = oauth_tokens(live_server, "deleted client")
    assert whoami(live_server, bearer(tokens["access_token"])) == 200
    with admin_client(live_server) as admin:
        csrf = csrf_of(admin.get("/admin/clients").text)
        done = admin.post("/admin/clients", data={"csrf": csrf, "client_id": client.client_id})
        assert done.status_code == 303 and re.search(r"revoked=1\b", done.headers["location"]), done.headers
    assert whoami(live_server, bearer(tokens["access_token"])) == 401


def connection_of(server: LiveServer, access_token: str) -> str:
    from aiconnector.core.tokens import verify_access_token

    async def find(rt: Any) -> str:  # noqa: ANN401 - Runtime
        verified = await verify_access_token(rt.sessions, access_token, resource=server.settings.mcp_url)
        assert verified is not None
        return verified[0].connection_id

    return server.run(find)


async def test_a_revoke_landing_during_verification_is_not_cached_over(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database said yes, then the revoke committed and the bus emptied the cache, and only
    then did the verification finish: that late answer may serve the request it was for, but
    must not be cached, or the revoked token would work for another 30 s."""
    client, tokens = oauth_tokens(live_server, "revoked mid-verification")
    header = f"Bearer {tokens['access_token']}"
    settings = live_server.settings
    async with open_runtime(settings, apply_migrations=False) as rt:
        authenticate = RequestAuthenticator(
            rt.sessions,
            audit=rt.audit,
            limiter=FailureLimiter(rt.sessions, limit=1000),
            activity=ActivityTracker(rt.sessions),
            resource=settings.mcp_url,
        )
        rt.bus.subscribe(authenticate.forget_connection)
        rt.bus.subscribe_changes(authenticate.forget_connection)
        verify = mcp.auth.verify_access_token

        def revoking_after(real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def verify_then_revoke(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
                verified = await real(*args, **kwargs)
                await revoke_token(
                    rt.sessions, tokens["access_token"], client=client, audit=rt.audit, bus=rt.bus
                )
                return verified

            return verify_then_revoke

        monkeypatch.setattr(mcp.auth, "verify_access_token", revoking_after(verify))
        assert (await authenticate(header, "127.0.0.1")).connection_id
        monkeypatch.setattr(mcp.auth, "verify_access_token", verify)
        with pytest.raises(AuthenticationFailed):
            await authenticate(header, "127.0.0.1")
