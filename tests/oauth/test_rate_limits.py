"""Failed client authentication and registrations are limited per client and per address;
this module has its own server (and database) with low limits."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from aiconnector.core.clients import create_pre_registered_client
from aiconnector.runtime import open_runtime
from tests.oauth.conftest import AuthServer, run_auth_server
from tests.support import DatabaseUnderTest, run_sync

LIMIT = 3


@pytest.fixture(scope="module")
def limited(database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with run_auth_server(
        database,
        tmp_path_factory.mktemp("limits"),
        auth_failures_per_minute=LIMIT,
        registrations_per_minute=LIMIT,
    ) as server:
        yield server


def fresh_window() -> None:
    """Counters use fixed one-minute windows; start where a rollover cannot split the test."""
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)


def confidential_client(server: AuthServer) -> tuple[str, str]:
    async def work() -> tuple[str, str]:
        async with open_runtime(server.settings, apply_migrations=False) as rt:
            new = await create_pre_registered_client(rt.sessions, name="svc", confidential=True)
            assert new.secret is not None
            return new.record.client_id, new.secret

    return run_sync(work())


def test_failed_client_authentication_is_rate_limited(limited: AuthServer) -> None:
    client_id, secret = confidential_client(limited)
    fresh_window()
    url = f"{limited.base_url}/oauth/introspect"
    statuses = [
        httpx.post(url, data={"token": "x", "client_id": client_id, "client_secret": "wrong"}).status_code
        for _ in range(LIMIT + 1)
    ]
    assert statuses == [401] * LIMIT + [429]
    # Locked out: even the right secret is not checked until the window passes.
    locked = httpx.post(url, data={"token": "x", "client_id": client_id, "client_secret": secret})
    assert locked.status_code == 429 and locked.json()["error"] == "temporarily_unavailable"
    assert int(locked.headers["retry-after"]) >= 1


def test_registrations_are_rate_limited_per_address(limited: AuthServer) -> None:
    url = f"{limited.base_url}/oauth/register"
    fresh_window()
    statuses = [
        httpx.post(url, json={"redirect_uris": ["http://127.0.0.1/cb"]}).status_code for _ in range(LIMIT + 1)
    ]
    assert statuses == [201] * LIMIT + [429]
