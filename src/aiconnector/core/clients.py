"""OAuth clients: who may ask for codes and tokens, and where codes may be sent.

Clients come in five kinds (``oauth_clients.kind``):

* ``dynamic`` — registered by the client itself (RFC 7591). Claude registers anew on every
  fresh connection, so unused ones expire: ``expires_at`` is set at registration and pushed
  forward whenever a connection is made, and ``purge_expired_clients`` deletes those past it
  that have no active connection.
* ``metadata_document`` — the ``client_id`` is an HTTPS URL whose JSON describes the client;
  the row is a cache of that document, refreshed after ``refresh_after``.
* ``pre_registered`` — created by the site owner (``aiconnector clients create``); may be
  confidential (has a secret).
* ``device`` — created by the site owner for headless agents (``clients create --device``):
  public, no redirect URI, only the device authorization grant (RFC 8628) and refresh.
* ``user_registered`` — created on the Add Connection page by someone who is not an
  administrator (``registered_by``). Anyone with an account can do that, so such a client is
  never presented as the site owner's: the consent screen names the person who registered it
  and keeps the "name chosen by the application" warning, and it expires when unused, like a
  dynamic client. Only administrators (and the CLI, run by whoever runs the server) create
  ``pre_registered`` and ``device`` clients.

``resolve_client`` is the single way the authorization and token endpoints learn about a
client. Client secrets are random (186 bits), so only their SHA-256 is stored and compared in
constant time."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.config import Settings
from aiconnector.core.audit import AuditContext, AuditLog, record_in
from aiconnector.core.client_metadata import (
    DEVICE_CODE_GRANT,
    ClientMetadata,
    DocumentUnavailable,
    clean_name,
    fetch_client_metadata_document,
    is_metadata_document_url,
    parse_client_metadata,
)
from aiconnector.core.connections import revoke_connection
from aiconnector.core.document_fetch_limits import DocumentFetchLimits, RecentlyFailed
from aiconnector.core.events import RevocationBus
from aiconnector.core.redirect_uris import check_redirect_uri, redirect_uri_matches
from aiconnector.core.roles import Role
from aiconnector.db.models import Connection, OAuthClient, User, utcnow
from aiconnector.errors import NotFound, OAuthError, RateLimited
from aiconnector.security import constant_time_equals, random_secret, sha256_hex

CLIENT_SECRET_PREFIX = "aic_cs_"
CONFIDENTIAL_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
# Compared against when a client has no secret, so timing does not tell the two apart.
_NO_SECRET_HASH = sha256_hex(secrets.token_hex(32))
USER_REGISTERED = "user_registered"
# Kinds removed when unused: expiry pushed forward by each new connection, then purged.
EXPIRING_KINDS = ("dynamic", USER_REGISTERED)


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every timestamp we store is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ClientRecord:
    client_id: str
    name: str
    kind: str  # dynamic | metadata_document | pre_registered | device | user_registered
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    token_endpoint_auth_method: str
    client_uri: str | None
    logo_uri: str | None
    # Username of whoever registered it on the Add Connection page (None: nobody, or removed).
    registered_by: str | None = None

    @property
    def confidential(self) -> bool:
        """A confidential client holds a secret and must authenticate with it."""
        return self.token_endpoint_auth_method in CONFIDENTIAL_METHODS


@dataclass(frozen=True, slots=True)
class ClientSummary:
    """A client as listed for the site owner."""

    record: ClientRecord
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None

    def to_json(self) -> dict[str, object]:
        r = self.record
        return {
            "client_id": r.client_id,
            "name": r.name,
            "kind": r.kind,
            "redirect_uris": list(r.redirect_uris),
            "grant_types": list(r.grant_types),
            "token_endpoint_auth_method": r.token_endpoint_auth_method,
            "client_uri": r.client_uri,
            "registered_by": r.registered_by,
            "created_at": aware(self.created_at).isoformat(),
            "last_used_at": aware(self.last_used_at).isoformat() if self.last_used_at else None,
            "expires_at": aware(self.expires_at).isoformat() if self.expires_at else None,
        }


def _record(row: OAuthClient, registered_by: str | None = None) -> ClientRecord:
    return ClientRecord(
        client_id=row.client_id,
        name=row.name,
        kind=row.kind,
        redirect_uris=tuple(row.redirect_uris or ()),
        grant_types=tuple(row.grant_types or ()),
        token_endpoint_auth_method=row.token_endpoint_auth_method,
        client_uri=row.client_uri,
        logo_uri=row.logo_uri,
        registered_by=registered_by,
    )


def _with_registrant():  # noqa: ANN202 - a SQL statement
    """Clients with the username of whoever registered them (NULL for most)."""
    return select(OAuthClient, User.username).outerjoin(User, User.id == OAuthClient.registered_by)


def redirect_uri_allowed(client: ClientRecord, redirect_uri: str) -> bool:
    """Exact match, except loopback http where any port matches (RFC 8252 §7.3)."""
    return redirect_uri_matches(client.redirect_uris, redirect_uri)


def _unknown(client_id: str) -> OAuthError:
    return OAuthError("invalid_client", f"unknown client {client_id[:200]!r}")


async def resolve_client(
    sessions: async_sessionmaker[AsyncSession],
    client_id: str,
    *,
    settings: Settings,
    ip: str | None = None,
) -> ClientRecord:
    """The client named ``client_id``; ``OAuthError("invalid_client")`` when there is none.

    For a metadata-document URL the cached copy is used until ``refresh_after``; then the
    document is fetched again, within ``core.document_fetch_limits`` (failures cached for up
    to a minute; fetches counted per URL and per ``ip``, the requester's address). If that
    fetch fails or may not be made, a copy we already hold is used (a client must not lose
    its connections because its web server hiccuped); without one the client is unknown
    (``invalid_client``), or ``RateLimited`` when the fetch limit was reached."""
    if not client_id or len(client_id) > 500:
        raise _unknown(client_id)
    async with sessions() as session:
        found = (await session.execute(_with_registrant().where(OAuthClient.client_id == client_id))).first()
    row, registrant = found if found is not None else (None, None)
    if not is_metadata_document_url(client_id, settings):
        if row is None:
            raise _unknown(client_id)
        return _record(row, registrant)
    if row is not None and row.refresh_after is not None and aware(row.refresh_after) > utcnow():
        return _record(row)
    limits = DocumentFetchLimits(sessions, settings)
    try:
        await limits.admit(client_id, ip)
    except RateLimited:
        if row is not None:
            return _record(row)
        raise
    except RecentlyFailed:
        if row is not None:
            return _record(row)
        raise OAuthError(
            "invalid_client", "could not fetch the client metadata document: it failed moments ago; try later"
        ) from None
    try:
        fetched = await fetch_client_metadata_document(client_id, settings)
    except DocumentUnavailable as exc:
        await limits.failed(client_id)
        if row is not None:
            return _record(row)
        raise OAuthError("invalid_client", f"could not fetch the client metadata document: {exc}") from None
    except OAuthError:
        await limits.failed(client_id)
        raise
    return await _store_document(
        sessions, client_id, fetched.metadata, fetched.document, fetched.refresh_after
    )


async def _store_document(
    sessions: async_sessionmaker[AsyncSession],
    client_id: str,
    meta: ClientMetadata,
    document: dict[str, Any],
    refresh_after: datetime,
) -> ClientRecord:
    values = {
        "kind": "metadata_document",
        "name": meta.name,
        "redirect_uris": list(meta.redirect_uris),
        "grant_types": list(meta.grant_types),
        "token_endpoint_auth_method": meta.token_endpoint_auth_method,
        "secret_hash": None,
        "client_uri": meta.client_uri,
        "logo_uri": meta.logo_uri,
        "software_id": meta.software_id,
        "document": document,
        "refresh_after": refresh_after,
    }
    try:
        async with sessions.begin() as session:
            changed = await session.execute(
                update(OAuthClient).where(OAuthClient.client_id == client_id).values(**values)
            )
            if changed.rowcount == 0:
                session.add(OAuthClient(client_id=client_id, **values))
    except IntegrityError:
        pass  # a concurrent request stored the same document first; ours is just as valid
    return ClientRecord(
        client_id,
        meta.name,
        "metadata_document",
        meta.redirect_uris,
        meta.grant_types,
        meta.token_endpoint_auth_method,
        meta.client_uri,
        meta.logo_uri,
    )


# --- registration ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewClient:
    """A client just created; ``secret`` is shown once and never stored in plain."""

    record: ClientRecord
    secret: str | None
    issued_at: datetime


def _new_client_id(kind: str) -> str:
    return ("dyn_" if kind == "dynamic" else "app_") + secrets.token_hex(12)


async def _insert_client(
    sessions: async_sessionmaker[AsyncSession],
    *,
    kind: str,
    meta: ClientMetadata,
    document: dict[str, Any],
    expires_at: datetime | None,
    context: AuditContext | None,
    registered_by: int | None = None,
) -> NewClient:
    """Store the client and its ``client.registered`` event in one transaction."""
    secret = (
        random_secret(CLIENT_SECRET_PREFIX)
        if meta.token_endpoint_auth_method in CONFIDENTIAL_METHODS
        else None
    )
    row = OAuthClient(
        client_id=_new_client_id(kind),
        kind=kind,
        name=meta.name,
        redirect_uris=list(meta.redirect_uris),
        grant_types=list(meta.grant_types),
        token_endpoint_auth_method=meta.token_endpoint_auth_method,
        secret_hash=sha256_hex(secret) if secret else None,
        client_uri=meta.client_uri,
        logo_uri=meta.logo_uri,
        software_id=meta.software_id,
        document=document,
        created_at=utcnow(),
        expires_at=expires_at,
        registered_by=registered_by,
    )
    async with sessions.begin() as session:
        session.add(row)
        via = {"via": context.via} if context is not None and context.via else {}
        record_in(
            session,
            "client.registered",
            context=context,
            detail={
                "client_id": row.client_id,
                "client_name": row.name,
                "kind": kind,
                "redirect_uris": list(meta.redirect_uris),
                "auth_method": meta.token_endpoint_auth_method,
                **via,
            },
        )
    return NewClient(_record(row), secret, row.created_at)


async def register_dynamic_client(
    sessions: async_sessionmaker[AsyncSession],
    document: Mapping[str, Any],
    *,
    settings: Settings,
    context: AuditContext | None = None,
) -> NewClient:
    """RFC 7591 registration: validate, store (secret hashed), start the expiry clock."""
    meta = parse_client_metadata(document)
    stored = {k: v for k, v in document.items() if k not in ("client_secret", "client_id")}
    expires = utcnow() + timedelta(seconds=settings.dynamic_client_ttl_seconds)
    return await _insert_client(
        sessions, kind="dynamic", meta=meta, document=stored, expires_at=expires, context=context
    )


@dataclass(frozen=True, slots=True)
class Registrant:
    """The signed-in person registering a client on the Add Connection page. Their role is
    read from the database when the client is stored: an administrator's client is the site
    owner's; anyone else's is ``user_registered`` and lives ``unused_ttl_seconds`` unused."""

    user_id: int
    unused_ttl_seconds: int


async def _kind_for(
    sessions: async_sessionmaker[AsyncSession], owner_kind: str, registrant: Registrant | None
) -> tuple[str, datetime | None]:
    """The kind and expiry a new client gets: ``owner_kind`` (no expiry) from the CLI or an
    administrator, ``user_registered`` (expiring) from anyone else."""
    if registrant is None:
        return owner_kind, None
    async with sessions() as session:
        role = await session.scalar(select(User.role).where(User.id == registrant.user_id))
    if role == Role.ADMINISTRATOR:
        return owner_kind, None
    return USER_REGISTERED, utcnow() + timedelta(seconds=registrant.unused_ttl_seconds)


async def create_pre_registered_client(
    sessions: async_sessionmaker[AsyncSession],
    *,
    name: str,
    redirect_uris: Iterable[str] = (),
    confidential: bool = False,
    context: AuditContext | None = None,
    registrant: Registrant | None = None,
) -> NewClient:
    """A client created by the site owner, or by ``registrant`` (then ``user_registered``
    unless they are an administrator). Redirect URIs may be empty (e.g. a confidential
    client that only introspects tokens); such a client cannot complete an authorization."""
    uris = tuple(dict.fromkeys(check_redirect_uri(uri) for uri in redirect_uris))
    meta = ClientMetadata(
        name=clean_name(name, "") or "unnamed client",
        redirect_uris=uris,
        grant_types=("authorization_code", "refresh_token"),
        token_endpoint_auth_method="client_secret_basic" if confidential else "none",
    )
    kind, expires = await _kind_for(sessions, "pre_registered", registrant)
    return await _insert_client(
        sessions, kind=kind, meta=meta, document={}, expires_at=expires, context=context,
        registered_by=registrant.user_id if registrant else None,
    )  # fmt: skip


async def create_device_client(
    sessions: async_sessionmaker[AsyncSession],
    *,
    name: str,
    context: AuditContext | None = None,
    registrant: Registrant | None = None,
) -> NewClient:
    """A public client for the device grant only. It has no secret because it runs on
    machines the owner hands out (CI runners, servers): its device codes are bound to it, and
    every connection it gets still needs a person to approve a code in the browser. From a
    non-administrator ``registrant`` it is ``user_registered``, as above."""
    meta = ClientMetadata(
        name=clean_name(name, "") or "unnamed device",
        redirect_uris=(),
        grant_types=(DEVICE_CODE_GRANT, "refresh_token"),
        token_endpoint_auth_method="none",
    )
    kind, expires = await _kind_for(sessions, "device", registrant)
    return await _insert_client(
        sessions, kind=kind, meta=meta, document={}, expires_at=expires, context=context,
        registered_by=registrant.user_id if registrant else None,
    )  # fmt: skip


async def verify_client_secret(
    sessions: async_sessionmaker[AsyncSession], client_id: str, secret: str
) -> bool:
    """Constant-time comparison of SHA-256 digests; a client without a secret never matches."""
    async with sessions() as session:
        stored = await session.scalar(
            select(OAuthClient.secret_hash).where(OAuthClient.client_id == client_id)
        )
    matches = constant_time_equals(sha256_hex(secret), stored or _NO_SECRET_HASH)
    return matches and stored is not None


# --- lifecycle -------------------------------------------------------------------------------


async def note_connection(session: AsyncSession, client_id: str, *, settings: Settings) -> None:
    """Inside the transaction that creates a connection: mark the client used and, for a
    client that expires when unused (dynamic, user-registered), push its expiry forward."""
    now = utcnow()
    await session.execute(
        update(OAuthClient).where(OAuthClient.client_id == client_id).values(last_used_at=now)
    )
    await session.execute(
        update(OAuthClient)
        .where(OAuthClient.client_id == client_id, OAuthClient.kind.in_(EXPIRING_KINDS))
        .values(expires_at=now + timedelta(seconds=settings.dynamic_client_ttl_seconds))
    )


def _has_active_connection():  # noqa: ANN202 - a SQL expression
    return exists().where(Connection.client_id == OAuthClient.client_id, Connection.revoked_at.is_(None))


async def purge_expired_clients(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Delete dynamic and user-registered clients past ``expires_at`` with no active
    connection; return how many."""
    async with sessions.begin() as session:
        result = await session.execute(
            delete(OAuthClient)
            .where(
                OAuthClient.kind.in_(EXPIRING_KINDS),
                OAuthClient.expires_at < utcnow(),
                ~_has_active_connection(),
            )
            .execution_options(synchronize_session=False)
        )
    return result.rowcount or 0


async def list_clients(sessions: async_sessionmaker[AsyncSession]) -> list[ClientSummary]:
    async with sessions() as session:
        rows = (await session.execute(_with_registrant().order_by(OAuthClient.created_at))).all()
    return [ClientSummary(_record(r, who), r.created_at, r.last_used_at, r.expires_at) for r, who in rows]


async def delete_client(
    sessions: async_sessionmaker[AsyncSession],
    client_id: str,
    *,
    audit: AuditLog,
    bus: RevocationBus | None = None,
) -> int:
    """Revoke the client's active connections (each with its audit event), then delete it.
    Returns how many connections were revoked."""
    async with sessions() as session:
        if await session.get(OAuthClient, client_id) is None:
            raise NotFound(f"client {client_id!r} not found")
        active = (
            await session.scalars(
                select(Connection.id).where(
                    Connection.client_id == client_id, Connection.revoked_at.is_(None)
                )
            )
        ).all()
    revoked = 0
    for connection_id in active:
        revoked += await revoke_connection(
            sessions, connection_id, audit=audit, bus=bus, reason="client deleted"
        )
    async with sessions.begin() as session:
        await session.execute(delete(OAuthClient).where(OAuthClient.client_id == client_id))
        audit.record_in(session, "client.deleted", detail={"client_id": client_id})
    return revoked
