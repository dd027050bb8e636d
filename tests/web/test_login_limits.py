"""Sign-in limits that stop the guesser and not the person whose password is guessed: per
(account, address), per address, per account from everywhere, and the known-device cookie that
lets the real person in while their account is under attack (``core.login_limits``).

A real server on SQLite and PostgreSQL behind ``with_trusted_proxies`` for 127.0.0.1, so each
test client can speak from an address of its choosing through ``X-Forwarded-For``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.responses import Response

from aiconnector.config import Settings
from aiconnector.core.login_limits import LoginLimits
from aiconnector.ops.forwarded import with_trusted_proxies
from aiconnector.web.sessions_http import KNOWN_DEVICE_COOKIE, set_known_device_cookie
from tests.conftest import ADMIN_PASSWORD, LiveServer, make_settings
from tests.support import DatabaseUnderTest, free_port, serve_in_thread
from tests.web.conftest import (
    CSRF_FIELD,
    USER_PASSWORD,
    _seed,
    audit_events,
    field,
    reset_rate_limits,
    start_of_fresh_window,
    web_app,
)

# Small numbers so a test reaches every limit in a few requests.
LIMITS = LoginLimits(
    per_pair_minute=3,
    per_pair_hour=6,
    per_address_minute=10,
    per_account_hour=8,
    delay_after=4,
    first_delay=0.01,
    max_delay=0.02,
)


@pytest.fixture(scope="module")
def guarded(database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    port = free_port()
    settings = make_settings(database, tmp_path_factory.mktemp("guarded"), port)
    app = with_trusted_proxies(web_app(settings, login_limits=LIMITS), ["127.0.0.1"])
    with serve_in_thread(app, port) as base_url:
        server = LiveServer(base_url, settings, database)
        server.run(_seed)
        yield server


@pytest.fixture
def fresh(guarded: LiveServer) -> Iterator[LiveServer]:
    """No counts from earlier tests, and no hour or minute boundary in the middle of this one."""
    reset_rate_limits(guarded)
    start_of_fresh_window(30, window=3600)
    start_of_fresh_window(10)
    yield guarded
    reset_rate_limits(guarded)


def browser(server: LiveServer, address: str) -> httpx.Client:
    """A browser at ``address`` (our trusted proxy names it); keeps its cookies."""
    return httpx.Client(
        base_url=server.base_url, follow_redirects=False, timeout=30, headers={"X-Forwarded-For": address}
    )


def sign_in(client: httpx.Client, username: str, password: str) -> httpx.Response:
    """One attempt from the sign-in form. A session from an earlier attempt is dropped first
    (as after signing out); the known-device cookie stays, as it does in a browser."""
    if "aic_session" in client.cookies:
        client.cookies.delete("aic_session")
    token = field(CSRF_FIELD, client.get("/login").text)
    return client.post("/login", data={"username": username, "password": password, "csrf": token})


def test_an_attacker_on_one_address_is_limited_and_the_real_user_signs_in_elsewhere(
    fresh: LiveServer,
) -> None:
    with browser(fresh, "203.0.113.66") as attacker:
        statuses = [sign_in(attacker, "admin", f"guess-{i}").status_code for i in range(8)]
        assert statuses == [400] * LIMITS.per_pair_minute + [429] * (8 - LIMITS.per_pair_minute)
        refused = sign_in(attacker, "admin", ADMIN_PASSWORD)  # not even checked now
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "Too many failed sign-in attempts" in refused.text
        assert "aic_session" not in refused.cookies
    with browser(fresh, "198.51.100.7") as admin:  # a new browser, elsewhere: no cookie at all
        assert sign_in(admin, "admin", ADMIN_PASSWORD).status_code == 303
    limited = audit_events(fresh, "login.failure", lambda e: e.detail.get("limit") == "pair")
    assert limited and limited[0].ip == "203.0.113.66" and limited[0].detail["username"] == "admin"


def test_the_account_limit_spares_a_known_device(fresh: LiveServer) -> None:
    with browser(fresh, "192.0.2.10") as home:
        first = sign_in(home, "victim", USER_PASSWORD)
        assert first.status_code == 303
        cookie = next(
            h for h in first.headers.get_list("set-cookie") if h.startswith(f"{KNOWN_DEVICE_COOKIE}=")
        )
        flags = [part.strip().lower() for part in cookie.split(";")[1:]]
        assert {"httponly", "samesite=lax", "path=/"} <= set(flags)
        assert "secure" not in flags  # plain-http origin; see test_known_device_cookie_is_secure_on_https
        assert int(next(f for f in flags if f.startswith("max-age="))[8:]) >= 365 * 24 * 3600

        # Many addresses, each within its own (account, address) limit, add up to the account's.
        statuses = []
        for n in (1, 2, 3):
            with browser(fresh, f"203.0.113.{n}") as attacker:
                statuses += [sign_in(attacker, "victim", f"guess-{n}-{i}").status_code for i in range(3)]
        assert statuses == [400] * LIMITS.per_account_hour + [429]

        # Now a browser without history is refused, wherever it is (the bound on guessing) ...
        with browser(fresh, "198.51.100.20") as new_browser:
            refused = sign_in(new_browser, "victim", USER_PASSWORD)
        assert refused.status_code == 429
        assert "a browser you have signed in with before" in refused.text
        # ... and a cookie for another account, or a tampered one, vouches for nothing here.
        with browser(fresh, "198.51.100.21") as other:
            assert sign_in(other, "editor1", USER_PASSWORD).status_code == 303
            assert sign_in(other, "victim", USER_PASSWORD).status_code == 429
        with browser(fresh, "198.51.100.22") as forger:
            value = home.cookies[KNOWN_DEVICE_COOKIE]
            forger.cookies.set(KNOWN_DEVICE_COOKIE, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
            assert sign_in(forger, "victim", USER_PASSWORD).status_code == 429

        # The real person's own browser signs in, even from the attacker's address.
        home.headers["X-Forwarded-For"] = "203.0.113.1"
        assert sign_in(home, "victim", USER_PASSWORD).status_code == 303
    assert audit_events(fresh, "login.failure", lambda e: e.detail.get("limit") == "account")
    assert audit_events(fresh, "login.success", lambda e: e.detail.get("known_device") is True)


def test_a_known_device_keeps_its_own_failure_limit(fresh: LiveServer) -> None:
    with browser(fresh, "192.0.2.30") as home:
        assert sign_in(home, "editor1", USER_PASSWORD).status_code == 303
        statuses = [sign_in(home, "editor1", "typo-typo").status_code for _ in range(4)]
        assert statuses == [400] * LIMITS.per_pair_minute + [429]
        assert sign_in(home, "editor1", USER_PASSWORD).status_code == 429
        # Its failures were its own: another browser at the same address is not held by them.
        with browser(fresh, "192.0.2.30") as laptop:
            assert sign_in(laptop, "editor1", USER_PASSWORD).status_code == 303


def test_one_address_trying_many_accounts_is_limited(fresh: LiveServer) -> None:
    with browser(fresh, "203.0.113.99") as sprayer:
        statuses = [sign_in(sprayer, f"nobody{i}", "x" * 10).status_code for i in range(11)]
        assert statuses == [400] * LIMITS.per_address_minute + [429]
        assert sign_in(sprayer, "reader", USER_PASSWORD).status_code == 429
    with browser(fresh, "198.51.100.99") as elsewhere:
        assert sign_in(elsewhere, "reader", USER_PASSWORD).status_code == 303


def test_known_device_cookie_is_secure_on_https() -> None:
    response = Response()
    set_known_device_cookie(response, Settings(public_url="https://site.example"), "value")
    header = response.headers["set-cookie"].lower()
    for flag in ("httponly", "samesite=lax", "path=/", "secure", f"max-age={400 * 24 * 3600}"):
        assert flag in header
