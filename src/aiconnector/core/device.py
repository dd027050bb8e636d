"""The device authorization grant (RFC 8628): device codes, user codes and their rules.

A headless agent asks for a pair of codes (``start_device_authorization``), shows the short
user code to a person and polls the token endpoint with the long device code
(``poll_device_code``) while the person enters the user code on ``/device``
(``look_up_user_code``) and approves or denies (``decide``).

Codes:

* **device code** — ``aic_dc_`` + 32 characters from a 57-symbol alphabet (≈186 bits ≥ 128),
  stored only as its SHA-256, bound to the client that asked, single use: the poll that
  redeems it flips ``approved`` → ``used`` with a conditional update in the same transaction
  that creates the connection and its tokens, so two polls can never both succeed;
* **user code** — 8 characters from ``BCDFGHJKLMNPQRSTVWXZ`` (no vowels, so no words; no
  look-alike digits), shown ``XXXX-XXXX``; entry ignores case, dashes and spaces. Unique
  among pending codes. Both live ``device_code_ttl_seconds`` (10 minutes by default).

Polling: ``authorization_pending`` until decided, ``access_denied``, ``expired_token`` once
the code has expired (or was locked, see below). A poll earlier than ``interval`` seconds
after the previous one is answered ``slow_down`` and the stored interval grows by 5 s, with a
conditional update so concurrent polls cannot both pass as "on time".

**Guessing bound.** The user-code space is 20⁸ ≈ 2.56·10¹⁰ ≈ 2^34.6. Every user-code lookup
that matches no pending code is a *wrong code*, written as a ``device.code_rejected`` audit
event in the lookup's own transaction, and lookups are serialized (PostgreSQL advisory lock;
SQLite's single writer), so counts are exact across instances and concurrent requests.
Three limits, each over the last code lifetime:

1. per code: a pending code is **locked** (status ``locked``, audited ``device.locked``) as
   soon as ``WRONG_CODE_BUDGET`` = 5 wrong codes have been entered *anywhere on the site*
   since it was created — one cannot know which code a wrong guess aimed at, so each wrong
   guess counts against every pending code;
2. per signed-in user: ``device_wrong_codes_per_user`` (5) wrong codes;
3. per address: ``device_wrong_codes_per_address`` (20) wrong codes.

Rule 1 alone bounds the chance that any particular code is ever guessed: at most 5 wrong
guesses happen while it is pending, so P ≤ 5 / 20⁸ ≈ 1.95·10⁻¹⁰ < 2⁻³² ≈ 2.33·10⁻¹⁰, however
many accounts, addresses or instances an attacker uses (a guess that hits *another* pending
code is not counted as wrong, but each such hit has probability ≤ pending/20⁸, which changes
the bound only in the tenth significant digit for any realistic number of pending codes).
Rules 2 and 3 keep one person or address from spending that budget for everyone (a user
entering wrong codes can lock pending codes of others; that is the price of the bound, and it
is audited with their name). A locked device gets ``expired_token`` and starts again.
Malformed entries (wrong length or letters) cannot match anything and are not counted."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.config import Settings
from aiconnector.core.audit import AuditContext, AuditLog, record_in
from aiconnector.core.client_metadata import DEVICE_CODE_GRANT
from aiconnector.core.clients import ClientRecord, aware
from aiconnector.core.code_grant import check_resource, open_connection
from aiconnector.core.scopes import UnknownScope, format_scopes, parse_scopes
from aiconnector.core.tokens import TokenPair
from aiconnector.db.models import AuditEvent, DeviceCode, utcnow
from aiconnector.errors import InvalidInput, OAuthError, RateLimited
from aiconnector.security import random_secret, sha256_hex

__all__ = ["DEVICE_CODE_GRANT", "METHOD", "WRONG_CODE_BUDGET"]

METHOD = "device"
DEVICE_CODE_PREFIX = "aic_dc_"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
SLOW_DOWN_STEP = 5
WRONG_CODE_BUDGET = 5
WRONG_CODE_EVENT = "device.code_rejected"
# Rows past expiry are kept a day (for support questions), then removed on the verify path.
_KEEP_EXPIRED = timedelta(days=1)
# pg_advisory_xact_lock key serializing user-code lookups ("aicdevic" as an integer).
_LOOKUP_LOCK = 0x61696364_65766963
_MAX_ENTRY = 40


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """The RFC 8628 §3.2 answer, minus the URIs (the HTTP layer knows the origin)."""

    device_code: str
    user_code: str  # shown form, XXXX-XXXX
    expires_in: int
    interval: int


@dataclass(frozen=True, slots=True)
class PendingDevice:
    """A pending code a signed-in person just entered correctly."""

    device_code_hash: str
    user_code: str  # shown form
    client_id: str
    scopes: frozenset[str]
    expires_at: datetime


def normalize_user_code(entered: str) -> str | None:
    """``bcdf-ghjk``, ``BCDF GHJK`` and ``BCDFGHJK`` are the same code; None when the entry
    cannot be a code at all."""
    if len(entered) > _MAX_ENTRY:
        return None
    code = "".join(ch for ch in entered.upper() if ch not in "- \t")
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in code):
        return None
    return code


def format_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def _new_user_code() -> str:
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def _requested_scopes(scope: str | None) -> frozenset[str]:
    try:
        return parse_scopes(scope)
    except UnknownScope as exc:
        raise OAuthError("invalid_scope", str(exc)) from None


async def start_device_authorization(
    sessions: async_sessionmaker[AsyncSession],
    *,
    client: ClientRecord,
    scope: str | None,
    resource: str | None,
    settings: Settings,
    context: AuditContext | None = None,
) -> DeviceAuthorization:
    """Store a new pending code pair for ``client`` (already authenticated), with its
    ``device.requested`` event in the same transaction."""
    if DEVICE_CODE_GRANT not in client.grant_types:
        raise OAuthError("unauthorized_client", "this client is not registered for the device grant")
    scopes = _requested_scopes(scope)
    if resource is not None and not settings.names_this_resource(resource):
        raise OAuthError("invalid_target", f"unknown resource; this server's resource is {settings.mcp_url}")
    device_code = random_secret(DEVICE_CODE_PREFIX)
    now = utcnow()
    async with sessions.begin() as session:
        for _ in range(10):  # a clash is a 1-in-20⁸-per-pending-code event; retry anyway
            user_code = _new_user_code()
            clash = await session.scalar(
                select(func.count())
                .select_from(DeviceCode)
                .where(DeviceCode.user_code == user_code, DeviceCode.status == "pending")
            )
            if not clash:
                break
        else:
            raise OAuthError("temporarily_unavailable", "could not allocate a user code; retry", status=503)
        session.add(
            DeviceCode(
                device_code_hash=sha256_hex(device_code),
                user_code=user_code,
                client_id=client.client_id,
                scopes=format_scopes(scopes),
                resource=settings.mcp_url,
                status="pending",
                interval=settings.device_poll_interval,
                created_at=now,
                expires_at=now + timedelta(seconds=settings.device_code_ttl_seconds),
            )
        )
        record_in(
            session,
            "device.requested",
            context=context,
            detail={
                "client_id": client.client_id,
                "client_name": client.name,
                "scope": scope,
                "device": _device_ref(sha256_hex(device_code)),
            },
        )
    return DeviceAuthorization(
        device_code,
        format_user_code(user_code),
        settings.device_code_ttl_seconds,
        settings.device_poll_interval,
    )


# --- the verification page --------------------------------------------------------------------


def _device_ref(device_code_hash: str) -> str:
    """A short, non-secret reference to a code for audit events (never the user code)."""
    return device_code_hash[:12]


async def _serialize_lookups(session: AsyncSession, now: datetime) -> None:
    """Make user-code lookups run one at a time, so limits count every concurrent guess.

    The first statement is a write (removing long-expired rows), which on SQLite takes the
    database's single write lock for the rest of the transaction; PostgreSQL takes a
    transaction-scoped advisory lock."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOOKUP_LOCK})
    await session.execute(
        delete(DeviceCode)
        .where(DeviceCode.expires_at < now - _KEEP_EXPIRED)
        .execution_options(synchronize_session=False)
    )


