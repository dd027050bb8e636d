"""Failure counters with fixed windows, kept in the database so that every instance sharing
it counts the same attempts (guessing spread over a load balancer gains nothing).

Only failures are counted; a caller is locked out while the current window holds ``limit``
failures for any of its keys (e.g. the username and the client address)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.db.models import RateCounter
from aiconnector.errors import RateLimited

MAX_WINDOW = 24 * 3600  # no limiter counts over more than a day


class FailureLimiter:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, limit: int, window_seconds: int = 60
    ) -> None:
        self._sessions = sessions
        self.limit = limit
        self.window = window_seconds

    def _window_start(self) -> int:
        now = int(time.time())
        return now - now % self.window

    async def check(self, keys: Iterable[str]) -> None:
        """Raise ``RateLimited`` if any key has reached the limit in the current window."""
        keys = list(keys)
        start = self._window_start()
        async with self._sessions() as session:
            counts = (
                await session.scalars(
                    select(RateCounter.count).where(
                        RateCounter.key.in_(keys), RateCounter.window_start == start
                    )
                )
            ).all()
        if any(c >= self.limit for c in counts):
            retry_after = max(1, start + self.window - int(time.time()))
            raise RateLimited(f"too many failed attempts; try again in {retry_after} s", retry_after)

    async def record_failure(self, keys: Iterable[str]) -> None:
        start = self._window_start()
        async with self._sessions.begin() as session:
            insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
            keys = list(keys)
            for key in keys:
                stmt = insert(RateCounter).values(key=key, window_start=start, count=1)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[RateCounter.key, RateCounter.window_start],
                    set_={"count": RateCounter.count + 1},
                )
                await session.execute(stmt)
            # Old windows of these keys only: other limiters may use longer windows. Rows of
            # any key older than the longest window anyone uses are dropped too.
            await session.execute(
                delete(RateCounter).where(RateCounter.key.in_(keys), RateCounter.window_start < start)
            )
            await session.execute(delete(RateCounter).where(RateCounter.window_start < start - MAX_WINDOW))
