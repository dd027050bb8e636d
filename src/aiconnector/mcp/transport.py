"""The ``/mcp`` Streamable HTTP endpoint as a raw ASGI callable.

Why hand-written (docs/architecture.md, "MCP transport"): the SDK server spends most of a
request in per-request task groups, memory streams and whole-message pydantic models (about
1,000 req/s); this endpoint does the HTTP checks on the raw ASGI scope, validates the JSON-RPC
envelope by hand, validates params with prebuilt TypeAdapters and answers with orjson bytes.
A cheap call runs on the server's own request task: no extra tasks unless the response may
stream (a ``progressToken`` with ``text/event-stream`` accepted).

Order of checks: Host (421) -> Origin (403) -> method (405 / CORS preflight) -> Content-Type (415) ->
Accept (406) -> Content-Length (413) -> authentication (401/429) -> body (413 streamed) ->
JSON (-32700) -> envelope (-32600) -> era and 2026 header/envelope rules -> method -> params."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from aiconnector.core.inflight import SHUTDOWN_REASON
from aiconnector.core.principal import Principal
from aiconnector.errors import AuthenticationFailed, InsufficientScope, RateLimited
from aiconnector.mcp import jsonrpc
from aiconnector.mcp.eras import ROUTING_HEADERS, Protocol, decorate_result, select_protocol
from aiconnector.mcp.handlers import Call, McpHandlers, Method
from aiconnector.mcp.jsonrpc import (
    CONNECTION_REVOKED,
    HEADER_MISMATCH,
    INSUFFICIENT_SCOPE,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    PARSE_ERROR,
    REQUEST_CANCELLED,
    SERVER_SHUTTING_DOWN,
    UNSUPPORTED_PROTOCOL_VERSION,
    JsonRpcError,
    Message,
)
from aiconnector.mcp.services import McpServices
from aiconnector.ops.hosts import LOOPBACK_HOSTS, HostPolicy
from aiconnector.ops.metrics import AuthFailure

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

KEEPALIVE_SECONDS = 15.0
# The reason this transport gives InflightRequests.cancel_request for a legacy
# notifications/cancelled; any other reason on a cancelled request means "revoked".
CLIENT_CANCEL_REASON = "cancelled by client"

CORS_ALLOW_HEADERS = (
    b"Authorization, Content-Type, MCP-Protocol-Version, Mcp-Session-Id, Mcp-Method, Mcp-Name, Last-Event-ID"
)
CORS_EXPOSE_HEADERS = b"WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version, X-Request-Id"
_JSON_MEDIA_TYPE = b"application/json"

_NOSNIFF = (b"x-content-type-options", b"nosniff")
_JSON_HEADERS: Headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"), _NOSNIFF]
_SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
    _NOSNIFF,
]
_ALLOW_POST: Headers = [(b"allow", b"POST"), _NOSNIFF]
_PING_FRAME = b": ping\r\n\r\n"

# HTTP status of a JSON-RPC error, per era (mcp-wire.md §3.1; 2026-07-28 MUSTs).
_MODERN_STATUS = {
    METHOD_NOT_FOUND: 404,
    INVALID_PARAMS: 400,
    INVALID_REQUEST: 400,
    PARSE_ERROR: 400,
    HEADER_MISMATCH: 400,
    MISSING_REQUIRED_CLIENT_CAPABILITY: 400,
    UNSUPPORTED_PROTOCOL_VERSION: 400,
}
_LEGACY_STATUS = {
    INVALID_REQUEST: 400,
    PARSE_ERROR: 400,
    HEADER_MISMATCH: 400,
    UNSUPPORTED_PROTOCOL_VERSION: 400,
}


class RequestCancelled(Exception):
    """A legacy ``notifications/cancelled`` stopped the request: the spec says no response
    follows, so an SSE stream just ends (a JSON reply, which must say something, is -32800)."""


class _ClientGone(Exception):
    """The client disconnected before its request body was complete."""


_UNTRACKED: contextlib.nullcontext[None] = contextlib.nullcontext()
_DONE = object()
_DISCONNECTED = object()


@dataclass(slots=True)
class Reply:
    """A finished request, ready to send as JSON or as the last SSE event."""

    status: int
    body: bytes
    headers: Headers | None = None
    cancelled: bool = False


def create_mcp_app(services: McpServices) -> McpEndpoint:
    """The ``/mcp`` ASGI app. Mount it at the MCP path; it serves whatever path it is given."""
    return McpEndpoint(services)


def sse_frame(data: bytes) -> bytes:
    return b"event: message\r\ndata: " + data + b"\r\n\r\n"


def _json_headers(extra: Headers | None, cors: Headers, length: int) -> Headers:
    headers = [*_JSON_HEADERS, (b"content-length", str(length).encode())]
    if extra:
        headers.extend(extra)
    if cors:
        headers.extend(cors)
    return headers


async def _send_response(send: Send, status: int, body: bytes, headers: Headers) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _collect_headers(raw: list[tuple[bytes, bytes]]) -> tuple[dict[bytes, bytes], bytes | None]:
    """Header dict (repeats joined with ", " as HTTP allows), plus the first routing header
    seen twice: frameworks fold repeats, which would hide a -32020 condition."""
    headers: dict[bytes, bytes] = {}
    duplicate: bytes | None = None
    for name, value in raw:
        previous = headers.get(name)
        if previous is None:
            headers[name] = value
        else:
            if name in ROUTING_HEADERS and duplicate is None:
                duplicate = name
            headers[name] = previous + b", " + value
    return headers, duplicate


def _accepts(accept: bytes | None) -> tuple[bool, bool]:
    """(JSON acceptable, SSE acceptable). A missing Accept header accepts anything."""
    if accept is None:
        return True, True
    json_ok = sse_ok = False
    for part in accept.lower().split(b","):
        media = part.split(b";", 1)[0].strip()
        if media in (b"application/json", b"application/*", b"*/*"):
            json_ok = True
        if media in (b"text/event-stream", b"text/*", b"*/*"):
            sse_ok = True
    return json_ok, sse_ok


def _is_json(content_type: bytes | None) -> bool:
    """``application/json``, optionally with parameters (``; charset=utf-8``); not
    ``application/jsonx`` or ``application/json-seq``, which a prefix test would let through."""
    if content_type is None:
        return False
    return content_type.split(b";", 1)[0].strip().lower() == _JSON_MEDIA_TYPE


def _is_loopback_origin(value: str) -> bool:
    try:
        parts = urlsplit(value)
        return (
            parts.scheme in ("http", "https")
            and parts.hostname in LOOPBACK_HOSTS
            and not parts.username
            and parts.path == ""
        )
    except ValueError:
        return False


def _progress_token(params: dict[str, Any] | None) -> str | int | None:
    """The request's progress token; params were validated, so its type is str or int."""
    if params is None:
        return None
    meta = params.get("_meta")
    return meta.get("progressToken") if type(meta) is dict else None


