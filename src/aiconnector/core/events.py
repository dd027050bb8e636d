"""Revocation bus: tells every part of this process that a connection was revoked, so cached
credentials are dropped and in-flight requests cancelled (DESIGN §7).

Revocations made by *another* process (the CLI, another instance) reach this one in two ways:

* on PostgreSQL, ``core.pg_notify.NotifyListener`` receives the ``NOTIFY`` that the revoking
  transaction sent, milliseconds after it commits;
* everywhere, ``RevocationWatcher`` polls the ``connections`` table. On SQLite (one machine)
  it is the only path; on PostgreSQL it is the fallback that bounds the window while the
  listener is down, and the listener asks it to resynchronise after every reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.db.models import AuditEvent, Connection

log = logging.getLogger(__name__)

RevocationListener = Callable[[str], None]

# Audit events of changes that leave a connection live but must drop its cached credentials
# everywhere (its "changed" notification): a rename or narrowing, and an access token revoked
# through RFC 7009. The listener's reconnect resync replays them from the audit log.
CONNECTION_UPDATED = "connection.updated"
TOKEN_REVOKED = "token.revoked"
CHANGE_EVENTS = (CONNECTION_UPDATED, TOKEN_REVOKED)


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


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True if it was set.

    Not ``asyncio.wait_for(event.wait(), …)``: on Python 3.11 that swallows a cancellation
    arriving just as the event is set, and a task stopped that way never stops."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=seconds)
    finally:
        waiter.cancel()
    return event.is_set()


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class RevocationWatcher:
    """Polls for connections revoked since the last successful look and publishes them.

    ``revoked_at`` is stamped by the revoking process's clock *before* its transaction
    commits, so "revoked_at >= time of my last poll" would miss a revoke that committed just
    after a poll, or one made on a machine whose clock runs behind. Each poll therefore looks
    back ``lookback`` seconds further (default 30 s, the credential-cache lifetime) and
    remembers what it already published, so nothing is published twice. After an outage the
    first successful poll covers everything since the last successful one."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: RevocationBus,
        *,
        interval: float = 1.0,
        lookback: float = 30.0,
    ):
        self._sessions = sessions
        self._bus = bus
        self.interval = interval
        self._lookback = timedelta(seconds=lookback)
        self._last_ok = datetime.now(UTC)
        self._published: dict[str, datetime] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _window_start(self) -> datetime:
        return self._last_ok - self._lookback

    async def poll_once(self) -> int:
        """Publish revokes not yet published; returns how many. Raises when the database fails."""
        started = datetime.now(UTC)
        since = self._window_start()
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(Connection.id, Connection.revoked_at)
                    .where(Connection.revoked_at.is_not(None), Connection.revoked_at >= since)
                    .order_by(Connection.revoked_at)
                )
            ).all()
        fresh = [(cid, _aware(at)) for cid, at in rows if cid not in self._published]
        for connection_id, revoked_at in fresh:
            self._published[connection_id] = revoked_at
            self._bus.publish(connection_id)
        self._last_ok = started
        horizon = self._window_start()
        self._published = {cid: at for cid, at in self._published.items() if at >= horizon}
        return len(fresh)

    async def resync(self) -> int:
        """Catch up after the NOTIFY listener (re)connected: revokes since the last successful
        poll (minus the look-back), plus name/scope changes and access-token revokes recorded
        in the audit log in that window (``CHANGE_EVENTS``), which no poll otherwise sees.
        Publishing a change twice is harmless."""
        since = self._window_start()
        async with self._sessions() as session:
            changed = (
                await session.scalars(
                    select(AuditEvent.connection_id)
                    .where(
                        AuditEvent.at >= since,
                        AuditEvent.event.in_(CHANGE_EVENTS),
                        AuditEvent.connection_id.is_not(None),
                    )
                    .distinct()
                )
            ).all()
        for connection_id in changed:
            if connection_id is not None:
                self._bus.publish_change(connection_id)
        return await self.poll_once() + len(changed)

    def set_interval(self, seconds: float) -> None:
        """Change the poll interval, taking effect at once (the NOTIFY listener speeds polling
        up while it is disconnected and relaxes it again once it is back)."""
        if seconds != self.interval:
            self.interval = seconds
            self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="revocation-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await wait_event(self._wake, self.interval)
            self._wake.clear()
            try:
                await self.poll_once()
            except Exception:
                log.warning("revocation poll failed; retrying", exc_info=True)
