"""How often anyone can make this server fetch a Client ID Metadata Document.

A metadata-document ``client_id`` is a URL chosen by whoever sends it, and every request that
names one this server does not hold a fresh copy of costs an outbound HTTPS fetch (up to 5 s
and 64 KiB). Without limits, ``/oauth/authorize`` and the token endpoint would fetch on
every request naming a failing URL, or a new URL each time. So, in the database (shared by
every instance, like the other limits):

* **failures are cached**: after a fetch fails (unreachable, refused, invalid document) that
  URL is not fetched again until the current minute ends (at most ``FAILURE_CACHE_SECONDS``);
* **fetches are counted** per URL and per client address: past
  ``metadata_fetches_per_minute`` in a minute no further fetch is made (a copy already held is
  used instead; without one the request is refused with 429).

A successful fetch is cached by ``core.client_metadata`` for 5 min – 24 h, so a client that
works is never slowed by these limits."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.config import Settings
from aiconnector.core.ratelimit import FailureLimiter
from aiconnector.errors import RateLimited
from aiconnector.security import sha256_hex

FAILURE_CACHE_SECONDS = 60


class RecentlyFailed(Exception):
    """The document's last fetch failed moments ago; it is not fetched again yet."""


def _url_key(prefix: str, client_id: str) -> str:
    return f"{prefix}:{sha256_hex(client_id)}"  # client ids run to 500 characters; keys to 200


class DocumentFetchLimits:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._failures = FailureLimiter(sessions, limit=1, window_seconds=FAILURE_CACHE_SECONDS)
        self._fetches = FailureLimiter(sessions, limit=settings.metadata_fetches_per_minute)

    async def admit(self, client_id: str, ip: str | None) -> None:
        """Count a fetch about to be made; raise ``RecentlyFailed`` or ``RateLimited`` when it
        must not be made."""
        try:
            await self._failures.check([_url_key("cimd-failed", client_id)])
        except RateLimited:
            raise RecentlyFailed from None
        keys = [_url_key("cimd-fetch", client_id)] + ([f"cimd-fetch-ip:{ip}"] if ip else [])
        try:
            await self._fetches.check(keys)
        except RateLimited as exc:
            raise RateLimited(
                f"too many client metadata document fetches; try again in {exc.retry_after} s",
                exc.retry_after,
            ) from None
        await self._fetches.record_failure(keys)  # every fetch counts, as registrations do

    async def failed(self, client_id: str) -> None:
        """Remember that fetching ``client_id`` just failed."""
        await self._failures.record_failure([_url_key("cimd-failed", client_id)])