async def _wrong_codes_since(session: AsyncSession, since: datetime, **match: Any) -> int:  # noqa: ANN401
    stmt = (
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.event == WRONG_CODE_EVENT, AuditEvent.at > since)
    )
    for column, value in match.items():
        stmt = stmt.where(getattr(AuditEvent, column) == value)
    return int(await session.scalar(stmt) or 0)


async def _lock_spent_codes(session: AsyncSession, audit: AuditLog, now: datetime) -> None:
    """Lock every pending code that has seen ``WRONG_CODE_BUDGET`` wrong codes since it was
    created: those created at or before the budget-th most recent wrong code."""
    nth_latest = await session.scalar(
        select(AuditEvent.at)
        .where(AuditEvent.event == WRONG_CODE_EVENT)
        .order_by(AuditEvent.at.desc())
        .offset(WRONG_CODE_BUDGET - 1)
        .limit(1)
    )
    if nth_latest is None:
        return
    spent = (
        await session.scalars(
            select(DeviceCode).where(
                DeviceCode.status == "pending",
                DeviceCode.created_at <= nth_latest,
                DeviceCode.expires_at > now,
            )
        )
    ).all()
    for row in spent:
        row.status = "locked"
        row.decided_at = now
        audit.record_in(
            session,
            "device.locked",
            outcome="failure",
            detail={
                "client_id": row.client_id,
                "device": _device_ref(row.device_code_hash),
                "reason": f"{WRONG_CODE_BUDGET} wrong user codes entered during its lifetime",
            },
        )


