"""The ``refresh_token`` grant: rotation, the concurrency grace window, and theft detection.

A connection's refresh tokens form one chain. Every use rotates: the presented token is
marked ``rotated_at`` and a successor is issued. Every refresh transaction first locks its
connection (``core.connections.lock_connection``: ``SELECT … FOR UPDATE`` on PostgreSQL, the
write lock on SQLite) — the same lock, taken first in the same order, as a scope change or a
revoke — so refreshes of one connection, and scope changes of it, run one after another:

* of several concurrent uses of one token exactly one rotates it;
* a refresh reads the connection's scopes *under the lock* and caps the new tokens at them,
  so a narrowing that committed a moment earlier is never undone by a token minted from the
  old scopes, and a narrowing that comes a moment later sees (and narrows) the new tokens;
* there is no lock-order inversion left between a refresh and a scope change (no deadlock).

The others are not necessarily attacks: clients refresh concurrently (two processes sharing a
credentials file, a retry after a lost response). So a token rotated less than
``refresh_token_grace_seconds`` ago works **once** more, and only while the successor it was
exchanged for is still unused: the retry takes that unused successor's place (it is rotated,
and the retry's new token becomes the head). A rotated token therefore yields at most two
pairs in total, never a stream of them for whoever copied it; a third use within the window
is refused (``invalid_grant``) without revoking anything, and the chain stays a single line
with exactly one live refresh token at its end.

A rotated token presented after the grace window is what a stolen, replayed token looks like:
the whole connection is revoked and a ``security.refresh_token_reuse`` event is audited — in
the same transaction that found the reuse, so the detection, the revoke and both audit events
commit together or not at all (as ory/fosite does). The legitimate client then has to
authorize again — the safe failure (RFC 9700 §4.14.2).

A refresh may narrow the access token's scope (``scope`` ⊆ granted), never widen it; the new
refresh token keeps the original scope (RFC 6749 §6), capped at the connection's current
scopes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.config import Settings
from aiconnector.core.audit import AuditLog
from aiconnector.core.clients import ClientRecord, aware
from aiconnector.core.code_grant import check_resource
from aiconnector.core.connections import lock_connection
from aiconnector.core.events import RevocationBus
from aiconnector.core.scopes import UnknownScope, format_scopes, parse_scopes
from aiconnector.core.tokens import TokenPair, issue_token_pair, revoke_for_security_locked
from aiconnector.db.models import Connection, OAuthToken, utcnow
from aiconnector.errors import OAuthError
from aiconnector.security import sha256_hex


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
    """A rotated token came back after the grace window; the connection is revoked (if it was
    not already) in the transaction that found it. ``revoked``: publish after the commit."""

    connection_id: str
    revoked: bool


def capped_scopes(token_scopes: str, conn: Connection) -> str:
    """What a new token may carry: the presented token's scopes, never more than the
    connection has now (it may have been narrowed since the token was issued)."""
    return format_scopes(frozenset(token_scopes.split()) & frozenset(conn.scopes.split()))


async def _refresh(
    session: AsyncSession,
    *,
    refresh_token: str,
    client: ClientRecord,
    scope: str | None,
    resource: str | None,
    settings: Settings,
    audit: AuditLog,
    ip: str | None,
    user_agent: str | None,
) -> TokenPair | _Reused:
    now = utcnow()
    token_hash = sha256_hex(refresh_token)
    # A token's connection never changes, so finding it needs no lock; everything after does.
    connection_id = await session.scalar(
        select(OAuthToken.connection_id).where(
            OAuthToken.token_hash == token_hash, OAuthToken.kind == "refresh"
        )
    )
    conn = None if connection_id is None else await lock_connection(session, connection_id)
    token = await session.scalar(
        select(OAuthToken)
        .where(OAuthToken.token_hash == token_hash, OAuthToken.kind == "refresh")
        .execution_options(populate_existing=True)
    )
    if conn is None or token is None:
        raise OAuthError("invalid_grant", "unknown refresh token")
    if token.client_id != client.client_id:
        raise OAuthError("invalid_grant", "the refresh token was issued to another client")
    if token.revoked_at is not None or conn.revoked_at is not None:
        raise OAuthError("invalid_grant", "the refresh token has been revoked")
    if token.expires_at is not None and aware(token.expires_at) <= now:
        raise OAuthError("invalid_grant", "the refresh token has expired")
    predecessor = await _predecessor(session, token, now, settings)
    if predecessor is None:
        since = int((now - aware(token.rotated_at or now)).total_seconds())
        revoked = await revoke_for_security_locked(
            session,
            conn,
            event="security.refresh_token_reuse",
            reason="refresh token reused after rotation",
            audit=audit,
            detail={"client_id": client.client_id, "seconds_since_rotation": since},
            ip=ip,
            user_agent=user_agent,
        )
        return _Reused(conn.id, revoked)
    granted = capped_scopes(token.scopes, conn)
    if not granted:
        raise OAuthError("invalid_grant", "the connection no longer grants this token's scopes")
    access_scopes = narrow_scope(granted, scope)
    check_resource(resource, token.resource, settings)
    pair, successor = await issue_token_pair(
        session,
        connection_id=conn.id,
        client_id=client.client_id,
        access_scopes=access_scopes,
        refresh_scopes=granted,
        resource=token.resource,
        settings=settings,
    )
    predecessor.replaced_by_id = successor.id
    return pair


async def _predecessor(
    session: AsyncSession, token: OAuthToken, now: datetime, settings: Settings
) -> OAuthToken | None:
    """The chain link the new pair replaces, marked rotated: the presented token if it is the
    live head; for a retry within the grace window, the still unused successor it was
    exchanged for. None when the token was rotated longer ago than the grace window (reuse).

    Raises ``invalid_grant`` for a grace-window retry whose successor was already used: one
    retry per rotated token, so a copied token is not a source of new pairs. Plain reads and
    writes suffice: the caller holds the connection's lock, which every refresh takes."""
    if token.rotated_at is None:
        token.rotated_at = now
        return token
    if now - aware(token.rotated_at) > timedelta(seconds=settings.refresh_token_grace_seconds):
        return None
    successor = (
        None
        if token.replaced_by_id is None
        else await session.get(OAuthToken, token.replaced_by_id, populate_existing=True)
    )
    if successor is None or successor.rotated_at is not None or successor.revoked_at is not None:
        raise OAuthError("invalid_grant", "the refresh token was already used")
    successor.rotated_at = now
    return successor


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
            audit=audit,
            ip=ip,
            user_agent=user_agent,
        )
    if isinstance(outcome, _Reused):
        if outcome.revoked and bus is not None:
            bus.publish(outcome.connection_id)
        raise OAuthError("invalid_grant", "the refresh token was already used")
    return outcome
