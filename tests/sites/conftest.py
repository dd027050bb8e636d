"""Fixtures for the built-in site: a fresh migrated database per test, on SQLite and PostgreSQL.

The SQLite variant makes a new database file for every test. The PostgreSQL variant (enabled by
``AICONNECTOR_TEST_PG_URL``) creates one throw-away database per test module, because creating
and migrating a database per test would be slow, and empties it between tests with
``TRUNCATE ... RESTART IDENTITY`` so ids are as predictable as on a fresh SQLite file."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aiconnector.core.principal import Actor
from aiconnector.db import models as m
from aiconnector.db.engine import create_engine, session_factory
from aiconnector.db.migrate import upgrade
from aiconnector.sites.builtin import BuiltinSite
from aiconnector.sites.demo import seed_demo_content

PG_ENV = "AICONNECTOR_TEST_PG_URL"
PUBLIC_URL = "http://127.0.0.1:8000"

# Test users created besides the demo authors: one per role, and a second author so "someone
# else's post" can be tested at the same role.
TEST_USERS: dict[str, str] = {
    "admin": "administrator",
    "ed": "editor",
    "au": "author",
    "au2": "author",
    "co": "contributor",
    "sub": "subscriber",
}


@asynccontextmanager
async def postgres_database(url: str) -> AsyncIterator[str]:
    """Create a uniquely named database next to ``url``'s and drop it afterwards."""
    base = make_url(url)
    name = f"aic_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = base.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


class SqliteDatabases:
    """A new database file per test."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    async def fresh(self) -> AsyncEngine:
        path = self._directory / f"site-{uuid.uuid4().hex[:8]}.db"
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine)
        return engine

    async def release(self, engine: AsyncEngine) -> None:
        await engine.dispose()


class PostgresDatabase:
    """One migrated database per module, emptied before each test."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def fresh(self) -> AsyncEngine:
        tables = ", ".join(f'"{t.name}"' for t in m.Base.metadata.sorted_tables)
        async with self._engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        return self._engine

    async def release(self, engine: AsyncEngine) -> None:
        """The engine belongs to the module; nothing to do per test."""


@pytest_asyncio.fixture(scope="module", params=["sqlite", "postgresql"])
async def site_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SqliteDatabases | PostgresDatabase]:
    if request.param == "sqlite":
        yield SqliteDatabases(tmp_path_factory.mktemp("sites"))
        return
    url = os.environ.get(PG_ENV)
    if not url:
        message = "PostgreSQL variant: set AICONNECTOR_TEST_PG_URL"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (required when CI=true)")
        pytest.skip(message)
    async with postgres_database(url) as db_url:
        engine = create_engine(db_url)
        try:
            await upgrade(engine)
            yield PostgresDatabase(engine)
        finally:
            await engine.dispose()


@pytest_asyncio.fixture
async def engine(site_database: SqliteDatabases | PostgresDatabase) -> AsyncIterator[AsyncEngine]:
    eng = await site_database.fresh()
    try:
        yield eng
    finally:
        await site_database.release(eng)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@dataclass
class SiteCtx:
    """The site under test plus the people who act on it."""

    site: BuiltinSite
    sessions: async_sessionmaker[AsyncSession]
    engine: AsyncEngine
    actors: dict[str, Actor]

    def __getitem__(self, username: str) -> Actor:
        return self.actors[username]

    async def post_ids(self, **where: object) -> list[int]:
        """Ids of posts matching column equalities, read straight from the database."""
        async with self.sessions() as s:
            stmt = select(m.Post.id).filter_by(**where).order_by(m.Post.id)
            return list((await s.scalars(stmt)).all())


async def create_users(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as s:
        for username, role in TEST_USERS.items():
            s.add(
                m.User(
                    username=username,
                    email=f"{username}@test.example",
                    display_name=username.title(),
                    role=role,
                )
            )


async def load_actors(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Actor]:
    async with sessions() as s:
        users = (await s.scalars(select(m.User))).all()
    return {u.username: Actor(user_id=u.id, username=u.username, role=u.role) for u in users}


@pytest_asyncio.fixture
async def ctx(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> SiteCtx:
    """A site with test users of every role and the demo content."""
    await create_users(sessions)
    actors = await load_actors(sessions)
    assert await seed_demo_content(sessions, admin_user_id=actors["admin"].user_id)
    actors = await load_actors(sessions)
    site = BuiltinSite(sessions, public_url=PUBLIC_URL, site_name="Test site")
    return SiteCtx(site=site, sessions=sessions, engine=engine, actors=actors)
