"""Apply Alembic migrations programmatically (``serve`` does this on start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _upgrade(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the database schema to the newest revision."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


def _current(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


async def is_current(engine: AsyncEngine) -> bool:
    """True when the database is at the newest revision (for readiness checks)."""
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    async with engine.connect() as conn:
        return await conn.run_sync(_current) == heads
