"""``aiconnector proxy URL``: a stdio MCP server that relays every message to the site's
Streamable HTTP endpoint with a fresh bearer token.

Agent frameworks that can only launch stdio servers get the real server this way, with
OAuth handled here: the token is refreshed before it expires and once more when the server
says 401 (then the request is retried), and the credentials file is shared with
``aiconnector token`` and other proxies under the store's lock.

Wire behaviour, per message read from stdin (newline-delimited JSON-RPC):

* each message is its own POST (the server is stateless), so requests run concurrently and a
  long tool call does not hold up a quick one;
* ``initialize``'s result fixes the legacy ``MCP-Protocol-Version`` header for later
  requests; a 2026-07-28 request carries its version in ``_meta``, from which the header and
  the ``Mcp-Method``/``Mcp-Name`` routing headers are derived;
* JSON and SSE answers are both relayed; SSE notifications (progress) go out as they arrive;
* ``notifications/cancelled`` closes the stream of the request it names (that *is*
  cancellation on HTTP) and no answer is written for it;
* whatever goes wrong becomes a JSON-RPC error for that request, never a crash: a server that
  is down or restarting gives "cannot reach" and the next request simply tries again; a
  revoked connection gives "connection revoked, run aiconnector login URL", every time,
  until a new login stores new credentials, which the proxy picks up without a restart.

stdout carries JSON-RPC only; diagnostics go to stderr."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any, BinaryIO

import httpx

from aiconnector.client.credentials import CredentialStore
from aiconnector.client.discovery import split_server_url
from aiconnector.client.errors import ClientError, ConnectionRevoked, NotLoggedIn, ServerUnreachable
from aiconnector.client.tokens import TokenSource

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
NAME_BEARING_METHODS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
# JSON-RPC error codes: the server's own code for a revoked connection, so clients that
# already understand the server's message understand ours; -32000 for transport trouble.
CONNECTION_REVOKED = -32004
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
SERVER_UNAVAILABLE = -32000
INTERNAL_ERROR = -32603
EOF_GRACE_SECONDS = 5.0
_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")
_B64_SENTINEL = re.compile(r"=\?base64\?.*\?=", re.DOTALL)

Json = dict[str, Any]
Log = Callable[[str], None]


def encode_header_value(value: str) -> str:
    """2026-07-28 routing headers: values that would not survive an HTTP header verbatim
    (non-ASCII, control characters, edge whitespace, sentinel look-alikes) are sent as
    ``=?base64?…?=``, which the server decodes before comparing with the body."""
    if _HEADER_SAFE.fullmatch(value) and value == value.strip() and not _B64_SENTINEL.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode()).decode('ascii')}?="


def error_message(request_id: Any, code: int, message: str) -> Json:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _stderr(text: str) -> None:
    print(f"aiconnector proxy: {text}", file=sys.stderr, flush=True)


class Proxy:
    """The bridge for one server; ``run`` serves until stdin ends."""

    def __init__(
        self,
        url: str,
        *,
        store: CredentialStore,
        http: httpx.AsyncClient,
        out: BinaryIO,
        log: Log = _stderr,
    ) -> None:
        self.url = url
        self.origin, self._mcp_url_guess = split_server_url(url)
        self.http = http
        self.tokens = TokenSource(store, self.origin, http)
        self.out = out
        self.log = log
        self.protocol_version: str | None = None  # negotiated by initialize (legacy era)
        self._inflight: dict[Any, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- output -----------------------------------------------------------------------------

    def emit(self, message: Json) -> None:
        """One JSON-RPC message per line on stdout. Synchronous, so lines never interleave."""
        self.out.write(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
        self.out.flush()

    # --- input ------------------------------------------------------------------------------

    async def run(self, lines: AsyncIterator[bytes]) -> None:
        async for line in lines:
            if line.strip():
                self.dispatch(line)
        # stdin closed: the client is done. Let answers in flight finish briefly, then stop.
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=EOF_GRACE_SECONDS)
            for task in pending:
                task.cancel()

    def dispatch(self, line: bytes) -> None:
        try:
            parsed = json.loads(line)
        except ValueError:
            self.emit(error_message(None, PARSE_ERROR, "Parse error: a line on stdin is not JSON"))
            return
        for message in parsed if isinstance(parsed, list) else [parsed]:
            self._dispatch_one(message)

    def _dispatch_one(self, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("method"), str):
            if isinstance(message, dict) and ("result" in message or "error" in message):
                return  # a response to a server request; the stateless server sends none
            self.emit(error_message(None, INVALID_REQUEST, "Invalid request: not a JSON-RPC message"))
            return
        is_request = "id" in message
        if message["method"] == "notifications/cancelled":
            target = (message.get("params") or {}).get("requestId")
            task = self._inflight.get(target)
            if task is not None:
                task.cancel()
        task = asyncio.create_task(self._handle(message, is_request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if is_request:
            request_id = message["id"]
            self._inflight[request_id] = task
            task.add_done_callback(lambda _t: self._inflight.pop(request_id, None))

    # --- one message ------------------------------------------------------------------------

    async def _handle(self, message: Json, is_request: bool) -> None:
        request_id = message.get("id")
        try:
            await self._forward(message, is_request)
        except asyncio.CancelledError:
            raise  # cancelled by the client: it expects no answer
        except (ConnectionRevoked, NotLoggedIn) as exc:
            self._fail(request_id, is_request, CONNECTION_REVOKED, exc.message)
        except (ServerUnreachable, httpx.TransportError) as exc:
            detail = exc.message if isinstance(exc, ClientError) else f"cannot reach {self.origin}: {exc!r}"
            self._fail(
                request_id, is_request, SERVER_UNAVAILABLE, f"{detail} (will retry on the next request)"
            )
        except ClientError as exc:
            self._fail(request_id, is_request, SERVER_UNAVAILABLE, exc.message)
        except Exception as exc:  # noqa: BLE001 - one bad message must not end the proxy
            self._fail(request_id, is_request, INTERNAL_ERROR, f"proxy error: {type(exc).__name__}: {exc}")

    def _fail(self, request_id: Any, is_request: bool, code: int, message: str) -> None:
        self.log(message)
        if is_request:
            self.emit(error_message(request_id, code, message))

    def _headers(self, message: Json, token: str) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        modern = meta.get(PROTOCOL_VERSION_KEY) if isinstance(meta, dict) else None
        if isinstance(modern, str):
            method = message["method"]
            headers["MCP-Protocol-Version"] = modern
            headers["Mcp-Method"] = encode_header_value(method)
            key = NAME_BEARING_METHODS.get(method)
            if key is not None and isinstance(params, dict) and isinstance(params.get(key), str):
                headers["Mcp-Name"] = encode_header_value(params[key])
        elif self.protocol_version is not None and message["method"] != "initialize":
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    @property
    def mcp_url(self) -> str:
        try:
            return self.tokens.credentials.endpoints.mcp_url
        except ClientError:
            return self._mcp_url_guess

    async def _forward(self, message: Json, is_request: bool) -> None:
        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        token = await self.tokens.access_token()
        for attempt in range(2):
            headers = self._headers(message, token)
            async with self.http.stream("POST", self.mcp_url, content=body, headers=headers) as response:
                if response.status_code == 401 and attempt == 0:
                    await response.aread()
                    self.log("access token refused (401); refreshing")
                    token = await self.tokens.access_token(rejected=token)
                    continue
                await self._relay(message, is_request, response)
                return

    async def _relay(self, message: Json, is_request: bool, response: httpx.Response) -> None:
        request_id = message.get("id")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        answered = False
        if content_type == "text/event-stream":
            async for event in sse_data(response.aiter_lines()):
                answered |= self._relay_one(message, event)
        else:
            answered = self._relay_one(message, await response.aread())
        if answered or not is_request:
            if not answered and response.status_code >= 400:
                self.log(f"{message['method']} notification refused: HTTP {response.status_code}")
            return
        self.emit(error_message(request_id, SERVER_UNAVAILABLE, _unanswered(response)))

    def _relay_one(self, message: Json, data: bytes | str) -> bool:
        """Relay one message from the server; True when it is the answer to ``message``."""
        if not data:
            return False
        try:
            relayed = json.loads(data)
        except ValueError:
            return False
        if not isinstance(relayed, dict) or relayed.get("jsonrpc") != "2.0":
            return False
        is_answer = "id" in relayed and relayed.get("id") == message.get("id") and "method" not in relayed
        if is_answer and relayed.get("id") is None and "id" not in message:
            return False  # an error for a notification (id null): nobody is waiting for it
        if is_answer and message["method"] == "initialize":
            version = (relayed.get("result") or {}).get("protocolVersion")
            if isinstance(version, str):
                self.protocol_version = version
        self.emit(relayed)
        return is_answer


def _unanswered(response: httpx.Response) -> str:
    if response.status_code == 401:
        return "the server refused the access token (HTTP 401); run aiconnector login again"
    if response.status_code == 429:
        return "the server is rate limiting this client (HTTP 429); try again shortly"
    if response.status_code >= 400:
        return f"the server answered HTTP {response.status_code} without a JSON-RPC response"
    return "the server ended the response without answering (it may be restarting); try again"


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (comments, ``event`` and ``id`` fields are of
    no use to a stdio client)."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


async def stdin_lines(stream: BinaryIO) -> AsyncIterator[bytes]:
    """Lines from a blocking stream without blocking the loop (pipes, files and TTYs alike)."""
    while True:
        line = await asyncio.to_thread(stream.readline)
        if not line:
            return
        yield line


async def serve_stdio(url: str, store: CredentialStore) -> None:
    """Run the proxy on this process's stdin/stdout."""
    timeout = httpx.Timeout(connect=10.0, read=300.0, write=60.0, pool=30.0)
    async with httpx.AsyncClient(timeout=timeout, headers={"User-Agent": "aiconnector-proxy"}) as http:
        proxy = Proxy(url, store=store, http=http, out=sys.stdout.buffer)
        try:
            proxy.tokens.credentials  # noqa: B018 - warn early, but keep serving: login may follow
        except ClientError as exc:
            proxy.log(exc.message)
        await proxy.run(stdin_lines(sys.stdin.buffer))