def _error_status(exc: JsonRpcError, protocol: Protocol) -> int:
    if exc.status is not None:
        return exc.status
    return (_MODERN_STATUS if protocol.modern else _LEGACY_STATUS).get(exc.code, 200)


class McpEndpoint:
    """ASGI callable for ``/mcp``; one instance per server, built by ``create_mcp_app``."""

    def __init__(self, services: McpServices) -> None:
        self._services = services
        self._handlers = McpHandlers(services)
        settings = services.settings
        self._max_bytes = settings.max_request_bytes
        self._own_origin = settings.origin.rstrip("/").lower()
        self._allowed_origins = frozenset(o.rstrip("/").lower() for o in settings.allowed_origins)
        self._hosts = HostPolicy.from_settings(settings)
        # A public https server has no business with pages served from the visitor's own
        # machine; loopback Origins are for local development (list one with --allowed-origin
        # to use a local browser client such as the Inspector against a public server).
        self._loopback_origins = not (
            self._own_origin.startswith("https://") and not _is_loopback_origin(self._own_origin)
        )
        self._resource_metadata = f"{settings.origin}/.well-known/oauth-protected-resource/mcp"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        try:
            await self._serve(scope, receive, send)
        except _ClientGone:
            return
        except Exception:
            # Never a 500 or a traceback on the wire; if the response already started, the
            # second start fails and is ignored, which closes the stream.
            log.exception("unhandled error in the MCP transport")
            body = jsonrpc.error_bytes(None, INTERNAL_ERROR, "Internal error")
            with contextlib.suppress(Exception):
                await _send_response(send, 200, body, _json_headers(None, [], len(body)))

    # --- HTTP checks --------------------------------------------------------------------------

    def _origin_allowed(self, origin: str) -> bool:
        value = origin.rstrip("/").lower()
        if value == self._own_origin or value in self._allowed_origins:
            return True
        return self._loopback_origins and _is_loopback_origin(value)

    async def _check_http(
        self, scope: Scope, headers: dict[bytes, bytes], send: Send
    ) -> tuple[Headers, bool, bool] | None:
        """Host, Origin, method, Content-Type, Accept and declared size. Returns the CORS
        headers for the response and which of JSON / SSE the client accepts, or None once
        answered."""
        cors: Headers = []
        if not self._hosts.allows(headers.get(b"host")):
            await self._send_error(send, 421, INVALID_REQUEST, "Host not allowed", cors)
            return None
        origin = headers.get(b"origin")
        if origin is not None:
            if not self._origin_allowed(origin.decode("latin-1")):
                await self._send_error(send, 403, INVALID_REQUEST, "Origin not allowed", cors)
                return None
            cors = [
                (b"access-control-allow-origin", origin),
                (b"access-control-expose-headers", CORS_EXPOSE_HEADERS),
                (b"vary", b"Origin"),
            ]
        if scope["method"] != "POST":
            if scope["method"] == "OPTIONS" and cors and b"access-control-request-method" in headers:
                await self._preflight(send, cors)
            else:
                await _send_response(send, 405, b"", [*_ALLOW_POST, (b"content-length", b"0"), *cors])
            return None
        if not _is_json(headers.get(b"content-type")):
            await self._send_error(send, 415, INVALID_REQUEST, "Content-Type must be application/json", cors)
            return None
        json_ok, sse_ok = _accepts(headers.get(b"accept"))
        if not json_ok and not sse_ok:
            text = "Accept must include application/json or text/event-stream"
            await self._send_error(send, 406, INVALID_REQUEST, text, cors)
            return None
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await self._send_error(send, 400, INVALID_REQUEST, "Invalid Content-Length", cors)
                return None
            if int(declared) > self._max_bytes:
                await self._too_large(send, cors)
                return None
        return cors, json_ok, sse_ok

    async def _authenticate(
        self, headers: dict[bytes, bytes], ip: str | None, send: Send, cors: Headers
    ) -> Principal | None:
        """Who is calling, before the body is read; None once a 401 or 429 was sent."""
        authorization = headers.get(b"authorization")
        try:
            return await self._services.authenticate(
                None if authorization is None else authorization.decode("latin-1"), ip or ""
            )
        except AuthenticationFailed as exc:
            await self._unauthorized(send, exc.message, presented=authorization is not None, cors=cors)
        except RateLimited as exc:
            body = orjson.dumps({"error": "rate_limited", "error_description": exc.message})
            extra = [(b"retry-after", str(max(1, int(exc.retry_after))).encode())]
            await _send_response(send, 429, body, _json_headers(extra, cors, len(body)))
        return None

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers, duplicate = _collect_headers(scope["headers"])
        checked = await self._check_http(scope, headers, send)
        if checked is None:
            return
        cors, json_ok, sse_ok = checked
        client = scope.get("client")
        ip = client[0] if client else None
        principal = await self._authenticate(headers, ip, send, cors)
        if principal is None:
            return
        body = await _read_body(receive, self._max_bytes)
        if body is None:
            await self._too_large(send, cors)
            return
        try:
            message = jsonrpc.validate_message(jsonrpc.parse_json(body))
        except JsonRpcError as exc:  # the id is unknown or unusable: answer with id null
            await self._send_error(send, 400, exc.code, exc.message, cors)
            return
        try:
            protocol = select_protocol(message, headers, duplicate)
        except JsonRpcError as exc:
            await self._send_error(send, exc.status or 400, exc.code, exc.message, cors, exc.data, message.id)
            return
        if message.id is None:
            self._handlers.notify(principal, protocol, message, CLIENT_CANCEL_REASON)
            await _send_response(send, 202, b"", [_NOSNIFF, (b"content-length", b"0"), *cors])
            return
        user_agent = headers.get(b"user-agent")
        call = Call(
            principal, protocol, message.id, ip, None if user_agent is None else user_agent.decode("latin-1")
        )
        try:
            method = self._handlers.lookup(protocol, message.method)
            params = method.validate(message.params)
        except JsonRpcError as exc:
            status = _error_status(exc, protocol)
            await self._send_error(send, status, exc.code, exc.message, cors, exc.data, message.id)
            return
        token = _progress_token(message.params)
        if sse_ok and (token is not None or not json_ok):
            await self._respond_streaming(send, receive, message, method, params, call, token, cors, json_ok)
            return
        reply = await self._outcome(message, method, params, call)
        await _send_response(
            send, reply.status, reply.body, _json_headers(reply.headers, cors, len(reply.body))
        )

    # --- running a method -----------------------------------------------------------------------

    async def _execute(self, message: Message, method: Method, params: Any, call: Call) -> bytes:
        """Run the handler registered as in-flight, so a revoke (cancel_connection) or a
        legacy notifications/cancelled (cancel_request) or the end of a shutdown's grace period
        (cancel_all) can stop it, and turn those cancellations into ``RequestCancelled``, the
        revoked error or the shutting-down error. A cancellation without a reason (client
        disconnect, uvicorn giving up) propagates unchanged."""
        tracked = (
            _UNTRACKED
            if message.method == "initialize"  # MUST NOT be cancelled (lifecycle.mdx)
            else self._services.inflight.track(call.principal.connection_id, call.request_id)
        )
        with tracked as entry:
            call.inflight = entry
            try:
                result = await method.handler(call, params)
            except asyncio.CancelledError:
                reason = entry.cancel_reason if entry is not None else None
                task = asyncio.current_task()
                if reason is None or task is None:
                    raise
                task.uncancel()  # handled here; the request task carries on to answer
                if reason == CLIENT_CANCEL_REASON:
                    raise RequestCancelled() from None
                if reason == SHUTDOWN_REASON:
                    raise JsonRpcError(SERVER_SHUTTING_DOWN, "Server shutting down; retry") from None
                raise JsonRpcError(CONNECTION_REVOKED, reason) from None
        return jsonrpc.result_bytes(message.id, decorate_result(result, message.method, call.protocol))

    async def _outcome(self, message: Message, method: Method, params: Any, call: Call) -> Reply:
        """Run the request and map every way it can end to a reply; never raises except
        for a reason-less cancellation."""
        try:
            return Reply(200, await self._execute(message, method, params, call))
        except JsonRpcError as exc:
            body = jsonrpc.error_bytes(message.id, exc.code, exc.message, exc.data)
            return Reply(_error_status(exc, call.protocol), body)
        except InsufficientScope as exc:
            self._services.metrics.auth_failure(AuthFailure.INSUFFICIENT_SCOPE)
            body = jsonrpc.error_bytes(
                message.id, INSUFFICIENT_SCOPE, exc.message, {"requiredScope": exc.needed, "scope": exc.scope}
            )
            challenge = (
                f'Bearer error="insufficient_scope", scope="{exc.scope}", '
                f'resource_metadata="{self._resource_metadata}"'
            )
            return Reply(403, body, [(b"www-authenticate", challenge.encode("latin-1"))])
        except RequestCancelled:
            return Reply(
                200, jsonrpc.error_bytes(message.id, REQUEST_CANCELLED, "Request cancelled"), cancelled=True
            )
        except Exception:
            log.exception("MCP method %s failed", message.method)
            return Reply(200, jsonrpc.error_bytes(message.id, INTERNAL_ERROR, "Internal error"))

    async def _respond_streaming(
        self,
        send: Send,
        receive: Receive,
        message: Message,
        method: Method,
        params: Any,
        call: Call,
        token: str | int | None,
        cors: Headers,
        json_ok: bool,
    ) -> None:
        """Run the request in its own task and choose JSON or SSE lazily (mcp-wire §2.7): a
        request that ends before its first notification (or 15 s) still gets a JSON reply
        with its proper HTTP status; after that, events stream under 200. A client
        disconnect cancels the handler, and nothing more is sent."""
        queue: asyncio.Queue[object] = asyncio.Queue()
        if token is not None:
            call.report_progress = _progress_sender(token, call.protocol, queue)
        task = asyncio.create_task(self._outcome(message, method, params, call))
        task.add_done_callback(lambda _: queue.put_nowait(_DONE))
        watcher = asyncio.create_task(_watch_disconnect(receive, queue))
        stream = _SseStream(send, cors)
        try:
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE_SECONDS):
                        item = await queue.get()
                except TimeoutError:
                    await stream.write(_PING_FRAME)
                    continue
                if item is _DISCONNECTED:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    return
                if item is not _DONE:
                    await stream.write(sse_frame(item))  # type: ignore[arg-type]
                    continue
                if task.cancelled():
                    await stream.close()
                    return
                reply = task.result()
                if not stream.started and (json_ok or reply.status != 200):
                    await _send_response(
                        send, reply.status, reply.body, _json_headers(reply.headers, cors, len(reply.body))
                    )
                    return
                if not reply.cancelled:
                    await stream.write(sse_frame(reply.body))
                await stream.close()
                return
        finally:
            watcher.cancel()
            if not task.done():
                task.cancel()

    # --- canned responses ------------------------------------------------------------------------

    async def _send_error(
        self,
        send: Send,
        status: int,
        code: int,
        text: str,
        cors: Headers,
        data: Any = None,
        request_id: jsonrpc.RequestId | None = None,
    ) -> None:
        body = jsonrpc.error_bytes(request_id, code, text, data)
        await _send_response(send, status, body, _json_headers(None, cors, len(body)))

    async def _too_large(self, send: Send, cors: Headers) -> None:
        text = f"Request body larger than {self._max_bytes} bytes"
        await self._send_error(send, 413, INVALID_REQUEST, text, cors)

    async def _unauthorized(self, send: Send, text: str, *, presented: bool, cors: Headers) -> None:
        """401 with the Bearer challenge first (OAuth clients read the first one and follow
        ``resource_metadata``), then Basic for application-password clients."""
        bearer = f'Bearer resource_metadata="{self._resource_metadata}", scope="content:read"'
        if presented:
            bearer += ', error="invalid_token"'
        body = orjson.dumps(
            {"error": "invalid_token" if presented else "unauthorized", "error_description": text}
        )
        extra = [
            (b"www-authenticate", bearer.encode("latin-1")),
            (b"www-authenticate", b'Basic realm="AI Connector"'),
        ]
        await _send_response(send, 401, body, _json_headers(extra, cors, len(body)))

    async def _preflight(self, send: Send, cors: Headers) -> None:
        headers = [
            *cors,
            (b"access-control-allow-methods", b"POST"),
            (b"access-control-allow-headers", CORS_ALLOW_HEADERS),
            (b"access-control-max-age", b"600"),
            (b"content-length", b"0"),
            _NOSNIFF,
        ]
        await _send_response(send, 204, b"", headers)


