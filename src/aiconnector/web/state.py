"""What the sign-in and consent pages need from the running server, in one object.

Built once in the app's lifespan (``WebState.create``) and passed to ``web_routes``; tests build
their own, so each test server can have its own limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.config import Settings
from aiconnector.core.audit import AuditLog
from aiconnector.core.events import RevocationBus
from aiconnector.core.login_limits import LoginGuard, LoginLimits
from aiconnector.core.users import UserRecord, check_password
from aiconnector.ops.metrics import Metrics
from aiconnector.web.keys import SecretKeys

# Checks a username and password; the user when they match. The built-in site checks our own
# Argon2 hashes; in front of WordPress, WordPress checks them (``core/wp_identities.py``).
PasswordCheck = Callable[[str, str], Awaitable[UserRecord | None]]


@dataclass
class WebState:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    audit: AuditLog
    # Failed sign-ins, counted so that guessing is slow but cannot lock the real person out.
    login_guard: LoginGuard
    keys: SecretKeys
    # Revocations and changes made from the browser reach caches and in-flight requests here.
    bus: RevocationBus = field(default_factory=RevocationBus)
    check_password: PasswordCheck | None = None
    # Refused sign-ins and device codes are counted here (``/metrics``).
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        if self.check_password is None:
            self.check_password = partial(check_password, self.sessions)

    @property
    def site_host(self) -> str:
        """The public host[:port], shown in every page's header so people see which site asks."""
        return urlsplit(self.settings.origin).netloc

    @classmethod
    def create(
        cls,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        audit: AuditLog,
        *,
        login_limits: LoginLimits | None = None,
        bus: RevocationBus | None = None,
        check_password: PasswordCheck | None = None,
        metrics: Metrics | None = None,
    ) -> WebState:
        return cls(
            settings=settings,
            sessions=sessions,
            audit=audit,
            login_guard=LoginGuard(sessions, login_limits),
            keys=SecretKeys(sessions),
            bus=bus or RevocationBus(),
            check_password=check_password,
            metrics=metrics or Metrics(),
        )
