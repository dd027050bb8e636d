"""Keyset pages at 100,000 connections, on SQLite and PostgreSQL: every page query is answered
from the ``ix_connections_created`` index (the plan says so; no timing thresholds), and
walking the pages in both directions returns every row exactly once, newest first, even
when many rows share one ``created_at``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import ClauseElement, Executable, insert, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from aiconnector.core.connections import ConnectionQuery, Cursor, page_connections, page_statement
from aiconnector.db.models import Connection, User
from aiconnector.runtime import Runtime, open_runtime
from tests.conftest import make_settings
from tests.support import DatabaseUnderTest

ROWS = 100_000
BASE = datetime(2025, 1, 1, tzinfo=UTC)


class Explain(Executable, ClauseElement):
    """EXPLAIN of a statement, with its parameters bound as the statement itself binds them."""

    inherit_cache = False

    def __init__(self, statement: Executable, prefix: str) -> None:
        self.statement = statement
        self.prefix = prefix


@compiles(Explain)
def _explain(element: Explain, compiler: SQLCompiler, **kw: object) -> str:
    return f"{element.prefix} {compiler.process(element.statement, **kw)}"


@pytest.fixture(scope="module")
async def runtime(
    database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Runtime]:
    settings = make_settings(database, Path(tmp_path_factory.mktemp("keyset")), 1)
    async with open_runtime(settings) as rt:
        async with rt.sessions.begin() as session:
            await session.execute(insert(User), [{"id": 900, "username": "bulk", "role": "author"}])
            # Three rows per second, so ties on created_at are common and the id breaks them.
            rows = [
                {
                    "id": f"conn_bulk{i:06d}",
                    "user_id": 900,
                    "agent_name": f"bulk agent {i}",
                    "method": ("oauth", "device", "application_password")[i % 3],
                    "scopes": "content:read",
                    "created_at": BASE + timedelta(seconds=i // 3),
                    "revoked_at": BASE if i % 10 == 0 else None,
                }
                for i in range(ROWS)
            ]
            for start in range(0, ROWS, 10_000):
                await session.execute(insert(Connection), rows[start : start + 10_000])
        if database.kind == "postgresql":
            async with rt.sessions.begin() as session:
                await session.execute(text("ANALYZE connections"))
                await session.execute(text("ANALYZE users"))
        yield rt


async def plan(rt: Runtime, statement: Executable) -> str:
    prefix = "EXPLAIN QUERY PLAN" if rt.engine.dialect.name == "sqlite" else "EXPLAIN"
    async with rt.sessions() as session:
        rows = (await session.execute(Explain(statement, prefix))).all()
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize(
    "query",
    [ConnectionQuery(), ConnectionQuery(method="device"), ConnectionQuery(search="agent 9")],
    ids=["all", "method", "search"],
)
async def test_page_queries_use_the_created_index(runtime: Runtime, query: ConnectionQuery) -> None:
    middle = Cursor(BASE + timedelta(seconds=ROWS // 6), "conn_bulk050000")
    for kwargs in ({}, {"before": middle}, {"after": middle}):
        explained = await plan(runtime, page_statement(query, limit=51, **kwargs))
        assert "ix_connections_created" in explained, explained
        assert "SORT" not in explained.upper().replace("USE TEMP B-TREE FOR ORDER BY", "SORT"), explained


async def test_walking_the_pages_returns_every_row_once_in_order(runtime: Runtime) -> None:
    query = ConnectionQuery(user_id=900)
    expected = [f"conn_bulk{i:06d}" for i in range(ROWS - 1, -1, -1)]  # newest first
    seen: list[str] = []
    cursor: Cursor | None = None
    pages: list[tuple[list[str], Cursor | None]] = []
    while True:
        page = await page_connections(runtime.sessions, query, before=cursor, limit=2_500)
        seen.extend(r.id for r in page.rows)
        pages.append(([r.id for r in page.rows], page.newer))
        if page.older is None:
            break
        cursor = page.older
    assert seen == expected
    # Walking back with the "newer" cursor of the third page lands on the second page.
    ids, newer = pages[2]
    back = await page_connections(runtime.sessions, query, after=newer, limit=2_500)
    assert [r.id for r in back.rows] == pages[1][0]
    assert back.older is not None and back.newer is not None


async def test_filters_page_correctly(runtime: Runtime) -> None:
    revoked = await page_connections(
        runtime.sessions, ConnectionQuery(user_id=900, status="revoked"), limit=5
    )
    assert [r.id for r in revoked.rows] == [f"conn_bulk{i:06d}" for i in (99990, 99980, 99970, 99960, 99950)]
    nxt = await page_connections(
        runtime.sessions, ConnectionQuery(user_id=900, status="revoked"), before=revoked.older, limit=5
    )
    assert nxt.rows[0].id == "conn_bulk099940"
    device = await page_connections(
        runtime.sessions, ConnectionQuery(method="device", search="agent 9999"), limit=3
    )
    assert [r.agent_name for r in device.rows] == ["bulk agent 99997", "bulk agent 99994", "bulk agent 99991"]
