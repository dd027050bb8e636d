"""Connections: one per authorized agent. Listing (keyset pages), renaming and narrowing,
revocation and "last active" tracking."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Select, func, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from aiconnector.core.audit import AuditLog
from aiconnector.core.events import CONNECTION_UPDATED, RevocationBus
from aiconnector.core.pg_notify import notify_in_transaction
from aiconnector.core.scopes import format_scopes
from aiconnector.db.models import AppPassword, Connection, OAuthToken, User, utcnow
from aiconnector.errors import NotFound
from aiconnector.security import new_id


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    id: str
    user_id: int
    username: str
    agent_name: str
    method: str
    scopes: str
    client_id: str | None
    created_at: datetime
    last_active_at: datetime | None
    last_ip: str | None
    revoked_at: datetime | None
    revoke_reason: str | None
    revoked_by: int | None = None
    revoked_by_name: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, object]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "user_id": self.user_id,
            "username": self.username,
            "agent_name": self.agent_name,
            "method": self.method,
            "scopes": self.scopes.split(),
            "client_id": self.client_id,
            "created_at": iso(self.created_at),
            "last_active_at": iso(self.last_active_at),
            "last_ip": self.last_ip,
            "status": "active" if self.active else "revoked",
            "revoked_at": iso(self.revoked_at),
            "revoke_reason": self.revoke_reason,
            "revoked_by": self.revoked_by_name,
        }


def new_connection(
    *, user_id: int, agent_name: str, method: str, scopes: str, client_id: str | None = None
) -> Connection:
    """A connection row for the caller to add inside its own transaction."""
    return Connection(
        id=new_id("conn_"),
        user_id=user_id,
        agent_name=agent_name,
        method=method,
        scopes=scopes,
        client_id=client_id,
    )


PAGE_SIZE = 50
STATUSES = ("active", "revoked")


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the newest-first ordering (``created_at`` desc, ``id`` desc), which is
    what the ``ix_connections_created`` index serves: a page continues from the last row
    seen instead of skipping N rows, so page 2,000 costs what page 1 costs."""

    created_at: datetime
    id: str

    def encode(self) -> str:
        return f"{_utc(self.created_at).isoformat()}~{self.id}"

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        """None for anything malformed: a hand-edited URL just shows the first page."""
        if not text or "~" not in text:
            return None
        stamp, _, ident = text.partition("~")
        try:
            return cls(_utc(datetime.fromisoformat(stamp)), ident[:40])
        except ValueError:
            return None

    @classmethod
    def of(cls, record: ConnectionRecord) -> Cursor:
        return cls(record.created_at, record.id)


@dataclass(frozen=True, slots=True)
class ConnectionQuery:
    """Filters for the connections list. ``status`` is "active", "revoked" or None (both)."""

    user_id: int | None = None
    method: str | None = None
    status: str | None = None
    search: str | None = None
    connection_id: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionPage:
    rows: list[ConnectionRecord]
    # Cursors for the neighbouring pages; None where there is nothing more that way.
    older: Cursor | None
    newer: Cursor | None


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _filtered(query: ConnectionQuery) -> Select[tuple[Connection, str, str | None]]:
    revoker = aliased(User)
    stmt = (
        select(Connection, User.username, revoker.username)
        .join(User, User.id == Connection.user_id)
        .outerjoin(revoker, revoker.id == Connection.revoked_by)
    )
    if query.user_id is not None:
        stmt = stmt.where(Connection.user_id == query.user_id)
    if query.connection_id is not None:
        stmt = stmt.where(Connection.id == query.connection_id)
    if query.method:
        stmt = stmt.where(Connection.method == query.method)
    if query.status == "active":
        stmt = stmt.where(Connection.revoked_at.is_(None))
    elif query.status == "revoked":
        stmt = stmt.where(Connection.revoked_at.is_not(None))
    if query.search:
        stmt = stmt.where(Connection.agent_name.icontains(query.search.strip(), autoescape=True))
    return stmt


def _position(cursor: Cursor) -> ColumnElement[object]:
    """The cursor as a row value, compared with (created_at, id) so the index answers it."""
    return tuple_(
        literal(cursor.created_at, Connection.created_at.type), literal(cursor.id, Connection.id.type)
    )


def page_statement(
    query: ConnectionQuery,
    *,
    before: Cursor | None = None,
    after: Cursor | None = None,
    limit: int = PAGE_SIZE,
) -> Select[tuple[Connection, str, str | None]]:
    """The statement for one page, exposed so tests can EXPLAIN it. ``before`` walks to older
    rows (descending), ``after`` to newer ones (ascending; the caller reverses)."""
    key = tuple_(Connection.created_at, Connection.id)
    stmt = _filtered(query)
    if after is not None:
        stmt = stmt.where(
            key > tuple_(literal(after.created_at, Connection.created_at.type), literal(after.id))
        )
        return stmt.order_by(Connection.created_at.asc(), Connection.id.asc()).limit(limit)
    if before is not None:
        stmt = stmt.where(
            key < tuple_(literal(before.created_at, Connection.created_at.type), literal(before.id))
        )
    return stmt.order_by(Connection.created_at.desc(), Connection.id.desc()).limit(limit)


