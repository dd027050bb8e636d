"""The small pure pieces behind the pages: ``next`` checking, platform hints, CSP sources,
signed fields, CSRF tokens, cookie flags and the consent page's wording."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from starlette.responses import Response

from aiconnector.config import Settings
from aiconnector.core.clients import ClientRecord
from aiconnector.core.users import UserRecord
from aiconnector.core.web_sessions import WebSessionRecord
from aiconnector.oauth.authorize import (
    authorization_response_url,
    canonical_resource,
    redirect_display,
    registration_text,
)
from aiconnector.web import csrf, signing
from aiconnector.web.device_hint import agent_name, platform_from_user_agent
from aiconnector.web.login import safe_next
from aiconnector.web.pages import content_security_policy, csp_source
from aiconnector.web.scope_choices import grantable, scope_choices
from aiconnector.web.sessions_http import set_session_cookie

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/oauth/authorize?client_id=x&state=y", "/oauth/authorize?client_id=x&state=y"),
        ("/", "/"),
        (None, "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("relative/path", "/"),
    ],
)
def test_safe_next(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


@pytest.mark.parametrize(
    ("ua", "platform"),
    [
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Safari/605.1.15", "macOS"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36", "Windows"),
        ("Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36", "Linux"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148", "iOS"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/126.0 Mobile Safari/537.36", "Android"),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) Chrome/126.0 Safari/537.36", "ChromeOS"),
        ("curl/8.5.0", None),
        (None, None),
    ],
)
def test_platform_from_user_agent(ua: str | None, platform: str | None) -> None:
    assert platform_from_user_agent(ua) == platform


def test_agent_name() -> None:
    assert (
        agent_name("Claude Desktop", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5)")
        == "Claude Desktop on macOS"
    )
    assert agent_name("Cursor", None) == "Cursor"
    assert len(agent_name("x" * 500, "Windows")) == 200


@pytest.mark.parametrize(
    ("uri", "source"),
    [
        ("http://127.0.0.1:33418/callback", "http://127.0.0.1:33418"),
        ("http://localhost/cb", "http://localhost"),
        ("http://[::1]:8080/cb", "http://[::1]:8080"),
        ("https://Claude.ai/api/mcp/auth_callback", "https://claude.ai"),
        ("cursor://anysphere.cursor-mcp/oauth/callback", "cursor:"),
        ("https://a.example;script-src *", None),
        ("https://a.example:99999/", None),
        ("not a uri", None),
    ],
)
def test_csp_source_never_injects(uri: str, source: str | None) -> None:
    assert csp_source(uri) == source


def test_content_security_policy() -> None:
    policy = content_security_policy(["cursor:"])
    assert "default-src 'none'" in policy
    assert "form-action 'self' cursor:;" in policy
    assert "frame-ancestors 'none'" in policy


def test_signed_fields_resist_tampering_and_expire() -> None:
    token = signing.sign(KEY, {"q": "a=1"}, ttl_seconds=60)
    assert signing.verify(KEY, token) == {"q": "a=1"}
    body, _, sig = token.partition(".")
    with pytest.raises(signing.BadSignature):
        signing.verify(b"other" * 8, token)
    with pytest.raises(signing.BadSignature):
        signing.verify(KEY, body + "x." + sig)
    with pytest.raises(signing.BadSignature):
        signing.verify(KEY, body)
    with pytest.raises(signing.BadSignature):
        signing.verify(KEY, "é.é")
    expired = signing.sign(KEY, {"q": "a=1"}, ttl_seconds=-1)
    time.sleep(0.01)
    with pytest.raises(signing.BadSignature, match="expired"):
        signing.verify(KEY, expired)


def _session(secret: str) -> WebSessionRecord:
    user = UserRecord(1, "admin", "", "Admin", "administrator", datetime(2026, 1, 1))
    return WebSessionRecord("h", user, secret, datetime(2026, 1, 1), datetime(2026, 1, 2))


def test_session_csrf_token_is_bound_to_the_session() -> None:
    one, two = _session("11" * 32), _session("22" * 32)
    token = csrf.session_csrf_token(one)
    assert csrf.session_csrf_ok(one, token)
    assert not csrf.session_csrf_ok(two, token)
    assert not csrf.session_csrf_ok(one, None)
    assert not csrf.session_csrf_ok(one, "")
    assert not csrf.session_csrf_ok(one, "é")


def test_login_csrf_token_is_bound_to_the_cookie_and_the_key() -> None:
    cookie = csrf.new_login_csrf_cookie()
    token = csrf.login_csrf_token(KEY, cookie)
    assert csrf.login_csrf_ok(KEY, cookie, token)
    assert not csrf.login_csrf_ok(KEY, csrf.new_login_csrf_cookie(), token)
    assert not csrf.login_csrf_ok(b"x" * 32, cookie, token)
    assert not csrf.login_csrf_ok(KEY, None, token)
    assert not csrf.login_csrf_ok(KEY, cookie, cookie)  # echoing the cookie is not enough


def test_session_cookie_is_secure_on_https() -> None:
    response = Response()
    set_session_cookie(response, Settings(public_url="https://site.example"), "value")
    header = response.headers["set-cookie"].lower()
    for flag in ("httponly", "samesite=lax", "path=/", "secure", "max-age=43200"):
        assert flag in header


def test_authorization_response_url_keeps_existing_query_and_adds_iss() -> None:
    settings = Settings(public_url="https://site.example")
    url = authorization_response_url(settings, "https://app.example/cb?x=1", {"code": "c", "state": None})
    assert url == "https://app.example/cb?x=1&code=c&iss=https%3A%2F%2Fsite.example"


def test_canonical_resource() -> None:
    settings = Settings(public_url="https://site.example")
    assert canonical_resource(None, settings) == "https://site.example/mcp"
    assert canonical_resource("https://site.example/mcp", settings) == "https://site.example/mcp"
    assert canonical_resource("https://site.example", settings) == "https://site.example/mcp"
    for other in ("https://site.example/mcp/", "https://SITE.example/mcp", "https://other.example/mcp"):
        with pytest.raises(Exception, match="resource"):
            canonical_resource(other, settings)


def test_redirect_display_and_registration_wording() -> None:
    assert redirect_display("http://localhost:33418/cb") == (
        "localhost:33418",
        "an application running on this computer",
    )
    assert redirect_display("https://claude.ai/api/mcp/auth_callback") == ("claude.ai", None)
    assert (
        redirect_display("cursor://anysphere.cursor-mcp/oauth/callback")[0] == "cursor://anysphere.cursor-mcp"
    )

    def client(kind: str, client_id: str = "c") -> ClientRecord:
        return ClientRecord(client_id, "n", kind, (), (), "none", None, None)

    assert registration_text(client("dynamic")) == "registered itself (dynamic registration)"
    assert registration_text(client("pre_registered")) == "pre-registered by the site owner"
    assert (
        registration_text(client("metadata_document", "https://claude.ai/oauth/claude-code-client-metadata"))
        == "described by its metadata document at claude.ai"
    )


def test_scope_choices_follow_the_role() -> None:
    choices = {
        c.scope: c.usable for c in scope_choices({"content:read", "content:publish", "site:admin"}, "author")
    }
    assert choices == {"content:read": True, "content:publish": True, "site:admin": False}
    assert grantable({"content:read", "content:write"}, ["content:write", "site:admin"], "contributor") == {
        "content:write"
    }
    assert grantable({"content:read"}, ["content:read"], "no-such-role") == frozenset()
