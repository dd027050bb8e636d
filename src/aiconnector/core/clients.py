"""OAuth clients: who may ask for codes and tokens, and where codes may be sent.

Clients come in four kinds (``oauth_clients.kind``):

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
from aiconnector.core.audit import AuditLog
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
from aiconnector.core.events import RevocationBus
from aiconnector.core.redirect_uris import check_redirect_uri, redirect_uri_matches
from aiconnector.db.models import Connection, OAuthClient, utcnow
from aiconnector.errors import NotFound, OAuthError
from aiconnector.security import constant_time_equals, random_secret, sha256_hex

CLIENT_SECRET_PREFIX = "aic_cs_"
CONFIDENTIAL_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
# Compared against when a client has no secret, so timing does not tell the two apart.
_NO_SECRET_HASH = sha256_hex(secrets.token_hex(32))


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every timestamp we store is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ClientRecord:
    client_id: str
    name: str
    kind: str  # dynamic | metadata_document | pre_registered | device
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    token_endpoint_auth_method: str
    client_uri: str | None
    logo_uri: str | None

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
            "created_at": aware(self.created_at).isoformat(),
            "last_used_at": aware(self.last_used_at).isoformat() if self.last_used_at else None,
            "expires_at": aware(self.expires_at).isoformat() if self.expires_at else None,
        }


def _record(row: OAuthClient) -> ClientRecord:
    return ClientRecord(
        client_id=row.client_id,
        name=row.name,
        kind=row.kind,
        redirect_uris=tuple(row.redirect_uris or ()),
        grant_types=tuple(row.grant_types or ()),
        token_endpoint_auth_method=row.token_endpoint_auth_method,
        client_uri=row.client_uri,
        logo_uri=row.logo_uri,
    )


def redirect_uri_allowed(client: ClientRecord, redirect_uri: str) -> bool:
    """Exact match, except loopback http where any port matches (RFC 8252 §7.3)."""
    return redirect_uri_matches(client.redirect_uris, redirect_uri)


def _unknown(client_id: str) -> OAuthError:
    return OAuthError("invalid_client", f"unknown client {client_id[:200]!r}")


async def resolve_client(
    sessions: async_sessionmaker[AsyncSession], client_id: str, *, settings: Settings
) -> ClientRecord:
    """The client named ``client_id``; ``OAuthError("invalid_client")`` when there is none.

    For a metadata-document URL the cached copy is used until ``refresh_after``; then the
    document is fetched again. If that fetch fails, a copy we already hold is used (a client
    must not lose its connections because its web server hiccuped); without one the client is
    unknown."""
    if not client_id or len(client_id) > 500:
        raise _unknown(client_id)
    async with sessions() as session:
        row = await session.get(OAuthClient, client_id)
    if not is_metadata_document_url(client_id, settings):
        if row is None:
            raise _unknown(client_id)
        return _record(row)
    if row is not None and row.refresh_after is not None and aware(row.refresh_after) > utcnow():
        return _record(row)
    try:
        fetched = await fetch_client_metadata_document(client_id, settings)
    except DocumentUnavailable as exc:
        if row is not None:
            return _record(row)
        raise OAuthError("invalid_client", f"could not fetch the client metadata document: {exc}") from None
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
) -> NewClient:
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
    )
    async with sessions.begin() as session:
        session.add(row)
    return NewClient(_record(row), secret, row.created_at)


async def register_dynamic_client(
    sessions: async_sessionmaker[AsyncSession], document: Mapping[str, Any], *, settings: Settings
) -> NewClient:
    """RFC 7591 registration: validate, store (secret hashed), start the expiry clock."""
    meta = parse_client_metadata(document)
    stored = {k: v for k, v in document.items() if k not in ("client_secret", "client_id")}
    expires = utcnow() + timedelta(seconds=settings.dynamic_client_ttl_seconds)
    return await _insert_client(sessions, kind="dynamic", meta=meta, document=stored, expires_at=expires)


async def create_pre_registered_client(
    sessions: async_sessionmaker[AsyncSession],
    *,
    name: str,
    redirect_uris: Iterable[str] = (),
    confidential: bool = False,
) -> NewClient:
    """A client created by the site owner. Redirect URIs may be empty (e.g. a confidential
    client that only introspects tokens); such a client cannot complete an authorization."""
    uris = tuple(dict.fromkeys(check_redirect_uri(uri) for uri in redirect_uris))
    meta = ClientMetadata(
        name=clean_name(name, "") or "unnamed client",
        redirect_uris=uris,
        grant_types=("authorization_code", "refresh_token"),
        token_endpoint_auth_method="client_secret_basic" if confidential else "none",
    )
    return await _insert_client(sessions, kind="pre_registered", meta=meta, document={}, expires_at=None)


async def create_device_client(sessions: async_sessionmaker[AsyncSession], *, name: str) -> NewClient:
    """A public client for the device grant only. It has no secret because it runs on
    machines the owner hands out (CI runners, servers): its device codes are bound to it, and
    every connection it gets still needs a person to approve a code in the browser."""
    meta = ClientMetadata(
        name=clean_name(name, "") or "unnamed device",
        redirect_uris=(),
        grant_types=(DEVICE_CODE_GRANT, "refresh_token"),
        token_endpoint_auth_method="none",
    )
    return await _insert_client(sessions, kind="device", meta=meta, document={}, expires_at=None)


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
    dynamic client, push its expiry forward."""
    now = utcnow()
    await session.execute(
        update(OAuthClient).where(OAuthClient.client_id == client_id).values(last_used_at=now)
    )
    await session.execute(
        update(OAuthClient)
        .where(OAuthClient.client_id == client_id, OAuthClient.kind == "dynamic")
        .values(expires_at=now + timedelta(seconds=settings.dynamic_client_ttl_seconds))
    )


def _has_active_connection():  # noqa: ANN202 - a SQL expression
    return exists().where(Connection.client_id == OAuthClient.client_id, Connection.revoked_at.is_(None))


async def purge_expired_clients(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Delete dynamic clients past ``expires_at`` with no active connection; return how many."""
    async with sessions.begin() as session:
        result = await session.execute(
            delete(OAuthClient)
            .where(
                OAuthClient.kind == "dynamic",
                OAuthClient.expires_at < utcnow(),
                ~_has_active_connection(),
            )
            .execution_options(synchronize_session=False)
        )
    return result.rowcount or 0


async def list_clients(sessions: async_sessionmaker[AsyncSession]) -> list[ClientSummary]:
    async with sessions() as session:
        rows = (await session.scalars(select(OAuthClient).order_by(OAuthClient.created_at))).all()
    return [ClientSummary(_record(r), r.created_at, r.last_used_at, r.expires_at) for r in rows]


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
        session.add(audit.event_row("client.deleted", detail={"client_id": client_id}))
    return revoked
