"""Registrations shaped exactly like deployed clients' (Cursor, VS Code, Claude) and a Client ID
Metadata Document client, each taken through the real consent page in chromium.

These clients cannot run here (desktop apps, or cloud services that need a public HTTPS
server), so the test sends what they send: their DCR bodies and their redirect URIs, a custom
scheme and VS Code's any-port loopback included, then the person's part in a real browser,
then the code redemption with the PKCE verifier, then a call to ``/mcp`` with the token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import LiveServer
from tests.interop.conftest import (
    authorize_in_browser,
    bearer,
    mcp_client,
    open_consent,
    redeem_code,
    register_client,
    screenshot,
    whoami,
)
from tests.support import serve_in_thread
from tests.web.conftest import pkce_pair

if TYPE_CHECKING:
    from playwright.async_api import Page

CURSOR_CALLBACK = "cursor://anysphere.cursor-mcp/oauth/callback"
VSCODE_WEB_CALLBACK = "https://vscode.dev/redirect"
VSCODE_LOOPBACK = "http://127.0.0.1:33418/"
CLAUDE_CALLBACK = "https://claude.ai/api/mcp/auth_callback"
COMMON = {
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
}
# The bodies these clients POST to the registration endpoint (as captured from their traffic
# and SDK sources): Cursor says web, VS Code native, Claude gives only the essentials.
CURSOR = {**COMMON, "client_name": "Cursor", "redirect_uris": [CURSOR_CALLBACK], "application_type": "web"}
VSCODE = {
    **COMMON,
    "client_name": "Visual Studio Code",
    "redirect_uris": [VSCODE_WEB_CALLBACK, VSCODE_LOOPBACK],
    "application_type": "native",
}
CLAUDE = {"client_name": "Claude", "redirect_uris": [CLAUDE_CALLBACK], "grant_types": COMMON["grant_types"]}


def authorize_url(
    server: LiveServer, client_id: str, redirect_uri: str, challenge: str, scope: str | None = "content:read"
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "interop-state",
        "resource": server.mcp_url,
    }
    if scope is not None:
        params["scope"] = scope
    return f"{server.base_url}/oauth/authorize?{urlencode(params)}"


async def consent_and_call(
    server: LiveServer,
    page: Page,
    client_id: str,
    redirect_uri: str,
    scope: str | None = "content:read",
    grant: list[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Authorize in the browser (ticking exactly ``grant`` if given), redeem the code, call
    whoami: (token response, whoami)."""
    verifier, challenge = pkce_pair()
    answer = await authorize_in_browser(
        page, authorize_url(server, client_id, redirect_uri, challenge, scope), scopes=grant
    )
    assert answer["state"] == "interop-state" and answer["iss"] == server.settings.origin
    tokens = await redeem_code(
        server, client_id=client_id, code=answer["code"], verifier=verifier, redirect_uri=redirect_uri
    )
    async with mcp_client(server, headers=bearer(tokens["access_token"])) as client:
        return tokens, await whoami(client)


@pytest.mark.parametrize(
    ("metadata", "redirect_uri"),
    [
        (CURSOR, CURSOR_CALLBACK),
        (VSCODE, VSCODE_WEB_CALLBACK),
        (VSCODE, VSCODE_LOOPBACK),
        (VSCODE, "http://127.0.0.1:54321/"),  # RFC 8252 §7.3: any port on loopback
        (CLAUDE, CLAUDE_CALLBACK),
    ],
    ids=["cursor", "vscode-web", "vscode-loopback", "vscode-other-port", "claude"],
)
async def test_registration_reaches_the_consent_page(
    interop_server: LiveServer, page: Page, metadata: dict[str, Any], redirect_uri: str
) -> None:
    registered = await register_client(interop_server, metadata)
    assert registered["token_endpoint_auth_method"] == "none", "missing means none, echoed back"
    assert registered["redirect_uris"] == metadata["redirect_uris"]
    assert "client_secret" not in registered
    _, challenge = pkce_pair()
    await open_consent(page, authorize_url(interop_server, registered["client_id"], redirect_uri, challenge))
    heading = f"{metadata['client_name']} wants to connect to your site"
    assert await page.get_by_role("heading", name=heading).is_visible()
    shown = await page.locator("#redirect-host").inner_text()
    assert redirect_uri.startswith(shown) or shown in redirect_uri, (shown, redirect_uri)


