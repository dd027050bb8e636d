"""The server's long-lived parts, built once from settings and shared by the HTTP app and the
server-side CLI commands: database, audit log, revocation bus and site backend."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aiconnector.config import Settings
from aiconnector.core.audit import AuditLog
from aiconnector.core.events import RevocationBus
from aiconnector.core.users import count_users, create_user
from aiconnector.db import migrate
from aiconnector.db.engine import create_engine, session_factory
from aiconnector.security import generate_password

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    audit: AuditLog
    bus: RevocationBus


@asynccontextmanager
async def open_runtime(settings: Settings, *, apply_migrations: bool = True) -> AsyncIterator[Runtime]:
    engine = create_engine(
        settings.effective_database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    try:
        if apply_migrations:
            await migrate.upgrade(engine)
        sessions = session_factory(engine)
        rt = Runtime(settings, engine, sessions, AuditLog(sessions), RevocationBus())
        yield rt
        await rt.audit.flush()
    finally:
        await engine.dispose()


async def ensure_admin(rt: Runtime) -> str | None:
    """On an empty site, create user ``admin``; return the generated password to print once
    (None when the site already had users or the password came from the environment).

    In front of WordPress there is no local admin: WordPress owns the people, and its
    administrators sign in with their WordPress passwords."""
    if rt.settings.site == "wordpress" or await count_users(rt.sessions):
        return None
    password = rt.settings.admin_password or os.environ.get("AICONNECTOR_ADMIN_PASSWORD")
    generated = None
    if not password:
        password = generated = generate_password()
    await create_user(
        rt.sessions,
        "admin",
        role="administrator",
        email="admin@example.com",
        display_name="Site Admin",
        password=password,
    )  # audited (user.created) in the same transaction
    return generated
