"""Servers with their own settings: a low failure limit, and a long activity-flush interval that
shows "last used" is batched rather than written on every request.

The failure limit on /mcp counts bad Basic credentials per address only, and only refuses
requests that fail anyway: an attacker cannot make a valid application password answer 429."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aiconnector.app import create_app
from aiconnector.core.app_passwords import list_app_passwords
from tests.conftest import LiveServer, make_settings
from tests.integration.test_auth import call
from tests.support import DatabaseUnderTest, free_port, serve_in_thread
from tests.web.conftest import start_of_fresh_window

WRONG_PASSWORD = "aic_ap_" + "x" * 32


@pytest.fixture(scope="module")
def strict_server(
    database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    port = free_port()
    settings = make_settings(
        database,
        tmp_path_factory.mktemp("strict"),
        port,
        auth_failures_per_minute=3,
        last_used_flush_seconds=3600.0,
        trusted_proxies=("127.0.0.1",),  # so each test request can name its own address
    )
    with serve_in_thread(create_app(settings), port) as base_url:
        yield LiveServer(base_url, settings, database)


def attack(server: LiveServer, address: str, username: str, times: int) -> list[int]:
    """``times`` wrong application passwords for ``username`` from ``address``; the statuses."""
    wrong = {**server.basic_header(username, WRONG_PASSWORD), "X-Forwarded-For": address}
    return [call(server, wrong, "whoami").status_code for _ in range(times)]


def test_wrong_application_passwords_for_a_user_never_block_their_valid_ones(
    strict_server: LiveServer,
) -> None:
    # Never used before the attack, so no cached verification can hide a lockout.
    good = strict_server.app_password(name="attacked user")
    start_of_fresh_window(15)
    statuses = attack(strict_server, "203.0.113.1", "admin", 20)
    # The attacker's address is limited (3 per minute here) ...
    assert statuses == [401] * 3 + [429] * 17
    wrong = {**strict_server.basic_header("admin", WRONG_PASSWORD), "X-Forwarded-For": "203.0.113.1"}
    limited = call(strict_server, wrong, "whoami")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    # ... the user is not: their valid password works from anywhere, and there is no per-user
    # count left to trip (wrong passwords for admin from a fresh address still get 401).
    valid = strict_server.basic_header("admin", good)
    assert call(strict_server, {**valid, "X-Forwarded-For": "198.51.100.1"}, "whoami").status_code == 200
    assert attack(strict_server, "198.51.100.2", "admin", 1) == [401]


def test_failures_from_one_address_never_block_a_valid_credential_from_it(
    strict_server: LiveServer,
) -> None:
    good = strict_server.app_password(name="behind a shared proxy")
    start_of_fresh_window(15)
    statuses = [s for n in range(10) for s in attack(strict_server, "203.0.113.2", f"someone{n}", 2)]
    assert statuses == [401] * 3 + [429] * 17
    # Checked before the address's count is looked at: a right password is never refused.
    valid = {**strict_server.basic_header("admin", good), "X-Forwarded-For": "203.0.113.2"}
    response = call(strict_server, valid, "whoami")
    assert response.status_code == 200, response.text
    # Failures stay limited, malformed ones too.
    malformed = {"Authorization": "Basic !!!", "X-Forwarded-For": "203.0.113.2"}
    assert call(strict_server, malformed, "whoami").status_code == 429


def test_last_used_is_batched_not_written_per_request(
    database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port = free_port()
    settings = make_settings(database, tmp_path_factory.mktemp("batch"), port, last_used_flush_seconds=3600.0)
    server = LiveServer(f"http://127.0.0.1:{port}", settings, database)
    with serve_in_thread(create_app(settings), port):
        password = server.app_password(name="batched")
        headers = server.basic_header("admin", password)
        for _ in range(20):
            assert call(server, headers, "whoami").status_code == 200

        async def last_used(rt):  # noqa: ANN001, ANN202
            return [
                p.last_used_at for p in await list_app_passwords(rt.sessions, "admin") if p.name == "batched"
            ]

        assert server.run(last_used) == [None], "no write on the request path"
    # Shutting down flushes what was remembered.
    [after] = server.run(last_used)
    assert after is not None
