"""The audit log: every authentication success and failure, connection change and tool call.

Two ways in, chosen by what the event records:

* **A change of state** (a user, client, credential, consent or revocation) writes its event
  with ``record_in(session, …)`` inside the transaction that makes the change: both commit or
  neither does, so no crash can leave a change without its event.
* **Everything else** (sign-ins, failures, read-only tool calls) is queued with ``record`` and
  written in batches by one background task, so recording costs the request no database round
  trip. ``flush()`` makes the queue durable (at shutdown, and for readers that need
  read-your-writes). A crash loses what is queued: at most the last ``flush_interval``
  (0.5 s) of these events, plus a flush in progress; the ``aiconnector_audit_pending_events``
  gauge shows how many are at stake at any moment.

A **mutating tool call** (a tool not annotated read-only) has a side effect in the site the
audit log cannot share a transaction with (WordPress, or the built-in site's own session), so
it is written ahead: ``write`` commits a ``tool_call`` row with outcome ``started`` before the
tool runs, and ``amend`` records the outcome before the result goes back to the agent. A row
left ``started`` is a call whose end the server did not see (it crashed); its change may or may
not have happened, but no change happens without a row.

Repeated failures from the same source (``core.audit_repeats``) are counted on one row per
minute instead of one row each, so an attacker cannot flood the log.

Details are scrubbed of anything that looks like a secret before they are stored. An event
recorded while serving an HTTP request carries that request's id (``detail.request_id``, see
``ops.request_id``), so it can be matched with the request's log lines.

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

from sqlalchemy import ColumnElement, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.core.audit_repeats import AGGREGATED_EVENTS, COUNT_KEY, Repeats, Window
from aiconnector.db.models import AuditEvent, Connection, utcnow
from aiconnector.ops.request_id import current_request_id

log = logging.getLogger(__name__)

FLUSH_CHUNK = 200
_INSERT = AuditEvent.__table__.insert()
_INSERT_RETURNING_ID = insert(AuditEvent.__table__).returning(
    AuditEvent.__table__.c.id, sort_by_parameter_order=True
)
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
class AuditContext:
    """Who asked for a change and from where. A core function that changes state takes one so
    it can write the change's event inside its own transaction (``record_in``); the HTTP layer
    fills it from the request, the CLI leaves most of it empty."""

    user_id: int | None = None  # the person acting, when someone is signed in
    username: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    via: str | None = None  # which door the change came through, when that is worth saying ("admin")


def record_in(
    session: AsyncSession,
    event: str,
    *,
    context: AuditContext | None = None,
    outcome: str = "success",
    user_id: int | None = None,
    connection_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add the event to the caller's transaction: it commits with the change it records, or
    not at all. This is the one way to audit a change of state. ``context`` supplies the
    address, the user agent and (unless ``user_id`` is given) the acting user."""
    if context is not None:
        ip = ip if ip is not None else context.ip
        user_agent = user_agent if user_agent is not None else context.user_agent
        user_id = user_id if user_id is not None else context.user_id
    row = AuditEvent(**_values(event, outcome, user_id, connection_id, ip, user_agent, detail))
    session.add(row)
    return row


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

    @property
    def count(self) -> int:
        """How many occurrences the row stands for: repeated failures are one row per source
        and minute (``core.audit_repeats``); every other row is one occurrence."""
        value = self.detail.get(COUNT_KEY) if self.event in AGGREGATED_EVENTS else None
        return value if isinstance(value, int) and value > 0 else 1

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


async def _write_windows(
    session: AsyncSession, chunk: list[tuple[Window, int, dict[str, Any]]]
) -> list[tuple[Window, int]]:
    """Insert the windows new to the database and update the others' counts; return the new
    rows' ids for the caller to keep once the transaction has committed."""
    new = [(window, detail) for window, _, detail in chunk if window.row_id is None]
    ids: list[int] = []
    if new:
        rows = [{**window.values, "detail": detail} for window, detail in new]
        ids = list((await session.scalars(_INSERT_RETURNING_ID, rows)).all())
    for window, _, detail in chunk:
        if window.row_id is not None:
            stmt = update(AuditEvent).where(AuditEvent.id == window.row_id).values(detail=detail)
            await session.execute(stmt)
    return [(window, row_id) for (window, _), row_id in zip(new, ids, strict=True)]


class AuditLog:
    """The batched writer, the write-ahead pair for mutating tool calls, and the readers."""

    # For code that already holds the log: the same function as the module's ``record_in``.
    record_in = staticmethod(record_in)

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, flush_interval: float = 0.5) -> None:
        self._sessions = sessions
        self._pending: list[dict[str, Any]] = []
        self._repeats = Repeats()
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
        """Queue one event that changes nothing (see the module docstring for what may be
        lost); never blocks and never raises on the request path. Repeated failures are
        counted rather than queued (``core.audit_repeats``)."""
        values = _values(event, outcome, user_id, connection_id, ip, user_agent, detail)
        if event in AGGREGATED_EVENTS:
            self._repeats.add(values)
            return
        self._pending.append(values)
        if len(self._pending) >= 500:
            self._wakeup.set()

    async def write(
        self,
        event: str,
        *,
        outcome: str = "success",
        user_id: int | None = None,
        connection_id: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Write one event now, in its own committed transaction, and return its id: for
        what must be on record before it happens (a mutating tool call, then ``amend``)."""
        async with self._sessions.begin() as session:
            row = record_in(
                session,
                event,
                outcome=outcome,
                user_id=user_id,
                connection_id=connection_id,
                ip=ip,
                user_agent=user_agent,
                detail=detail,
            )
            await session.flush()
            return row.id

    async def amend(self, event_id: int, *, outcome: str, detail: dict[str, Any] | None = None) -> None:
        """Record the outcome of an event written ahead with ``write``, committed now."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(AuditEvent)
                .where(AuditEvent.id == event_id)
                .values(outcome=outcome, detail=_with_request_id(scrub(detail or {})))
            )

    @property
    def pending(self) -> int:
        """Events recorded and not yet written (counted repeats included)."""
        return len(self._pending) + self._repeats.unwritten

    async def flush(self) -> None:
        """Write what is queued, in chunks with a pause for the event loop between them: one
        big executemany would stall every request the server is answering meanwhile (the
        statement is prepared on the loop's thread). A Core insert skips the ORM's per-row
        bookkeeping, which nothing here needs. Then bring the repeat counts up to date."""
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
            await self._write_repeats()

    async def _write_repeats(self) -> None:
        """One row per repeat window: inserted with its count the first time, its count updated
        afterwards. Counts are taken before the transaction, so failures counted meanwhile
        are written by the next flush; on an error nothing is marked written."""
        dirty = [(w, w.count, w.detail()) for w in self._repeats.dirty()]
        for start in range(0, len(dirty), FLUSH_CHUNK):
            chunk = dirty[start : start + FLUSH_CHUNK]
            try:
                async with self._sessions.begin() as session:
                    new_ids = await _write_windows(session, chunk)
            except Exception:
                log.exception("audit flush failed for %d repeat counts; kept for the next flush", len(chunk))
                raise
            for window, row_id in new_ids:  # only now: a rolled-back insert has no row
                window.row_id = row_id
            for window, count, _ in chunk:
                window.written = count
            await asyncio.sleep(0)
        self._repeats.sweep(int(utcnow().timestamp() // 60))

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
