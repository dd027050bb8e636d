"""(b) The floor: a minimal Starlette app answering ``tools/call`` on POST /mcp.

It does what any HTTP JSON-RPC endpoint must (route, read the body, parse it with orjson, check
the cached Basic credential, run the tool, serialise the result) and nothing MCP-specific: no
protocol-version negotiation, no Origin/Accept checks, no envelope validation, no audit. The
distance between it and our server is the price of our transport's extra work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aiconnector.config import Settings
from bench.backend import (
    METHOD_NOT_FOUND,
    UNAUTHORIZED,
    Backend,
    Unauthorized,
    call_tool_result,
    open_backend,
    serve,
    server_settings,
)


def _reply(message_id: Any, body: dict[str, Any], status: int = 200) -> Response:
    return Response(
        orjson.dumps({"jsonrpc": "2.0", "id": message_id, **body}),
        status_code=status,
        media_type="application/json",
    )


def create_app(settings: Settings) -> Starlette:
    backend: Backend | None = None

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal backend
        async with open_backend(settings) as backend:
            yield

    async def mcp(request: Request) -> Response:
        assert backend is not None
        message = orjson.loads(await request.body())
        message_id = message.get("id")
        try:
            principal = await backend.authenticate(request.headers.get("authorization"))
        except Unauthorized as exc:
            return _reply(message_id, {"error": {"code": UNAUTHORIZED, "message": str(exc)}}, 401)
        params = message.get("params") or {}
        if message.get("method") != "tools/call":
            return _reply(message_id, {"error": {"code": METHOD_NOT_FOUND, "message": "tools/call only"}})
        structured = await backend.call_tool(principal, params["name"], params.get("arguments") or {})
        return _reply(message_id, {"result": call_tool_result(structured)})

    return Starlette(routes=[Route("/mcp", mcp, methods=["POST"])], lifespan=lifespan)


if __name__ == "__main__":
    settings = server_settings()
    serve(create_app(settings), settings)
