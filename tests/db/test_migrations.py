"""The migrations produce exactly the schema the models describe, on each database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from aiconnector.db import migrate
from aiconnector.db.engine import create_engine
from aiconnector.db.models import Base
from tests.support import DatabaseUnderTest


async def test_migrated_schema_matches_models(database: DatabaseUnderTest) -> None:
    engine = create_engine(database.url)
    try:
        await migrate.upgrade(engine)
        assert await migrate.is_current(engine)

        def diff(conn):  # noqa: ANN001, ANN202
            return compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )

        async with engine.connect() as conn:
            changes = await conn.run_sync(diff)
        assert changes == [], f"models and migrations differ: {changes}"
        await migrate.upgrade(engine)  # idempotent
    finally:
        await engine.dispose()
