"""What the MCP endpoint needs from the rest of the server, passed in explicitly so the
transport can be built and tested on its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiconnector.config import Settings
from aiconnector.core.audit import AuditLog
from aiconnector.core.inflight import InflightRequests
from aiconnector.core.principal import Principal
from aiconnector.mcp.registry import ToolRegistry
from aiconnector.ops.metrics import Metrics
from aiconnector.sites.base import SiteBackend

# Given the request's ``Authorization`` header value (or None) and the client address, return
# the principal or raise ``AuthenticationFailed`` / ``RateLimited``.
Authenticate = Callable[[str | None, str], Awaitable[Principal]]


@dataclass(frozen=True, slots=True)
class McpServices:
    settings: Settings
    registry: ToolRegistry
    site: SiteBackend
    authenticate: Authenticate
    audit: AuditLog
    inflight: InflightRequests
    # Tool-call and refused-scope counts (``/metrics``); a private, unexposed one by default.
    metrics: Metrics = field(default_factory=Metrics)
