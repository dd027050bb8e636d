"""Authenticating requests to /mcp: HTTP Basic application passwords now, Bearer tokens once
the authorization server lands.

Verified credentials are cached in memory for a short time, keyed by a digest of the whole
Authorization header, so the hot path costs one dictionary lookup. The cache is dropped per
connection as soon as the revocation bus reports a revoke, and its lifetime bounds how long a
revoke that the bus somehow missed can go unnoticed."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.core.app_passwords import verify_app_password
from aiconnector.core.audit import AuditLog
from aiconnector.core.connections import ActivityTracker
from aiconnector.core.principal import Principal
from aiconnector.core.ratelimit import FailureLimiter, address_bucket
from aiconnector.core.tokens import verify_access_token
from aiconnector.db.models import utcnow
from aiconnector.errors import AuthenticationFailed, RateLimited
from aiconnector.ops.metrics import AuthFailure, Metrics
from aiconnector.security import sha256_hex
from aiconnector.storable import is_storable


@dataclass(slots=True)
class _Cached:
    principal: Principal
    expires: float


def parse_basic(header: str) -> tuple[str, str]:
    """Decode ``Basic base64(user:password)``; raise AuthenticationFailed when malformed."""
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise AuthenticationFailed("malformed Basic credentials") from None
    if not is_storable(raw):  # a NUL in the username would reach the database: a 500 on PostgreSQL
        raise AuthenticationFailed("malformed Basic credentials")
    username, sep, password = raw.partition(":")
    if not sep or not username or not password:
        raise AuthenticationFailed("malformed Basic credentials: expected username:password")
    return username, password


class RequestAuthenticator:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        audit: AuditLog,
        limiter: FailureLimiter,
        activity: ActivityTracker,
        resource: str,
        cache_seconds: float = 30.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics or Metrics()
        self._audit = audit
        self._limiter = limiter
        self._activity = activity
        self._resource = resource
        self._cache_seconds = cache_seconds
        self._cache: dict[str, _Cached] = {}
        # Bumped by every ``forget_connection``. A verification that started before a revoke
        # may finish after it with the old answer; it is then returned but not cached, so the
        # request after the revoke is checked against the database again.
        self._epoch = 0

    def forget_connection(self, connection_id: str) -> None:
        """Revocation-bus listener: drop every cached credential of the connection."""
        self._epoch += 1
        for key in [k for k, v in self._cache.items() if v.principal.connection_id == connection_id]:
            del self._cache[key]

    async def __call__(
        self, authorization: str | None, client_ip: str, user_agent: str | None = None
    ) -> Principal:
        if not authorization:
            self._metrics.auth_failure(AuthFailure.MISSING_CREDENTIALS)
            raise AuthenticationFailed("authentication required")
        key = sha256_hex(authorization)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached.expires > now:
            self._activity.touch(cached.principal.connection_id, client_ip)
            return cached.principal
        scheme = authorization[:7].lower()
        lifetime = self._cache_seconds
        epoch = self._epoch
        if scheme.startswith("basic "):
            principal = await self._basic(authorization, client_ip, user_agent)
        elif scheme == "bearer ":
            principal, expires = await self._bearer(authorization[7:].strip(), client_ip, user_agent)
            # Never remember an access token past its own expiry.
            lifetime = min(lifetime, (expires - utcnow()).total_seconds())
        else:
            self._metrics.auth_failure(AuthFailure.MALFORMED_CREDENTIALS)
            raise AuthenticationFailed("unsupported authorization scheme; use Bearer or Basic")
        if len(self._cache) > 10_000:
            self._cache = {k: v for k, v in self._cache.items() if v.expires > now}
        if epoch == self._epoch:
            self._cache[key] = _Cached(principal, now + lifetime)
        self._activity.touch(principal.connection_id, client_ip)
        return principal

    async def _bearer(self, token: str, client_ip: str, user_agent: str | None) -> tuple[Principal, datetime]:
        """Access tokens are 186 random bits: guessing is hopeless, so failures are audited but
        never limited, neither per user nor per address. An expired token is the common,
        innocent failure, and its 401 ``invalid_token`` is what makes a client refresh: a 429
        there would let a flood from a shared address (NAT, untrusted proxy) stop everyone
        behind it from refreshing. A flood costs one indexed lookup per request either way."""
        verified = await verify_access_token(self._sessions, token, resource=self._resource)
        if verified is None:
            self._metrics.auth_failure(AuthFailure.BAD_BEARER_TOKEN)
            self._audit.record(
                "auth.failure",
                outcome="failure",
                ip=client_ip,
                user_agent=user_agent,
                detail={"method": "bearer", "reason": "invalid, expired or revoked access token"},
            )
            raise AuthenticationFailed("invalid or expired access token")
        principal, expires = verified
        self._audit.record(
            "auth.success",
            user_id=principal.actor.user_id,
            connection_id=principal.connection_id,
            ip=client_ip,
            user_agent=user_agent,
            detail={"method": principal.method},
        )
        return principal, expires

    async def _basic(self, authorization: str, client_ip: str, user_agent: str | None) -> Principal:
        """The password is checked first, whatever the failure counts say: a right application
        password (186 random bits) is never refused because others failed from its address or
        for its username. Only failures are limited (``_refuse_basic``)."""
        try:
            username, password = parse_basic(authorization)
        except AuthenticationFailed as exc:
            raise await self._refuse_basic(
                client_ip, user_agent, AuthFailure.MALFORMED_CREDENTIALS, {"reason": exc.message}
            ) from None
        principal = await verify_app_password(self._sessions, username, password)
        if principal is None:
            raise await self._refuse_basic(
                client_ip,
                user_agent,
                AuthFailure.BAD_APP_PASSWORD,
                {"username": username, "reason": "wrong username or application password"},
            )
        self._audit.record(
            "auth.success",
            user_id=principal.actor.user_id,
            connection_id=principal.connection_id,
            ip=client_ip,
            user_agent=user_agent,
            detail={"method": principal.method},
        )
        return principal

    async def _refuse_basic(
        self, client_ip: str, user_agent: str | None, kind: AuthFailure, detail: dict[str, str]
    ) -> AuthenticationFailed:
        """Count a refused Basic credential against its address (never its username: that
        would let anyone lock a user's agents out). Past the address's limit the answer is
        429 with ``Retry-After`` instead of 401, and is not audited again, so a flood neither
        buries the audit log nor writes a counter row per request; guessing a 186-bit secret
        is hopeless anyway, so the limit only tames floods and broken scripts."""
        keys = [f"ip:{address_bucket(client_ip)}"]
        try:
            await self._limiter.check(keys)
        except RateLimited:
            self._metrics.auth_failure(AuthFailure.RATE_LIMITED)
            raise
        self._metrics.auth_failure(kind)
        await self._limiter.record_failure(keys)
        self._audit.record(
            "auth.failure",
            outcome="failure",
            ip=client_ip,
            user_agent=user_agent,
            detail={"method": "application_password", **detail},
        )
        return AuthenticationFailed(detail["reason"])
