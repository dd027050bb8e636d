"""A minimal keep-alive HTTP/1.1 client for the load generator: asyncio protocol + the
``httptools`` response parser uvicorn itself uses, one request at a time per connection,
idle connections pooled per origin.

Why not httpx: on this 2-core machine httpx costs the generator ~1 ms of CPU per request
(measured: 0.54 cores for ~480 req/s), about as much as the server spends answering it, so a
load test through httpx mostly measures httpx competing with the servers for the cores. This
client does the same exchange for a fraction of that. ``bench/loadtest.py --http-client httpx``
runs the same load through httpx to cross-check.

Only what the load test sends: ``POST`` with a body, ``Content-Length`` responses or chunked
ones (the parser handles both), no redirects, no TLS, no proxies."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode, urlsplit

import httptools
import orjson

# Reuse a pooled connection only if it has been idle less than this (uvicorn closes idle
# keep-alive connections after 5 s; a request sent as it does would fail for no fault of the
# server).
MAX_IDLE_SECONDS = 2.0


class TransportFailure(Exception):
    """The connection failed or closed before a complete response arrived."""


class RequestTimeout(Exception):
    """No complete response within the timeout."""


class Response:
    """The subset of ``httpx.Response`` the load test's classifiers read."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        try:
            return orjson.loads(self.content)
        except orjson.JSONDecodeError as exc:
            raise ValueError(str(exc)) from None


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Response] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        if self._parser is None:
            self._fail(TransportFailure("data without a request"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(TransportFailure(f"bad response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(
            TransportFailure(f"connection lost: {exc!r}" if exc else "connection closed by the server")
        )

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser, waiter = self._parser, self._waiter
        assert parser is not None
        self._parser = None
        if not parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(parser.get_status_code(), self._headers, b"".join(self._body)))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes, timeout: float) -> Response:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        self._parser = httptools.HttpResponseParser(self)
        self._headers = {}
        self._body = []
        self.transport.write(request)
        timer = loop.call_later(timeout, self._timed_out, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _timed_out(self, waiter: asyncio.Future[Response]) -> None:
        if not waiter.done():
            waiter.set_exception(RequestTimeout("no response in time"))
            self.close()


class FastClient:
    """``await client.post(url, content=…|data=…|json=…, headers=…)`` → ``Response``.
    Raises ``RequestTimeout`` or ``TransportFailure``; never retries (an error is an error)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._all: set[_Connection] = set()

    async def _connection(self, host: str, port: int) -> _Connection:
        idle = self._idle.setdefault((host, port), [])
        loop = asyncio.get_running_loop()
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if loop.time() - conn.idle_since > MAX_IDLE_SECONDS:
                # uvicorn drops keep-alive connections idle for 5 s: never race its close.
                conn.close()
                self._all.discard(conn)
                continue
            return conn
        try:
            _transport, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, host, port), self.timeout
            )
        except TimeoutError:
            raise RequestTimeout("connect timed out") from None
        except OSError as exc:
            raise TransportFailure(f"connect failed: {exc!r}") from None
        self._all.add(conn)
        return conn

    async def post(
        self,
        url: str,
        *,
        content: bytes | None = None,
        data: dict[str, str] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        path = parts.path or "/"
        head = dict(headers or {})
        if data is not None:
            content = urlencode(data).encode()
            head.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif json is not None:
            content = orjson.dumps(json)
            head.setdefault("Content-Type", "application/json")
        body = content or b""
        lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in head.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        conn = await self._connection(host, port)
        try:
            response = await conn.exchange(request, self.timeout)
        except BaseException:
            conn.close()
            self._all.discard(conn)
            raise
        if conn.closed:
            self._all.discard(conn)
        else:
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle[(host, port)].append(conn)
        return response

    async def aclose(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)
