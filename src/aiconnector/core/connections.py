"""Connections: one per authorized agent. Listing, revocation and "last active" tracking."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.core.audit import AuditLog
from aiconnector.core.events import RevocationBus
from aiconnector.db.models import AppPassword, Connection, User, utcnow
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


async def list_connections(
    sessions: async_sessionmaker[AsyncSession],
    *,
    user_id: int | None = None,
    connection_id: str | None = None,
    include_revoked: bool = True,
    limit: int = 500,
) -> list[ConnectionRecord]:
    stmt = (
        select(Connection, User.username)
        .join(User, User.id == Connection.user_id)
        .order_by(Connection.created_at.desc(), Connection.id.desc())
        .limit(limit)
    )
    if user_id is not None:
        stmt = stmt.where(Connection.user_id == user_id)
    if connection_id is not None:
        stmt = stmt.where(Connection.id == connection_id)
    if not include_revoked:
        stmt = stmt.where(Connection.revoked_at.is_(None))
    async with sessions() as session:
        rows = (await session.execute(stmt)).all()
    return [
        ConnectionRecord(
            c.id,
            c.user_id,
            username,
            c.agent_name,
            c.method,
            c.scopes,
            c.client_id,
            c.created_at,
            c.last_active_at,
            c.last_ip,
            c.revoked_at,
            c.revoke_reason,
        )
        for c, username in rows
    ]


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
        conn = await session.get(Connection, connection_id, with_for_update=True)
        if conn is None:
            raise NotFound(f"connection {connection_id!r} not found")
        if conn.revoked_at is not None:
            return False
        conn.revoked_at = utcnow()
        conn.revoked_by = revoked_by
        conn.revoke_reason = reason[:300]
        session.add(
            audit.event_row(
                "connection.revoked",
                user_id=conn.user_id,
                connection_id=conn.id,
                detail={
                    "agent_name": conn.agent_name,
                    "method": conn.method,
                    "by": revoked_by,
                    "reason": reason,
                },
            )
        )
    if bus is not None:
        bus.publish(connection_id)
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


async def get_connection(sessions: async_sessionmaker[AsyncSession], connection_id: str) -> ConnectionRecord:
    found = await list_connections(sessions, connection_id=connection_id, limit=1)
    if found:
        return found[0]
    raise NotFound(f"connection {connection_id!r} not found")
