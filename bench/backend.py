"""What the three benchmarked servers share, so that they differ only in the layer under test
(HTTP + JSON-RPC + MCP framing + auth), never in the work a tool does.

* ``open_backend`` opens the benchmark database with the project's own engine settings
  (SQLAlchemy + aiosqlite, WAL) and builds the same ``BuiltinSite`` our server uses.
* ``CachedBasicAuth`` is the hot path of ``aiconnector.mcp.auth.RequestAuthenticator``: one
  SHA-256 of the Authorization header and one dictionary lookup; a miss verifies the password
  in the database once, exactly like our server's first request.
* ``call_tool`` runs the tool function from ``build_registry()`` (argument model, site read,
  output model dump), so the baselines do the same database read with the same driver.
* ``serve`` runs uvicorn with the same options for every server (uvloop + httptools when
  installed, no access log, no Server header)."""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.config import Settings
from aiconnector.core.app_passwords import verify_app_password
from aiconnector.core.principal import Principal
from aiconnector.db.engine import create_engine, session_factory
from aiconnector.mcp.auth import parse_basic
from aiconnector.mcp.registry import ToolContext, ToolRegistry
from aiconnector.mcp.tools import build_registry
from aiconnector.security import sha256_hex
from aiconnector.sites.builtin import BuiltinSite

# The JSON-RPC codes the baselines answer with; same numbers as our transport.
UNAUTHORIZED = -32001
METHOD_NOT_FOUND = -32601


class Unauthorized(Exception):
    """Missing or wrong credential (the baselines answer HTTP 401)."""


@dataclass(slots=True)
class _Cached:
    principal: Principal
    expires: float


class CachedBasicAuth:
    """The credential check our server does per request, minus its bookkeeping (activity
    tracking, audit, failure limiter), which the profile accounts for separately."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], cache_seconds: float = 30.0) -> None:
        self._sessions = sessions
        self._cache_seconds = cache_seconds
        self._cache: dict[str, _Cached] = {}

    async def __call__(self, authorization: str | None) -> Principal:
        if not authorization or authorization[:6].lower() != "basic ":
            raise Unauthorized("Basic credentials required")
        key = sha256_hex(authorization)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached.expires > now:
            return cached.principal
        username, password = parse_basic(authorization)
        principal = await verify_app_password(self._sessions, username, password)
        if principal is None:
            raise Unauthorized("wrong username or application password")
        self._cache[key] = _Cached(principal, now + self._cache_seconds)
        return principal


@dataclass(frozen=True, slots=True)
class Backend:
    """Site, tools and credential check over one database, shared by a server's requests."""

    settings: Settings
    site: BuiltinSite
    registry: ToolRegistry
    authenticate: CachedBasicAuth

    async def call_tool(self, principal: Principal, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The tool's structured output as JSON-ready data. Raises ``KeyError`` for an unknown
        tool; scope, role and argument errors are not exercised by the benchmark."""
        tool = self.registry.get(name)
        if tool is None:
            raise KeyError(name)
        args = tool.input_model.model_validate(arguments)
        output = await tool.handler(ToolContext(principal, self.site, self.settings), args)
        return output.model_dump(mode="json", by_alias=True)


def call_tool_result(structured: dict[str, Any]) -> dict[str, Any]:
    """A ``CallToolResult`` as our server shapes it at 2025-11-25: the JSON text plus
    ``structuredContent`` (so the baseline serialises the same payload twice, like ours)."""
    return {
        "content": [{"type": "text", "text": orjson.dumps(structured).decode()}],
        "structuredContent": structured,
        "isError": False,
    }


@asynccontextmanager
async def open_backend(settings: Settings) -> AsyncIterator[Backend]:
    """The backend over an already migrated and seeded database (``mcp_throughput`` sets it up)."""
    engine = create_engine(settings.effective_database_url)
    try:
        sessions = session_factory(engine)
        yield Backend(
            settings=settings,
            site=BuiltinSite(sessions, public_url=settings.origin),
            registry=build_registry(),
            authenticate=CachedBasicAuth(sessions, settings.credential_cache_seconds),
        )
    finally:
        await engine.dispose()


def server_settings(argv: list[str] | None = None) -> Settings:
    """Settings from the command line every server script takes (``--database-url --port``)."""
    parser = argparse.ArgumentParser(description="Run one benchmarked MCP server.")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", default=".")
    args = parser.parse_args(argv)
    return Settings(
        data_dir=Path(args.data_dir),
        database_url=args.database_url,
        host="127.0.0.1",
        port=args.port,
        demo=False,
        log_level="warning",
    )


def fast_uvicorn_options() -> dict[str, str]:
    """uvloop and httptools when importable (uvicorn[standard] brings both), else the
    pure-Python defaults; reported by the benchmark so a slow fallback is never silent."""
    options = {"loop": "asyncio", "http": "h11"}
    if importlib.util.find_spec("uvloop") is not None:
        options["loop"] = "uvloop"
    if importlib.util.find_spec("httptools") is not None:
        options["http"] = "httptools"
    return options


def serve(app: Any, settings: Settings) -> None:
    """Run ``app`` the same way for every server under test."""
    import uvicorn

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="on",
        **fast_uvicorn_options(),  # type: ignore[arg-type]
    )
