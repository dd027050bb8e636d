"""HTTP plumbing shared by the authorization-server endpoints: strict form and JSON reading,
RFC 6749 §5.2 error bodies, no-store headers, CORS for browser-based clients and the wrapper
that turns an endpoint's typed errors into responses.

Endpoints raise ``OAuthError`` (or ``RateLimited``); only this module knows how those look on
the wire, so every endpoint answers errors the same way — JSON, never HTML."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aiconnector.errors import OAuthError, RateLimited
from aiconnector.oauth.client_auth import InvalidClient
from aiconnector.oauth.state import OAuthState, StateSource
from aiconnector.ops.metrics import AuthFailure

log = logging.getLogger(__name__)

FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
MAX_BODY_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Browser-based MCP clients (MCP Inspector, claude.ai) call metadata, register and token from
# another origin. Nothing here uses cookies, so the wildcard without credentials is safe.
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": (
        "Authorization, Content-Type, MCP-Protocol-Version, Mcp-Session-Id, Mcp-Method, Mcp-Name, "
        "Last-Event-ID"
    ),
    "Access-Control-Expose-Headers": "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version",
    "Access-Control-Max-Age": "600",
}

Handler = Callable[[Request, OAuthState], Awaitable[Response]]
# OAuth errors that are a refused credential, as ``/metrics`` counts them. The rest
# (``authorization_pending``, ``slow_down``, malformed requests) are not.
_AUTH_FAILURES = {"invalid_client": AuthFailure.INVALID_CLIENT, "invalid_grant": AuthFailure.INVALID_GRANT}


def client_ip(request: Request) -> str:
    """The client address; behind trusted proxies already the real client's
    (``ops.forwarded`` rewrote the ASGI scope before the request got here)."""
    return request.client.host if request.client else "unknown"


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise OAuthError("invalid_request", f"request body larger than {limit} bytes", status=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise OAuthError("invalid_request", f"request body larger than {limit} bytes", status=413)
    return bytes(body)


def media_type(request: Request) -> str:
    """The request's media type without parameters (``charset``…), lower-cased; "" if none."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict. Other content types, a
    repeated parameter (RFC 6749 §3.2) and undecodable bytes are ``invalid_request``; empty
    values count as absent (RFC 6749 §3.1)."""
    if media_type(request) != FORM_TYPE:
        raise OAuthError("invalid_request", f"the request body must be {FORM_TYPE}")
    try:
        pairs = parse_qsl(
            (await read_body(request)).decode("utf-8"), keep_blank_values=True, max_num_fields=50
        )
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "malformed form body") from None
    form: dict[str, str] = {}
    seen: set[str] = set()
    for key, value in pairs:
        if key in seen:
            raise OAuthError("invalid_request", f"parameter {key!r} must not be repeated")
        seen.add(key)
        if value:
            form[key] = value
    return form


async def read_json_object(request: Request, *, error: str) -> dict[str, Any]:
    """A JSON object body sent as ``application/json``; another content type (none, a form,
    ``text/plain``, ``application/jsonx``) or anything but an object raises
    ``OAuthError(error)`` — a 400 in the endpoint's own RFC vocabulary rather than a bare 415,
    because OAuth clients read error bodies, not status codes."""
    if media_type(request) != JSON_TYPE:
        raise OAuthError(error, f"the request body must be {JSON_TYPE}")
    try:
        value = json.loads(await read_body(request))
    except (ValueError, RecursionError):
        raise OAuthError(error, "the request body must be a JSON object") from None
    if not isinstance(value, dict):
        raise OAuthError(error, "the request body must be a JSON object")
    return value


def json_response(
    body: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


def error_response(exc: OAuthError) -> Response:
    """RFC 6749 §5.2: ``{"error", "error_description"}``; 401 for ``invalid_client``, with a
    ``Basic`` challenge when the client tried HTTP Basic (§5.2 requires it then)."""
    headers = dict(NO_STORE)
    if isinstance(exc, InvalidClient) and exc.basic_attempted:
        headers["WWW-Authenticate"] = 'Basic realm="AI Connector", charset="UTF-8"'
    return json_response(
        {"error": exc.error, "error_description": exc.description}, status=exc.status, headers=headers
    )


def rate_limited_response(exc: RateLimited) -> Response:
    return json_response(
        {"error": "temporarily_unavailable", "error_description": exc.message},
        status=429,
        headers={**NO_STORE, "Retry-After": str(exc.retry_after)},
    )


def endpoint(
    handler: Handler, source: StateSource, *, cors: bool, methods: tuple[str, ...]
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint: answers CORS preflights, resolves the state, runs ``handler`` and
    renders its typed errors. Unexpected failures become a JSON ``server_error`` (500), so a
    client never mistakes an outage for a verdict on its credentials."""
    allow_methods = ", ".join((*methods, "OPTIONS"))

    async def run(request: Request) -> Response:
        if request.method == "OPTIONS":
            if not cors:
                return Response(status_code=405, headers={"Allow": ", ".join(methods)})
            return Response(status_code=204, headers={**CORS, "Access-Control-Allow-Methods": allow_methods})
        state = source if isinstance(source, OAuthState) else source()
        try:
            response = await handler(request, state)
        except OAuthError as exc:
            failure = _AUTH_FAILURES.get(exc.error)
            if failure is not None:
                state.metrics.auth_failure(failure)
            response = error_response(exc)
        except RateLimited as exc:
            state.metrics.auth_failure(AuthFailure.RATE_LIMITED)
            response = rate_limited_response(exc)
        except Exception:  # a bug or an outage: still JSON, and never invalid_client
            log.exception("OAuth endpoint %s failed", request.url.path)
            response = json_response(
                {"error": "server_error", "error_description": "internal error; try again"},
                status=500,
                headers=NO_STORE,
            )
        if cors:
            response.headers.update({**CORS, "Access-Control-Allow-Methods": allow_methods})
        return response

    return run
