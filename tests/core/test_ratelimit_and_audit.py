"""Failure limits shared through the database, and audit scrubbing."""

from __future__ import annotations

import asyncio
import threading

import pytest

from aiconnector.core import users
from aiconnector.core.audit import scrub
from aiconnector.core.login_limits import LoginGuard, LoginLimits, LoginRefused
from aiconnector.core.ratelimit import (
    MAX_WINDOW,
    Budget,
    FailureLimiter,
    address_bucket,
    counts,
    refund,
    spend,
)
from aiconnector.errors import RateLimited
from aiconnector.security import verify_password


async def test_limiter_locks_out_after_limit_and_counts_across_instances(rt) -> None:  # noqa: ANN001
    a = FailureLimiter(rt.sessions, limit=3)
    b = FailureLimiter(rt.sessions, limit=3)  # a second instance sharing the database
    keys = ["user:alice", "ip:203.0.113.9"]
    await a.check(keys)
    await a.record_failure(keys)
    await b.record_failure(keys)
    await a.check(keys)
    await b.record_failure(["ip:203.0.113.9"])
    with pytest.raises(RateLimited) as caught:
        await a.check(["ip:203.0.113.9"])
    assert 1 <= caught.value.retry_after <= 60
    with pytest.raises(RateLimited):
        await b.check(["user:bob", "ip:203.0.113.9"])
    await a.check(["user:bob", "ip:198.51.100.1"])  # other keys unaffected


def test_scrub_removes_secret_values_recursively() -> None:
    detail = {
        "tool": "x",
        "password": "hunter2",
        "nested": {"access_token": "abc", "ok": 1},
        "Authorization": "Basic z",
    }
    clean = scrub(detail)
    assert clean == {
        "tool": "x",
        "password": "[redacted]",
        "nested": {"access_token": "[redacted]", "ok": 1},
        "Authorization": "[redacted]",
    }


async def test_audit_flush_is_durable_and_queryable(rt) -> None:  # noqa: ANN001
    rt.audit.record(
        "auth.failure", outcome="failure", ip="192.0.2.1", detail={"password": "nope", "username": "x"}
    )
    await rt.audit.flush()
    [event] = await rt.audit.query(events=["auth.failure"], limit=1)
    assert event.detail == {"password": "[redacted]", "username": "x"}
    assert event.ip == "192.0.2.1"


async def test_a_short_window_limiter_does_not_erase_a_longer_ones_counts(rt) -> None:  # noqa: ANN001
    hourly = FailureLimiter(rt.sessions, limit=2, window_seconds=3600)
    minutely = FailureLimiter(rt.sessions, limit=100, window_seconds=60)
    await hourly.record_failure(["user:hourly"])
    await hourly.record_failure(["user:hourly"])
    await minutely.record_failure(["ip:192.0.2.7"])  # cleans up its own old windows only
    with pytest.raises(RateLimited):
        await hourly.check(["user:hourly"])


# --- reservations (``spend``/``refund``) and the sign-in guard built on them ---------------------


async def test_a_burst_of_reservations_never_passes_the_limit(rt) -> None:  # noqa: ANN001
    """Check-then-record lets every attempt of a burst pass the check before any failure is
    recorded; reserving first gives each attempt its own count."""
    budget = Budget("test:burst", limit=5, window=MAX_WINDOW)
    results = await asyncio.gather(*(spend(rt.sessions, [budget]) for _ in range(20)))
    made = sorted(spent.count for [spent] in results)
    assert made == list(range(1, 21))
    assert sum(not spent.over for [spent] in results) == 5
    await refund(rt.sessions, [results[0][0], results[1][0]])
    [now] = await counts(rt.sessions, [budget])
    assert now.count == 18


def test_ipv6_addresses_count_by_their_64() -> None:
    assert (
        address_bucket("2001:db8:1:2:aaaa::1")
        == address_bucket("2001:db8:1:2:ffff::9")
        == "2001:db8:1:2::/64"
    )
    assert address_bucket("2001:db8:1:3::1") != address_bucket("2001:db8:1:2::1")
    assert address_bucket("::ffff:203.0.113.5") == "203.0.113.5"
    assert address_bucket("203.0.113.5") == "203.0.113.5"
    assert address_bucket("unknown") == "unknown"


