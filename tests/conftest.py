"""Shared fixtures: every integration test runs against a real server on a free 127.0.0.1 port,
once on SQLite and once on PostgreSQL (skipped with a reason when it is unreachable, and a
failure under CI=true)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiconnector.config import Settings
from tests.server_log_guard import server_log_guard  # noqa: F401 - autouse for the whole suite
from tests.support import DatabaseUnderTest, fresh_database, run_sync, serve_in_thread

ADMIN_PASSWORD = "admin-test-password-123"


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseUnderTest]:
    with fresh_database(request.param, tmp_path_factory.mktemp("db")) as db:
        yield db


@dataclass
class LiveServer:
    base_url: str
    settings: Settings
    database: DatabaseUnderTest

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    def run(self, coro_factory):  # noqa: ANN001, ANN201 - helper for sync tests
        """Run a coroutine against the server's database from test code (its own loop)."""
        from aiconnector.runtime import open_runtime

        async def runner():  # noqa: ANN202
            async with open_runtime(self.settings) as rt:
                return await coro_factory(rt)

        return run_sync(runner())

    def app_password(self, username: str = "admin", name: str = "test agent", scopes=None) -> str:  # noqa: ANN001
        from aiconnector.core.app_passwords import create_app_password

        async def make(rt):  # noqa: ANN001, ANN202
            password, _ = await create_app_password(
                rt.sessions, username, name=name, scopes=scopes, audit=rt.audit
            )
            return password

        return self.run(make)

    def basic_header(self, username: str, password: str) -> dict[str, str]:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


def make_settings(db: DatabaseUnderTest, tmp: Path, port: int, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp,
        "database_url": db.url,
        "host": "127.0.0.1",
        "port": port,
        "admin_password": ADMIN_PASSWORD,
        "allow_private_fetch": True,
        "last_used_flush_seconds": 0.2,
    }
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def live_server(
    database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    from aiconnector.app import create_app
    from tests.support import free_port

    port = free_port()
    settings = make_settings(database, tmp_path_factory.mktemp("data"), port)
    with serve_in_thread(create_app(settings), port) as base_url:
        yield LiveServer(base_url, settings, database)
