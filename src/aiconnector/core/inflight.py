"""Process-wide table of running MCP requests, keyed by connection, so that a revoke can cancel
a connection's in-flight work and a legacy ``notifications/cancelled`` can cancel one request.

Request ids are only unique per client, so entries are keyed by (connection id, request id)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# The reason given when the server cancels what is still running at the end of its shutdown
# grace period (``ops.shutdown``); the transport answers such a request with -32005.
SHUTDOWN_REASON = "server shutting down"


@dataclass(eq=False, slots=True)
class InflightRequest:
    connection_id: str
    request_id: str | int | None
    task: asyncio.Task[object]
    # Why it was cancelled from outside ("connection revoked", "cancelled by client"), if it was.
    cancel_reason: str | None = None


@dataclass
class InflightRequests:
    _by_connection: dict[str, set[InflightRequest]] = field(default_factory=dict)

    @contextmanager
    def track(self, connection_id: str, request_id: str | int | None) -> Iterator[InflightRequest]:
        """Register the current task for the duration of the block."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always inside a task under an ASGI server
            raise RuntimeError("track() must run inside a task")
        entry = InflightRequest(connection_id, request_id, task)
        self._by_connection.setdefault(connection_id, set()).add(entry)
        try:
            yield entry
        finally:
            bucket = self._by_connection.get(connection_id)
            if bucket is not None:
                bucket.discard(entry)
                if not bucket:
                    del self._by_connection[connection_id]

    def cancel_connection(self, connection_id: str, reason: str = "connection revoked") -> int:
        """Cancel every running request of a connection; returns how many were cancelled."""
        entries = list(self._by_connection.get(connection_id, ()))
        for entry in entries:
            entry.cancel_reason = reason
            entry.task.cancel(reason)
        return len(entries)

    def cancel_all(self, reason: str = SHUTDOWN_REASON) -> int:
        """Cancel every running request (shutdown); returns how many were cancelled."""
        return sum(self.cancel_connection(cid, reason) for cid in list(self._by_connection))

    def cancel_request(
        self, connection_id: str, request_id: str | int, reason: str = "cancelled by client"
    ) -> bool:
        for entry in list(self._by_connection.get(connection_id, ())):
            if entry.request_id == request_id and type(entry.request_id) is type(request_id):
                entry.cancel_reason = reason
                entry.task.cancel(reason)
                return True
        return False

    def count(self, connection_id: str | None = None) -> int:
        if connection_id is not None:
            return len(self._by_connection.get(connection_id, ()))
        return sum(len(v) for v in self._by_connection.values())
