"""Single-use nonces for forms that must not be posted twice (the consent page).

A signed form field proves that this site made the form, for whom and until when; it cannot
prove that the form was not posted already. The nonce inside it is therefore *spent* on the
first POST: its SHA-256 is inserted into ``spent_nonces`` under a primary key, so of two posts
(also concurrent ones, also on two instances) exactly one inserts it. The row is kept until
the form would have expired anyway, then purged."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.db.models import SpentNonce, utcnow
from aiconnector.security import sha256_hex


def new_nonce() -> str:
    """128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


async def spend_nonce(
    sessions: async_sessionmaker[AsyncSession], purpose: str, nonce: str, *, expires_at: datetime
) -> bool:
    """True the first time ``nonce`` is spent for ``purpose``; False every time after."""
    key = sha256_hex(f"{purpose}:{nonce}")
    try:
        async with sessions.begin() as session:
            await session.execute(delete(SpentNonce).where(SpentNonce.expires_at < utcnow()))
            session.add(SpentNonce(key=key, expires_at=expires_at))
    except IntegrityError:
        return False
    return True
