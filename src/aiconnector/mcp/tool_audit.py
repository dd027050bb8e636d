"""The ``tool_call`` audit event of one tool call, and when it becomes durable.

The event holds the tool, the sorted argument **names** (never values: they may hold content
or secrets), the duration and the error message; its outcome is ``success``, ``error``,
``denied`` (scope or role) or ``cancelled``.

How durable it is depends on the tool (``Tool.read_only``, the ``readOnlyHint`` annotation):

* a **read-only** tool changes nothing, so its event is queued and written in a batch, like
  every other event that records no change (``AuditLog.record``; a crash loses at most the
  last flush interval of them);
* a tool that **may change** the site is written ahead: before it runs, a row with outcome
  ``started`` is committed (``AuditLog.write``); when it ends, that row gets the outcome, and
  that update is committed before the result goes back to the agent (``AuditLog.amend``). So
  no change can happen without its event, whatever moment the server dies at. If the row
  cannot be written the tool does not run. Calls refused before the tool runs (scope, role,
  invalid arguments) change nothing and are batched."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiconnector.core.principal import Principal
from aiconnector.mcp.services import McpServices

log = logging.getLogger(__name__)

EVENT = "tool_call"
STARTED = "started"


class ToolAudit:
    """One call's event; ``write_ahead`` before a tool that may change something, ``done`` at
    the end of every call."""

    __slots__ = (
        "_services",
        "_principal",
        "_ip",
        "_user_agent",
        "_tool",
        "_arguments",
        "_started",
        "_event_id",
    )

    def __init__(
        self,
        services: McpServices,
        principal: Principal,
        tool: str,
        arguments: dict[str, Any],
        *,
        ip: str | None,
        user_agent: str | None,
    ) -> None:
        self._services = services
        self._principal = principal
        self._ip = ip
        self._user_agent = user_agent
        self._tool = tool
        self._arguments = sorted(arguments)[:50]
        self._started = time.perf_counter()
        self._event_id: int | None = None

    def _detail(self, seconds: float | None = None, error: str | None = None) -> dict[str, Any]:
        detail: dict[str, Any] = {"tool": self._tool, "arguments": self._arguments}
        if seconds is not None:
            detail["duration_ms"] = round(seconds * 1000, 2)
        if error is not None:
            detail["error"] = error
        return detail

    async def write_ahead(self) -> bool:
        """Commit the event (outcome ``started``) before a tool that may change something
        runs. False when the audit log could not take it: the tool must not run then."""
        try:
            self._event_id = await self._services.audit.write(
                EVENT,
                outcome=STARTED,
                user_id=self._principal.actor.user_id,
                connection_id=self._principal.connection_id,
                ip=self._ip,
                user_agent=self._user_agent,
                detail=self._detail(),
            )
        except Exception:
            log.exception("could not write the audit event of %s ahead; the tool was not run", self._tool)
            self._services.metrics.tool_call(self._tool, "error", time.perf_counter() - self._started)
            return False
        return True

    async def done(self, outcome: str, error: str | None = None) -> None:
        """Record how the call ended: queued for a read-only call, committed before returning
        for one written ahead. Shielded, so a second cancellation cannot stop the update
        half-way; a failed update leaves the row ``started`` (logged), never a missing row."""
        seconds = time.perf_counter() - self._started
        self._services.metrics.tool_call(self._tool, outcome, seconds)
        detail = self._detail(seconds, error)
        if self._event_id is None:
            self._services.audit.record(
                EVENT,
                outcome=outcome,
                user_id=self._principal.actor.user_id,
                connection_id=self._principal.connection_id,
                ip=self._ip,
                user_agent=self._user_agent,
                detail=detail,
            )
            return
        try:
            await asyncio.shield(self._services.audit.amend(self._event_id, outcome=outcome, detail=detail))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not record the outcome of %s; its audit event stays 'started'", self._tool)
