"""The sign-in and consent pages in a real browser (Debian's chromium through Playwright),
found by their visible labels as DESIGN §4 promises: sign in, narrow the scopes, authorize or
deny, and see exactly what the client's redirect URI receives."""

from __future__ import annotations

from collections.abc import Iterator
from html import escape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from aiconnector.core.scopes import SCOPE_DESCRIPTIONS
from tests.browser.conftest import screenshot
from tests.conftest import ADMIN_PASSWORD, LiveServer
from tests.support import serve_in_thread
from tests.web.conftest import (
    CUSTOM_SCHEME_CALLBACK,
    LOOPBACK_CALLBACK,
    USER_PASSWORD,
    authorize_params,
    latest_code,
)
from tests.web.conftest import sign_in as sign_in_http


def authorize_url(server: LiveServer, **overrides: str | None) -> tuple[str, dict[str, str]]:
    params = authorize_params(**overrides)
    return f"{server.base_url}/oauth/authorize?{urlencode(params)}", params


def capture_callback(page) -> list[str]:  # noqa: ANN001
    """Intercept the loopback redirect URI the way a native client's local listener would."""
    seen: list[str] = []

    def handle(route) -> None:  # noqa: ANN001
        seen.append(route.request.url)
        route.fulfill(status=200, content_type="text/plain", body="client received the response")

    page.route(LOOPBACK_CALLBACK + "**", handle)
    return seen


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def sign_in(page, username: str, password: str) -> None:  # noqa: ANN001
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_sign_in_narrow_scope_and_authorize(web_server: LiveServer, page) -> None:  # noqa: ANN001
    kind = web_server.database.kind
    seen = capture_callback(page)
    url, params = authorize_url(web_server, scope="content:read content:write content:publish")
    page.goto(url)
    assert urlsplit(page.url).path == "/login"
    screenshot(page, f"login-{kind}")
    sign_in(page, "admin", ADMIN_PASSWORD)

    assert page.get_by_role("heading", name="Claude Desktop wants to connect to your site").is_visible()
    assert page.locator("#redirect-host").inner_text() == "127.0.0.1:9"
    publish = page.get_by_label(SCOPE_DESCRIPTIONS["content:publish"])
    assert page.get_by_label(SCOPE_DESCRIPTIONS["content:read"]).is_checked()
    assert publish.is_checked()
    screenshot(page, f"consent-{kind}")
    publish.uncheck()
    page.get_by_role("button", name="Authorize").click()

    page.wait_for_url(LOOPBACK_CALLBACK + "**")
    assert len(seen) == 1
    query = query_of(seen[0])
    assert query["state"] == params["state"]
    assert query["iss"] == web_server.settings.origin
    assert query["code"]
    code = latest_code(web_server, "test-dynamic")
    assert code is not None
    assert code.scopes == "content:read content:write"
    assert code.agent_name == "Claude Desktop on Linux"  # headless chromium on this machine


def test_deny_sends_access_denied_with_iss(web_server: LiveServer, page) -> None:  # noqa: ANN001
    seen = capture_callback(page)
    url, params = authorize_url(web_server)
    page.goto(url)
    sign_in(page, "editor1", USER_PASSWORD)
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url(LOOPBACK_CALLBACK + "**")
    query = query_of(seen[0])
    assert query["error"] == "access_denied"
    assert query["state"] == params["state"]
    assert query["iss"] == web_server.settings.origin
    assert "code" not in query


def test_not_you_signs_out_and_back_in_as_someone_else(web_server: LiveServer, page) -> None:  # noqa: ANN001
    url, _ = authorize_url(web_server)
    page.goto(url)
    sign_in(page, "admin", ADMIN_PASSWORD)
    assert page.get_by_text("Signed in as Site Admin").is_visible()
    page.get_by_role("button", name="Not you? Sign out").click()
    assert urlsplit(page.url).path == "/login"
    sign_in(page, "editor1", USER_PASSWORD)
    assert page.get_by_text("Signed in as editor1").is_visible()
    assert page.get_by_role("button", name="Authorize").is_visible()


