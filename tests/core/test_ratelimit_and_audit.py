"""Failure limits shared through the database, and audit scrubbing."""

from __future__ import annotations

import pytest

from aiconnector.core.audit import scrub
from aiconnector.core.ratelimit import FailureLimiter
from aiconnector.errors import RateLimited


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
