"""The audit log: every authentication success and failure, connection change and tool call.

Writes are queued and flushed in batches by one background task, so recording an event on the
request path costs no database round trip; ``flush()`` makes pending events durable (used at
shutdown and by tests and readers that need read-your-writes). Details are scrubbed of
anything that looks like a secret before they are queued. An event recorded while serving an
HTTP request carries that request's id (``detail.request_id``, see ``ops.request_id``), so it
can be matched with the request's log lines.

Reading is by keyset on ``id`` (``AuditFilter`` says which events; ``query`` pages through
them, ``iter_matching`` walks all of them for exports): ids only grow, so a page boundary never
shifts while new events arrive, and each page costs one index range scan however deep it is."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.db.models import AuditEvent, Connection, utcnow
from aiconnector.ops.request_id import current_request_id

log = logging.getLogger(__name__)

FLUSH_CHUNK = 200
_INSERT = AuditEvent.__table__.insert()
_SECRET_MARKERS = ("password", "secret", "token", "authorization", "code_verifier", "cookie")


# Events an owner should notice: a replayed code or refresh token means a credential leaked;
# lockouts and failed sign-ins mean someone is guessing.
SECURITY_EVENT_PREFIX = "security."
SECURITY_EVENTS = frozenset({"device.lockout", "device.locked", "login.failure", "auth.failure"})
OUTCOMES = ("success", "failure")


def is_security_event(event: str) -> bool:
    """Should this event stand out in listings? (The SQL twin is ``AuditFilter.security_only``.)"""
    return event.startswith(SECURITY_EVENT_PREFIX) or event in SECURITY_EVENTS


def scrub(detail: dict[str, Any]) -> dict[str, Any]:
    """Drop values under keys that name a secret; keep the key so the event stays readable."""
    clean: dict[str, Any] = {}
    for key, value in detail.items():
        if any(marker in key.lower() for marker in _SECRET_MARKERS):
            clean[key] = "[redacted]"
        elif isinstance(value, dict):
            clean[key] = scrub(value)
        else:
            clean[key] = value
    return clean


def _values(
    event: str,
    outcome: str,
    user_id: int | None,
    connection_id: str | None,
    ip: str | None,
    user_agent: str | None,
    detail: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "at": utcnow(),
        "event": event,
        "outcome": outcome,
        "user_id": user_id,
        "connection_id": connection_id,
        "ip": ip,
        "user_agent": (user_agent or "")[:300] or None,
        "detail": _with_request_id(scrub(detail or {})),
    }


def _with_request_id(detail: dict[str, Any]) -> dict[str, Any]:
    request_id = current_request_id.get()
    if request_id is not None:
        detail.setdefault("request_id", request_id)
    return detail


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    event: str
    outcome: str
    user_id: int | None
    connection_id: str | None
    ip: str | None
    user_agent: str | None
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "event": self.event,
            "outcome": self.outcome,
            "user_id": self.user_id,
            "connection_id": self.connection_id,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "detail": self.detail,
        }


def _utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; SQLite compares timestamps as text, so every bound
    must be in the zone the column is stored in."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which events to read. Every field narrows; the default matches everything.

    ``visible_to_user_id`` is the access rule for people who are not administrators: events
    about them (``user_id``) or about any connection they own, revoked ones included."""

    events: tuple[str, ...] = ()
    security_only: bool = False
    outcome: str | None = None
    user_id: int | None = None
    connection_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    visible_to_user_id: int | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.events:
            where.append(AuditEvent.event.in_(list(self.events)))
        if self.security_only:
            where.append(
                or_(
                    AuditEvent.event.startswith(SECURITY_EVENT_PREFIX, autoescape=True),
                    AuditEvent.event.in_(sorted(SECURITY_EVENTS)),
                )
            )
        if self.outcome is not None:
            where.append(AuditEvent.outcome == self.outcome)
        if self.user_id is not None:
            where.append(AuditEvent.user_id == self.user_id)
        if self.connection_id is not None:
            where.append(AuditEvent.connection_id == self.connection_id)
        if self.since is not None:
            where.append(AuditEvent.at >= _utc(self.since))
        if self.until is not None:
            where.append(AuditEvent.at < _utc(self.until))
        if self.visible_to_user_id is not None:
            owned = select(Connection.id).where(Connection.user_id == self.visible_to_user_id)
            where.append(
                or_(AuditEvent.user_id == self.visible_to_user_id, AuditEvent.connection_id.in_(owned))
            )
        return where


