"""Graceful shutdown of a real ``aiconnector serve`` process on SIGTERM, on SQLite and
PostgreSQL: readiness fails at once; a call that finishes within the grace period completes; a
call that would outlive it ends with a JSON-RPC error (-32005) as JSON or as its stream's last
event, not a torn connection; the process exits 0; the audit events and the batched "last
used" times of everything before are in the database afterwards."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from aiconnector.config import Settings
from aiconnector.core.app_passwords import create_app_password
from aiconnector.core.connections import get_connection
from aiconnector.db.models import AuditEvent
from aiconnector.mcp.jsonrpc import SERVER_SHUTTING_DOWN
from aiconnector.runtime import open_runtime
from tests.ops.conftest import ACCEPT, METRICS_TOKEN, ServeProcess, basic, scrape, serve_process, tool_call
from tests.server_log_guard import Allowed
from tests.support import DatabaseUnderTest, run_sync

# One post per step and two seconds between steps: the demo site's posts take far longer
# to export than any grace period used here.
SLOW_EXPORT = {"page_size": 1, "delay_ms": 2000}
# A few steps of half a second: well inside a generous grace period.
SHORT_EXPORT = {"page_size": 5, "delay_ms": 500}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


def settings_for(database: DatabaseUnderTest, data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, database_url=database.url)


def app_password(database: DatabaseUnderTest, data_dir: Path) -> tuple[str, str]:
    async def make() -> tuple[str, str]:
        async with open_runtime(settings_for(database, data_dir), apply_migrations=False) as rt:
            password, record = await create_app_password(
                rt.sessions, "admin", name="shutdown", audit=rt.audit
            )
            return password, record.connection_id

    return run_sync(make())


def audit_rows(database: DatabaseUnderTest, data_dir: Path, connection_id: str) -> list[AuditEvent]:
    async def read() -> list[AuditEvent]:
        settings = settings_for(database, data_dir)
        async with open_runtime(settings, apply_migrations=False) as rt, rt.sessions() as session:
            query = (
                select(AuditEvent).where(AuditEvent.connection_id == connection_id).order_by(AuditEvent.id)
            )
            return list((await session.scalars(query)).all())

    return run_sync(read())


def last_active(database: DatabaseUnderTest, data_dir: Path, connection_id: str) -> object:
    async def read() -> object:
        async with open_runtime(settings_for(database, data_dir), apply_migrations=False) as rt:
            return (await get_connection(rt.sessions, connection_id)).last_active_at

    return run_sync(read())


@pytest.fixture
def serve(database: DatabaseUnderTest, data_dir: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Start ``aiconnector serve`` with extra flags (one per test; killed if left running)."""
    started: list[Any] = []

    def start(*flags: str) -> ServeProcess:
        manager = serve_process(
            database,
            data_dir,
            *flags,
            env={
                "AICONNECTOR_METRICS_TOKEN": METRICS_TOKEN,
                # Only the shutdown flush can write "last used": proves it happens.
                "AICONNECTOR_LAST_USED_FLUSH_SECONDS": "3600",
            },
            allowed=Allowed.of(request.node),
        )
        started.append(manager)
        return manager.__enter__()

    yield start
    for manager in started:
        manager.__exit__(None, None, None)


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            yield json.loads(line[6:])


