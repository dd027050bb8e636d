"""Failure counters with fixed windows, kept in the database so that every instance sharing
it counts the same attempts (guessing spread over a load balancer gains nothing).

Two ways to use them:

* ``FailureLimiter``: check, then record a failure. Cheap, but a burst of concurrent attempts
  can all pass the check before any failure is recorded, so the limit is approximate. Good
  enough where guessing is hopeless anyway and the limit only tames floods (random secrets).
* ``spend`` / ``refund`` with ``Budget``s: an attempt first *reserves* its place in every
  counter in one transaction (an atomic increment that returns the new count), and is refused
  when that count is past the limit; an attempt that turns out not to be a failure (the right
  password, or one refused for another reason) gives its reservation back. No burst can exceed
  the limit. Used where the secret is guessable (human passwords, ``core.login_limits``).

Windows are aligned to the epoch, so a window of 60 s always ends on a full minute; an attacker
who times a burst across a boundary gets at most twice the limit in one window's length."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.db.models import RateCounter
from aiconnector.errors import RateLimited

MAX_WINDOW = 24 * 3600  # no limiter counts over more than a day
IPV6_BUCKET_PREFIX = 64  # one IPv6 customer usually holds a whole /64


def address_bucket(ip: str) -> str:
    """The part of a client address a limit counts: IPv4 addresses as they are, IPv6 by their
    /64 (a single host can pick any of 2⁶⁴ addresses in its network, so counting per address
    would let it start afresh at will). Anything unparsable is counted as it is."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_BUCKET_PREFIX), strict=False))
    return str(address)


def _window_start(window: int) -> int:
    now = int(time.time())
    return now - now % window


def _seconds_left(start: int, window: int) -> int:
    return max(1, start + window - int(time.time()))


async def _bump(session: AsyncSession, key: str, start: int) -> int:
    """Add one to ``key``'s counter of the window starting at ``start``; the new count."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(RateCounter)
        .values(key=key, window_start=start, count=1)
        .on_conflict_do_update(
            index_elements=[RateCounter.key, RateCounter.window_start],
            set_={"count": RateCounter.count + 1},
        )
        .returning(RateCounter.count)
    )
    return int((await session.execute(stmt)).scalar_one())


async def _drop_old_windows(session: AsyncSession, keys: Sequence[str], start: int) -> None:
    """Old windows of these keys only: other limiters may use longer windows (under other
    keys). Rows of any key older than the longest window anyone uses are dropped too."""
    await session.execute(
        delete(RateCounter).where(RateCounter.key.in_(keys), RateCounter.window_start < start)
    )
    await session.execute(delete(RateCounter).where(RateCounter.window_start < start - MAX_WINDOW))


class FailureLimiter:
    """A caller is locked out while the current window holds ``limit`` failures for any of
    its keys (e.g. the client address). Only failures are counted."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, limit: int, window_seconds: int = 60
    ) -> None:
        self._sessions = sessions
        self.limit = limit
        self.window = window_seconds

    def _window_start(self) -> int:
        return _window_start(self.window)

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
            retry_after = _seconds_left(start, self.window)
            raise RateLimited(f"too many failed attempts; try again in {retry_after} s", retry_after)

    async def record_failure(self, keys: Iterable[str]) -> None:
        start = self._window_start()
        keys = list(keys)
        async with self._sessions.begin() as session:
            for key in keys:
                await _bump(session, key, start)
            await _drop_old_windows(session, keys, start)


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``limit`` failures for ``key`` per ``window`` seconds. A key belongs to one
    window length only (a shorter window's clean-up would drop a longer one's rows)."""

    key: str
    limit: int
    window: int


@dataclass(frozen=True, slots=True)
class Spent:
    """One reservation: the budget, the window it was counted in, and the count it made."""

    budget: Budget
    window_start: int
    count: int

    @property
    def over(self) -> bool:
        return self.count > self.budget.limit

    @property
    def retry_after(self) -> int:
        return _seconds_left(self.window_start, self.budget.window)


async def counts(sessions: async_sessionmaker[AsyncSession], budgets: Sequence[Budget]) -> list[Spent]:
    """The current count of each budget, read only (a cheap first look: a caller already
    past a limit is refused without writing anything)."""
    if not budgets:
        return []
    starts = [_window_start(b.window) for b in budgets]
    async with sessions() as session:
        rows = (
            await session.execute(
                select(RateCounter.key, RateCounter.window_start, RateCounter.count).where(
                    or_(
                        *(
                            and_(RateCounter.key == b.key, RateCounter.window_start == s)
                            for b, s in zip(budgets, starts, strict=True)
                        )
                    )
                )
            )
        ).all()
    found = {(key, start): count for key, start, count in rows}
    return [Spent(b, s, found.get((b.key, s), 0)) for b, s in zip(budgets, starts, strict=True)]


async def spend(sessions: async_sessionmaker[AsyncSession], budgets: Sequence[Budget]) -> list[Spent]:
    """Reserve one attempt in every budget, in one transaction; each reservation's new count
    (in the order given). Concurrent attempts each see a different count, so at most
    ``limit`` of them are within the limit however many arrive at once. Rows are locked in
    key order, so two attempts sharing keys cannot deadlock on PostgreSQL."""
    made: dict[Budget, Spent] = {}
    async with sessions.begin() as session:
        for budget in sorted(set(budgets), key=lambda b: b.key):
            start = _window_start(budget.window)
            made[budget] = Spent(budget, start, await _bump(session, budget.key, start))
        for window in {b.window for b in budgets}:
            keys = [b.key for b in budgets if b.window == window]
            await _drop_old_windows(session, keys, _window_start(window))
    return [made[b] for b in budgets]


async def refund(sessions: async_sessionmaker[AsyncSession], spent: Sequence[Spent]) -> None:
    """Give reservations back: the attempt was not a failure. Each is taken off the window it
    was counted in, in key order (as ``spend`` locks them)."""
    if not spent:
        return
    async with sessions.begin() as session:
        for item in sorted(spent, key=lambda s: s.budget.key):
            await session.execute(
                update(RateCounter)
                .where(
                    RateCounter.key == item.budget.key,
                    RateCounter.window_start == item.window_start,
                    RateCounter.count > 0,
                )
                .values(count=RateCounter.count - 1)
            )
