"""The ``refresh_token`` grant: rotation, the concurrency grace window, and theft detection.

A connection's refresh tokens form one chain. Every use rotates: the presented token is
marked ``rotated_at`` and a successor is issued. The rotation is a conditional update —
``UPDATE oauth_tokens SET rotated_at = now WHERE token_hash = ? AND rotated_at IS NULL`` as the
transaction's first statement — so exactly one of several concurrent uses wins it.

The others are not necessarily attacks: clients refresh concurrently (two processes sharing a
credentials file, a retry after a lost response). So a token rotated less than
``refresh_token_grace_seconds`` ago still works once more — **without forking the chain**: the
request rotates the chain's current head instead (same conditional update, retried if another
request moved the head meanwhile) and its new token becomes the head. However many requests
race, the chain stays a single line with exactly one live refresh token at its end.

A rotated token presented after the grace window is what a stolen, replayed token looks like:
the whole connection is revoked and a ``security.refresh_token_reuse`` event is audited. The
legitimate client then has to authorize again — the safe failure (RFC 9700 §4.14.2).

A refresh may narrow the access token's scope (``scope`` ⊆ granted), never widen it; the new
refresh token keeps the original scope (RFC 6749 §6)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Update, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.config import Settings
from aiconnector.core.audit import AuditLog
from aiconnector.core.clients import ClientRecord, aware
from aiconnector.core.code_grant import check_resource
from aiconnector.core.events import RevocationBus
from aiconnector.core.scopes import UnknownScope, format_scopes, parse_scopes
from aiconnector.core.tokens import TokenPair, issue_token_pair, revoke_for_security
from aiconnector.db.models import Connection, OAuthToken, utcnow
from aiconnector.errors import OAuthError
from aiconnector.security import sha256_hex

# How many times a grace-window request retries when others keep moving the head under it.
_HEAD_ATTEMPTS = 100


def narrow_scope(granted: str, requested: str | None) -> str:
    """The scope for the new access token: ``requested`` if it is a subset of ``granted``."""
    if requested is None or not requested.strip():
        return granted
    try:
        wanted = parse_scopes(requested)
    except UnknownScope as exc:
        raise OAuthError("invalid_scope", str(exc)) from None
    if not wanted <= set(granted.split()):
        raise OAuthError("invalid_scope", "a refresh may narrow the granted scope, never widen it")
    return format_scopes(wanted)


@dataclass(frozen=True, slots=True)
class _Reused:
    connection_id: str
    user_id: int
    seconds_since_rotation: int


def _rotate(which: ColumnElement[bool], now: datetime) -> Update:
    """``UPDATE … SET rotated_at = now WHERE <which> AND rotated_at IS NULL`` (live tokens only)."""
    return (
        update(OAuthToken)
        .where(
            which,
            OAuthToken.kind == "refresh",
            OAuthToken.rotated_at.is_(None),
            OAuthToken.revoked_at.is_(None),
        )
        .values(rotated_at=now)
        .execution_options(synchronize_session=False)
    )


async def _claim_head(session: AsyncSession, connection_id: str, now: datetime) -> OAuthToken | None:
    """Rotate the chain's current head (the one live refresh token) and return it."""
    for _ in range(_HEAD_ATTEMPTS):
        head_id = await session.scalar(
            select(OAuthToken.id).where(
                OAuthToken.connection_id == connection_id,
                OAuthToken.kind == "refresh",
                OAuthToken.rotated_at.is_(None),
                OAuthToken.revoked_at.is_(None),
            )
        )
        if head_id is None:
            return None
        if (await session.execute(_rotate(OAuthToken.id == head_id, now))).rowcount == 1:
            return await session.get(OAuthToken, head_id, populate_existing=True)
    raise OAuthError("temporarily_unavailable", "too many concurrent refreshes; retry", status=503)


async def _refresh(
    session: AsyncSession,
    *,
    refresh_token: str,
    client: ClientRecord,
    scope: str | None,
    resource: str | None,
    settings: Settings,
) -> TokenPair | _Reused:
    now = utcnow()
    token_hash = sha256_hex(refresh_token)
    won = (await session.execute(_rotate(OAuthToken.token_hash == token_hash, now))).rowcount == 1
    found = (
        await session.execute(
            select(OAuthToken, Connection)
            .join(Connection, Connection.id == OAuthToken.connection_id)
            .where(OAuthToken.token_hash == token_hash, OAuthToken.kind == "refresh")
            .execution_options(populate_existing=True)
        )
    ).first()
    if found is None:
        raise OAuthError("invalid_grant", "unknown refresh token")
    token, conn = found
    if token.client_id != client.client_id:
        raise OAuthError("invalid_grant", "the refresh token was issued to another client")
    if token.revoked_at is not None or conn.revoked_at is not None:
        raise OAuthError("invalid_grant", "the refresh token has been revoked")
    if token.expires_at is not None and aware(token.expires_at) <= now:
        raise OAuthError("invalid_grant", "the refresh token has expired")
    predecessor: OAuthToken | None = token
    if not won:
        if token.rotated_at is None:  # not claimed yet not rotated: never hand out a fork
            raise OAuthError("invalid_grant", "the refresh token is not usable")
        since = now - aware(token.rotated_at)
        if since > timedelta(seconds=settings.refresh_token_grace_seconds):
            return _Reused(conn.id, conn.user_id, int(since.total_seconds()))
        predecessor = await _claim_head(session, conn.id, now)
        if predecessor is None:
            raise OAuthError("invalid_grant", "the refresh token has been revoked")
    access_scopes = narrow_scope(token.scopes, scope)
    check_resource(resource, token.resource, settings)
    pair, successor = await issue_token_pair(
        session,
        connection_id=conn.id,
        client_id=client.client_id,
        access_scopes=access_scopes,
        refresh_scopes=token.scopes,
        resource=token.resource,
        settings=settings,
    )
    predecessor.replaced_by_id = successor.id
    return pair


async def refresh_token_grant(
    sessions: async_sessionmaker[AsyncSession],
    *,
    refresh_token: str,
    client: ClientRecord,
    scope: str | None,
    resource: str | None,
    settings: Settings,
    audit: AuditLog,
    bus: RevocationBus | None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> TokenPair:
    """Exchange a refresh token (the client already authenticated) for a new pair."""
    async with sessions.begin() as session:
        outcome = await _refresh(
            session,
            refresh_token=refresh_token,
            client=client,
            scope=scope,
            resource=resource,
            settings=settings,
        )
    if isinstance(outcome, _Reused):
        await revoke_for_security(
            sessions,
            connection_id=outcome.connection_id,
            user_id=outcome.user_id,
            event="security.refresh_token_reuse",
            reason="refresh token reused after rotation",
            audit=audit,
            bus=bus,
            detail={"client_id": client.client_id, "seconds_since_rotation": outcome.seconds_since_rotation},
            ip=ip,
            user_agent=user_agent,
        )
        raise OAuthError("invalid_grant", "the refresh token was already used")
    return outcome
