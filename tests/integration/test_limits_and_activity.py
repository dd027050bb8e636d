"""Servers with their own settings: a low failure limit, and a long activity-flush interval that
shows "last used" is batched rather than written on every request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aiconnector.app import create_app
from aiconnector.core.app_passwords import list_app_passwords
from tests.conftest import LiveServer, make_settings
from tests.integration.test_auth import call
from tests.support import DatabaseUnderTest, free_port, serve_in_thread


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
    )
    with serve_in_thread(create_app(settings), port) as base_url:
        yield LiveServer(base_url, settings, database)


def test_failures_are_rate_limited_per_user(strict_server: LiveServer) -> None:
    good = strict_server.app_password(name="good")
    wrong = strict_server.basic_header("admin", "aic_ap_" + "x" * 32)
    statuses = [call(strict_server, wrong, "whoami").status_code for _ in range(4)]
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3] == 429
    limited = call(strict_server, wrong, "whoami")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    # The lock-out covers the username and the address: even the right password must wait,
    # otherwise a guesser learns when it guessed right.
    assert call(strict_server, strict_server.basic_header("admin", good), "whoami").status_code == 429


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
