"""WordPress people as connector users: sign-in, the local mirror, and their own credentials.

When the connector fronts WordPress, WordPress owns the people. Signing in (the sign-in page,
consent, device verification) asks WordPress whether the password is right
(``core/wp_login.py``), then mirrors the person into our ``users`` table *under their
WordPress user id*, so ids in tool results, ``whoami`` and our audit log all agree, with the
role their WordPress capabilities give them.

On first sign-in the service account creates the person's own Application Password named
"AI Connector"; it is sealed with the credentials key (``core/secretbox.py``) and every tool
call for that person runs with it, so WordPress enforces their real capabilities and records
them as the author. Later sign-ins check the stored password still works and replace it if
it was revoked in WordPress. Revoking a connection is ours alone and never calls WordPress."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.core.audit import AuditLog
from aiconnector.core.principal import Actor
from aiconnector.core.secretbox import SecretBox, SecretBoxError
from aiconnector.core.users import UserRecord
from aiconnector.core.wp_login import WordPressLogin
from aiconnector.core.wp_service import WordPressAccount, WordPressService
from aiconnector.db.models import User, WordPressIdentity, utcnow
from aiconnector.errors import NotAllowed


def seal_context(user_id: int) -> str:
    return f"wordpress:user:{user_id}"


@dataclass(frozen=True, slots=True)
class _Cached:
    login: str
    app_password: str
    expires_at: float


class WordPressIdentities:
    """Signs people in against WordPress and hands the backend their credentials."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        login: WordPressLogin,
        service: WordPressService,
        box: SecretBox,
        audit: AuditLog,
        cache_seconds: float = 60.0,
    ) -> None:
        self._sessions = sessions
        self._login = login
        self._service = service
        self._box = box
        self._audit = audit
        self._cache_seconds = cache_seconds
        self._cache: dict[int, _Cached] = {}

    @property
    def site_url(self) -> str:
        return self._service.base_url

    async def sign_in(self, username: str, password: str) -> UserRecord | None:
        """The mirrored user when WordPress accepts the password, else None. Raises
        ``SiteUnavailable`` when WordPress cannot be asked (never reported as a wrong password)."""
        login = await self._login.verify(username, password)
        if login is None:
            return None
        account = await self._service.find_account(login)
        if account is None:  # accepted a moment ago, gone now: treat as a failed sign-in
            return None
        user = await self._mirror(account)
        await self._ensure_app_password(account)
        return user

    async def credentials_for(self, actor: Actor) -> tuple[str, str]:
        cached = self._cache.get(actor.user_id)
        if cached is not None and cached.expires_at > time.monotonic():
            return cached.login, cached.app_password
        async with self._sessions() as session:
            row = await session.get(WordPressIdentity, actor.user_id)
        if row is None or row.site_url != self.site_url:
            raise NotAllowed(
                f"{actor.username} has no WordPress credentials on this connector yet: "
                "sign in to AI Connector with your WordPress account, then connect again."
            )
        try:
            app_password = self._box.open(row.app_password_encrypted, context=seal_context(row.user_id))
        except SecretBoxError:
            raise NotAllowed(
                "The stored WordPress credentials cannot be decrypted with this server's credentials "
                "key (AICONNECTOR_CREDENTIALS_KEY must be the same on every instance); sign in again."
            ) from None
        self._cache[actor.user_id] = _Cached(
            row.wp_login, app_password, time.monotonic() + self._cache_seconds
        )
        return row.wp_login, app_password

    def forget(self, user_id: int) -> None:
        self._cache.pop(user_id, None)

    async def _mirror(self, account: WordPressAccount) -> UserRecord:
        """Create or refresh the local user whose id is the WordPress id."""
        async with self._sessions.begin() as session:
            clash = await session.scalar(
                select(User).where(User.username == account.login, User.id != account.id)
            )
            if clash is not None:
                # The login belonged to a WordPress user that has since been deleted (and the
                # name reused): keep the old row's history under a name that cannot sign in.
                clash.username = f"{clash.username[:40]}~removed-{clash.id}"
                await session.flush()
            user = await session.get(User, account.id)
            if user is None:
                user = User(id=account.id, username=account.login, password_hash=None, role=account.role)
                session.add(user)
            user.username = account.login
            user.email = account.email
            user.display_name = account.display_name
            user.role = account.role
            await session.flush()
            return UserRecord.of(user)

    async def _ensure_app_password(self, account: WordPressAccount) -> None:
        async with self._sessions() as session:
            stored = await session.get(WordPressIdentity, account.id)
        if stored is not None and stored.site_url == self.site_url:
            if await self._stored_password_works(stored, account.login):
                if stored.wp_login != account.login:
                    await self._save(account, stored.app_password_uuid, None)
                return
            await self._service.delete_app_password(account.id, stored.app_password_uuid)
        uuid, app_password = await self._service.create_app_password(account.id)
        await self._save(account, uuid, app_password, replaced=stored is not None)

    async def _stored_password_works(self, stored: WordPressIdentity, login: str) -> bool:
        try:
            app_password = self._box.open(stored.app_password_encrypted, context=seal_context(stored.user_id))
        except SecretBoxError:
            return False
        return await self._service.app_password_works(login, app_password)

    async def _save(
        self, account: WordPressAccount, uuid: str, app_password: str | None, *, replaced: bool = False
    ) -> None:
        """Upsert the identity; ``app_password`` None keeps the sealed password and renames. A
        new password is audited (``wordpress.app_password_created``) in the same transaction."""
        async with self._sessions.begin() as session:
            row = await session.get(WordPressIdentity, account.id)
            if row is None:
                row = WordPressIdentity(user_id=account.id, created_at=utcnow())
                session.add(row)
            row.site_url = self.site_url
            row.wp_login = account.login
            row.app_password_uuid = uuid
            if app_password is not None:
                row.app_password_encrypted = self._box.seal(app_password, context=seal_context(account.id))
                self._audit.record_in(
                    session,
                    "wordpress.app_password_created",
                    user_id=account.id,
                    detail={"username": account.login, "uuid": uuid, "replaced": replaced},
                )
            row.updated_at = utcnow()
        self.forget(account.id)
