"""The ``authorization_code`` grant: turning a code into a connection and its first tokens.

Checks, each failing with ``invalid_grant`` unless stated (RFC 6749 §4.1.3, RFC 7636 §4.6):

1. the code exists and is claimed atomically — ``UPDATE … SET used_at WHERE used_at IS NULL``
   is the first statement of the transaction, so of two concurrent redemptions exactly one
   sees a row count of 1 (PostgreSQL row lock; SQLite's single writer);
2. a code presented again (replay) is refused **and the connection it produced is revoked**
   with a ``security.code_replay`` audit event: either the client is broken or someone else
   holds the code, and RFC 6749 §4.1.2 says to revoke what the code issued;
3. not older than ``CODE_TTL``; issued to this client; same redirect URI, exactly;
4. ``resource``, if sent, is our MCP URL (else ``invalid_target``), and so is the code's;
5. PKCE: ``code_verifier`` present (else ``invalid_request``), 43–128 unreserved characters,
   and ``BASE64URL(SHA256(verifier))`` equals the stored challenge;
6. no connection of this user and client was revoked after the code was issued. A code makes
   its connection only when redeemed, so a revoke cannot reach a code still in flight; this
   check does: whoever revokes "this app's access" (the person, an administrator, a security
   revocation such as a replayed code) also voids the codes the app was holding, instead of
   letting one of them open a new connection minutes later. Connections ended as
   ``replaced`` (below) do not count: a newer authorization of the same app ended them.

A failed check rolls the claim back (the transaction is the unit), so a wrong guess by
someone holding a stolen code does not burn the legitimate client's code.

On success one transaction creates the connection (method ``oauth``), its tokens, the
``connection.created`` audit event and links the code to the connection. Then, for
dynamically registered clients, older active connections of the same user and client are
revoked with reason ``replaced`` through ``revoke_connection``, so the revocation bus and
caches hear of it: each install of such a client registers its own id, so an older
connection of the same id is that install's abandoned one. A metadata-document or
pre-registered client id is shared by every install (Claude Code's URL is the same on every
laptop), so there a new authorization never ends another one."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.config import Settings
from aiconnector.core.audit import AuditLog
from aiconnector.core.clients import ClientRecord, aware, note_connection
from aiconnector.core.connections import new_connection, revoke_connection
from aiconnector.core.events import RevocationBus
from aiconnector.core.tokens import TokenPair, issue_token_pair, revoke_for_security
from aiconnector.db.models import AuthorizationCode, Connection, utcnow
from aiconnector.errors import OAuthError
from aiconnector.security import constant_time_equals, sha256_hex

METHOD = "oauth"
# The revoke reason of an older connection ended by a newer authorization of the same app.
REPLACED = "replaced"
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def s256(verifier: str) -> str:
    """The S256 code challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_resource(requested: str | None, bound: str, settings: Settings) -> None:
    """RFC 8707: a ``resource`` parameter must name us; the grant must be bound to us."""
    if requested is not None and not settings.names_this_resource(requested):
        raise OAuthError("invalid_target", f"unknown resource; this server's resource is {settings.mcp_url}")
    if bound != settings.mcp_url:
        raise OAuthError("invalid_target", "the grant was issued for another resource")


def check_pkce(verifier: str | None, challenge: str) -> None:
    if not verifier:
        raise OAuthError("invalid_request", "code_verifier is required (PKCE)")
    if not _VERIFIER.fullmatch(verifier):
        raise OAuthError("invalid_grant", "code_verifier must be 43-128 unreserved characters")
    if not constant_time_equals(s256(verifier), challenge):
        raise OAuthError("invalid_grant", "code_verifier does not match the code challenge")


async def open_connection(
    session: AsyncSession,
    *,
    user_id: int,
    client_id: str,
    agent_name: str,
    method: str,
    scopes: str,
    resource: str,
    settings: Settings,
    audit: AuditLog,
) -> TokenPair:
    """Inside the caller's transaction (the one that consumed the grant): the connection, its
    first token pair, the client's "last used" and the ``connection.created`` audit event.
    Shared by every grant that turns a person's approval into a connection (authorization
    code, device code), so a grant either commits all of these or none."""
    conn = new_connection(
        user_id=user_id, agent_name=agent_name, method=method, scopes=scopes, client_id=client_id
    )
    session.add(conn)
    await session.flush()
    pair, _ = await issue_token_pair(
        session,
        connection_id=conn.id,
        client_id=client_id,
        access_scopes=scopes,
        refresh_scopes=scopes,
        resource=resource,
        settings=settings,
    )
    await note_connection(session, client_id, settings=settings)
    audit.record_in(
        session,
        "connection.created",
        user_id=user_id,
        connection_id=conn.id,
        detail={"method": method, "agent_name": agent_name, "client_id": client_id, "scopes": scopes},
    )
    return pair


