"""Fixtures for testing the MCP transport on its own: a small in-test tool registry, a test
double for the auth layer (one fixed Basic password), a real audit log on SQLite, and the
endpoint served by a real uvicorn on a free 127.0.0.1 port.

The server runs as a task in the test's own event loop (``serve_asgi``) rather than in a
thread, so tests can cancel in-flight requests through ``services.inflight`` directly: asyncio
tasks must be cancelled from their own loop."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic import BaseModel, Field

from aiconnector.config import Settings
from aiconnector.core.audit import AuditLog
from aiconnector.core.inflight import InflightRequests
from aiconnector.core.principal import Actor, Principal
from aiconnector.core.roles import Cap
from aiconnector.core.scopes import CONTENT_READ, CONTENT_WRITE, USERS_READ
from aiconnector.db.engine import create_engine, session_factory
from aiconnector.db.migrate import upgrade
from aiconnector.errors import AuthenticationFailed, NotAllowed, NotFound, RateLimited
from aiconnector.mcp.registry import ToolContext, ToolRegistry, define_tool
from aiconnector.mcp.services import McpServices
from aiconnector.mcp.transport import create_mcp_app
from aiconnector.sites.base import AuthorRef, Page, Post, PostQuery, PostSummary

PASSWORD = "correct horse battery staple"


# --- serving an ASGI app -----------------------------------------------------------------------


def bind_loopback() -> socket.socket:
    """A listening socket on a free 127.0.0.1 port (bound first, so settings can name it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class _InLoopServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # leave pytest's signal handlers alone
        yield


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Serve ``app`` with a real uvicorn in the current event loop; yield its base URL."""
    sock = sock or bind_loopback()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", log_config=None, timeout_graceful_shutdown=2
    )
    server = _InLoopServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        task.cancel()
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


# --- the auth-layer test double ---------------------------------------------------------------


def basic(user: str = "alice", password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def connection_id(user: str) -> str:
    return f"conn-{user}"


async def authenticate(header: str | None, ip: str) -> Principal:
    """One fixed password for any lower-case user name. Scopes by name: ``writer*`` also has
    content:write, ``noread*`` has only users:read, ``flood`` is rate limited; role editor,
    except ``sub*`` (subscriber)."""
    if header is None:
        raise AuthenticationFailed("Authentication required")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise AuthenticationFailed("Unsupported authorization scheme")
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except ValueError:
        raise AuthenticationFailed("Malformed Basic credentials") from None
    if user == "flood":
        raise RateLimited("Too many failed attempts", retry_after=30)
    if not sep or password != PASSWORD or not re.fullmatch(r"[a-z0-9-]+", user):
        raise AuthenticationFailed("Invalid username or password")
    scopes = {CONTENT_READ}
    if user.startswith("writer"):
        scopes.add(CONTENT_WRITE)
    if user.startswith("noread"):
        scopes = {USERS_READ}
    role = "subscriber" if user.startswith("sub") else "editor"
    return Principal(Actor(7, user, role), connection_id(user), "application_password", frozenset(scopes))


# --- the in-test tools ------------------------------------------------------------------------


@dataclass
class ToolProbe:
    """What the slow tool saw, by its ``tag`` argument."""

    started: dict[str, asyncio.Event] = field(default_factory=dict)
    cancelled: dict[str, asyncio.Event] = field(default_factory=dict)

    def started_event(self, tag: str) -> asyncio.Event:
        return self.started.setdefault(tag, asyncio.Event())

    def cancelled_event(self, tag: str) -> asyncio.Event:
        return self.cancelled.setdefault(tag, asyncio.Event())


class EchoIn(BaseModel):
    message: str = Field(description="Text to send back")
    repeat: int = Field(1, ge=1, le=5)


class EchoOut(BaseModel):
    text: str


class SlowIn(BaseModel):
    steps: int = Field(ge=1, le=1000)
    delay: float = Field(ge=0, le=5)
    tag: str = ""


class SlowOut(BaseModel):
    done: int


class Empty(BaseModel):
    pass


class NoteIn(BaseModel):
    title: str


def build_registry(probe: ToolProbe) -> ToolRegistry:
    async def echo(ctx: ToolContext, args: EchoIn) -> EchoOut:
        return EchoOut(text=" ".join([args.message] * args.repeat))

    async def slow(ctx: ToolContext, args: SlowIn) -> SlowOut:
        probe.started_event(args.tag).set()
        try:
            for step in range(1, args.steps + 1):
                await ctx.report_progress(step, args.steps, f"step {step}/{args.steps}")
                await asyncio.sleep(args.delay)
        except asyncio.CancelledError:
            probe.cancelled_event(args.tag).set()
            raise
        return SlowOut(done=args.steps)

    async def fails(ctx: ToolContext, args: Empty) -> EchoOut:
        raise NotAllowed("you may not do that to post 5")

    async def missing(ctx: ToolContext, args: Empty) -> EchoOut:
        raise NotFound("Not found: post 404")

    async def boom(ctx: ToolContext, args: Empty) -> EchoOut:
        raise RuntimeError("secret internal detail /etc/passwd")

    async def write_note(ctx: ToolContext, args: NoteIn) -> EchoOut:
        return EchoOut(text=f"saved {args.title}")

    async def admin_only(ctx: ToolContext, args: Empty) -> EchoOut:
        return EchoOut(text="admin")

    registry = ToolRegistry()
    common = {"scope": CONTENT_READ, "capability": Cap.READ, "output_model": EchoOut}
    registry.add(
        define_tool(
            name="echo",
            title="Echo",
            description="Echo a message back.",
            input_model=EchoIn,
            handler=echo,
            read_only=True,
            idempotent=True,
            render_text=lambda out: out.text,  # type: ignore[attr-defined]
            **common,  # type: ignore[arg-type]
        )
    )
    registry.add(
        define_tool(
            name="slow",
            title="Slow",
            description="Counts slowly, reporting progress.",
            scope=CONTENT_READ,
            capability=Cap.READ,
            input_model=SlowIn,
            output_model=SlowOut,
            handler=slow,
        )
    )
    for name, handler in (("fails", fails), ("missing", missing), ("boom", boom)):
        registry.add(
            define_tool(
                name=name,
                title=name.title(),
                description=f"Always {name}.",
                input_model=Empty,
                handler=handler,
                **common,  # type: ignore[arg-type]
            )
        )
    registry.add(
        define_tool(
            name="write_note",
            title="Write note",
            description="Needs content:write.",
            scope=CONTENT_WRITE,
            capability=Cap.EDIT_POSTS,
            input_model=NoteIn,
            output_model=EchoOut,
            handler=write_note,
        )
    )
    registry.add(
        define_tool(
            name="admin_only",
            title="Admin only",
            description="Needs the manage_options capability.",
            scope=CONTENT_READ,
            capability=Cap.MANAGE_OPTIONS,
            input_model=Empty,
            output_model=EchoOut,
            handler=admin_only,
        )
    )
    return registry


# --- a tiny site for the resources tests ------------------------------------------------------


def _post(post_id: int, post_type: str, title: str, day: int) -> Post:
    when = datetime(2026, 1, day, 12, tzinfo=UTC)
    return Post(
        id=post_id,
        type=post_type,  # type: ignore[arg-type]
        title=title,
        slug=title.lower().replace(" ", "-"),
        status="publish",
        author=AuthorRef(id=7, username="alice", display_name="Alice <A>"),
        date=when,
        modified=when,
        excerpt=f"About {title}",
        url=f"https://site.example/{post_id}",
        content=f"<p>Body of {title}</p>",
    )


class TinySite:
    """list_posts / get_post over three fixed items, paging two at a time."""

    def __init__(self) -> None:
        self.posts = [
            _post(1, "post", "Hello World", 3),
            _post(2, "page", "About", 2),
            _post(3, "post", "Second", 1),
        ]

    async def list_posts(self, actor: Actor, query: PostQuery) -> Page[PostSummary]:
        matching = [p for p in self.posts if p.type == query.type]
        start = int(query.cursor or 0)
        items = matching[start : start + 2]
        more = start + 2 < len(matching)
        summaries = [PostSummary(**p.model_dump(include=set(PostSummary.model_fields))) for p in items]
        return Page[PostSummary](items=summaries, next_cursor=str(start + 2) if more else None)

    async def get_post(self, actor: Actor, post_id: int) -> Post:
        for post in self.posts:
            if post.id == post_id:
                return post
        raise NotFound(f"post {post_id}")


# --- the served endpoint ----------------------------------------------------------------------


@dataclass
class McpUnderTest:
    base_url: str
    services: McpServices
    probe: ToolProbe

    @property
    def url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def origin(self) -> str:
        return self.services.settings.origin


@pytest.fixture(scope="session")
async def mcp_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[McpUnderTest]:
    data_dir: Path = tmp_path_factory.mktemp("mcp")
    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'audit.db'}")
    await upgrade(engine)
    audit = AuditLog(session_factory(engine))
    sock = bind_loopback()
    port = sock.getsockname()[1]
    settings = Settings(
        data_dir=data_dir,
        host="127.0.0.1",
        port=port,
        allowed_origins=("https://inspector.example",),
        max_request_bytes=64 * 1024,
    )
    probe = ToolProbe()
    services = McpServices(
        settings=settings,
        registry=build_registry(probe),
        site=TinySite(),  # type: ignore[arg-type]
        authenticate=authenticate,
        audit=audit,
        inflight=InflightRequests(),
    )
    async with serve_asgi(create_mcp_app(services), sock) as base_url:
        yield McpUnderTest(base_url, services, probe)
    await audit.flush()
    await engine.dispose()