GUARD_LIMITS = LoginLimits(
    per_pair_minute=3, per_pair_hour=5, per_address_minute=50, per_account_hour=6, delay_after=100
)


async def test_refused_attempts_do_not_count_so_one_address_cannot_fill_the_account(rt) -> None:  # noqa: ANN001
    guard = LoginGuard(rt.sessions, GUARD_LIMITS)
    for _ in range(3):  # failures: reservations not given back
        await guard.admit("Admin", "203.0.113.1", None)
    for _ in range(50):
        with pytest.raises(LoginRefused) as refused:
            await guard.admit("admin", "203.0.113.1", None)
        assert refused.value.limit == "pair"
    # The account holds the 3 guesses, not 53: three more from elsewhere fit, the next not.
    for _ in range(3):
        await guard.admit("admin", "198.51.100.1", None)
    with pytest.raises(LoginRefused) as refused:
        await guard.admit("admin", "198.51.100.2", None)
    assert refused.value.limit == "account" and refused.value.retry_after >= 1
    # A known device is not held by the account limit, only by its own.
    attempt = await guard.admit("admin", "203.0.113.1", "device-1")
    await guard.release(attempt)
    for _ in range(3):
        await guard.admit("admin", "203.0.113.1", "device-1")
    with pytest.raises(LoginRefused) as refused:
        await guard.admit("admin", "203.0.113.1", "device-1")
    assert refused.value.limit == "pair"


async def test_a_right_password_is_not_counted(rt) -> None:  # noqa: ANN001
    guard = LoginGuard(rt.sessions, GUARD_LIMITS)
    for _ in range(10):
        await guard.release(await guard.admit("editor", "203.0.113.2", None))
    await guard.admit("editor", "203.0.113.2", None)  # still within every limit


async def test_the_delay_grows_is_capped_and_too_many_waiting_are_refused(rt) -> None:  # noqa: ANN001
    guard = LoginGuard(rt.sessions, LoginLimits(delay_after=2, first_delay=0.25, max_delay=2.0))
    assert [guard.delay_for(n) for n in range(7)] == [0, 0, 0.25, 0.5, 1.0, 2.0, 2.0]
    busy = LoginGuard(rt.sessions, LoginLimits(delay_after=0, first_delay=0.01, max_delay=0.5, max_delayed=0))
    with pytest.raises(LoginRefused) as refused:
        await busy.admit("author", "203.0.113.3", None)
    assert refused.value.limit == "busy" and refused.value.retry_after == 1
    # It gave its reservation back: a guard allowing one failure per pair still admits it.
    strict = LoginGuard(rt.sessions, LoginLimits(per_pair_minute=1))
    await strict.release(await strict.admit("author", "203.0.113.3", None))
    slowed = LoginGuard(rt.sessions, LoginLimits(delay_after=0, first_delay=0.01, max_delay=0.01))
    await slowed.release(await slowed.admit("author", "203.0.113.3", None))  # waits, then passes
    await busy.admit("author", "203.0.113.4", "device-2")  # known devices never wait


async def test_password_checks_run_off_the_event_loop(rt, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Argon2 blocks the thread it runs in for tens of milliseconds; on the event loop it
    would stall every request of the instance while someone floods /login."""
    seen: list[str] = []

    def spy(password: str, password_hash: str | None) -> bool:
        seen.append(threading.current_thread().name)
        return verify_password(password, password_hash)

    monkeypatch.setattr(users, "verify_password", spy)
    await users.create_user(rt.sessions, "threaded", role="author", password="correct horse battery")
    assert await users.check_password(rt.sessions, "threaded", "correct horse battery") is not None
    assert await users.check_password(rt.sessions, "nobody-here", "x") is None
    assert len(seen) == 2 and all(name.startswith("argon2") for name in seen), seen
