"""What the authorization-server endpoints share: settings, database, audit log, revocation
bus and the failure limiters. Built once in the server's lifespan (the database only exists
there), so routes may be given a zero-argument callable returning it instead of the object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.config import Settings
from aiconnector.core.audit import AuditLog
from aiconnector.core.events import RevocationBus
from aiconnector.core.ratelimit import FailureLimiter
from aiconnector.ops.metrics import Metrics


@dataclass
class OAuthState:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    audit: AuditLog
    bus: RevocationBus
    # Failed client authentications, keyed per address (never per client: see client_auth).
    limiter: FailureLimiter
    # Registrations per address (every registration counts, not only failures).
    registration_limiter: FailureLimiter = field(init=False)
    # Refused client authentications and grants are counted here (``/metrics``).
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        self.registration_limiter = FailureLimiter(
            self.sessions, limit=self.settings.registrations_per_minute
        )

    @classmethod
    def build(
        cls,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        audit: AuditLog,
        bus: RevocationBus,
        metrics: Metrics | None = None,
    ) -> OAuthState:
        """The usual wiring: client-auth failures limited like sign-in failures."""
        limiter = FailureLimiter(sessions, limit=settings.auth_failures_per_minute)
        return cls(settings, sessions, audit, bus, limiter, metrics=metrics or Metrics())


StateSource = OAuthState | Callable[[], OAuthState]
