"""The token store: authorization codes, access and refresh tokens, and what a token proves.

Every secret here is opaque and random (``aic_ac_`` codes, ``aic_at_`` access tokens,
``aic_rt_`` refresh tokens, 186 bits each), handed out once and stored only as its SHA-256, so
a copy of the database holds nothing a client could present. Each token is bound to one
connection, to the client it was issued to, to its scopes and to its audience (the RFC 8707
``resource``, our MCP URL). A token is only as alive as its connection: revoking the
connection (``core.connections.revoke_connection``) ends all of its tokens at once, because
verification checks ``connections.revoked_at`` and the revocation bus empties caches.

The grants that consume codes and refresh tokens live in ``code_grant.py`` and
``refresh.py``; this module holds what they share and what the resource side needs
(``verify_access_token``), plus RFC 7009 revocation and RFC 7662 introspection lookups."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.config import Settings
from aiconnector.core.audit import AuditContext, AuditLog, record_in
from aiconnector.core.clients import ClientRecord, aware, redirect_uri_allowed
from aiconnector.core.connections import lock_connection, revoke_connection, revoke_locked
from aiconnector.core.events import TOKEN_REVOKED, RevocationBus
from aiconnector.core.pg_notify import notify_in_transaction
from aiconnector.core.principal import Actor, Principal
from aiconnector.core.scopes import ALL_SCOPES, format_scopes
from aiconnector.db.models import AuthorizationCode, Connection, OAuthToken, User, utcnow
from aiconnector.errors import OAuthError
from aiconnector.security import random_secret, sha256_hex

ACCESS_TOKEN_PREFIX = "aic_at_"
REFRESH_TOKEN_PREFIX = "aic_rt_"
CODE_PREFIX = "aic_ac_"
CODE_TTL = timedelta(minutes=10)
# base64url(SHA-256(verifier)) without padding is always 43 characters (RFC 7636 §4.2).
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What the token endpoint returns (RFC 6749 §5.1)."""

    access_token: str
    refresh_token: str
    expires_in: int
    scope: str
    connection_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": self.scope,
        }


async def issue_token_pair(
    session: AsyncSession,
    *,
    connection_id: str,
    client_id: str,
    access_scopes: str,
    refresh_scopes: str,
    resource: str,
    settings: Settings,
) -> tuple[TokenPair, OAuthToken]:
    """Add a new access token and refresh token to the caller's transaction; return the plain
    pair and the refresh token's row (flushed, so its id can be linked from its predecessor).

    Access tokens live ``settings.access_token_ttl``; refresh tokens until their connection is
    revoked, or ``refresh_token_idle_seconds`` without use when that is set."""
    now = utcnow()
    access = random_secret(ACCESS_TOKEN_PREFIX)
    refresh = random_secret(REFRESH_TOKEN_PREFIX)
    idle = settings.refresh_token_idle_seconds
    common = {"connection_id": connection_id, "client_id": client_id, "resource": resource, "created_at": now}
    refresh_row = OAuthToken(
        token_hash=sha256_hex(refresh),
        kind="refresh",
        scopes=refresh_scopes,
        expires_at=now + timedelta(seconds=idle) if idle > 0 else None,
        **common,
    )
    session.add(
        OAuthToken(
            token_hash=sha256_hex(access),
            kind="access",
            scopes=access_scopes,
            expires_at=now + timedelta(seconds=settings.access_token_ttl),
            **common,
        )
    )
    session.add(refresh_row)
    await session.flush()
    return TokenPair(access, refresh, settings.access_token_ttl, access_scopes, connection_id), refresh_row


