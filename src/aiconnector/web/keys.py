"""The server's secret key, shared by every instance, and the purpose-bound keys derived from it.

The key signs things the browser carries between our own pages (the pending authorization
request on the consent form, the pre-sign-in CSRF token). Instances behind a load balancer
must agree on it, so it lives in the database (``site_options``, name ``secret_key``), created
on first use with 256 random bits. Creation is an insert that ignores a conflict followed by a
read, so two instances starting together still end up with the same key.

One key is never used for two purposes: each use asks for ``key_for(purpose)``, an HMAC of
the master key and the purpose name, so a signature made for one form cannot be replayed as
another."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.db.models import SiteOption

SECRET_KEY_OPTION = "secret_key"


async def load_or_create_secret_key(sessions: async_sessionmaker[AsyncSession]) -> bytes:
    """The shared master key, created on first use (race-safe across instances)."""
    async with sessions.begin() as session:
        insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        candidate = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")
        await session.execute(
            insert(SiteOption)
            .values(name=SECRET_KEY_OPTION, value=candidate)
            .on_conflict_do_nothing(index_elements=[SiteOption.name])
        )
        stored = await session.scalar(select(SiteOption.value).where(SiteOption.name == SECRET_KEY_OPTION))
    if not stored:
        raise RuntimeError("the secret key could not be stored in site_options")
    return base64.urlsafe_b64decode(stored.encode("ascii"))


class SecretKeys:
    """Loads the master key once per process and hands out keys derived for one purpose."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._master: bytes | None = None
        self._lock = asyncio.Lock()

    async def key_for(self, purpose: str) -> bytes:
        if self._master is None:
            async with self._lock:
                if self._master is None:
                    self._master = await load_or_create_secret_key(self._sessions)
        return hmac.new(self._master, f"aiconnector:{purpose}".encode(), hashlib.sha256).digest()
