"""Repeated failures, counted instead of written one row each.

Anyone on the network can send a bad bearer token or a wrong password as fast as they like;
one audit row each (1,364 rows in 5 s, measured) buries the events an owner needs to see.
So the events in ``AGGREGATED_EVENTS`` are kept as **one row per source per minute** with a
count: the first failure of a minute becomes a row like any other event, and later identical
failures in that minute only raise ``detail.count`` (and ``detail.last_at``) on that row.

A *source* is everything that describes the failure except the moment and the request: event,
outcome, user, connection, address and detail (minus ``request_id``). The user agent is the
first one seen. Minutes are wall-clock UTC minutes, so every instance cuts them alike; each
instance keeps its own counts and writes its own row, so with several instances a source has
at most one row per instance per minute, and the counts still add up.

This module only counts, in memory; ``core.audit.AuditLog`` writes what ``dirty`` returns
(insert for a new row, update of ``detail.count`` for a known one) on every flush. A crash
loses the counts since the last flush, which is the bound for every batched event."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

AGGREGATED_EVENTS = frozenset({"auth.failure", "login.failure", "oauth.client_auth_failure"})
COUNT_KEY = "count"
# More distinct sources than this in one minute (an attack from a whole address range) are
# counted together on one row, so memory stays bounded whatever the attacker does.
MAX_SOURCES = 10_000
OVERFLOW_DETAIL = {"reason": "more distinct sources in this minute than are counted one by one"}


@dataclass(slots=True)
class Window:
    """One source's failures in one minute, and what of them the database already has."""

    values: dict[str, Any]  # the row: the first failure's values, detail without the count
    count: int = 1
    written: int = 0  # the count the database row carries
    row_id: int | None = None
    last_at: str = ""

    def row(self) -> dict[str, Any]:
        """The row's values with the current count, ready for an insert."""
        return {**self.values, "detail": self.detail()}

    def detail(self) -> dict[str, Any]:
        """A single failure's row looks like any event's; a repeated one says how often and
        until when (``AuditRecord.count`` reads a missing count as 1)."""
        if self.count == 1:
            return self.values["detail"]
        return {**self.values["detail"], COUNT_KEY: self.count, "last_at": self.last_at}


@dataclass
class Repeats:
    """The open windows, keyed by (minute, source)."""

    windows: dict[tuple[Any, ...], Window] = field(default_factory=dict)

    def add(self, values: dict[str, Any]) -> None:
        """Count one failure (``values`` as ``core.audit`` builds a row, ``at`` aware UTC)."""
        at = values["at"]
        minute = int(at.timestamp() // 60)
        key = (minute, *_source(values))
        window = self.windows.get(key)
        if window is None and len(self.windows) >= MAX_SOURCES:
            key = (minute, values["event"], "overflow")
            window = self.windows.get(key)
            if window is None:
                values = {**values, "user_id": None, "connection_id": None, "ip": None,
                          "user_agent": None, "detail": dict(OVERFLOW_DETAIL)}  # fmt: skip
        if window is None:
            self.windows[key] = Window(values, last_at=at.isoformat())
            return
        window.count += 1
        window.last_at = at.isoformat()

    def dirty(self) -> list[Window]:
        """Windows whose count the database does not have yet."""
        return [w for w in self.windows.values() if w.count != w.written]

    def sweep(self, current_minute: int) -> None:
        """Forget windows of minutes that are over and fully written."""
        for key in [k for k, w in self.windows.items() if k[0] < current_minute and w.count == w.written]:
            del self.windows[key]

    @property
    def unwritten(self) -> int:
        """Failures counted and not yet in the database (for the pending-events gauge)."""
        return sum(w.count - w.written for w in self.windows.values())


def _source(values: dict[str, Any]) -> tuple[Any, ...]:
    detail = {k: v for k, v in values["detail"].items() if k != "request_id"}
    return (
        values["event"],
        values["outcome"],
        values["user_id"],
        values["connection_id"],
        values["ip"],
        json.dumps(detail, sort_keys=True, default=str),
    )
