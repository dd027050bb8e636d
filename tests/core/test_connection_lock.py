"""Changes to a connection serialize on the connection row, taken before anything is read
(security review, issue 12 finding 2), on both databases.

The interleavings are forced rather than hoped for: a transaction writes and stays open until
the change under test has sent its first locking statement, then commits. On SQLite, Python's
``sqlite3`` runs reads before a transaction's first write outside it, so a change that read the
connection first and only then waited for the database lock decided on a stale row: two
narrowings at once could end with a scope the first one had removed (a lost update that widens
an application password). The change must take the lock before it reads."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import event, select, update

from aiconnector.core.app_passwords import create_app_password, verify_app_password
from aiconnector.core.connections import ConnectionChangeError, update_connection
from aiconnector.core.tokens import issue_token_pair
from aiconnector.core.users import create_user
from aiconnector.db.models import Connection, OAuthToken, utcnow
from aiconnector.runtime import Runtime
from tests.support import mint_oauth_connection

WIDE = "content:read content:write"
RESOURCE = "http://127.0.0.1/mcp"


def _locks_or_writes(statement: str) -> bool:
    """A statement that takes a lock on the connection or its tokens (a write, or FOR UPDATE)."""
    text = statement.lstrip().upper()
    touches = "CONNECTIONS" in text or "OAUTH_TOKENS" in text
    return touches and (text.startswith(("UPDATE", "INSERT", "DELETE")) or "FOR UPDATE" in text)


class _Holder:
    """The open transaction (``session``) and, after the block, the change's ``task``."""

    session: Any
    task: asyncio.Future[object]


@asynccontextmanager
async def held_until_locked(rt: Runtime, change: Callable[[], Awaitable[object]]) -> AsyncIterator[Any]:
    """Yield an open transaction; on leaving the block start ``change`` and commit only once
    the change has sent its first locking statement (a write, or ``FOR UPDATE``)."""
    locked = asyncio.Event()
    watching = False

    def on_execute(*args: Any) -> None:  # noqa: ANN401 - SQLAlchemy's before_cursor_execute
        if watching and _locks_or_writes(args[2]):
            locked.set()

    holder = _Holder()
    event.listen(rt.engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        async with rt.sessions.begin() as session:
            holder.session = session
            yield holder
            watching = True
            holder.task = asyncio.ensure_future(change())
            # Reads the change made before this point cannot see this transaction's writes.
            await asyncio.wait_for(locked.wait(), 30)
        await asyncio.wait({holder.task}, timeout=60)
    finally:
        event.remove(rt.engine.sync_engine, "before_cursor_execute", on_execute)


async def test_narrowing_waits_for_a_token_writer_and_narrows_what_it_wrote(rt: Runtime) -> None:
    user = await create_user(rt.sessions, f"lock{secrets.token_hex(4)}", role="editor")
    conn_id, _ = await mint_oauth_connection(
        rt.sessions, rt.settings, scopes=WIDE, resource=RESOURCE, user_id=user.id
    )

    def narrow() -> Awaitable[None]:
        return update_connection(rt.sessions, conn_id, audit=rt.audit, scopes=frozenset({"content:read"}))

    async with held_until_locked(rt, narrow) as refresh:
        # What a refresh writes: the head rotated, a successor pair with the granted scopes.
        await refresh.session.execute(
            update(OAuthToken)
            .where(OAuthToken.connection_id == conn_id, OAuthToken.kind == "refresh")
            .values(rotated_at=utcnow())
        )
        await issue_token_pair(
            refresh.session,
            connection_id=conn_id,
            client_id="test",
            access_scopes=WIDE,
            refresh_scopes=WIDE,
            resource=RESOURCE,
            settings=rt.settings,
        )
    refresh.task.result()
    async with rt.sessions() as session:
        scopes = await session.scalar(select(Connection.scopes).where(Connection.id == conn_id))
        tokens = (
            await session.scalars(
                select(OAuthToken.scopes).where(
                    OAuthToken.connection_id == conn_id, OAuthToken.revoked_at.is_(None)
                )
            )
        ).all()
    assert scopes == "content:read"
    assert len(tokens) == 4 and set(tokens) == {"content:read"}, tokens


async def test_two_narrowings_at_once_never_bring_back_a_removed_scope(rt: Runtime) -> None:
    """One narrowing removes content:write while another, decided on the row as it was, asks
    for content:write only: serialized, the second is a widening and is refused."""
    user = await create_user(rt.sessions, f"lock{secrets.token_hex(4)}", role="editor")
    password, record = await create_app_password(
        rt.sessions, user.username, name="two admins", scopes=frozenset(WIDE.split()), audit=rt.audit
    )

    def narrow_to_write() -> Awaitable[None]:
        return update_connection(
            rt.sessions, record.connection_id, audit=rt.audit, scopes=frozenset({"content:write"})
        )

    async with held_until_locked(rt, narrow_to_write) as first:
        await first.session.execute(
            update(Connection).where(Connection.id == record.connection_id).values(scopes="content:read")
        )
    with pytest.raises(ConnectionChangeError, match="only be narrowed"):
        first.task.result()
    principal = await verify_app_password(rt.sessions, user.username, password)
    assert principal is not None and principal.scopes == {"content:read"}
