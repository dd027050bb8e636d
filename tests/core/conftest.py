"""Core tests run on a migrated database of each kind, without an HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from aiconnector.config import Settings
from aiconnector.runtime import Runtime, open_runtime
from tests.support import DatabaseUnderTest


@pytest_asyncio.fixture(loop_scope="session")
async def rt(database: DatabaseUnderTest, tmp_path) -> AsyncIterator[Runtime]:  # noqa: ANN001
    async with open_runtime(Settings(data_dir=tmp_path, database_url=database.url)) as runtime:
        yield runtime