async def test_cursor_custom_scheme_completes(interop_server: LiveServer, page: Page) -> None:
    """The code arrives on ``cursor://…`` (only the Location header shows it: no browser can
    load that scheme) and redeems with the verifier into a working token."""
    client_id = (await register_client(interop_server, CURSOR))["client_id"]
    tokens, me = await consent_and_call(interop_server, page, client_id, CURSOR_CALLBACK)
    assert tokens["token_type"].lower() == "bearer" and tokens["scope"] == "content:read"
    assert me["username"] == "admin" and me["agent_name"].startswith("Cursor")


async def test_omitted_scope_gets_content_read(interop_server: LiveServer, page: Page) -> None:
    """ChatGPT omits ``scope`` on reconnect: the default (content:read) is offered and granted."""
    client_id = (await register_client(interop_server, VSCODE))["client_id"]
    loopback = "http://127.0.0.1:40123/"
    tokens, me = await consent_and_call(interop_server, page, client_id, loopback, scope=None)
    assert tokens["scope"] == "content:read" and me["scopes"] == ["content:read"]


async def test_person_can_grant_less_than_requested(interop_server: LiveServer, page: Page) -> None:
    """Unticking a scope on the consent page narrows the grant; the client learns it from the
    token response's ``scope`` (clients such as VS Code request everything they can)."""
    client_id = (await register_client(interop_server, VSCODE))["client_id"]
    tokens, me = await consent_and_call(
        interop_server,
        page,
        client_id,
        VSCODE_LOOPBACK,
        scope="content:read content:write content:publish",
        grant=["content:read", "content:write"],
    )
    assert tokens["scope"] == "content:read content:write"
    assert me["scopes"] == ["content:read", "content:write"]


@dataclass
class DocumentHost:
    """A local web server for Client ID Metadata Documents. The server under test fetches them
    over plain http from loopback because make_settings turns on allow_private_fetch."""

    base_url: str
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)

    def publish(self, path: str, document: dict[str, Any]) -> str:
        """Serve ``document`` at ``path``, its ``client_id`` being its own URL; return that URL."""
        url = self.base_url + path
        self.documents[path] = {"client_id": url, **document}
        return url


@pytest.fixture(scope="module")
def document_host() -> Iterator[DocumentHost]:
    documents: dict[str, dict[str, Any]] = {}

    async def serve(request: Request) -> JSONResponse:
        document = documents.get(request.url.path)
        if document is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=60"})

    with serve_in_thread(Starlette(routes=[Route("/{path:path}", serve)])) as base_url:
        yield DocumentHost(base_url, documents)


async def test_metadata_document_client_completes(
    interop_server: LiveServer, page: Page, document_host: DocumentHost
) -> None:
    """CIMD: the client_id is the URL of its metadata document; no registration at all."""
    redirect_uri = "http://127.0.0.1:9/cimd/callback"
    client_id = document_host.publish(
        f"/clients/interop-{interop_server.database.kind}.json",
        {
            "client_name": "Interop CIMD client",
            "client_uri": "https://client.example/",
            "redirect_uris": [redirect_uri],
            **COMMON,
        },
    )
    _, challenge = pkce_pair()
    await open_consent(page, authorize_url(interop_server, client_id, redirect_uri, challenge))
    assert await page.get_by_role(
        "heading", name="Interop CIMD client wants to connect to your site"
    ).is_visible()
    await screenshot(page, f"interop-cimd-consent-{interop_server.database.kind}")
    tokens, me = await consent_and_call(interop_server, page, client_id, redirect_uri)
    assert tokens["scope"] == "content:read" and me["username"] == "admin"
