"""Test support: real servers on free loopback ports and real databases."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from sqlalchemy.engine import make_url

T = TypeVar("T")
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
IN_CI = os.environ.get("CI", "").lower() == "true"


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, in a thread of its own: the caller may
    already be inside an event loop (Playwright's sync API runs one)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_thread(app: object, port: int | None = None) -> Iterator[str]:
    """Run ``app`` under a real uvicorn on 127.0.0.1 in a background thread; yield its base URL."""
    port = port or free_port()
    # proxy_headers off as in ``aiconnector serve``: uvicorn would otherwise believe
    # X-Forwarded-For from 127.0.0.1, which is the tests' own address (ops.forwarded decides).
    # log_config=None: uvicorn's records (an unhandled exception above all) reach the root
    # logger, where tests/server_log_guard.py fails the test that caused them.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        log_config=None,
        lifespan="on",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("test server failed to start")
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start in 60 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_until_ready(
    base_url: str, proc: subprocess.Popen[bytes], output: Callable[[], str], within_s: float = 90
) -> None:
    """Poll ``/readyz`` of an ``aiconnector serve`` subprocess until it answers 200; fail with
    its output if it exits first or takes longer than ``within_s`` (a hang guard)."""
    deadline = time.monotonic() + within_s
    while True:
        assert proc.poll() is None, f"serve exited early:\n{output()}"
        assert time.monotonic() < deadline, f"serve not ready in {within_s:g} s:\n{output()}"
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def pg_admin_url() -> str:
    return os.environ.get("AICONNECTOR_TEST_PG_URL", DEFAULT_PG_URL)


def _pg_dsn(url: str, database: str) -> str:
    u = make_url(url).set(drivername="postgresql", database=database)
    return u.render_as_string(hide_password=False)


async def _pg_exec(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(
        _pg_dsn(pg_admin_url(), make_url(pg_admin_url()).database or "postgres"), timeout=5
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_unavailable_reason() -> str | None:
    """None when PostgreSQL answers; otherwise why not."""
    try:
        run_sync(_pg_exec("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means the variant cannot run
        return f"PostgreSQL at {make_url(pg_admin_url()).render_as_string()} unreachable: {exc}"
    return None


@dataclass
class DatabaseUnderTest:
    url: str
    kind: str


@contextmanager
def fresh_database(kind: str, tmp_path: object) -> Iterator[DatabaseUnderTest]:
    """A new empty database: a SQLite file, or a throwaway PostgreSQL database."""
    if kind == "sqlite":
        yield DatabaseUnderTest(f"sqlite+aiosqlite:///{tmp_path}/test.db", "sqlite")
        return
    reason = pg_unavailable_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"CI requires the PostgreSQL variant: {reason}")
        pytest.skip(f"PostgreSQL variant skipped: {reason}")
    name = f"aic_test_{secrets.token_hex(6)}"
    run_sync(_pg_exec(f'CREATE DATABASE "{name}"'))
    try:
        yield DatabaseUnderTest(
            make_url(pg_admin_url()).set(database=name).render_as_string(hide_password=False), "postgresql"
        )
    finally:
        run_sync(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def mint_oauth_connection(
    sessions: Any,  # noqa: ANN401 - async_sessionmaker
    settings: Any,  # noqa: ANN401 - Settings
    *,
    scopes: str,
    resource: str,
    agent_name: str = "test agent",
    user_id: int = 1,
    client_id: str = "test",
) -> tuple[str, Any]:
    """An OAuth connection with a fresh token pair, made directly in the database (the
    consent flow itself is tested in tests/oauth and tests/interop): (connection id, pair)."""
    from aiconnector.core.connections import new_connection
    from aiconnector.core.tokens import issue_token_pair

    async with sessions.begin() as session:
        connection = new_connection(user_id=user_id, agent_name=agent_name, method="oauth", scopes=scopes)
        session.add(connection)
        await session.flush()
        pair, _ = await issue_token_pair(
            session,
            connection_id=connection.id,
            client_id=client_id,
            access_scopes=scopes,
            refresh_scopes=scopes,
            resource=resource,
            settings=settings,
        )
    return connection.id, pair