async def create_authorization_code(
    sessions: async_sessionmaker[AsyncSession],
    *,
    client: ClientRecord,
    user_id: int,
    redirect_uri: str,
    code_challenge: str,
    scopes: frozenset[str],
    resource: str,
    agent_name: str,
    code_challenge_method: str = "S256",
    redirect_uri_required: bool = True,
    requested_scopes: frozenset[str] | None = None,
    context: AuditContext | None = None,
) -> str:
    """Store a code for the consent the user just gave, with its ``oauth.consent`` event in the
    same transaction; return the code (plain, shown once).

    The code is single use, lives ``CODE_TTL`` and is bound to everything the token endpoint
    must check again: client, exact redirect URI, PKCE challenge, scopes and resource. Only
    S256 challenges are accepted — ``plain`` would let whoever sees the redirect redeem it.
    The redirect URI and scopes are checked again here (the authorize endpoint checks them
    first) so that no caller can mint a code pointing somewhere the client never registered."""
    if not redirect_uri_allowed(client, redirect_uri):
        raise OAuthError("invalid_request", "redirect_uri is not registered for this client")
    if not scopes or not scopes <= set(ALL_SCOPES):
        raise OAuthError("invalid_scope", "the code must carry known scopes")
    if code_challenge_method != "S256":
        raise OAuthError("invalid_request", "code_challenge_method must be S256")
    if not _S256_CHALLENGE.fullmatch(code_challenge or ""):
        raise OAuthError("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)")
    if not resource:
        raise OAuthError("invalid_target", "the code must be bound to a resource")
    code = random_secret(CODE_PREFIX)
    now = utcnow()
    async with sessions.begin() as session:
        session.add(
            AuthorizationCode(
                code_hash=sha256_hex(code),
                client_id=client.client_id,
                user_id=user_id,
                redirect_uri=redirect_uri,
                redirect_uri_required=redirect_uri_required,
                code_challenge=code_challenge,
                scopes=format_scopes(scopes),
                resource=resource,
                agent_name=agent_name[:200],
                created_at=now,
                expires_at=now + CODE_TTL,
            )
        )
        record_in(
            session,
            "oauth.consent",
            context=context,
            user_id=user_id,
            detail={
                "client_id": client.client_id,
                "client_name": client.name,
                "redirect_uri": redirect_uri,
                "scopes": format_scopes(scopes),
                "requested_scopes": format_scopes(requested_scopes or scopes),
                "agent_name": agent_name[:200],
            },
        )
    return code


async def verify_access_token(
    sessions: async_sessionmaker[AsyncSession], token: str, *, resource: str
) -> tuple[Principal, datetime] | None:
    """The principal behind a live access token for ``resource``, and when the token expires
    (a cache must not keep it past that). None for anything else: unknown, expired or revoked
    tokens, tokens for another audience, tokens of a revoked connection."""
    if not token.startswith(ACCESS_TOKEN_PREFIX):
        return None
    async with sessions() as session:
        row = (
            await session.execute(
                select(OAuthToken, Connection, User)
                .join(Connection, Connection.id == OAuthToken.connection_id)
                .join(User, User.id == Connection.user_id)
                .where(OAuthToken.token_hash == sha256_hex(token), OAuthToken.kind == "access")
            )
        ).first()
    if row is None:
        return None
    tok, conn, user = row
    expires = aware(tok.expires_at) if tok.expires_at else None
    if (
        tok.revoked_at is not None
        or conn.revoked_at is not None
        or expires is None
        or expires <= utcnow()
        or tok.resource != resource
    ):
        return None
    principal = Principal(
        actor=Actor(user.id, user.username, user.role),
        connection_id=conn.id,
        method=conn.method,
        scopes=frozenset(tok.scopes.split()),
        agent_name=conn.agent_name,
        display_name=user.display_name or user.username,
    )
    return principal, expires


async def revoke_for_security(
    sessions: async_sessionmaker[AsyncSession],
    *,
    connection_id: str,
    user_id: int | None,
    event: str,
    reason: str,
    audit: AuditLog,
    bus: RevocationBus | None,
    detail: dict[str, Any],
    ip: str | None = None,
    user_agent: str | None = None,
) -> None:
    """A credential was presented that only a thief (or a badly broken client) would present:
    end the whole connection and write the security event, in one transaction (so there is
    never an event without its revoke, or a revoke without its reason)."""
    async with sessions.begin() as session:
        conn = await lock_connection(session, connection_id)
        if conn is None:
            return
        revoked = await revoke_for_security_locked(
            session,
            conn,
            event=event,
            reason=reason,
            audit=audit,
            detail=detail,
            user_id=user_id,
            ip=ip,
            user_agent=user_agent,
        )
    if revoked and bus is not None:
        bus.publish(connection_id)


