"""RFC 7591 Dynamic Client Registration, redirect URI rules, and clean-up of unused clients."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from aiconnector.core.clients import (
    ClientRecord,
    aware,
    purge_expired_clients,
    redirect_uri_allowed,
    resolve_client,
)
from aiconnector.core.connections import revoke_connection
from aiconnector.core.tokens import verify_access_token
from aiconnector.db.models import OAuthClient, utcnow
from aiconnector.errors import OAuthError
from aiconnector.runtime import Runtime
from aiconnector.security import sha256_hex
from tests.oauth.conftest import AuthServer, Flow, new_verifier


def register(server: AuthServer, body: object, **kwargs: object) -> httpx.Response:
    url = f"{server.base_url}/oauth/register"
    if isinstance(body, dict):
        return httpx.post(url, json=body, **kwargs)
    return httpx.post(url, content=body, headers={"Content-Type": "application/json"}, **kwargs)


def test_defaults_for_a_minimal_public_client(auth_server: AuthServer) -> None:
    response = register(auth_server, {"redirect_uris": ["http://localhost:6274/oauth/callback"]})
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["access-control-allow-origin"] == "*"
    body = response.json()
    assert body["client_id"] and isinstance(body["client_id_issued_at"], int)
    assert body["token_endpoint_auth_method"] == "none"  # missing means public, echoed back
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["response_types"] == ["code"] and body["client_name"] == "MCP client"
    assert "client_secret" not in body


def test_grants_are_normalized(auth_server: AuthServer) -> None:
    body = register(
        auth_server,
        {"redirect_uris": ["https://claude.ai/api/mcp/auth_callback"], "grant_types": ["authorization_code"]},
    ).json()
    assert body["grant_types"] == ["authorization_code", "refresh_token"]


async def test_confidential_client_gets_a_hashed_secret(auth_server: AuthServer, rt: Runtime) -> None:
    body = register(
        auth_server,
        {
            "client_name": "Backend\x00 bot",
            "redirect_uris": ["https://app.example/cb"],
            "token_endpoint_auth_method": "client_secret_basic",
            "client_uri": "https://app.example/",
        },
    ).json()
    assert body["client_secret"].startswith("aic_cs_") and body["client_secret_expires_at"] == 0
    assert body["client_name"] == "Backend bot" and body["client_uri"] == "https://app.example/"
    async with rt.sessions() as s:
        row = await s.get(OAuthClient, body["client_id"])
    assert row.kind == "dynamic" and row.secret_hash == sha256_hex(body["client_secret"])
    assert body["client_secret"] not in str(row.document)
    assert row.expires_at is not None


@pytest.mark.parametrize(
    "uri",
    [
        "https://claude.ai/api/mcp/auth_callback",
        "https://chatgpt.com/connector/oauth/abc123",
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "vscode://vscode.github-authentication/did-authenticate",
        "http://127.0.0.1/",
        "http://127.0.0.1:33418/",
        "http://[::1]:8080/cb",
        "http://localhost:8787/callback",
    ],
)
def test_accepted_redirect_uris(auth_server: AuthServer, uri: str) -> None:
    response = register(auth_server, {"redirect_uris": [uri], "client_name": "Cursor"})
    assert response.status_code == 201, response.text
    assert response.json()["redirect_uris"] == [uri]


@pytest.mark.parametrize(
    "uri",
    [
        "javascript:alert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
        "http://evil.example/cb",
        "http://192.168.1.5/cb",
        "https://app.example/cb#frag",
        "/relative/cb",
        "https:///nohost",
        "https://app.example/a b",
        "",
        # A user name or password in the authority shows one host and may mean another.
        "http://user:pw@127.0.0.1/cb",
        "https://user@app.example/cb",
        "cursor://user@anysphere.cursor-mcp/cb",
        # Schemes a browser reads locally.
        "view-source:https://app.example/cb",
        "jar:https://app.example/x.jar!/cb",
        # Not ASCII: no valid Location header can carry it as it is.
        "http://127.0.0.1:9999/cb/例",
        "https://例え.jp/cb",
        "http://127.0.0.1/call\tback",
    ],
)
def test_refused_redirect_uris(auth_server: AuthServer, uri: str) -> None:
    response = register(auth_server, {"redirect_uris": [uri]})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "invalid_redirect_uri"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "invalid_redirect_uri"),
        ({"redirect_uris": "https://a.example/cb"}, "invalid_client_metadata"),
        (
            {"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"},
            "invalid_client_metadata",
        ),
        ({"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]}, "invalid_client_metadata"),
        (
            {"redirect_uris": ["https://a.example/cb"], "grant_types": ["refresh_token"]},
            "invalid_client_metadata",
        ),
        ({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://a.example/cb"], "logo_uri": "javascript:x"}, "invalid_client_metadata"),
        (b"not json", "invalid_client_metadata"),
        (b"[1, 2]", "invalid_client_metadata"),
    ],
)
def test_refused_metadata_is_rfc7591_json(auth_server: AuthServer, body: object, error: str) -> None:
    response = register(auth_server, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error and response.json()["error_description"]


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx", "multipart/form-data"],
)
def test_registration_must_be_sent_as_application_json(
    auth_server: AuthServer, content_type: str | None
) -> None:
    """RFC 7591 §3.1: the request is JSON. Anything else is refused in RFC 7591's words (400
    ``invalid_client_metadata``), before the body is parsed at all."""
    body = json.dumps({"redirect_uris": ["http://127.0.0.1/cb"]}).encode()
    url = f"{auth_server.base_url}/oauth/register"
    headers = {"Content-Type": content_type} if content_type else {}
    response = httpx.post(url, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata" and response.json()["error_description"]
    with_charset = httpx.post(url, content=body, headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert with_charset.status_code == 201, with_charset.text


def test_registration_body_size_is_capped(auth_server: AuthServer) -> None:
    response = register(auth_server, {"redirect_uris": ["https://a.example/cb"], "x": "y" * 70_000})
    assert response.status_code == 413 and response.json()["error"] == "invalid_request"


async def test_registered_client_resolves(auth_server: AuthServer, rt: Runtime) -> None:
    body = register(auth_server, {"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "VS Code"}).json()
    client = await resolve_client(rt.sessions, body["client_id"], settings=auth_server.settings)
    assert client.kind == "dynamic" and client.name == "VS Code" and not client.confidential
    with pytest.raises(OAuthError) as exc:
        await resolve_client(rt.sessions, "dyn_nope", settings=auth_server.settings)
    assert exc.value.error == "invalid_client" and exc.value.status == 401


def client_with(*uris: str) -> ClientRecord:
    return ClientRecord("c", "c", "dynamic", uris, ("authorization_code",), "none", None, None)


def test_redirect_matching_is_exact_except_loopback_ports() -> None:
    client = client_with(
        "https://vscode.dev/redirect",
        "http://127.0.0.1/",
        "http://localhost:8787/callback",
        "http://[::1]/cb",
    )
    assert redirect_uri_allowed(client, "https://vscode.dev/redirect")
    assert not redirect_uri_allowed(client, "https://vscode.dev/redirect/")
    assert not redirect_uri_allowed(client, "https://vscode.dev:8443/redirect")  # only loopback ports float
    assert not redirect_uri_allowed(client, "https://vscode.dev/redirect?x=1")
    assert redirect_uri_allowed(client, "http://127.0.0.1:33418/")
    assert redirect_uri_allowed(client, "http://127.0.0.1/")
    assert not redirect_uri_allowed(client, "http://127.0.0.1:33418/other")
    assert redirect_uri_allowed(client, "http://localhost:50123/callback")
    assert redirect_uri_allowed(client, "http://[::1]:9999/cb")
    # localhost and 127.0.0.1 are different hosts.
    assert not redirect_uri_allowed(client, "http://localhost:33418/")
    assert not redirect_uri_allowed(
        client_with("http://localhost:8787/callback"), "http://127.0.0.1:8787/callback"
    )
    # No scheme or credential tricks.
    assert not redirect_uri_allowed(client, "https://127.0.0.1:33418/")
    assert not redirect_uri_allowed(client, "http://user@127.0.0.1:33418/")
    assert not redirect_uri_allowed(client, "http://127.0.0.1:33418/#x")
    assert not redirect_uri_allowed(client, "http://127.0.0.1:notaport/")
    # Whitespace and control characters are refused, never stripped into a match.
    for sneaky in (
        "http://localhost:8787/call\tback",
        "http://localhost:8787/callback\r\n",
        "http://127.0.0.1\n:9/",
    ):
        assert not redirect_uri_allowed(client, sneaky), sneaky


async def test_purge_removes_expired_unused_dynamic_clients(auth_server: AuthServer, flow: Flow) -> None:
    unused = register(auth_server, {"redirect_uris": ["http://127.0.0.1/cb"]}).json()["client_id"]
    connected = register(auth_server, {"redirect_uris": ["http://127.0.0.1:7777/callback"]}).json()[
        "client_id"
    ]
    rt = flow.rt
    connected_flow = Flow(
        flow.server,
        rt,
        flow.http,
        await resolve_client(rt.sessions, connected, settings=auth_server.settings),
    )
    tokens = await connected_flow.tokens()
    past = utcnow() - timedelta(seconds=1)
    async with rt.sessions.begin() as s:
        await s.execute(update(OAuthClient).where(OAuthClient.kind == "dynamic").values(expires_at=past))
        await s.execute(
            update(OAuthClient).where(OAuthClient.client_id == flow.client.client_id).values(expires_at=past)
        )
    assert await purge_expired_clients(rt.sessions) >= 1
    async with rt.sessions() as s:
        assert await s.get(OAuthClient, unused) is None
        assert await s.get(OAuthClient, connected) is not None  # has an active connection
        assert await s.get(OAuthClient, flow.client.client_id) is not None  # pre-registered: never purged
    # Once its connection is gone, the connected client is purged too.
    principal, _ = await verify_access_token(
        rt.sessions, tokens["access_token"], resource=auth_server.settings.mcp_url
    )
    await revoke_connection(rt.sessions, principal.connection_id, audit=rt.audit)
    assert await purge_expired_clients(rt.sessions) >= 1
    async with rt.sessions() as s:
        assert await s.get(OAuthClient, connected) is None


async def test_a_new_connection_extends_a_dynamic_clients_life(auth_server: AuthServer, flow: Flow) -> None:
    client_id = register(auth_server, {"redirect_uris": ["http://127.0.0.1:7777/callback"]}).json()[
        "client_id"
    ]
    rt = flow.rt
    async with rt.sessions.begin() as s:
        await s.execute(
            update(OAuthClient)
            .where(OAuthClient.client_id == client_id)
            .values(expires_at=utcnow() + timedelta(hours=1))
        )
    client = await resolve_client(rt.sessions, client_id, settings=auth_server.settings)
    verifier = new_verifier()
    dyn = Flow(flow.server, rt, flow.http, client)
    assert (await dyn.redeem(await dyn.code(verifier), verifier)).status_code == 200
    async with rt.sessions() as s:
        row = await s.get(OAuthClient, client_id)
    assert aware(row.expires_at) > utcnow() + timedelta(days=6)
    assert row.last_used_at is not None