async def wait_until(check: Any, what: str) -> None:  # noqa: ANN401
    deadline = time.monotonic() + 60  # a hang guard, not a performance bound
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_call_that_fits_the_grace_period_completes_and_the_process_exits_0(
    serve: Any, database: DatabaseUnderTest, data_dir: Path
) -> None:
    server: ServeProcess = serve("--shutdown-grace-seconds", "60")
    password, connection_id = app_password(database, data_dir)
    headers = {**ACCEPT, **basic("admin", password)}
    async with httpx.AsyncClient(timeout=120) as client:
        assert (
            await client.post(f"{server.base_url}/mcp", json=tool_call("whoami"), headers=headers)
        ).is_success
        body = tool_call("export_posts", SHORT_EXPORT, progress="export")
        async with client.stream("POST", f"{server.base_url}/mcp", json=body, headers=headers) as response:
            events = sse_events(response)
            first = await anext(events)
            assert first["method"] == "notifications/progress"
            server.signal(signal.SIGTERM)
            rest = [event async for event in events]
    final = rest[-1]
    assert "error" not in final, final
    assert final["result"]["isError"] is False
    assert final["result"]["structuredContent"]["count"] > 0
    assert server.wait() == 0, server.output

    rows = audit_rows(database, data_dir, connection_id)
    calls = [(r.detail["tool"], r.outcome) for r in rows if r.event == "tool_call"]
    assert calls == [("whoami", "success"), ("export_posts", "success")]
    assert any(r.event == "auth.success" for r in rows)
    assert last_active(database, data_dir, connection_id) is not None  # flushed at shutdown


async def test_calls_outliving_the_grace_period_end_with_an_error_not_a_torn_connection(
    serve: Any, database: DatabaseUnderTest, data_dir: Path
) -> None:
    server: ServeProcess = serve("--shutdown-grace-seconds", "2")
    password, connection_id = app_password(database, data_dir)
    headers = {**ACCEPT, **basic("admin", password)}
    url = f"{server.base_url}/mcp"
    async with httpx.AsyncClient(timeout=120) as client:
        assert (await client.post(url, json=tool_call("whoami"), headers=headers)).is_success
        plain = asyncio.create_task(
            client.post(url, json=tool_call("export_posts", SLOW_EXPORT), headers=headers)
        )
        body = tool_call("export_posts", SLOW_EXPORT, progress="export")
        async with client.stream("POST", url, json=body, headers=headers) as response:
            events = sse_events(response)
            assert (await anext(events))["method"] == "notifications/progress"
            # Both calls running (plus the scrape itself): then the signal.
            await wait_until(
                lambda: scrape(server.base_url).value("aiconnector_inflight_requests") == 3, "calls"
            )
            server.signal(signal.SIGTERM)
            rest = [event async for event in events]
        answered = await plain
    assert rest[-1]["error"]["code"] == SERVER_SHUTTING_DOWN, rest[-1]
    assert answered.status_code == 200
    assert answered.json()["error"]["code"] == SERVER_SHUTTING_DOWN
    assert server.wait() == 0, server.output

    rows = audit_rows(database, data_dir, connection_id)
    calls = sorted(
        (r.detail["tool"], r.outcome, r.detail.get("error")) for r in rows if r.event == "tool_call"
    )
    assert calls == [
        ("export_posts", "cancelled", "server shutting down"),
        ("export_posts", "cancelled", "server shutting down"),
        ("whoami", "success", None),
    ]
    assert last_active(database, data_dir, connection_id) is not None


@pytest.mark.server_errors(status=(503,))  # /readyz says "shutting down", as it must
async def test_readiness_fails_as_soon_as_shutdown_begins(
    serve: Any, database: DatabaseUnderTest, data_dir: Path
) -> None:
    """With a shutdown delay the server keeps serving after SIGTERM while /readyz says 503, so
    a load balancer drains it; a second SIGTERM ends the delay."""
    server: ServeProcess = serve("--shutdown-delay-seconds", "600", "--shutdown-grace-seconds", "30")
    password, _ = app_password(database, data_dir)
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(f"{server.base_url}/readyz")).status_code == 200
        server.signal(signal.SIGTERM)

        ready: list[int] = []

        async def probe() -> None:
            ready.append((await client.get(f"{server.base_url}/readyz")).status_code)

        while not ready or ready[-1] != 503:
            await probe()
            assert len(ready) < 2000, "readiness never failed"
            await asyncio.sleep(0.02)
        assert (await client.get(f"{server.base_url}/healthz")).text == "ok"  # still serving
        whoami = await client.post(
            f"{server.base_url}/mcp", json=tool_call("whoami"), headers={**ACCEPT, **basic("admin", password)}
        )
        assert whoami.status_code == 200
    server.signal(signal.SIGTERM)
    assert server.wait() == 0, server.output
