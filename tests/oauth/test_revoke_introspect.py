"""RFC 7009 revocation and RFC 7662 introspection."""

from __future__ import annotations

import base64

from aiconnector.core.connections import get_connection
from aiconnector.core.tokens import verify_access_token
from tests.oauth.conftest import Flow


async def revoke(flow: Flow, token: str, **extra: str):  # noqa: ANN201
    return await flow.http.post(
        f"{flow.server.base_url}/oauth/revoke", data={"token": token, **flow.auth(), **extra}
    )


async def introspect(flow: Flow, token: str, headers: dict[str, str] | None = None, **form: str):  # noqa: ANN201
    return await flow.http.post(
        f"{flow.server.base_url}/oauth/introspect", data={"token": token, **form}, headers=headers or {}
    )


def basic(flow: Flow) -> dict[str, str]:
    raw = f"{flow.client.client_id}:{flow.secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def test_revoking_a_refresh_token_ends_the_connection(flow: Flow) -> None:
    tokens = await flow.tokens()
    mcp = flow.server.settings.mcp_url
    principal, _ = await verify_access_token(flow.rt.sessions, tokens["access_token"], resource=mcp)
    response = await revoke(flow, tokens["refresh_token"], token_type_hint="refresh_token")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    conn = await get_connection(flow.rt.sessions, principal.connection_id)
    assert conn.revoked_at is not None
    assert await verify_access_token(flow.rt.sessions, tokens["access_token"], resource=mcp) is None
    assert (await flow.refresh(tokens["refresh_token"])).json()["error"] == "invalid_grant"


async def test_revoking_an_access_token_ends_only_that_token(flow: Flow) -> None:
    tokens = await flow.tokens()
    mcp = flow.server.settings.mcp_url
    assert (await revoke(flow, tokens["access_token"])).status_code == 200
    assert await verify_access_token(flow.rt.sessions, tokens["access_token"], resource=mcp) is None
    refreshed = await flow.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200
    assert await verify_access_token(flow.rt.sessions, refreshed.json()["access_token"], resource=mcp)


async def test_unknown_tokens_revoke_with_200(flow: Flow) -> None:
    assert (await revoke(flow, "aic_at_nothing")).status_code == 200
    assert (await revoke(flow, "garbage")).status_code == 200


async def test_another_clients_token_is_not_revoked(flow: Flow, confidential_flow: Flow) -> None:
    tokens = await flow.tokens()
    response = await revoke(confidential_flow, tokens["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    assert (await flow.refresh(tokens["refresh_token"])).status_code == 200


async def test_revocation_requires_client_authentication(confidential_flow: Flow) -> None:
    tokens = await confidential_flow.tokens()
    response = await confidential_flow.http.post(
        f"{confidential_flow.server.base_url}/oauth/revoke",
        data={"token": tokens["refresh_token"], "client_id": confidential_flow.client.client_id},
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


async def test_introspection_for_confidential_clients(confidential_flow: Flow) -> None:
    flow = confidential_flow
    tokens = await flow.tokens(scopes=frozenset({"content:read", "content:write"}))
    response = await introspect(flow, tokens["access_token"], headers=basic(flow))
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    assert body["scope"] == "content:read content:write" and body["client_id"] == flow.client.client_id
    assert body["username"] == "admin" and body["sub"] == "1" and body["token_type"] == "Bearer"
    assert body["aud"] == flow.server.settings.mcp_url and body["iss"] == flow.server.base_url
    assert body["exp"] - body["iat"] == 3600
    refresh = (await introspect(flow, tokens["refresh_token"], headers=basic(flow))).json()
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    assert (await introspect(flow, "aic_at_unknown", headers=basic(flow))).json() == {"active": False}


async def test_introspection_refuses_public_clients_and_hides_other_clients_tokens(
    flow: Flow, confidential_flow: Flow
) -> None:
    public_tokens = await flow.tokens()
    public = await introspect(flow, public_tokens["access_token"], client_id=flow.client.client_id)
    assert public.status_code == 401 and public.json()["error"] == "invalid_client"
    foreign = await introspect(
        confidential_flow, public_tokens["access_token"], headers=basic(confidential_flow)
    )
    assert foreign.json() == {"active": False}
    no_secret = await introspect(
        confidential_flow, public_tokens["access_token"], client_id=confidential_flow.client.client_id
    )
    assert no_secret.status_code == 401


async def test_introspection_reports_revoked_tokens_inactive(confidential_flow: Flow) -> None:
    flow = confidential_flow
    tokens = await flow.tokens()
    await revoke(flow, tokens["refresh_token"])
    assert (await introspect(flow, tokens["access_token"], headers=basic(flow))).json() == {"active": False}