def _record(conn: Connection, username: str, revoked_by_name: str | None) -> ConnectionRecord:
    return ConnectionRecord(
        conn.id,
        conn.user_id,
        username,
        conn.agent_name,
        conn.method,
        conn.scopes,
        conn.client_id,
        _utc(conn.created_at),
        _utc(conn.last_active_at) if conn.last_active_at else None,
        conn.last_ip,
        _utc(conn.revoked_at) if conn.revoked_at else None,
        conn.revoke_reason,
        conn.revoked_by,
        revoked_by_name,
    )


async def page_connections(
    sessions: async_sessionmaker[AsyncSession],
    query: ConnectionQuery,
    *,
    before: Cursor | None = None,
    after: Cursor | None = None,
    limit: int = PAGE_SIZE,
) -> ConnectionPage:
    """One page newest first, with cursors to the older and newer pages. One extra row is read
    to know whether there is a further page, so no COUNT(*) is ever needed."""
    stmt = page_statement(query, before=before, after=after, limit=limit + 1)
    async with sessions() as session:
        rows = [_record(*row) for row in (await session.execute(stmt)).all()]
    more = len(rows) > limit
    rows = rows[:limit]
    if after is not None:
        rows.reverse()
        older = Cursor.of(rows[-1]) if rows else after
        newer = Cursor.of(rows[0]) if more and rows else None
    else:
        older = Cursor.of(rows[-1]) if more else None
        newer = Cursor.of(rows[0]) if before is not None and rows else None
    return ConnectionPage(rows, older, newer)


async def list_connections(
    sessions: async_sessionmaker[AsyncSession],
    *,
    user_id: int | None = None,
    connection_id: str | None = None,
    include_revoked: bool = True,
    limit: int = 500,
) -> list[ConnectionRecord]:
    """Newest first, without paging (the CLI and small callers)."""
    query = ConnectionQuery(
        user_id=user_id, connection_id=connection_id, status=None if include_revoked else "active"
    )
    async with sessions() as session:
        rows = (await session.execute(page_statement(query, limit=limit))).all()
    return [_record(*row) for row in rows]


class ConnectionChangeError(ValueError):
    """A requested change is not allowed (widening scopes, an empty name)."""


async def lock_connection(session: AsyncSession, connection_id: str) -> Connection | None:
    """Load the connection for the rest of the caller's transaction, locked against every other
    transaction that changes it or its tokens (scope changes, revokes, refreshes).

    This is the **first** thing such a transaction does, and the connection row is the first
    lock it takes (tokens come after), so two of them never wait for each other in opposite
    orders (no deadlock), and whatever the second one reads — the connection's scopes, its live
    tokens — already includes what the first one committed (no lost update).

    PostgreSQL: ``SELECT … FOR UPDATE`` on the row. SQLite has no row locks, and Python's
    ``sqlite3`` only opens a transaction at the first write, so plain reads before it would see
    an old snapshot; a no-op ``UPDATE`` of the row takes the database's single write lock
    before anything is read."""
    if session.bind.dialect.name == "sqlite":
        await session.execute(
            update(Connection)
            .where(Connection.id == connection_id)
            .values(agent_name=Connection.agent_name)
            .execution_options(synchronize_session=False)
        )
    return await session.get(Connection, connection_id, with_for_update=True, populate_existing=True)


