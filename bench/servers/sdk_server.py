"""(c) The official MCP Python SDK (``mcp`` 2.x ``MCPServer``) serving the same tools over the
same site backend: stateless Streamable HTTP with JSON responses, its fastest configuration.

The Basic credential check is a small ASGI middleware with the same cached check as the other
servers; the verified principal reaches the tool through a context variable, because the SDK
runs each stateless request in a task started from the request's own context (checked by the
benchmark's pre-flight request: a missing principal would fail it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import orjson
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from aiconnector.config import Settings
from aiconnector.core.principal import Principal
from bench.backend import UNAUTHORIZED, Backend, Unauthorized, open_backend, serve, server_settings

_PRINCIPAL: ContextVar[Principal] = ContextVar("principal")


class _State:
    """The backend, set by the lifespan once the database is open."""

    backend: Backend | None = None

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        assert self.backend is not None
        return await self.backend.call_tool(_PRINCIPAL.get(), name, arguments)


class BasicAuthMiddleware:
    """Pure ASGI (no ``BaseHTTPMiddleware``), so it adds no more than the check itself."""

    def __init__(self, app: ASGIApp, state: _State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        assert self.state.backend is not None
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            principal = await self.state.backend.authenticate(header.decode("latin-1") if header else None)
        except Unauthorized as exc:
            body = orjson.dumps(
                {"jsonrpc": "2.0", "id": None, "error": {"code": UNAUTHORIZED, "message": str(exc)}}
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        token = _PRINCIPAL.set(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            _PRINCIPAL.reset(token)


def create_app(settings: Settings) -> Starlette:
    state = _State()
    server = MCPServer(name="sdk-baseline", log_level="WARNING")

    # Same names and the arguments the benchmark sends; the work is the registry's tool function.
    @server.tool(name="whoami")
    async def whoami() -> dict[str, Any]:
        return await state.call("whoami", {})

    @server.tool(name="get_post")
    async def get_post(id: int) -> dict[str, Any]:  # noqa: A002 - the tool's argument name
        return await state.call("get_post", {"id": id})

    @server.tool(name="list_posts")
    async def list_posts(limit: int = 10) -> dict[str, Any]:
        return await state.call("list_posts", {"limit": limit})

    app = server.streamable_http_app(stateless_http=True, json_response=True, host=settings.host)
    sdk_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(inner: Starlette) -> AsyncIterator[None]:
        async with open_backend(settings) as state.backend, sdk_lifespan(inner):
            yield

    app.router.lifespan_context = lifespan
    app.add_middleware(BasicAuthMiddleware, state=state)
    return app


if __name__ == "__main__":
    settings = server_settings()
    serve(create_app(settings), settings)