def test_custom_scheme_redirect_is_allowed_by_the_page_policy(web_server: LiveServer, page) -> None:  # noqa: ANN001
    """Cursor's ``cursor://`` callback: the POST's 303 goes to the app's own scheme, which the
    consent page's ``form-action`` must allow or Chromium blocks the hand-off."""
    violations: list[str] = []
    page.on(
        "console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    locations: list[str] = []
    page.on(
        "response",
        lambda r: locations.append(r.headers.get("location", "")) if r.request.method == "POST" else None,
    )
    url, params = authorize_url(web_server, redirect_uri=CUSTOM_SCHEME_CALLBACK)
    page.goto(url)
    sign_in(page, "admin", ADMIN_PASSWORD)
    assert page.locator("#redirect-host").inner_text() == "cursor://anysphere.cursor-mcp"
    with page.expect_response(lambda r: r.request.method == "POST" and "/oauth/authorize" in r.url):
        page.get_by_role("button", name="Authorize").click()
    page.wait_for_timeout(300)
    target = next(loc for loc in locations if loc.startswith(CUSTOM_SCHEME_CALLBACK))
    query = query_of(target)
    assert query["state"] == params["state"] and query["iss"] == web_server.settings.origin and query["code"]
    assert not [v for v in violations if "form-action" in v], violations


@pytest.fixture(scope="module")
def other_site() -> Iterator[str]:
    """A different origin on loopback that frames whatever ``?src=`` names (a real server: a
    page faked with ``page.route`` counts as a public site, which Chromium's local-network
    checks would stop from framing loopback for reasons of their own)."""

    async def framer(request: Request) -> HTMLResponse:
        return HTMLResponse(
            f'<iframe src="{escape(request.query_params["src"])}" width=400 height=300></iframe>'
        )

    with serve_in_thread(Starlette(routes=[Route("/", framer)])) as base_url:
        yield base_url


def test_pages_cannot_be_framed(web_server: LiveServer, other_site: str, page) -> None:  # noqa: ANN001
    """Clickjacking: another site framing the sign-in or consent page gets an empty frame."""
    with sign_in_http(web_server) as client:
        page.context.add_cookies(
            [{"name": "aic_session", "value": client.cookies["aic_session"], "url": web_server.base_url}]
        )
    for path in ("/login", "/oauth/authorize?" + urlencode(authorize_params())):
        page.goto(f"{other_site}/?{urlencode({'src': web_server.base_url + path})}")
        page.wait_for_timeout(500)
        frame = next(f for f in page.frames if f is not page.main_frame)
        assert frame.locator("input, button").count() == 0, frame.url


def test_scopes_beyond_the_role_are_shown_disabled(web_server: LiveServer, page) -> None:  # noqa: ANN001
    url, _ = authorize_url(web_server, scope="content:read content:write site:admin")
    page.goto(url)
    sign_in(page, "reader", USER_PASSWORD)
    assert page.get_by_label(SCOPE_DESCRIPTIONS["content:read"]).is_checked()
    for scope in ("content:write", "site:admin"):
        box = page.get_by_label(SCOPE_DESCRIPTIONS[scope])
        assert box.is_disabled() and not box.is_checked()
    screenshot(page, f"consent-limited-role-{web_server.database.kind}")


def test_unregistered_redirect_stays_on_an_error_page(web_server: LiveServer, page) -> None:  # noqa: ANN001
    url, _ = authorize_url(web_server, redirect_uri="https://evil.example/steal")
    response = page.goto(url)
    assert response is not None and response.status == 400
    assert urlsplit(page.url).netloc == urlsplit(web_server.base_url).netloc
    assert page.get_by_role("heading", name="Unregistered return address").is_visible()
    screenshot(page, f"authorize-error-{web_server.database.kind}")