async def revoke_for_security_locked(
    session: AsyncSession,
    conn: Connection,
    *,
    event: str,
    reason: str,
    audit: AuditLog,
    detail: dict[str, Any],
    user_id: int | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> bool:
    """``revoke_for_security`` inside the caller's transaction, the connection already locked
    (``lock_connection``): the caller that detected the misuse commits the detection, the
    revoke and both audit events together. True if this revoked it (publish after commit)."""
    record_in(
        session,
        event,
        outcome="failure",
        user_id=conn.user_id if user_id is None else user_id,
        connection_id=conn.id,
        ip=ip,
        user_agent=user_agent,
        detail=detail,
    )
    return await revoke_locked(session, conn, audit=audit, reason=reason)


# --- RFC 7009 revocation and RFC 7662 introspection -----------------------------------------


async def _lookup(session: AsyncSession, token: str) -> tuple[OAuthToken, Connection, User] | None:
    row = (
        await session.execute(
            select(OAuthToken, Connection, User)
            .join(Connection, Connection.id == OAuthToken.connection_id)
            .join(User, User.id == Connection.user_id)
            .where(OAuthToken.token_hash == sha256_hex(token))
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2])


async def revoke_token(
    sessions: async_sessionmaker[AsyncSession],
    token: str,
    *,
    client: ClientRecord,
    audit: AuditLog,
    bus: RevocationBus | None,
    ip: str | None = None,
) -> None:
    """RFC 7009. Unknown tokens are silently accepted (the client's goal is reached).

    * a **refresh token** ends its connection — every access and refresh token of it, as a
      user's revoke from the admin UI would (a client revokes its refresh token on logout);
    * an **access token** ends only that token; the connection and its refresh chain live on.

    A token issued to another client is refused (``unauthorized_client``) and left alone.

    Either way the token stops working on every instance at its next request: the refresh
    branch revokes the connection; the access branch sends the connection's "changed"
    notification (NOTIFY in the same transaction, then this process's bus), which makes every
    instance drop the connection's cached credentials, so the next request is checked against
    the database and finds the token revoked. The ``token.revoked`` event is written in the
    revoking transaction."""
    async with sessions() as session:
        found = await _lookup(session, token)
    if found is None:
        return
    tok, conn, _user = found
    if tok.client_id != client.client_id:
        raise OAuthError("unauthorized_client", "the token was not issued to this client")
    if tok.kind == "refresh":
        await revoke_connection(
            sessions, conn.id, audit=audit, bus=bus, reason="refresh token revoked by the client"
        )
        return
    async with sessions.begin() as session:
        result = await session.execute(
            update(OAuthToken)
            .where(OAuthToken.id == tok.id, OAuthToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        if result.rowcount != 1:
            return  # already revoked: nothing changed, nothing to announce
        record_in(
            session,
            TOKEN_REVOKED,
            user_id=conn.user_id,
            connection_id=conn.id,
            ip=ip,
            detail={"kind": "access", "client_id": client.client_id},
        )
        await notify_in_transaction(session, "changed", conn.id)
    if bus is not None:
        bus.publish_change(conn.id)


async def introspect_token(
    sessions: async_sessionmaker[AsyncSession], token: str, *, client: ClientRecord
) -> dict[str, Any]:
    """RFC 7662 answer for ``token`` as seen by ``client``. A client learns about its own
    tokens only: another client's token is reported inactive, like an unknown one. Rotated
    refresh tokens are inactive (their grace window is for the token endpoint only)."""
    async with sessions() as session:
        found = await _lookup(session, token)
    if found is None:
        return {"active": False}
    tok, conn, user = found
    now = utcnow()
    expires = aware(tok.expires_at) if tok.expires_at else None
    if (
        tok.client_id != client.client_id
        or tok.revoked_at is not None
        or tok.rotated_at is not None
        or conn.revoked_at is not None
        or (expires is not None and expires <= now)
    ):
        return {"active": False}
    answer: dict[str, Any] = {
        "active": True,
        "scope": tok.scopes,
        "client_id": tok.client_id,
        "username": user.username,
        "sub": str(user.id),
        "aud": tok.resource,
        "iat": int(aware(tok.created_at).timestamp()),
        "token_type": "Bearer" if tok.kind == "access" else "refresh_token",
    }
    if expires is not None:
        answer["exp"] = int(expires.timestamp())
    return answer
