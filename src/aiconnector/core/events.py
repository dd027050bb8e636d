"""Revocation bus: tells every part of this process that a connection was revoked, so cached
credentials are dropped and in-flight requests cancelled (DESIGN §7).

Revocations made by *another* process (the CLI, another instance) reach this one through
``RevocationWatcher``, which polls the ``connections`` table for newly revoked rows. Polling
works the same on SQLite and PostgreSQL; its interval bounds how long a revoke made elsewhere
takes to bite (default 1 s), while a revoke made in this process bites at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.db.models import Connection

log = logging.getLogger(__name__)

RevocationListener = Callable[[str], None]


class RevocationBus:
    """Two channels: *revoked* (drop cached credentials and cancel in-flight requests) and
    *changed* (a live connection's scopes or name changed: drop cached credentials so the next
    request sees the change, but let running requests finish)."""

    def __init__(self) -> None:
        self._listeners: list[RevocationListener] = []
        self._change_listeners: list[RevocationListener] = []

    def subscribe(self, listener: RevocationListener) -> None:
        self._listeners.append(listener)

    def subscribe_changes(self, listener: RevocationListener) -> None:
        self._change_listeners.append(listener)

    def publish(self, connection_id: str) -> None:
        _notify(self._listeners, connection_id)

    def publish_change(self, connection_id: str) -> None:
        _notify(self._change_listeners, connection_id)


def _notify(listeners: list[RevocationListener], connection_id: str) -> None:
    for listener in listeners:
        try:
            listener(connection_id)
        except Exception:  # one failing listener must not stop the others
            log.exception("connection listener failed for %s", connection_id)


class RevocationWatcher:
    """Polls for connections revoked since the last look and publishes them on the bus."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], bus: RevocationBus, *, interval: float = 1.0
    ):
        self._sessions = sessions
        self._bus = bus
        self._interval = interval
        self._since = datetime.now(UTC)
        self._task: asyncio.Task[None] | None = None

    async def poll_once(self) -> int:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(Connection.id, Connection.revoked_at)
                    .where(Connection.revoked_at.is_not(None), Connection.revoked_at >= self._since)
                    .order_by(Connection.revoked_at)
                )
            ).all()
        for connection_id, revoked_at in rows:
            self._bus.publish(connection_id)
            if revoked_at.tzinfo is None:
                revoked_at = revoked_at.replace(tzinfo=UTC)
            self._since = max(self._since, revoked_at)
        return len(rows)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="revocation-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.poll_once()
            except Exception:
                log.warning("revocation poll failed; retrying", exc_info=True)