async def _expire(session: AsyncSession, row: DeviceCode, audit: AuditLog, now: datetime) -> None:
    """Mark a live code past its lifetime expired; audited once (the update is conditional)."""
    done = await session.execute(
        update(DeviceCode)
        .where(
            DeviceCode.device_code_hash == row.device_code_hash,
            DeviceCode.status.in_(("pending", "approved")),
        )
        .values(status="expired")
        .execution_options(synchronize_session=False)
    )
    if done.rowcount == 1:
        audit.record_in(
            session,
            "device.expired",
            outcome="failure",
            user_id=row.user_id,
            detail={"client_id": row.client_id, "device": _device_ref(row.device_code_hash)},
        )


async def look_up_user_code(
    sessions: async_sessionmaker[AsyncSession],
    entered: str,
    *,
    user_id: int,
    ip: str,
    user_agent: str | None,
    settings: Settings,
    audit: AuditLog,
) -> PendingDevice | None:
    """The pending code a signed-in person entered, or None (counted as a wrong code).

    Raises ``InvalidInput`` for an entry that cannot be a code (not counted) and
    ``RateLimited`` when the person or the address has entered too many wrong codes in the
    last code lifetime (audited as ``device.lockout``; no lookup happens)."""
    code = normalize_user_code(entered)
    if code is None:
        raise InvalidInput(f"A code is {USER_CODE_LENGTH} letters, like BCDF-GHJK.")
    now = utcnow()
    async with sessions.begin() as session:
        await _serialize_lookups(session, now)
        limit = await _spent_limit(session, user_id=user_id, ip=ip, settings=settings, now=now)
        if limit is not None:
            audit.record_in(
                session,
                "device.lockout",
                outcome="failure",
                user_id=user_id,
                ip=ip,
                user_agent=user_agent,
                detail={"limit": limit},
            )
        else:
            return await _find_pending(
                session, code, user_id=user_id, ip=ip, user_agent=user_agent, audit=audit, now=now
            )
    raise RateLimited("too many wrong codes; try again later", settings.device_code_ttl_seconds)


async def _spent_limit(
    session: AsyncSession, *, user_id: int, ip: str, settings: Settings, now: datetime
) -> str | None:
    """Which limit (``user`` or ``address``) has no wrong codes left in the last lifetime."""
    since = now - timedelta(seconds=settings.device_code_ttl_seconds)
    if await _wrong_codes_since(session, since, user_id=user_id) >= settings.device_wrong_codes_per_user:
        return "user"
    if await _wrong_codes_since(session, since, ip=ip) >= settings.device_wrong_codes_per_address:
        return "address"
    return None


async def _find_pending(
    session: AsyncSession,
    code: str,
    *,
    user_id: int,
    ip: str,
    user_agent: str | None,
    audit: AuditLog,
    now: datetime,
) -> PendingDevice | None:
    row = await session.scalar(
        select(DeviceCode)
        .where(DeviceCode.user_code == code, DeviceCode.status == "pending")
        .order_by(DeviceCode.created_at.desc())
        .limit(1)
    )
    if row is not None and aware(row.expires_at) <= now:
        await _expire(session, row, audit, now)
        row = None
    if row is None:
        audit.record_in(
            session,
            WRONG_CODE_EVENT,
            outcome="failure",
            user_id=user_id,
            ip=ip,
            user_agent=user_agent,
            detail={"reason": "no pending code matches"},
        )
        await session.flush()
        await _lock_spent_codes(session, audit, now)
        return None
    return PendingDevice(
        row.device_code_hash,
        format_user_code(row.user_code),
        row.client_id,
        frozenset(row.scopes.split()),
        aware(row.expires_at),
    )


