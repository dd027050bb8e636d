"""Cross-instance revocation over PostgreSQL ``LISTEN``/``NOTIFY`` (DESIGN §7, many instances).

The revoking transaction itself runs ``SELECT pg_notify('aiconnector_connections',
'<kind>:<connection id>')`` (``notify_in_transaction``). PostgreSQL delivers a notification
only when — and only if — that transaction commits, so no instance ever hears of a revoke
before it is visible, and a rolled-back revoke is never announced.

Every instance keeps one dedicated asyncpg connection (``NotifyListener``; not from the
SQLAlchemy pool, whose connections are recycled and shared) that ``LISTEN``\\ s on the channel and
re-publishes what it hears on the local ``RevocationBus``: ``revoked`` → ``publish`` (drop
cached credentials, cancel in-flight requests), ``changed`` → ``publish_change``.

Notifications are not queued for a listener that is not connected. So when the listener's
connection is lost (killed backend, database restart, network) it reconnects with backoff,
``LISTEN``\\ s again and only *then* asks the ``RevocationWatcher`` to resynchronise — in that
order, so a revoke that commits between the two is heard or found, never neither. While it is
disconnected it also speeds the watcher's polling up, which bounds the window without it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Literal

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from aiconnector.core.events import RevocationBus, RevocationWatcher, wait_event

if TYPE_CHECKING:
    import asyncpg

    from aiconnector.config import Settings

log = logging.getLogger(__name__)

CHANNEL = "aiconnector_connections"
ChangeKind = Literal["revoked", "changed"]
KINDS: tuple[ChangeKind, ...] = ("revoked", "changed")

# Reconnect delays: the first retry is immediate (a killed backend is usually the only
# problem), then doubling up to the cap so a database restart is not hammered.
RECONNECT_FIRST_DELAY = 0.0
RECONNECT_BASE_DELAY = 0.1
RECONNECT_MAX_DELAY = 2.0
# How often an idle listener proves its connection is alive: a half-open TCP connection
# (network drop without a FIN) raises no termination callback, only a failed round trip.
HEALTH_CHECK_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5.0
# Watcher poll interval while the listener is disconnected; the normal interval otherwise.
OUTAGE_POLL_SECONDS = 0.25


def is_postgresql(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


async def notify_in_transaction(session: AsyncSession, kind: ChangeKind, connection_id: str) -> None:
    """Announce a revoke or change to every instance *when the caller's transaction commits*.

    Call it inside the transaction that makes the change. A no-op on SQLite, where the
    polling watcher is the cross-process path."""
    if session.bind.dialect.name != "postgresql":
        return
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CHANNEL, "payload": f"{kind}:{connection_id}"},
    )


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL (``postgresql+asyncpg://…``) as a plain libpq-style DSN for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def listener_application_name(settings: Settings) -> str:
    """What ``pg_stat_activity.application_name`` shows for an instance's listener, so an
    operator (or a test) can tell the instances' listeners apart. PostgreSQL keeps 63 bytes."""
    return f"aiconnector-listener {settings.host}:{settings.port}"[:63]


class NotifyListener:
    """Keeps a ``LISTEN`` connection up and feeds what it hears into the local bus.

    Safe to construct and start on any database: on anything but PostgreSQL ``start`` does
    nothing and the watcher alone carries revokes between processes."""

    def __init__(self, settings: Settings, bus: RevocationBus, watcher: RevocationWatcher) -> None:
        url = settings.effective_database_url
        self._enabled = is_postgresql(url)
        self._dsn = asyncpg_dsn(url) if self._enabled else ""
        self._application_name = listener_application_name(settings)
        self._bus = bus
        self._watcher = watcher
        self._normal_poll = watcher.interval
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.received = 0  # notifications handled, for operators and tests

    async def start(self) -> None:
        if not self._enabled:
            return
        self._task = asyncio.create_task(self._run(), name="revocation-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        kind, _, connection_id = str(payload).partition(":")
        if not connection_id or kind not in KINDS:
            log.warning("ignoring malformed notification %r", payload)
            return
        self.received += 1
        if kind == "revoked":
            self._bus.publish(connection_id)
        else:
            self._bus.publish_change(connection_id)

    async def _run(self) -> None:
        delay = RECONNECT_FIRST_DELAY
        while True:
            try:
                await self._listen_until_lost()
                delay = RECONNECT_FIRST_DELAY  # it was up: the next loss starts afresh
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("revocation listener unavailable (%s); retrying in %.2f s", exc, delay)
            self._disconnected()
            await asyncio.sleep(delay)
            delay = min(max(delay * 2, RECONNECT_BASE_DELAY), RECONNECT_MAX_DELAY)

    async def _listen_until_lost(self) -> None:
        """One connection's life: connect, LISTEN, resynchronise, then wait until it dies."""
        import asyncpg

        conn: asyncpg.Connection = await asyncpg.connect(
            self._dsn,
            timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings={"application_name": self._application_name},
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            await conn.add_listener(CHANNEL, self._on_notification)
            # Only now, with LISTEN active, look for what was missed while not listening.
            await self._watcher.resync()
            self._watcher.set_interval(self._normal_poll)
            self.connected.set()
            log.info("revocation listener connected")
            while not await wait_event(lost, HEALTH_CHECK_SECONDS) and not conn.is_closed():
                await conn.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT_SECONDS)
            log.warning("revocation listener connection lost; reconnecting")
        finally:
            self._disconnected()
            conn.terminate()

    def _disconnected(self) -> None:
        self.connected.clear()
        self._watcher.set_interval(min(OUTAGE_POLL_SECONDS, self._normal_poll))
