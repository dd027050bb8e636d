"""Graceful shutdown on SIGTERM (and Ctrl+C).

1. ``/readyz`` answers 503 at once (``Drain.started``), so a load balancer stops sending.
2. Optionally (``shutdown_delay_seconds``) the server keeps accepting for a while, for load
   balancers that only notice through health checks; a second SIGTERM ends the wait.
3. The listener closes; idle keep-alive connections are closed; running requests get
   ``shutdown_grace_seconds`` to finish (uvicorn's ``timeout_graceful_shutdown``).
4. Shortly before the grace period ends (one second, or half of a shorter grace) every MCP
   request still running is cancelled with ``SHUTDOWN_REASON``: the transport answers it with a
   JSON-RPC error (-32005, as JSON or as the stream's last event) instead of a torn
   connection, and the tool call is audited as ``cancelled``. Whatever still runs when the
   grace period is over is cancelled by uvicorn.
5. The application's lifespan ends: background tasks stop, the audit queue and the batched
   "last used" updates are written, the database is closed. The process exits 0.

``Drain`` is the state the application reads; ``GracefulServer`` is uvicorn's server with
these signal semantics (uvicorn itself re-raises the signal after shutting down, which would
make the exit status "killed by SIGTERM")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

import uvicorn

from aiconnector.core.inflight import SHUTDOWN_REASON, InflightRequests

log = logging.getLogger(__name__)


def cancel_after(grace: float) -> float:
    """When in-flight MCP requests are cancelled: one second before the grace period ends
    (half of it when shorter), so their error replies are sent before uvicorn gives up."""
    return max(0.0, grace - min(1.0, grace / 2))


class Drain:
    """Whether this server is shutting down, and the lever that ends its MCP requests."""

    def __init__(self, inflight: InflightRequests) -> None:
        self._inflight = inflight
        self.started = False

    def begin(self) -> None:
        """Readiness off from now on. Safe to call from a signal handler (sets a flag)."""
        self.started = True

    def cancel_inflight(self) -> int:
        count = self._inflight.cancel_all(SHUTDOWN_REASON)
        if count:
            log.warning("grace period ending: cancelled %d running MCP request(s)", count)
        return count


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: Drain, *, grace: float, delay: float = 0.0) -> None:
        super().__init__(config)
        self._drain = drain
        self._grace = grace
        self._delay = delay
        self._exit_at: float | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Like uvicorn's, without re-raising the signal afterwards: a drained server exits 0."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl+C: stop waiting
            return
        first = not self._drain.started
        self._drain.begin()
        if first and sig == signal.SIGTERM and self._delay > 0:
            self._exit_at = time.monotonic() + self._delay  # on_tick closes the listener then
            return
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self._exit_at is not None and time.monotonic() >= self._exit_at:
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        self._drain.begin()
        log.info("draining: up to %g s for running requests", self._grace)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(cancel_after(self._grace), self._drain.cancel_inflight)
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()


def run(config: uvicorn.Config, drain: Drain, *, grace: float, delay: float = 0.0) -> None:
    """``uvicorn.run`` with graceful draining."""
    GracefulServer(config, drain, grace=grace, delay=delay).run()
