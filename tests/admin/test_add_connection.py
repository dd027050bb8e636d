"""Add Connection (/admin/add) in chromium: every entry's values, the copy fallback, the
Generic and Device registration forms, and — the point of the page — that the values it shows
work in real clients: the official MCP Python SDK with a client registered here, and
``aiconnector login`` run exactly as the Device Auth entry prints it.

The page tests use Playwright's sync API (the module's browser); the SDK needs an event loop
of its own, so it runs through ``run_sync`` with an async chromium of its own."""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from aiconnector.core.connections import list_connections
from tests.admin.conftest import admin_client, csrf_of, signed_in_page
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, screenshot
from tests.client.conftest import config_dir  # noqa: F401 - fixture
from tests.client.test_login import LoginProcess, approve_in_browser
from tests.conftest import ADMIN_PASSWORD, LiveServer
from tests.interop.conftest import authorize_in_browser, mcp_client, run_server, whoami
from tests.support import DatabaseUnderTest, free_port, run_sync

CLIENT_KEYS = ["claude", "chatgpt", "cursor", "vscode", "claude-code", "generic", "device", "app-password"]
SIZES = {"1280": (1280, 800), "390": (390, 844)}


@pytest.fixture(scope="module")
def server(database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Generous registration limits; device polling every second keeps the login test quick."""
    with run_server(database, tmp_path_factory.mktemp("admin-add"), device_poll_interval=1) as live:
        yield live


def value_of(page: Any, slug: str) -> str:  # noqa: ANN401 - playwright Page
    return page.locator(f"pre#{slug}").inner_text()


def check_no_csp_violations(messages: list[str]) -> None:
    assert not [m for m in messages if "Content Security Policy" in m], messages


def test_index_lists_every_client_and_links_to_its_entry(browser: Any, server: LiveServer) -> None:  # noqa: ANN401
    for size, (width, height) in SIZES.items():
        page = signed_in_page(browser, server, width=width, height=height, next_path="/admin/add")
        try:
            assert page.get_by_role("heading", name="Add Connection").is_visible()
            hrefs = [a.get_attribute("href") for a in page.locator("ul.clients a").all()]
            assert hrefs == [f"/admin/add/{key}" for key in CLIENT_KEYS]
            assert page.locator("nav.side a[aria-current=page]").inner_text() == "Add Connection"
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= width, "nothing may overflow sideways"
            screenshot(page, f"admin-add-{size}")
        finally:
            page.context.close()


def test_entries_show_values_that_match_the_clients_formats(browser: Any, server: LiveServer) -> None:  # noqa: ANN401
    page = signed_in_page(browser, server, next_path="/admin/add")
    mcp_url = server.mcp_url
    try:
        page.goto(f"{server.base_url}/admin/add/claude")
        assert value_of(page, "connector-url") == mcp_url
        config = json.loads(value_of(page, "claude-desktop-config"))
        assert config == {"mcpServers": {"site": {"command": "npx", "args": ["-y", "mcp-remote", mcp_url]}}}
        assert "Settings → Connectors → Add custom connector" in page.locator("ol.steps").inner_text()

        page.goto(f"{server.base_url}/admin/add/chatgpt")
        assert value_of(page, "mcp-server-url") == mcp_url
        assert "Developer mode" in page.locator("ol.steps").inner_text()

        page.goto(f"{server.base_url}/admin/add/cursor")
        link = page.get_by_role("link", name="Add to Cursor").get_attribute("href")
        parts = urlsplit(link)
        assert (parts.scheme, parts.netloc, parts.path) == (
            "cursor",
            "anysphere.cursor-deeplink",
            "/mcp/install",
        )
        query = parse_qs(parts.query)
        assert query["name"] == ["site"]
        assert json.loads(base64.b64decode(query["config"][0])) == {"url": mcp_url}
        assert json.loads(value_of(page, "cursor-mcp-json")) == {"mcpServers": {"site": {"url": mcp_url}}}

        page.goto(f"{server.base_url}/admin/add/vscode")
        link = page.get_by_role("link", name="Install in VS Code").get_attribute("href")
        assert link.startswith("vscode:mcp/install?")
        server_json = {"name": "site", "type": "http", "url": mcp_url}
        assert json.loads(unquote(link.split("?", 1)[1])) == server_json
        command = shlex.split(value_of(page, "vscode-command"))
        assert command[:2] == ["code", "--add-mcp"] and json.loads(command[2]) == server_json

        page.goto(f"{server.base_url}/admin/add/claude-code")
        assert shlex.split(value_of(page, "claude-code-command")) == [
            "claude", "mcp", "add", "--transport", "http", "site", mcp_url,
        ]  # fmt: skip

        page.goto(f"{server.base_url}/admin/add/app-password")
        page.get_by_role("link", name="Open Application Passwords").click()
        page.wait_for_url(f"{server.base_url}/admin/profile")

        page.goto(f"{server.base_url}/admin/add/no-such-client")
        assert "Not found" in page.content()
    finally:
        page.context.close()


@pytest.mark.parametrize("key", CLIENT_KEYS)
def test_every_entry_has_copyable_details_and_screenshots(browser: Any, server: LiveServer, key: str) -> None:  # noqa: ANN401
    """The details block is on the page (selectable without JS); the button, shown by the
    script, copies exactly that text, also from the keyboard. No CSP violation, no overflow."""
    for size, (width, height) in SIZES.items():
        page = signed_in_page(browser, server, width=width, height=height, next_path=f"/admin/add/{key}")
        messages: list[str] = []
        page.on("console", lambda m, messages=messages: messages.append(m.text))
        try:
            page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base_url)
            page.reload()
            details = page.locator("pre#connection-details").inner_text()
            assert server.mcp_url in details or server.base_url in details
            button = page.get_by_role("button", name="Copy connection details")
            button.focus()
            page.keyboard.press("Enter")
            page.get_by_role("button", name="Copied").first.wait_for()
            assert page.evaluate("navigator.clipboard.readText()") == page.evaluate(
                "document.getElementById('connection-details').textContent"
            )
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            check_no_csp_violations(messages)
            screenshot(page, f"admin-add-{key}-{size}")
        finally:
            page.context.close()


def test_without_javascript_the_values_are_there_and_no_dead_buttons(
    browser: Any, server: LiveServer
) -> None:  # noqa: ANN401
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"{server.base_url}/login?next=/admin/add/cursor")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/admin/add/cursor")
        assert page.locator("pre#connection-details").is_visible()
        assert page.get_by_role("button", name="Copy connection details").count() == 0, "hidden without JS"
    finally:
        context.close()


def test_pages_send_the_strict_csp_and_load_no_external_assets(server: LiveServer) -> None:
    with admin_client(server) as client:
        for path in ["/admin/add", *(f"/admin/add/{key}" for key in CLIENT_KEYS)]:
            response = client.get(path)
            assert response.status_code == 200, path
            assert "script-src 'self'" in response.headers["content-security-policy"]
            sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
            external = [s for s in sources if s.startswith(("http:", "https:", "//"))]
            assert not external, external
        script = client.get("/static/admin-copy.js")
        assert script.status_code == 200 and "navigator.clipboard" in script.text


def test_registration_forms_require_the_csrf_token(server: LiveServer) -> None:
    with admin_client(server) as client:
        for key in ("generic", "device"):
            refused = client.post(
                f"/admin/add/{key}", data={"name": "x", "redirect_uris": "http://127.0.0.1/cb"}
            )
            assert refused.status_code == 403, key
        assert (
            client.post(
                "/admin/add/claude", data={"csrf": csrf_of(client.get("/admin/add").text)}
            ).status_code
            == 404
        )


def register_generic(
    page: Any, server: LiveServer, name: str, redirect_uri: str, *, confidential: bool = False
) -> None:  # noqa: ANN401
    page.goto(f"{server.base_url}/admin/add/generic")
    page.get_by_label("Client name").fill(name)
    page.get_by_label("Redirect URIs").fill(redirect_uri)
    page.get_by_label("Confidential" if confidential else "Public").check()
    page.get_by_role("button", name="Register client").click()
    page.get_by_role("heading", name="Client registered").wait_for()


def test_generic_form_errors_keep_what_was_typed(browser: Any, server: LiveServer) -> None:  # noqa: ANN401
    page = signed_in_page(browser, server, next_path="/admin/add/generic")
    try:
        page.get_by_label("Client name").fill("Bad redirect")
        page.get_by_label("Redirect URIs").fill("javascript:alert(1)")
        page.get_by_role("button", name="Register client").click()
        assert page.get_by_role("alert").is_visible()
        assert page.get_by_label("Client name").input_value() == "Bad redirect"
        assert page.get_by_label("Redirect URIs").input_value() == "javascript:alert(1)"
    finally:
        page.context.close()


def test_confidential_generic_client_shows_its_secret_once(browser: Any, server: LiveServer) -> None:  # noqa: ANN401
    page = signed_in_page(browser, server, next_path="/admin/add/generic")
    try:
        register_generic(page, server, "Server-side tool", "https://tool.example/callback", confidential=True)
        secret = value_of(page, "result-client-secret")
        assert secret.startswith("aic_cs_")
        assert secret in page.locator("pre#result-details").inner_text()
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            screenshot(page, f"admin-add-generic-result-{size}")
        page.goto(f"{server.base_url}/admin/add/generic")
        assert secret not in page.content(), "shown only in the answer to the registration"
    finally:
        page.context.close()


async def _sdk_whoami(server: LiveServer, client_id: str, redirect_uri: str) -> tuple[dict[str, Any], str]:
    """The official SDK client with the client id from the page (so it does not register
    itself), consent in an async chromium of its own; returns whoami and the consent URL."""
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata
    from playwright.async_api import async_playwright

    from tests.interop.test_python_sdk import MemoryTokenStorage

    metadata = {
        "client_name": "Generic client from the admin page",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    storage = MemoryTokenStorage()
    storage.client_info = OAuthClientInformationFull(client_id=client_id, **metadata)
    seen: dict[str, Any] = {}
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = await (await chromium.new_context()).new_page()

            async def redirect_handler(url: str) -> None:
                seen["url"] = url
                seen["answer"] = await authorize_in_browser(page, url)

            async def callback_handler() -> AuthorizationCodeResult:
                answer = seen["answer"]
                return AuthorizationCodeResult(
                    code=answer["code"], state=answer.get("state"), iss=answer.get("iss")
                )

            provider = OAuthClientProvider(
                server_url=server.mcp_url,
                client_metadata=OAuthClientMetadata(**metadata),
                storage=storage,
                redirect_handler=redirect_handler,
                callback_handler=callback_handler,
            )
            async with mcp_client(server, auth=provider) as client:
                me = await whoami(client)
        finally:
            await chromium.close()
    return me, seen["url"]


def test_generic_client_registered_in_the_ui_works_with_the_python_sdk(
    browser: Any, server: LiveServer
) -> None:  # noqa: ANN401
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    page = signed_in_page(browser, server, next_path="/admin/add/generic")
    try:
        register_generic(page, server, "Newsroom bot", redirect_uri)
        client_id = value_of(page, "result-client-id")
        assert page.locator("pre#result-client-secret").count() == 0, "public clients get no secret"
        assert value_of(page, "result-authorization-url") == f"{server.base_url}/oauth/authorize"
        assert value_of(page, "result-token-url") == f"{server.base_url}/oauth/token"

        me, url = run_sync(_sdk_whoami(server, client_id, redirect_uri))
        assert urlsplit(url).path == "/oauth/authorize" and parse_qs(urlsplit(url).query)["client_id"] == [
            client_id
        ]
        assert me["username"] == "admin" and me["auth_method"] == "oauth"
        [connection] = [
            c for c in server.run(lambda rt: list_connections(rt.sessions)) if c.id == me["connection_id"]
        ]
        assert connection.client_id == client_id and connection.agent_name.startswith("Newsroom bot")

        page.goto(f"{server.base_url}/admin/connections")
        assert "Newsroom bot" in page.locator("main").inner_text(), "the new connection is listed"
    finally:
        page.context.close()


def test_device_client_from_the_ui_logs_in_with_the_shown_command(
    browser: Any,  # noqa: ANN401
    server: LiveServer,
    config_dir: Path,  # noqa: F811 - fixture
) -> None:
    page = signed_in_page(browser, server, next_path="/admin/add/device")
    try:
        page.get_by_label("Agent name").fill("CI runner")
        page.get_by_role("checkbox", name=re.compile("content:write")).check()
        page.get_by_role("button", name="Register device client").click()
        page.get_by_role("heading", name="Client registered").wait_for()
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            screenshot(page, f"admin-add-device-result-{size}")
        client_id = value_of(page, "result-client-id")
        login = shlex.split(value_of(page, "result-login-command"))
        assert login[:3] == ["aiconnector", "login", server.base_url]
        assert login[3:] == ["--client-id", client_id, "--scope", "content:read content:write"]
        curl = shlex.split(value_of(page, "result-curl-command"))
        assert f"{server.base_url}/oauth/device_authorization" in curl and f"client_id={client_id}" in curl

        process = LoginProcess(config_dir, *login[2:])
        user_code, verification_uri = process.user_code()
        approve_in_browser(page, verification_uri, user_code)
        returncode, stdout, stderr = process.finish()
        assert returncode == 0, stderr
        assert "content:read content:write" in stdout
        agents = [c for c in server.run(lambda rt: list_connections(rt.sessions)) if c.client_id == client_id]
        assert [(c.agent_name, c.method, c.active) for c in agents] == [("CI runner", "device", True)]
    finally:
        page.context.close()


def test_device_form_requires_a_name(server: LiveServer) -> None:
    with admin_client(server) as client:
        token = csrf_of(client.get("/admin/add/device").text)
        response = client.post(
            "/admin/add/device", data={"csrf": token, "name": " ", "scope": "content:read"}
        )
    assert response.status_code == 400 and "Enter the agent" in response.text


# --- who a registered client belongs to ------------------------------------------------------


def register_over_http(client: Any, entry: str, **fields: str) -> str:  # noqa: ANN401 - httpx.Client
    """Post an Add Connection form as a person would; the new client's id."""
    token = csrf_of(client.get(f"/admin/add/{entry}").text)
    response = client.post(f"/admin/add/{entry}", data={"csrf": token, **fields})
    assert response.status_code == 200, response.text
    match = re.search(r'<pre[^>]*id="result-client-id"[^>]*>([^<]+)</pre>', response.text)
    assert match, response.text
    return match.group(1)


def client_row(server: LiveServer, client_id: str) -> Any:  # noqa: ANN401 - OAuthClient
    from aiconnector.db.models import OAuthClient

    async def fetch(rt: Any) -> Any:  # noqa: ANN401
        async with rt.sessions() as session:
            return await session.get(OAuthClient, client_id)

    return server.run(fetch)


def consent_html(client: Any, client_id: str) -> str:  # noqa: ANN401 - httpx.Client
    params = {
        "response_type": "code", "client_id": client_id, "redirect_uri": "http://127.0.0.1:9/cb",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256",
    }  # fmt: skip
    response = client.get("/oauth/authorize", params=params)
    assert response.status_code == 200, response.text
    return response.text


def test_only_administrators_register_clients_as_the_site_owner(server: LiveServer) -> None:
    """A subscriber's client from Add Connection is labelled as theirs on the consent screen
    (with the "name not chosen by this site" warning) and expires when unused; an
    administrator's is pre-registered by the site owner."""
    from aiconnector.core.clients import purge_expired_clients
    from aiconnector.db.models import OAuthClient, utcnow
    from tests.admin.conftest import USER_PASSWORD, ensure_user

    subscriber_id = ensure_user(server, "sub-registrar", role="subscriber")
    with admin_client(server, "sub-registrar", USER_PASSWORD) as subscriber:
        phishing = register_over_http(
            subscriber, "generic", name="Site Owner's Backup Tool", redirect_uris="http://127.0.0.1:9/cb",
            client_type="public",
        )  # fmt: skip
        token = csrf_of(subscriber.get("/admin/add/device").text)
        device_page = subscriber.post("/admin/add/device", data={"csrf": token, "name": "Owner's CI"})
        assert "registered as yours" in device_page.text
        device = re.search(r'id="result-client-id"[^>]*>([^<]+)<', device_page.text).group(1)
    with admin_client(server) as admin:
        owners = register_over_http(
            admin,
            "generic",
            name="Newsroom tool",
            redirect_uris="http://127.0.0.1:9/cb",
            client_type="public",
        )
        phishing_consent = consent_html(admin, phishing)
        owners_consent = consent_html(admin, owners)

    for client_id in (phishing, device):
        row = client_row(server, client_id)
        assert (row.kind, row.registered_by) == ("user_registered", subscriber_id)
        assert row.expires_at is not None
    assert "registered by sub-registrar" in phishing_consent
    assert "pre-registered by the site owner" not in phishing_consent
    assert 'id="self-named"' in phishing_consent and "chosen by sub-registrar" in phishing_consent
    row = client_row(server, owners)
    assert (row.kind, row.expires_at) == ("pre_registered", None)
    assert "pre-registered by the site owner" in owners_consent and 'id="self-named"' not in owners_consent

    async def expire_and_purge(rt: Any) -> int:  # noqa: ANN401
        from sqlalchemy import update

        async with rt.sessions.begin() as session:
            await session.execute(
                update(OAuthClient)
                .where(OAuthClient.client_id.in_([phishing, device, owners]))
                .values(expires_at=utcnow())
            )
        return await purge_expired_clients(rt.sessions)

    server.run(expire_and_purge)
    assert client_row(server, phishing) is None and client_row(server, device) is None  # unused: removed
    assert client_row(server, owners) is not None  # the site owner's: kept
