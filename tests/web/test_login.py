"""Sign-in and sign-out over real HTTP: CSRF, rate limits, cookie flags, session fixation,
open redirects, audit, and the headers every auth page carries."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN_PASSWORD, LiveServer
from tests.web.conftest import (
    CSRF_FIELD,
    USER_PASSWORD,
    audit_events,
    field,
    http_client,
    reset_rate_limits,
    sign_in,
    start_of_fresh_window,
)

AUTH_PAGE_HEADERS = {
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}


def assert_auth_headers(headers: object) -> None:
    for name, value in AUTH_PAGE_HEADERS.items():
        assert headers[name] == value, name  # type: ignore[index]
    csp = headers["content-security-policy"]  # type: ignore[index]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self'" in csp


def login_form(client) -> str:  # noqa: ANN001
    return field(CSRF_FIELD, client.get("/login").text)


def test_login_page_has_contract_labels_and_headers(web_server: LiveServer) -> None:
    with http_client(web_server) as client:
        response = client.get("/login")
    assert response.status_code == 200
    assert_auth_headers(response.headers)
    html = response.text
    assert '<label for="username">Username</label>' in html
    assert 'id="username" name="username"' in html
    assert '<label for="password">Password</label>' in html
    assert 'type="password" id="password" name="password"' in html
    assert ">Log in</button>" in html


def test_login_without_csrf_token_is_refused(web_server: LiveServer) -> None:
    with http_client(web_server) as client:
        login_form(client)  # the browser has the cookie, but the form lacks the token
        response = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert response.status_code == 403
        assert "aic_session" not in response.cookies
        wrong = client.post(
            "/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf": "forged-value"}
        )
        assert wrong.status_code == 403
        assert "aic_session" not in wrong.cookies


def test_login_csrf_token_without_its_cookie_is_refused(web_server: LiveServer) -> None:
    """Double-submit: a token copied from another browser is useless without that browser's cookie."""
    with http_client(web_server) as victim_browser, http_client(web_server) as attacker:
        token = login_form(attacker)
        login_form(victim_browser)
        response = victim_browser.post(
            "/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf": token}
        )
    assert response.status_code == 403


def test_login_success_sets_a_safe_session_cookie_and_redirects_with_303(web_server: LiveServer) -> None:
    with http_client(web_server) as client:
        token = login_form(client)
        response = client.post(
            "/login",
            data={"username": "admin", "password": ADMIN_PASSWORD, "csrf": token, "next": "/somewhere?x=1"},
        )
    assert response.status_code == 303
    assert response.headers["location"] == "/somewhere?x=1"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("aic_session="))
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) >= 43  # 256 bits, base64url
    flags = [part.strip().lower() for part in cookie.split(";")[1:]]
    assert "httponly" in flags
    assert "samesite=lax" in flags
    assert "path=/" in flags
    assert "secure" not in flags  # plain-http loopback origin; see test_units for https


def test_wrong_password_is_refused_and_audited_without_the_password(web_server: LiveServer) -> None:
    with http_client(web_server) as client:
        token = login_form(client)
        response = client.post(
            "/login", data={"username": "editor1", "password": "not-the-password-xyz", "csrf": token}
        )
    assert response.status_code == 400
    assert "Wrong username or password." in response.text
    assert "aic_session" not in response.cookies
    mine = audit_events(web_server, "login.failure", lambda e: e.detail.get("username") == "editor1")
    assert mine and mine[0].outcome == "failure" and mine[0].ip == "127.0.0.1"
    assert "not-the-password-xyz" not in repr([e.detail for e in audit_events(web_server, "login.failure")])
    reset_rate_limits(web_server)


def test_login_success_is_audited(web_server: LiveServer) -> None:
    with sign_in(web_server, "editor1", USER_PASSWORD):
        pass
    events = audit_events(web_server, "login.success", lambda e: e.detail.get("username") == "editor1")
    assert events and events[0].user_id
    assert USER_PASSWORD not in repr([e.detail for e in events])


