"""Prometheus metrics, kept in plain dictionaries and written out in the text exposition
format 0.0.4 (no client library: the hot path is a couple of dictionary updates).

Every label has a bounded set of values: ``route`` is a route *template* (``/mcp``,
``/admin/connections/{id}``; unmatched paths are ``other``), ``method`` one of the HTTP
methods we know (else ``other``), ``status`` a three-digit code, ``tool`` a registered tool
name, ``outcome`` and ``kind`` fixed vocabularies below. Nothing a client sends can grow the
number of series.

The process is single-threaded (one event loop), so no locks: the request path only ever
increments, and ``render`` reads between awaits."""

from __future__ import annotations

import logging
import os
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from enum import StrEnum

from aiconnector import __version__

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Request and tool-call latency buckets, in seconds. Tool calls go further: exports and media
# uploads legitimately run for minutes.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# How long a counted number of active connections is reused (see ``count_active_with``).
ACTIVE_CONNECTIONS_CACHE_SECONDS = 10.0
# Connection ids remembered so a revocation heard twice (local publish and its own NOTIFY, or
# a resync) is counted once.
_REMEMBERED_REVOCATIONS = 10_000
_PROCESS_START = time.time()


class AuthFailure(StrEnum):
    """Where a credential or permission was refused. Counted where it is detected."""

    # /mcp without an Authorization header: every OAuth client's first request looks like
    # this (it reads the 401's resource_metadata), so expect a steady trickle.
    MISSING_CREDENTIALS = "missing_credentials"
    MALFORMED_CREDENTIALS = "malformed_credentials"  # undecodable Basic, unknown scheme
    BAD_APP_PASSWORD = "bad_app_password"  # wrong username or application password
    BAD_BEARER_TOKEN = "bad_bearer_token"  # unknown, expired, revoked or other-audience token
    INSUFFICIENT_SCOPE = "insufficient_scope"  # /mcp 403 step-up
    RATE_LIMITED = "rate_limited"  # refused before checking: too many recent failures
    LOGIN_FAILURE = "login_failure"  # browser sign-in: wrong password or a forged form
    INVALID_CLIENT = "invalid_client"  # OAuth client authentication failed
    INVALID_GRANT = "invalid_grant"  # bad, expired, reused or foreign code / refresh / device code
    DEVICE_WRONG_CODE = "device_wrong_code"  # a user code entered at /device matched nothing
    METRICS_TOKEN = "metrics_token"  # /metrics without the right bearer token


# Audit outcomes of a tool call -> metric outcomes.
TOOL_OUTCOMES = {"success": "ok", "error": "error", "denied": "denied", "cancelled": "cancelled"}