async def decide(
    sessions: async_sessionmaker[AsyncSession],
    *,
    device_code_hash: str,
    user_id: int,
    approve: bool,
    granted: frozenset[str],
    agent_name: str,
    audit: AuditLog,
    ip: str | None = None,
    user_agent: str | None = None,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Record the person's decision; False when the code is no longer pending (expired,
    locked, already decided). The status change and its ``device.approved``/``device.denied``
    event commit together. Granted scopes are intersected with the requested ones again, so
    no caller can grant more than the device asked for."""
    now = utcnow()
    async with sessions.begin() as session:
        row = await session.get(DeviceCode, device_code_hash)
        if row is None:
            return False
        scopes = format_scopes(granted & set(row.scopes.split()))
        if approve and not scopes:
            raise InvalidInput("grant at least one scope the device asked for")
        done = await session.execute(
            update(DeviceCode)
            .where(
                DeviceCode.device_code_hash == device_code_hash,
                DeviceCode.status == "pending",
                DeviceCode.expires_at > now,
            )
            .values(
                status="approved" if approve else "denied",
                user_id=user_id,
                granted_scopes=scopes if approve else None,
                agent_name=agent_name[:200],
                decided_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:
            return False
        audit.record_in(
            session,
            "device.approved" if approve else "device.denied",
            outcome="success" if approve else "failure",
            user_id=user_id,
            ip=ip,
            user_agent=user_agent,
            detail={
                **(detail or {}),
                "client_id": row.client_id,
                "device": _device_ref(device_code_hash),
                "requested_scopes": row.scopes,
                **({"scopes": scopes, "agent_name": agent_name} if approve else {}),
            },
        )
    return True


# --- the token endpoint --------------------------------------------------------------------------


async def _poll(
    session: AsyncSession,
    *,
    device_code: str,
    client: ClientRecord,
    resource: str | None,
    settings: Settings,
    audit: AuditLog,
) -> TokenPair | OAuthError:
    """One poll, as an outcome: errors are returned, not raised, because some of them
    (``slow_down``'s longer interval, an expiry) must commit."""
    now = utcnow()
    code_hash = sha256_hex(device_code)
    row = await session.get(DeviceCode, code_hash, populate_existing=True)
    if row is None or not device_code.startswith(DEVICE_CODE_PREFIX):
        return OAuthError("invalid_grant", "unknown device code")
    if row.client_id != client.client_id:
        return OAuthError("invalid_grant", "the device code was issued to another client")
    if row.status == "used":
        return OAuthError("invalid_grant", "the device code was already used")
    if row.status == "denied":
        return OAuthError("access_denied", "the user denied access")
    if row.status in ("expired", "locked") or aware(row.expires_at) <= now:
        await _expire(session, row, audit, now)
        reason = "too many wrong codes were entered" if row.status == "locked" else "the device code expired"
        return OAuthError("expired_token", f"{reason}; start a new device authorization")
    check_resource(resource, row.resource, settings)
    on_time = await session.execute(
        update(DeviceCode)
        .where(
            DeviceCode.device_code_hash == code_hash,
            DeviceCode.interval == row.interval,
            or_(
                DeviceCode.last_poll_at.is_(None),
                DeviceCode.last_poll_at <= now - timedelta(seconds=row.interval),
            ),
        )
        .values(last_poll_at=now)
        .execution_options(synchronize_session=False)
    )
    if on_time.rowcount != 1:
        await session.execute(
            update(DeviceCode)
            .where(DeviceCode.device_code_hash == code_hash)
            .values(interval=DeviceCode.interval + SLOW_DOWN_STEP, last_poll_at=now)
            .execution_options(synchronize_session=False)
        )
        return OAuthError(
            "slow_down", f"polling too fast; wait {row.interval + SLOW_DOWN_STEP} s between requests"
        )
    if row.status == "pending":
        return OAuthError("authorization_pending", "the user has not decided yet")
    claimed = await session.execute(
        update(DeviceCode)
        .where(DeviceCode.device_code_hash == code_hash, DeviceCode.status == "approved")
        .values(status="used")
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1 or row.user_id is None or not row.granted_scopes:
        return OAuthError("invalid_grant", "the device code was already used")
    pair = await open_connection(
        session,
        user_id=row.user_id,
        client_id=client.client_id,
        agent_name=row.agent_name or client.name,
        method=METHOD,
        scopes=row.granted_scopes,
        resource=row.resource,
        settings=settings,
        audit=audit,
    )
    await session.execute(
        update(DeviceCode)
        .where(DeviceCode.device_code_hash == code_hash)
        .values(connection_id=pair.connection_id)
        .execution_options(synchronize_session=False)
    )
    return pair


async def poll_device_code(
    sessions: async_sessionmaker[AsyncSession],
    *,
    device_code: str,
    client: ClientRecord,
    resource: str | None,
    settings: Settings,
    audit: AuditLog,
) -> TokenPair:
    """The device grant at the token endpoint (client already authenticated). Each device
    gets its own connection (method ``device``): one device client may be installed on many
    machines, so unlike the code grant, older connections of the same client are kept."""
    async with sessions.begin() as session:
        outcome = await _poll(
            session, device_code=device_code, client=client, resource=resource, settings=settings, audit=audit
        )
    if isinstance(outcome, OAuthError):
        raise outcome
    return outcome