def test_login_is_rate_limited_per_username_and_address(web_server: LiveServer) -> None:
    """The (username, address) limit: the guesser's own. Other addresses are not held by it
    (``test_login_limits.py``), nor other usernames from this address."""
    try:
        start_of_fresh_window()
        with http_client(web_server) as client:
            token = login_form(client)
            for _ in range(5):
                response = client.post(
                    "/login", data={"username": "victim", "password": "guess-guess", "csrf": token}
                )
                assert response.status_code == 400
            # Locked from here: even the right password is not checked now.
            response = client.post(
                "/login", data={"username": "victim", "password": USER_PASSWORD, "csrf": token}
            )
            assert response.status_code == 429
            assert int(response.headers["retry-after"]) > 0
            assert "Too many failed sign-in attempts" in response.text
            assert "aic_session" not in response.cookies
            # Another user from the same address is not locked by victim's failures.
            other = client.post(
                "/login", data={"username": "editor1", "password": USER_PASSWORD, "csrf": token}
            )
            assert other.status_code == 303
        assert audit_events(web_server, "login.failure", lambda e: e.detail.get("reason") == "rate_limited")
    finally:
        reset_rate_limits(web_server)


def test_login_is_rate_limited_per_address(web_server: LiveServer) -> None:
    try:
        start_of_fresh_window(20)
        with http_client(web_server) as client:
            token = login_form(client)
            for i in range(20):  # different usernames: only the address limit applies
                # (a browser without a known-device cookie: one with it is exempt)
                client.post("/login", data={"username": f"nobody{i}", "password": "x" * 10, "csrf": token})
            response = client.post(
                "/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf": token}
            )
            assert response.status_code == 429
    finally:
        reset_rate_limits(web_server)


def test_sign_in_replaces_a_planted_session_id(web_server: LiveServer) -> None:
    """Session fixation: a session id chosen by an attacker is never adopted, and signing in
    again in the same browser replaces (and ends) the previous session."""
    with http_client(web_server) as client:
        client.cookies.set("aic_session", "attacker-chosen-value")
        token = login_form(client)
        first = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf": token})
        first_value = first.cookies["aic_session"]
        assert first_value != "attacker-chosen-value"
        second = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf": token})
        second_value = second.cookies["aic_session"]
        assert second_value != first_value
    with http_client(web_server) as old:
        old.cookies.set("aic_session", first_value)
        assert "Sign in" in old.get("/login").text  # the first session is gone
    with http_client(web_server) as new:
        new.cookies.set("aic_session", second_value)
        assert "You are signed in" in new.get("/login").text


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "",
    ],
)
def test_next_cannot_leave_the_site(web_server: LiveServer, target: str) -> None:
    with http_client(web_server) as client:
        page = client.get("/login", params={"next": target}).text
        assert 'name="next" value="/"' in page
        token = field(CSRF_FIELD, page)
        response = client.post(
            "/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf": token, "next": target}
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/"
        # Signed in already: GET /login?next=… redirects, and must refuse the same targets.
        again = client.get("/login", params={"next": target})
        assert again.headers.get("location", "/") == "/"


def test_logout_needs_csrf_and_ends_the_session(web_server: LiveServer) -> None:
    with sign_in(web_server) as client:
        cookie_value = client.cookies["aic_session"]
        page = client.get("/logout")
        assert page.status_code == 200
        assert_auth_headers(page.headers)
        refused = client.post("/logout", data={})
        assert refused.status_code == 403
        assert "You are signed in" in client.get("/login").text  # still signed in
        response = client.post("/logout", data={"csrf": field(CSRF_FIELD, page.text), "next": "/elsewhere"})
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Felsewhere"
        assert any(h.startswith('aic_session=""') for h in response.headers.get_list("set-cookie"))
    with http_client(web_server) as replay:
        replay.cookies.set("aic_session", cookie_value)
        assert "Sign in" in replay.get("/login").text
    assert audit_events(web_server, "logout")


def test_head_and_other_methods(web_server: LiveServer) -> None:
    with http_client(web_server) as client:
        assert client.head("/login").status_code == 200
        assert client.put("/login").status_code == 405


def test_expired_session_is_not_accepted(web_server: LiveServer) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from aiconnector.db.models import WebSession, utcnow
    from aiconnector.security import sha256_hex

    with sign_in(web_server) as client:
        value = client.cookies["aic_session"]

        async def expire(rt):  # noqa: ANN001, ANN202
            async with rt.sessions.begin() as session:
                await session.execute(
                    update(WebSession)
                    .where(WebSession.id_hash == sha256_hex(value))
                    .values(expires_at=utcnow() - timedelta(seconds=1))
                )

        assert "You are signed in" in client.get("/login").text
        web_server.run(expire)
        assert "Sign in" in client.get("/login").text
