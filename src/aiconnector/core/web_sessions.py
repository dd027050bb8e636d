"""Signed-in browsers: the server-side half of the ``aic_session`` cookie.

The cookie holds 256 random bits; only their SHA-256 is stored, so a copy of the database
cannot be replayed as a browser session. Sessions expire at a fixed time after sign-in
(no sliding refresh: a stolen cookie stops working on schedule however busy it is kept), and
sign-in always creates a new one (no session fixation). Each session carries its own secret
from which its CSRF token is derived (see ``aiconnector.web.csrf``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.core.users import UserRecord
from aiconnector.db.models import User, WebSession, utcnow
from aiconnector.security import sha256_hex

DEFAULT_LIFETIME = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class WebSessionRecord:
    """A live session and the user it belongs to (loaded together: every page needs both)."""

    id_hash: str
    user: UserRecord
    csrf_secret: str
    created_at: datetime
    expires_at: datetime


async def create_web_session(
    sessions: async_sessionmaker[AsyncSession],
    user_id: int,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> str:
    """Start a session for ``user_id``; return the cookie value (shown once, never stored)."""
    cookie_value = secrets.token_urlsafe(32)
    now = utcnow()
    async with sessions.begin() as session:
        session.add(
            WebSession(
                id_hash=sha256_hex(cookie_value),
                user_id=user_id,
                csrf_secret=secrets.token_hex(32),
                created_at=now,
                expires_at=now + lifetime,
                ip=(ip or "")[:64] or None,
                user_agent=(user_agent or "")[:300] or None,
            )
        )
    return cookie_value


async def load_web_session(
    sessions: async_sessionmaker[AsyncSession], cookie_value: str | None
) -> WebSessionRecord | None:
    """The live session the cookie names, or None (absent, unknown, expired)."""
    if not cookie_value or len(cookie_value) > 200:
        return None
    async with sessions() as session:
        row = (
            await session.execute(
                select(WebSession, User)
                .join(User, User.id == WebSession.user_id)
                .where(WebSession.id_hash == sha256_hex(cookie_value), WebSession.expires_at > utcnow())
            )
        ).first()
    if row is None:
        return None
    web, user = row
    return WebSessionRecord(web.id_hash, UserRecord.of(user), web.csrf_secret, web.created_at, web.expires_at)


async def end_web_session(sessions: async_sessionmaker[AsyncSession], cookie_value: str | None) -> bool:
    """Delete the session the cookie names (sign-out, or a new sign-in replacing it)."""
    if not cookie_value:
        return False
    async with sessions.begin() as session:
        result = await session.execute(
            delete(WebSession).where(WebSession.id_hash == sha256_hex(cookie_value))
        )
    return bool(result.rowcount)


async def end_user_web_sessions(sessions: async_sessionmaker[AsyncSession], user_id: int) -> int:
    """Sign a user out everywhere (password change, account removal)."""
    async with sessions.begin() as session:
        result = await session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    return int(result.rowcount or 0)


async def purge_expired_web_sessions(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Remove expired rows; they are already ignored, this only keeps the table small."""
    async with sessions.begin() as session:
        result = await session.execute(delete(WebSession).where(WebSession.expires_at <= utcnow()))
    return int(result.rowcount or 0)