async def _revoked_since(session: AsyncSession, code: AuthorizationCode) -> bool:
    """Whether a connection of the code's user and client was revoked after the code was
    issued (other than being replaced by a newer authorization): check 6 above."""
    found = await session.scalar(
        select(Connection.id)
        .where(
            Connection.user_id == code.user_id,
            Connection.client_id == code.client_id,
            Connection.revoked_at >= code.created_at,
            or_(Connection.revoke_reason.is_(None), Connection.revoke_reason != REPLACED),
        )
        .limit(1)
    )
    return found is not None


@dataclass(frozen=True, slots=True)
class _Issued:
    pair: TokenPair
    replaced: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Replayed:
    connection_id: str | None
    user_id: int
    client_id: str


async def _redeem(
    session: AsyncSession,
    *,
    code: str,
    client: ClientRecord,
    redirect_uri: str | None,
    code_verifier: str | None,
    resource: str | None,
    settings: Settings,
    audit: AuditLog,
) -> _Issued | _Replayed:
    now = utcnow()
    code_hash = sha256_hex(code)
    claimed = await session.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.code_hash == code_hash, AuthorizationCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    row = await session.get(AuthorizationCode, code_hash, populate_existing=True)
    if row is None:
        raise OAuthError("invalid_grant", "unknown authorization code")
    if claimed.rowcount != 1:
        return _Replayed(row.connection_id, row.user_id, row.client_id)
    if aware(row.expires_at) <= now:
        raise OAuthError("invalid_grant", "the authorization code has expired")
    if row.client_id != client.client_id:
        raise OAuthError("invalid_grant", "the authorization code was issued to another client")
    if redirect_uri is None and row.redirect_uri_required:
        raise OAuthError("invalid_request", "redirect_uri is required: the authorization request sent one")
    if redirect_uri is not None and redirect_uri != row.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
    check_resource(resource, row.resource, settings)
    check_pkce(code_verifier, row.code_challenge)
    if await _revoked_since(session, row):
        raise OAuthError("invalid_grant", "this application's access was revoked after the code was issued")

    pair = await open_connection(
        session,
        user_id=row.user_id,
        client_id=client.client_id,
        agent_name=row.agent_name,
        method=METHOD,
        scopes=row.scopes,
        resource=row.resource,
        settings=settings,
        audit=audit,
    )
    row.connection_id = pair.connection_id
    if client.kind != "dynamic":
        return _Issued(pair, ())
    replaced = (
        await session.scalars(
            select(Connection.id).where(
                Connection.user_id == row.user_id,
                Connection.client_id == client.client_id,
                Connection.revoked_at.is_(None),
                Connection.id != pair.connection_id,
            )
        )
    ).all()
    return _Issued(pair, tuple(replaced))


async def redeem_authorization_code(
    sessions: async_sessionmaker[AsyncSession],
    *,
    code: str,
    client: ClientRecord,
    redirect_uri: str | None,
    code_verifier: str | None,
    resource: str | None,
    settings: Settings,
    audit: AuditLog,
    bus: RevocationBus | None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> TokenPair:
    """Exchange an authorization code (the client already authenticated) for a token pair."""
    async with sessions.begin() as session:
        outcome = await _redeem(
            session,
            code=code,
            client=client,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
            resource=resource,
            settings=settings,
            audit=audit,
        )
    if isinstance(outcome, _Replayed):
        if outcome.connection_id is not None:
            await revoke_for_security(
                sessions,
                connection_id=outcome.connection_id,
                user_id=outcome.user_id,
                event="security.code_replay",
                reason="authorization code replayed",
                audit=audit,
                bus=bus,
                detail={"client_id": outcome.client_id, "presented_by": client.client_id},
                ip=ip,
                user_agent=user_agent,
            )
        raise OAuthError("invalid_grant", "the authorization code was already used")
    for connection_id in outcome.replaced:
        await revoke_connection(sessions, connection_id, audit=audit, bus=bus, reason=REPLACED)
    return outcome.pair
