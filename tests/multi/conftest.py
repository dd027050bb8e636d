"""Two real instances of the server (``create_app`` twice, two ports) sharing one fresh
PostgreSQL database: the many-instances deployment in miniature. PostgreSQL only — skipped
with a reason when it is unreachable, a failure under CI=true (``tests.support.fresh_database``).

The instances' periodic revocation polling is switched off, so every cross-instance revoke
these tests observe provably travelled over LISTEN/NOTIFY or the listener's reconnect resync,
not the 1 s fallback poll (which the SQLite and single-instance tests already cover)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
import pytest_asyncio

from aiconnector.app import Server, create_app
from aiconnector.core.events import RevocationWatcher
from aiconnector.core.pg_notify import asyncpg_dsn, listener_application_name
from aiconnector.runtime import Runtime, open_runtime
from tests.conftest import LiveServer, make_settings
from tests.support import DatabaseUnderTest, free_port, fresh_database, serve_in_thread

# Low enough that the lockout test reaches it in a few requests; the other tests cause at
# most one failure each, and counters are cleared before every test.
FAILURE_LIMIT = 4
# Both instances sit "behind one load balancer": one public URL, so tokens name one resource.
PUBLIC_URL = "http://connector.example"


@dataclass
class Instance:
    server: Server
    live: LiveServer

    @property
    def application_name(self) -> str:
        return listener_application_name(self.live.settings)


@dataclass
class Pair:
    a: Instance
    b: Instance
    database: DatabaseUnderTest


async def _no_periodic_poll(_self: RevocationWatcher) -> None:
    """Stands in for ``RevocationWatcher.start``: no poll loop; ``resync`` still works."""


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with (
        fresh_database("postgresql", tmp_path_factory.mktemp("db")) as database,
        pytest.MonkeyPatch.context() as patch,
        ExitStack() as stack,
    ):
        patch.setattr(RevocationWatcher, "start", _no_periodic_poll)
        instances = []
        for name in ("a", "b"):  # one after the other: the first one migrates and seeds
            port = free_port()
            settings = make_settings(
                database,
                tmp_path_factory.mktemp(f"instance-{name}"),
                port,
                public_url=PUBLIC_URL,
                auth_failures_per_minute=FAILURE_LIMIT,
                registrations_per_minute=10_000,
            )
            server = create_app(settings)
            base_url = stack.enter_context(serve_in_thread(server, port))
            instances.append(Instance(server, LiveServer(base_url, settings, database)))
        yield Pair(instances[0], instances[1], database)


@pytest_asyncio.fixture(loop_scope="session")
async def rt(pair: Pair) -> AsyncIterator[Runtime]:
    """The shared database opened from the test's own loop: a third process, like the CLI."""
    async with open_runtime(pair.a.live.settings, apply_migrations=False) as runtime:
        yield runtime


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def clear_failure_counters(pair: Pair) -> None:
    await pg_execute(pair, "DELETE FROM rate_counters")


async def pg_execute(pair: Pair, sql: str, *args: object) -> list[asyncpg.Record]:
    """Run SQL on the shared database over a connection of its own."""
    conn = await asyncpg.connect(asyncpg_dsn(pair.database.url), timeout=5)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def listener_pids(pair: Pair, instance: Instance) -> list[int]:
    rows = await pg_execute(
        pair,
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
        instance.application_name,
    )
    return [row["pid"] for row in rows]


async def wait_for_listener(pair: Pair, instance: Instance, *, other_than: int | None = None) -> int:
    """The pid of the instance's listener once it is LISTENing (a new one if ``other_than``)."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        rows = await pg_execute(
            pair,
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()"
            " AND (query ILIKE 'LISTEN%' OR query = 'SELECT 1')",
            instance.application_name,
        )
        pids = [row["pid"] for row in rows if row["pid"] != other_than]
        if pids:
            return pids[0]
        assert asyncio.get_running_loop().time() < deadline, "the listener did not (re)connect in 15 s"
        await asyncio.sleep(0.02)
