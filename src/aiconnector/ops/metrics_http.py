"""Serving ``/metrics``: on the main port behind a bearer token, or unauthenticated on a
separate listener bound to a private address.

* Main port: ``GET /metrics`` with ``Authorization: Bearer <metrics_token>`` (compared in
  constant time, as SHA-256 digests so not even the length leaks). A missing or wrong token
  is 401. Without a configured token the path does not exist (404), so a default deployment
  exposes nothing.
* ``metrics_bind`` (``HOST:PORT``, e.g. ``127.0.0.1:9100``): a second uvicorn server in the same
  event loop, started and stopped with the application, answering only ``GET /metrics``,
  without authentication: what the network can reach is the protection, so bind it to
  loopback or a private interface."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Iterator
from typing import Any

import uvicorn

from aiconnector.ops.metrics import CONTENT_TYPE, AuthFailure, Metrics

log = logging.getLogger(__name__)

_CHALLENGE = b'Bearer realm="metrics"'
_NOT_FOUND = (404, b"Not Found", [(b"content-type", b"text/plain; charset=utf-8")])


def parse_bind(value: str) -> tuple[str, int]:
    """``127.0.0.1:9100``, ``[::1]:9100``, ``0.0.0.0:9100`` -> (host, port)."""
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:9100), not {value!r}")
    return host, int(port)


async def _respond(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _exposition(metrics: Metrics, method: str, send: Any) -> None:
    if method not in ("GET", "HEAD"):
        await _respond(send, 405, b"", [(b"allow", b"GET, HEAD")])
        return
    body = await metrics.render()
    await _respond(send, 200, b"" if method == "HEAD" else body, [(b"content-type", CONTENT_TYPE.encode())])


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class MetricsEndpoint:
    """``/metrics`` on the main port (an ASGI app; the server routes the path to it)."""

    def __init__(self, metrics: Metrics, token: str) -> None:
        self._metrics = metrics
        self._expected = _digest(token.encode())

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for name, value in headers:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    _digest(token.strip()), self._expected
                )
        return False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self._authorized(scope["headers"]):
            self._metrics.auth_failure(AuthFailure.METRICS_TOKEN)
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"www-authenticate", _CHALLENGE)]
            await _respond(send, 401, b"metrics token required\n", headers)
            return
        await _exposition(self._metrics, scope["method"], send)


class _MetricsOnly:
    """The separate listener's whole application."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/metrics":
            await _respond(send, *_NOT_FOUND)
            return
        await _exposition(self._metrics, scope["method"], send)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server run as a task of another: the main server owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MetricsListener:
    """Started and stopped by the application's lifespan (``start``/``stop``)."""

    def __init__(self, metrics: Metrics, bind: str) -> None:
        self._bind = bind
        host, port = parse_bind(bind)
        config = uvicorn.Config(
            _MetricsOnly(metrics),
            host=host,
            port=port,
            lifespan="off",
            log_config=None,  # the process's logging is configured already
            access_log=False,
            server_header=False,
            proxy_headers=False,
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self._server.started

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name="metrics-listener")
        while not self._server.started:  # bound, or failed trying (uvicorn logs why)
            if self._task.done():
                with contextlib.suppress(BaseException):  # uvicorn exits (SystemExit) on bind errors
                    self._task.result()
                raise RuntimeError(f"could not serve /metrics on {self._bind}")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await self._task
        self._task = None