class _SseStream:
    """An SSE response that starts on its first write. Sends after a disconnect are no-ops
    in uvicorn; an OSError from other servers is treated the same way."""

    __slots__ = ("_send", "_cors", "started")

    def __init__(self, send: Send, cors: Headers) -> None:
        self._send = send
        self._cors = cors
        self.started = False

    async def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            if not self.started:
                self.started = True
                await self._send(
                    {"type": "http.response.start", "status": 200, "headers": [*_SSE_HEADERS, *self._cors]}
                )
            await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def close(self) -> None:
        if not self.started:
            await self.write(b"")
        with contextlib.suppress(OSError):
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})


def _progress_sender(token: str | int, protocol: Protocol, queue: asyncio.Queue[object]) -> Any:
    """ToolContext.report_progress for one request: queues notifications/progress frames,
    dropping non-increasing values (progress MUST increase)."""
    last: float | None = None

    async def report(progress: float, total: float | None = None, message: str | None = None) -> None:
        nonlocal last
        if last is not None and progress <= last:
            return
        last = progress
        params: dict[str, Any] = {"progressToken": token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None and protocol.annotations:  # `message` exists from 2025-03-26
            params["message"] = message
        queue.put_nowait(jsonrpc.notification_bytes("notifications/progress", params))

    return report


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it exceeds ``limit`` (chunked bodies have no length)."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body if len(body) <= limit else None
    chunks = [body]
    size = len(body)
    while True:
        if size > limit:
            return None
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if size <= limit else None


async def _watch_disconnect(receive: Receive, queue: asyncio.Queue[object]) -> None:
    """The body is fully read, so the next receive() returns only when the client leaves."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            queue.put_nowait(_DISCONNECTED)
            return


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge lifespan events when served standalone (tests, benchmarks)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