async def update_connection(
    sessions: async_sessionmaker[AsyncSession],
    connection_id: str,
    *,
    audit: AuditLog,
    bus: RevocationBus | None = None,
    changed_by: int | None = None,
    agent_name: str | None = None,
    scopes: frozenset[str] | None = None,
) -> None:
    """Rename a connection and/or narrow its scopes, with its audit event, in one transaction.

    Scopes may only be narrowed: widening would grant what the user never consented to.
    Access and refresh tokens carry their own scopes (a token is checked against what it
    says), so narrowing also narrows every live token of the connection in the same
    transaction; otherwise a token issued before the change would keep the old scopes until
    it expires. The connection is locked first (``lock_connection``), as a refresh locks it,
    so a refresh running at the same time either commits before (its new tokens are among
    those narrowed here) or starts after and caps its tokens at the new scopes. After the
    commit the bus tells this process to drop cached credentials, so the very next request
    is checked against the new scopes; running requests finish."""
    changes: dict[str, object] = {}
    async with sessions.begin() as session:
        conn = await lock_connection(session, connection_id)
        if conn is None:
            raise NotFound(f"connection {connection_id!r} not found")
        if conn.revoked_at is not None:
            raise ConnectionChangeError("a revoked connection cannot be changed")
        if agent_name is not None:
            name = " ".join(agent_name.split())[:200]
            if not name:
                raise ConnectionChangeError("the name cannot be empty")
            if name != conn.agent_name:
                changes["agent_name"] = {"from": conn.agent_name, "to": name}
                conn.agent_name = name
        if scopes is not None:
            current = frozenset(conn.scopes.split())
            if not scopes:
                raise ConnectionChangeError("keep at least one scope, or revoke the connection")
            if not scopes <= current:
                raise ConnectionChangeError("scopes can only be narrowed, never widened")
            if scopes != current:
                changes["scopes"] = {"from": conn.scopes, "to": format_scopes(scopes)}
                conn.scopes = format_scopes(scopes)
                tokens = await session.scalars(
                    select(OAuthToken).where(
                        OAuthToken.connection_id == connection_id, OAuthToken.revoked_at.is_(None)
                    )
                )
                for token in tokens:
                    token.scopes = format_scopes(scopes & frozenset(token.scopes.split()))
        if not changes:
            return
        audit.record_in(
            session,
            CONNECTION_UPDATED,
            user_id=conn.user_id,
            connection_id=conn.id,
            detail={"by": changed_by, **changes},
        )
        await notify_in_transaction(session, "changed", conn.id)
    if bus is not None:
        bus.publish_change(connection_id)


async def revoke_connection(
    sessions: async_sessionmaker[AsyncSession],
    connection_id: str,
    *,
    audit: AuditLog,
    bus: RevocationBus | None = None,
    revoked_by: int | None = None,
    reason: str = "revoked",
) -> bool:
    """Revoke in one transaction; the audit event is written in the same transaction so a
    revoke is never unrecorded. Returns False when it was already revoked."""
    async with sessions.begin() as session:
        conn = await lock_connection(session, connection_id)
        if conn is None:
            raise NotFound(f"connection {connection_id!r} not found")
        if not await revoke_locked(session, conn, audit=audit, revoked_by=revoked_by, reason=reason):
            return False
    if bus is not None:
        bus.publish(connection_id)
    return True


async def revoke_locked(
    session: AsyncSession,
    conn: Connection,
    *,
    audit: AuditLog,
    revoked_by: int | None = None,
    reason: str = "revoked",
) -> bool:
    """Mark ``conn`` (locked by ``lock_connection``) revoked inside the caller's transaction,
    with its ``connection.revoked`` event and the cross-instance NOTIFY, so callers that find a
    reason to revoke (a reused refresh token) commit the finding, the revoke and the audit
    together. The caller publishes on the bus after the commit. False if already revoked."""
    if conn.revoked_at is not None:
        return False
    conn.revoked_at = utcnow()
    conn.revoked_by = revoked_by
    conn.revoke_reason = reason[:300]
    audit.record_in(
        session,
        "connection.revoked",
        user_id=conn.user_id,
        connection_id=conn.id,
        detail={"agent_name": conn.agent_name, "method": conn.method, "by": revoked_by, "reason": reason},
    )
    await notify_in_transaction(session, "revoked", conn.id)
    return True


class ActivityTracker:
    """Remembers "last used" per connection in memory and writes it in one batch every few
    seconds, so authenticating a request never costs a database write."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, interval: float = 5.0) -> None:
        self._sessions = sessions
        self._interval = interval
        self._seen: dict[str, tuple[datetime, str | None]] = {}
        self._task: asyncio.Task[None] | None = None

    def touch(self, connection_id: str, ip: str | None) -> None:
        self._seen[connection_id] = (utcnow(), ip)

    async def flush(self) -> None:
        seen, self._seen = self._seen, {}
        if not seen:
            return
        async with self._sessions.begin() as session:
            for connection_id, (at, ip) in seen.items():
                await session.execute(
                    update(Connection)
                    .where(Connection.id == connection_id)
                    .values(last_active_at=at, last_ip=ip)
                )
                await session.execute(
                    update(AppPassword)
                    .where(AppPassword.connection_id == connection_id)
                    .values(last_used_at=at, last_ip=ip)
                )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="activity-flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            with contextlib.suppress(Exception):
                await self.flush()


async def count_active_connections(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Connections not revoked, site-wide."""
    async with sessions() as session:
        return await session.scalar(select(func.count()).where(Connection.revoked_at.is_(None))) or 0


async def get_connection(sessions: async_sessionmaker[AsyncSession], connection_id: str) -> ConnectionRecord:
    found = await list_connections(sessions, connection_id=connection_id, limit=1)
    if found:
        return found[0]
    raise NotFound(f"connection {connection_id!r} not found")
