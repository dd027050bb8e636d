"""Application passwords: long random secrets sent as HTTP Basic ``username:password``.

Each one is its own connection (method ``application_password``), so it shows up, is scoped
and is revoked like any other agent. Only the SHA-256 of the password is stored (see
docs/security.md for why a fast hash is right for random secrets)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.core.audit import AuditLog
from aiconnector.core.connections import new_connection, revoke_connection
from aiconnector.core.events import RevocationBus
from aiconnector.core.principal import Actor, Principal
from aiconnector.core.scopes import ALL_SCOPES, format_scopes
from aiconnector.db.models import AppPassword, Connection, User
from aiconnector.errors import InvalidInput, NotFound
from aiconnector.security import APP_PASSWORD_PREFIX, constant_time_equals, random_secret, sha256_hex

METHOD = "application_password"


@dataclass(frozen=True, slots=True)
class AppPasswordRecord:
    id: int
    username: str
    name: str
    hint: str
    connection_id: str
    scopes: str
    created_at: datetime
    last_used_at: datetime | None
    last_ip: str | None
    revoked: bool
    # The owner's id, so a page can ask ``AdminUser.may_manage`` before revoking or rotating.
    user_id: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "username": self.username,
            "name": self.name,
            "hint": self.hint,
            "connection_id": self.connection_id,
            "scopes": self.scopes.split(),
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "last_ip": self.last_ip,
            "status": "revoked" if self.revoked else "active",
        }


async def create_app_password(
    sessions: async_sessionmaker[AsyncSession],
    username: str,
    *,
    name: str,
    scopes: frozenset[str] | None = None,
    audit: AuditLog,
) -> tuple[str, AppPasswordRecord]:
    """Create the password and its connection in one transaction; return the plain password
    (shown once, never stored) and the record. Without ``scopes`` the password may do
    whatever the user's role allows."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("name must be 1-200 characters")
    scope_text = format_scopes(scopes if scopes else ALL_SCOPES)
    password = random_secret(APP_PASSWORD_PREFIX)
    async with sessions.begin() as session:
        user = await session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"user {username!r} not found")
        conn = new_connection(user_id=user.id, agent_name=name, method=METHOD, scopes=scope_text)
        session.add(conn)
        await session.flush()
        row = AppPassword(
            user_id=user.id,
            connection_id=conn.id,
            name=name,
            secret_hash=sha256_hex(password),
            hint=password[len(APP_PASSWORD_PREFIX) : len(APP_PASSWORD_PREFIX) + 4],
        )
        session.add(row)
        audit.record_in(
            session,
            "connection.created",
            user_id=user.id,
            connection_id=conn.id,
            detail={"method": METHOD, "agent_name": name, "scopes": scope_text},
        )
        await session.flush()
        record = AppPasswordRecord(
            row.id, username, name, row.hint, conn.id, scope_text, row.created_at, None, None, False, user.id
        )
    return password, record


def _listing() -> Select[Any]:
    """Passwords with their owner and connection. "Last used" and "last address" fall back to
    the connection's activity, which the activity tracker keeps current on every request."""
    return (
        select(
            AppPassword,
            User.username,
            Connection.scopes,
            Connection.revoked_at,
            func.coalesce(AppPassword.last_used_at, Connection.last_active_at),
            func.coalesce(AppPassword.last_ip, Connection.last_ip),
        )
        .join(User, User.id == AppPassword.user_id)
        .join(Connection, Connection.id == AppPassword.connection_id)
        .order_by(AppPassword.id)
    )


def _from_row(row: Any) -> AppPasswordRecord:
    p, uname, scopes, revoked_at, last_used_at, last_ip = row
    return AppPasswordRecord(
        p.id,
        uname,
        p.name,
        p.hint,
        p.connection_id,
        scopes,
        p.created_at,
        last_used_at,
        last_ip,
        revoked_at is not None,
        p.user_id,
    )


async def list_app_passwords(
    sessions: async_sessionmaker[AsyncSession], username: str | None = None
) -> list[AppPasswordRecord]:
    stmt = _listing()
    if username is not None:
        stmt = stmt.where(User.username == username)
    async with sessions() as session:
        rows = (await session.execute(stmt)).all()
    return [_from_row(row) for row in rows]


async def get_app_password(
    sessions: async_sessionmaker[AsyncSession], app_password_id: int
) -> AppPasswordRecord:
    """One password by id (``NotFound`` if there is none), so a page can check its owner."""
    async with sessions() as session:
        row = (await session.execute(_listing().where(AppPassword.id == app_password_id))).first()
    if row is None:
        raise NotFound(f"application password {app_password_id} not found")
    return _from_row(row)


async def rotate_app_password(
    sessions: async_sessionmaker[AsyncSession],
    app_password_id: int,
    *,
    audit: AuditLog,
    bus: RevocationBus | None = None,
    rotated_by: int | None = None,
) -> tuple[str, AppPasswordRecord]:
    """Replace a password with a new one of the same name, owner and scopes, then revoke the
    old one (reason "rotated"). The new one is created first, so a failure part-way leaves the
    owner with a working password rather than none. A revoked password cannot be rotated:
    that would bring back access someone deliberately removed."""
    old = await get_app_password(sessions, app_password_id)
    if old.revoked:
        raise InvalidInput("a revoked application password cannot be rotated; create a new one")
    password, new = await create_app_password(
        sessions, old.username, name=old.name, scopes=frozenset(old.scopes.split()), audit=audit
    )
    await revoke_connection(
        sessions, old.connection_id, audit=audit, bus=bus, revoked_by=rotated_by, reason="rotated"
    )
    return password, new


async def connection_of(sessions: async_sessionmaker[AsyncSession], app_password_id: int) -> str:
    async with sessions() as session:
        connection_id = await session.scalar(
            select(AppPassword.connection_id).where(AppPassword.id == app_password_id)
        )
    if connection_id is None:
        raise NotFound(f"application password {app_password_id} not found")
    return connection_id


async def verify_app_password(
    sessions: async_sessionmaker[AsyncSession], username: str, password: str
) -> Principal | None:
    """The principal for a valid, unrevoked password of this user; None otherwise.

    The lookup is by hash (an indexed equality on a digest of a random secret leaks nothing
    useful through timing); the username is then compared in constant time."""
    if not password.startswith(APP_PASSWORD_PREFIX):
        return None
    async with sessions() as session:
        row = (
            await session.execute(
                select(User, Connection)
                .join(AppPassword, AppPassword.user_id == User.id)
                .join(Connection, Connection.id == AppPassword.connection_id)
                .where(AppPassword.secret_hash == sha256_hex(password))
            )
        ).first()
    if row is None:
        return None
    user, conn = row
    if not constant_time_equals(user.username, username) or conn.revoked_at is not None:
        return None

    return Principal(
        actor=Actor(user.id, user.username, user.role),
        connection_id=conn.id,
        method=METHOD,
        scopes=frozenset(conn.scopes.split()),
        agent_name=conn.agent_name,
        display_name=user.display_name or user.username,
    )