class Histogram:
    """Bucket counts (not cumulative: ``bisect`` finds the one bucket to bump), sum, count."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # ``le``: a value on a bound counts in it
        self.total += value


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs) + "}"


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return repr(value)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: tuple[tuple[str, str], ...], value: float) -> None:
        self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def histogram(self, name: str, labels: tuple[tuple[str, str], ...], hist: Histogram) -> None:
        running = 0
        for bound, count in zip((*hist.bounds, float("inf")), hist.counts, strict=True):
            running += count
            self.sample(f"{name}_bucket", (*labels, ("le", _number(float(bound)))), running)
        self.sample(f"{name}_sum", labels, hist.total)
        self.sample(f"{name}_count", labels, running)

    def bytes(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


class Metrics:
    """One server's metrics. The request path calls ``observe_http`` / ``tool_call`` /
    ``auth_failure`` and moves ``inflight``; scrapes call ``render``."""

    def __init__(self) -> None:
        self.inflight = 0
        # One histogram per (route, method, status): its count is the request counter, and the
        # per-route duration histogram is their sum, made when scraped. One lookup a request.
        self._http: dict[tuple[str, str, int], Histogram] = {}
        # Likewise one histogram per (tool, outcome).
        self._tools: dict[tuple[str, str], Histogram] = {}
        # Every kind starts at 0, so rate() works from the first failure on.
        self._auth_failures: dict[str, int] = dict.fromkeys(AuthFailure, 0)
        self._revoked: dict[str, None] = {}
        self.revocations = 0
        self._active_source: Callable[[], Awaitable[int]] | None = None
        self._active_cached: tuple[float, int] | None = None
        self.active_connections_cache_seconds = ACTIVE_CONNECTIONS_CACHE_SECONDS
        self._gauges: list[tuple[str, str, Callable[[], float]]] = []

    # --- the request path --------------------------------------------------------------------

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "other"
        key = (route, method, status)
        hist = self._http.get(key)
        if hist is None:
            hist = self._http[key] = Histogram(HTTP_BUCKETS)
        hist.observe(seconds)

    def tool_call(self, tool: str, outcome: str, seconds: float) -> None:
        """``outcome`` as the audit log names it (success, error, denied, cancelled)."""
        key = (tool, outcome)
        hist = self._tools.get(key)
        if hist is None:
            hist = self._tools[key] = Histogram(TOOL_BUCKETS)
        hist.observe(seconds)

    def auth_failure(self, kind: AuthFailure) -> None:
        self._auth_failures[kind] += 1

    def revocation_seen(self, connection_id: str) -> None:
        """Revocation-bus listener. A connection is revoked once, so it is counted once even
        when the bus hears of it twice (our own publish, then our own NOTIFY or a resync)."""
        if connection_id in self._revoked:
            return
        self._revoked[connection_id] = None
        if len(self._revoked) > _REMEMBERED_REVOCATIONS:
            del self._revoked[next(iter(self._revoked))]
        self.revocations += 1

    # --- sources read at scrape time ---------------------------------------------------------

    def count_active_with(self, source: Callable[[], Awaitable[int]]) -> None:
        """Where the number of active (unrevoked) connections comes from: the database, at
        scrape time, reused for ``ACTIVE_CONNECTIONS_CACHE_SECONDS``. Counting in the database
        rather than in memory is what makes it right with several instances and the CLI
        creating and revoking connections; the cache keeps several scrapers from each costing
        a query."""
        self._active_source = source

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A gauge read when scraped (queue lengths and the like)."""
        self._gauges.append((name, help_text, read))

    async def _active_connections(self) -> int | None:
        if self._active_source is None:
            return None
        now = time.monotonic()
        cached = self._active_cached
        if cached is not None and now - cached[0] < self.active_connections_cache_seconds:
            return cached[1]
        try:
            value = await self._active_source()
        except Exception:  # the database is down: leave the series out rather than lie
            log.warning("counting active connections for /metrics failed", exc_info=True)
            return None
        self._active_cached = (now, value)
        return value

    # --- exposition -------------------------------------------------------------------------

    async def render(self) -> bytes:
        out = _Writer()
        out.family("aiconnector_build_info", "gauge", "Version of the running server (always 1).")
        out.sample("aiconnector_build_info", (("version", __version__),), 1)

        out.family(
            "aiconnector_http_requests_total",
            "counter",
            "HTTP requests answered, by route template, method and status.",
        )
        by_route: dict[str, Histogram] = {}
        for (route, method, status), hist in sorted(self._http.items()):
            out.sample(
                "aiconnector_http_requests_total",
                (("route", route), ("method", method), ("status", str(status))),
                sum(hist.counts),
            )
            _merge(by_route.setdefault(route, Histogram(HTTP_BUCKETS)), hist)
        out.family(
            "aiconnector_http_request_duration_seconds",
            "histogram",
            "Time from the request reaching the application to the end of its response, by route.",
        )
        for route, hist in by_route.items():
            out.histogram("aiconnector_http_request_duration_seconds", (("route", route),), hist)

        out.family("aiconnector_inflight_requests", "gauge", "HTTP requests being served right now.")
        out.sample("aiconnector_inflight_requests", (), self.inflight)

        out.family("aiconnector_tool_calls_total", "counter", "MCP tool calls, by tool and outcome.")
        by_tool: dict[str, Histogram] = {}
        for (tool, outcome), hist in sorted(self._tools.items()):
            label = TOOL_OUTCOMES.get(outcome, "other")
            out.sample("aiconnector_tool_calls_total", (("tool", tool), ("outcome", label)), sum(hist.counts))
            _merge(by_tool.setdefault(tool, Histogram(TOOL_BUCKETS)), hist)
        out.family(
            "aiconnector_tool_call_duration_seconds", "histogram", "Duration of MCP tool calls, by tool."
        )
        for tool, hist in by_tool.items():
            out.histogram("aiconnector_tool_call_duration_seconds", (("tool", tool),), hist)

        out.family(
            "aiconnector_auth_failures_total",
            "counter",
            "Refused credentials and permissions, by where they were refused.",
        )
        for kind, count in self._auth_failures.items():
            out.sample("aiconnector_auth_failures_total", (("kind", str(kind)),), count)

        out.family(
            "aiconnector_revocations_total",
            "counter",
            "Connections this instance heard were revoked (its own revokes and other instances').",
        )
        out.sample("aiconnector_revocations_total", (), self.revocations)

        active = await self._active_connections()
        if active is not None:
            out.family(
                "aiconnector_active_connections",
                "gauge",
                "Unrevoked connections in the database (site-wide: the same on every instance).",
            )
            out.sample("aiconnector_active_connections", (), active)

        for name, help_text, read in self._gauges:
            out.family(name, "gauge", help_text)
            out.sample(name, (), read())

        _process_metrics(out)
        return out.bytes()


def _merge(into: Histogram, other: Histogram) -> None:
    into.counts = [a + b for a, b in zip(into.counts, other.counts, strict=True)]
    into.total += other.total


def _process_metrics(out: _Writer) -> None:
    """The standard ``process_*`` series (Linux figures where /proc has them)."""
    out.family("process_start_time_seconds", "gauge", "Start time of the process since the epoch.")
    out.sample("process_start_time_seconds", (), round(_PROCESS_START, 3))
    out.family("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.")
    out.sample("process_cpu_seconds_total", (), round(time.process_time(), 3))
    try:
        with open("/proc/self/statm", "rb") as statm:
            resident_pages = int(statm.read().split()[1])
        open_fds = len(os.listdir("/proc/self/fd"))
    except (OSError, ValueError, IndexError):
        return
    out.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
    out.sample("process_resident_memory_bytes", (), resident_pages * os.sysconf("SC_PAGE_SIZE"))
    out.family("process_open_fds", "gauge", "Open file descriptors.")
    out.sample("process_open_fds", (), open_fds)
