"""What the audit log promises about durability and floods (docs/security.md, "Audit log"),
at the core level on both databases: every change of state commits with its event, a
mutating tool call's event is written ahead, and repeated failures are counted on one row
per source and minute. The crash itself is tested in tests/ops/test_kill9_audit.py."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from aiconnector.config import Settings
from aiconnector.core.audit import AuditContext, AuditRecord
from aiconnector.core.audit_repeats import MAX_SOURCES, Repeats
from aiconnector.core.clients import (
    create_device_client,
    create_pre_registered_client,
    register_dynamic_client,
)
from aiconnector.core.device import start_device_authorization
from aiconnector.core.scopes import CONTENT_READ, CONTENT_WRITE
from aiconnector.core.tokens import create_authorization_code
from aiconnector.core.users import create_user
from aiconnector.db.models import AuditEvent
from aiconnector.errors import Conflict
from aiconnector.runtime import Runtime

REDIRECT = "http://127.0.0.1:7777/callback"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # s256 of RFC 7636's example verifier
SETTINGS = Settings()


async def stored(rt: Runtime, event: str) -> list[AuditEvent]:
    """Events in the database itself, without flushing the queue first."""
    async with rt.sessions() as session:
        rows = await session.scalars(
            select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id)
        )
        return list(rows)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def test_each_change_of_state_is_stored_with_its_event_not_queued(rt: Runtime) -> None:
    """The writer task is not running here, so anything ``record`` queued would still be
    pending: an event found in the database was written by the change's own transaction."""
    context = AuditContext(user_id=None, username="boss", ip="192.0.2.10", user_agent="pytest")
    user = await create_user(rt.sessions, unique("carol"), role="author", context=context)
    dynamic = await register_dynamic_client(
        rt.sessions, {"client_name": "Dyn", "redirect_uris": [REDIRECT]}, settings=SETTINGS, context=context
    )
    owned = await create_pre_registered_client(rt.sessions, name="Owned", redirect_uris=[REDIRECT])
    device = await create_device_client(rt.sessions, name="Runner")
    await create_authorization_code(
        rt.sessions,
        client=owned.record,
        user_id=user.id,
        redirect_uri=REDIRECT,
        code_challenge=CHALLENGE,
        scopes=frozenset({CONTENT_READ}),
        requested_scopes=frozenset({CONTENT_READ, CONTENT_WRITE}),
        resource=SETTINGS.mcp_url,
        agent_name="Claude",
        context=context,
    )
    await start_device_authorization(
        rt.sessions,
        client=device.record,
        scope=CONTENT_READ,
        resource=None,
        settings=SETTINGS,
        context=context,
    )
    assert rt.audit.pending == 0

    [created] = [e for e in await stored(rt, "user.created") if e.user_id == user.id]
    assert (created.ip, created.user_agent) == ("192.0.2.10", "pytest")
    assert created.detail == {"username": user.username, "role": "author", "by": "boss"}
    registered = {e.detail["client_id"]: e for e in await stored(rt, "client.registered")}
    assert registered[dynamic.record.client_id].detail["kind"] == "dynamic"
    assert registered[dynamic.record.client_id].ip == "192.0.2.10"
    assert registered[owned.record.client_id].detail["kind"] == "pre_registered"
    assert registered[device.record.client_id].detail["kind"] == "device"
    [consent] = [e for e in await stored(rt, "oauth.consent") if e.user_id == user.id]
    assert consent.detail["client_id"] == owned.record.client_id
    assert (consent.detail["scopes"], consent.detail["requested_scopes"]) == (
        CONTENT_READ,
        f"{CONTENT_READ} {CONTENT_WRITE}",
    )
    assert [e.detail["client_id"] for e in await stored(rt, "device.requested")][
        -1
    ] == device.record.client_id


async def test_a_change_that_fails_leaves_no_event(rt: Runtime) -> None:
    name = unique("dave")
    await create_user(rt.sessions, name, role="subscriber")
    with pytest.raises(Conflict):
        await create_user(rt.sessions, name, role="subscriber")
    assert [e.detail["username"] for e in await stored(rt, "user.created")].count(name) == 1


async def test_write_ahead_is_committed_at_once_and_amended_in_place(rt: Runtime) -> None:
    event_id = await rt.audit.write("tool_call", outcome="started", detail={"tool": "create_post"})
    assert rt.audit.pending == 0
    [row] = [e for e in await stored(rt, "tool_call") if e.id == event_id]
    assert row.outcome == "started"
    await rt.audit.amend(event_id, outcome="success", detail={"tool": "create_post", "duration_ms": 1.0})
    [row] = [e for e in await stored(rt, "tool_call") if e.id == event_id]
    assert (row.outcome, row.detail) == ("success", {"tool": "create_post", "duration_ms": 1.0})


def failures(rows: list[AuditEvent]) -> int:
    return sum(as_record(r).count for r in rows)


def as_record(row: AuditEvent) -> AuditRecord:
    return AuditRecord(row.id, row.at, row.event, row.outcome, None, None, row.ip, None, row.detail)


async def test_repeated_failures_are_one_row_per_source_with_their_count(rt: Runtime) -> None:
    attacker, other = "198.51.100.7", "198.51.100.8"
    bad = {"method": "bearer", "reason": "invalid, expired or revoked access token"}
    for _ in range(300):
        rt.audit.record("auth.failure", outcome="failure", ip=attacker, user_agent="flood", detail=bad)
    rt.audit.record("auth.failure", outcome="failure", ip=other, detail=bad)
    await rt.audit.flush()
    for _ in range(200):  # the same minute, after a flush: counted on the same row
        rt.audit.record("auth.failure", outcome="failure", ip=attacker, detail=bad)
    assert rt.audit.pending == 200
    await rt.audit.flush()
    assert rt.audit.pending == 0

    rows = [e for e in await stored(rt, "auth.failure") if e.ip == attacker]
    # One row per minute the burst touched: two if it straddled a minute boundary.
    assert 1 <= len(rows) <= 2
    assert failures(rows) == 500
    assert rows[0].user_agent == "flood" and rows[0].detail["method"] == "bearer"
    [single] = [e for e in await stored(rt, "auth.failure") if e.ip == other]
    assert single.detail == bad and as_record(single).count == 1


def _values(at: datetime, ip: str) -> dict[str, Any]:
    return {
        "at": at,
        "event": "auth.failure",
        "outcome": "failure",
        "user_id": None,
        "connection_id": None,
        "ip": ip,
        "user_agent": None,
        "detail": {"method": "bearer", "request_id": secrets.token_hex(4)},
    }


def test_a_new_minute_starts_a_new_row_and_memory_stays_bounded() -> None:
    repeats = Repeats()
    minute = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)
    for offset in (0, 10, 20):  # the request id differs; the source is the same
        repeats.add(_values(minute + timedelta(seconds=offset), "192.0.2.1"))
    repeats.add(_values(minute + timedelta(seconds=40), "192.0.2.1"))  # 12:01:10
    counts = sorted(w.count for w in repeats.windows.values())
    assert counts == [1, 3]
    for window in repeats.windows.values():
        window.written = window.count
    repeats.sweep(int((minute + timedelta(minutes=1)).timestamp() // 60))
    assert [w.count for w in repeats.windows.values()] == [1], "the closed, written minute is forgotten"

    flood = Repeats()
    for n in range(MAX_SOURCES + 500):
        flood.add(_values(minute, f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"))
    assert len(flood.windows) == MAX_SOURCES + 1
    assert sum(w.count for w in flood.windows.values()) == MAX_SOURCES + 500