def _record_of(r: AuditEvent) -> AuditRecord:
    return AuditRecord(
        r.id, _utc(r.at), r.event, r.outcome, r.user_id, r.connection_id, r.ip, r.user_agent, r.detail or {}
    )


class AuditLog:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, flush_interval: float = 0.5) -> None:
        self._sessions = sessions
        self._pending: list[dict[str, Any]] = []
        self._flush_interval = flush_interval
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def record(
        self,
        event: str,
        *,
        outcome: str = "success",
        user_id: int | None = None,
        connection_id: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Queue one event; never blocks and never raises on the request path."""
        self._pending.append(_values(event, outcome, user_id, connection_id, ip, user_agent, detail))
        if len(self._pending) >= 500:
            self._wakeup.set()

    @staticmethod
    def event_row(
        event: str,
        *,
        outcome: str = "success",
        user_id: int | None = None,
        connection_id: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditEvent:
        """An event as a row, for writing inside the caller's transaction (changes of state
        such as revocation must never commit without their audit event)."""
        return AuditEvent(**_values(event, outcome, user_id, connection_id, ip, user_agent, detail))

    @property
    def pending(self) -> int:
        """Events queued and not yet written."""
        return len(self._pending)

    async def flush(self) -> None:
        """Write what is queued, in chunks with a pause for the event loop between them: one
        big executemany would stall every request the server is answering meanwhile (the
        statement is prepared on the loop's thread). A Core insert skips the ORM's per-row
        bookkeeping, which nothing here needs."""
        async with self._lock:
            while self._pending:
                chunk, self._pending = self._pending[:FLUSH_CHUNK], self._pending[FLUSH_CHUNK:]
                try:
                    async with self._sessions.begin() as session:
                        await session.execute(_INSERT, chunk)
                except Exception:
                    log.exception("audit flush failed; %d events re-queued", len(chunk))
                    self._pending[:0] = chunk
                    raise
                await asyncio.sleep(0)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)
            self._wakeup.clear()
            with contextlib.suppress(Exception):
                await self.flush()

    async def query(
        self,
        *,
        limit: int = 100,
        before_id: int | None = None,
        after_id: int | None = None,
        events: Sequence[str] | None = None,
        connection_id: str | None = None,
        user_id: int | None = None,
        matching: AuditFilter | None = None,
    ) -> list[AuditRecord]:
        """Newest first (or oldest first after ``after_id``, for following and for the page
        before this one). ``matching`` holds the richer filters; the keyword filters narrow it
        further and stay for the callers that predate it."""
        where = matching or AuditFilter()
        if events:
            where = replace(where, events=tuple(events))
        if connection_id is not None:
            where = replace(where, connection_id=connection_id)
        if user_id is not None:
            where = replace(where, user_id=user_id)
        stmt = select(AuditEvent).where(*where.conditions())
        if before_id is not None:
            stmt = stmt.where(AuditEvent.id < before_id)
        if after_id is not None:
            stmt = stmt.where(AuditEvent.id > after_id).order_by(AuditEvent.id.asc())
        else:
            stmt = stmt.order_by(AuditEvent.id.desc())
        async with self._sessions() as session:
            rows = (await session.scalars(stmt.limit(limit))).all()
        return [_record_of(r) for r in rows]

    async def iter_matching(self, matching: AuditFilter, *, batch: int = 1000) -> AsyncIterator[AuditRecord]:
        """Every matching event, newest first, read in keyset batches so an export of the whole
        log holds one batch in memory and no database session between batches."""
        before: int | None = None
        while True:
            page = await self.query(limit=batch, before_id=before, matching=matching)
            for record in page:
                yield record
            if len(page) < batch:
                return
            before = page[-1].id

    async def event_names(self) -> list[str]:
        """The distinct event names in the log, for the event-type filter."""
        async with self._sessions() as session:
            names = (await session.scalars(select(AuditEvent.event).distinct())).all()
        return sorted(names)
