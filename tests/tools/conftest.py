"""Tool tests call handlers directly, as the transport does, over a real BuiltinSite on a fresh
SQLite database seeded with the demo blog. The demo's people give one actor per role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from pydantic import BaseModel
from sqlalchemy import select

from aiconnector.config import Settings
from aiconnector.core.principal import Actor, Principal
from aiconnector.core.scopes import ALL_SCOPES
from aiconnector.db import models as m
from aiconnector.db.engine import create_engine, session_factory
from aiconnector.db.migrate import upgrade
from aiconnector.mcp.registry import ProgressReporter, ToolContext, ToolRegistry
from aiconnector.mcp.tools import build_registry
from aiconnector.sites.builtin import BuiltinSite
from aiconnector.sites.demo import make_png, seed_demo_content

ROLES = ("administrator", "editor", "author", "contributor", "subscriber")
# The demo blog's people (plus the administrator made here), one per role.
ROLE_USERNAMES = {
    "administrator": "admin",
    "editor": "emma",
    "author": "arjun",
    "contributor": "carlos",
    "subscriber": "sam",
}
PUBLIC_URL = "https://blog.example"
PNG = make_png(2, 2, lambda x, y: (200, 100, 50))


@dataclass
class Env:
    site: BuiltinSite
    settings: Settings
    registry: ToolRegistry
    actors: dict[str, Actor]  # by role
    display_names: dict[str, str]  # by role

    @property
    def admin(self) -> Actor:
        return self.actors["administrator"]

    def principal(
        self, role: str, scopes: frozenset[str] | set[str] | tuple[str, ...] = ALL_SCOPES
    ) -> Principal:
        return Principal(
            actor=self.actors[role],
            connection_id=f"conn-{role}",
            method="oauth",
            scopes=frozenset(scopes),
            agent_name="pytest agent",
            display_name=self.display_names[role],
        )

    def ctx(
        self,
        role: str = "administrator",
        scopes: frozenset[str] | set[str] | tuple[str, ...] = ALL_SCOPES,
        *,
        progress: ProgressReporter | None = None,
        settings: Settings | None = None,
    ) -> ToolContext:
        extra: dict[str, Any] = {"report_progress": progress} if progress is not None else {}
        return ToolContext(
            principal=self.principal(role, scopes),
            site=self.site,
            settings=settings or self.settings,
            **extra,
        )

    async def call(
        self,
        tool_name: str,
        args: dict[str, Any] | None = None,
        role: str = "administrator",
        scopes: frozenset[str] | set[str] | tuple[str, ...] = ALL_SCOPES,
        **ctx_options: Any,
    ) -> Any:
        """Validate ``args`` with the tool's input model and run the handler, like the transport."""
        tool = self.registry.get(tool_name)
        assert tool is not None, tool_name
        validated = tool.input_model.model_validate(args or {})
        out = await tool.handler(self.ctx(role, scopes, **ctx_options), validated)
        assert isinstance(out, BaseModel)
        # The transport renders the output as structuredContent: it must match the declared model.
        tool.output_model.model_validate(out.model_dump(mode="json"))
        return out


async def _create_admin(sessions: Any) -> int:
    async with sessions.begin() as s:
        user = m.User(
            username="admin", email="admin@blog.example", display_name="Site Admin", role="administrator"
        )
        s.add(user)
        await s.flush()
        return user.id


async def _actors(sessions: Any) -> tuple[dict[str, Actor], dict[str, str]]:
    """Actors by role, and their display names (which the auth layer puts on the principal)."""
    async with sessions() as s:
        users = {u.username: u for u in (await s.scalars(select(m.User))).all()}
    actors, names = {}, {}
    for role, username in ROLE_USERNAMES.items():
        user = users[username]
        assert user.role == role
        actors[role] = Actor(user_id=user.id, username=user.username, role=user.role)
        names[role] = user.display_name
    return actors, names


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(tmp_path_factory: Any) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("tools")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp}/site.db")
    await upgrade(engine)
    sessions = session_factory(engine)
    admin_id = await _create_admin(sessions)
    assert await seed_demo_content(sessions, admin_user_id=admin_id)
    settings = Settings(data_dir=tmp, public_url=PUBLIC_URL, max_upload_bytes=64 * 1024)
    site = BuiltinSite(sessions, public_url=PUBLIC_URL, max_upload_bytes=settings.max_upload_bytes)
    actors, display_names = await _actors(sessions)
    yield Env(
        site=site, settings=settings, registry=build_registry(), actors=actors, display_names=display_names
    )
    await engine.dispose()


Factory = Callable[[Env], Awaitable[Any]]
