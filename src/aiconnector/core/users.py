"""Users: creation, listing, lookup and password sign-in."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.core.audit import AuditContext, record_in
from aiconnector.core.principal import Actor
from aiconnector.core.roles import Role
from aiconnector.db.models import User
from aiconnector.errors import Conflict, InvalidInput, NotFound
from aiconnector.security import hash_password, verify_password

USERNAME_RE = re.compile(r"^[A-Za-z0-9._@-]{1,60}$")
# Password checks at once per process (see ``check_password``); further ones queue.
_ARGON2_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    email: str
    display_name: str
    role: str
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserRecord:
        return cls(user.id, user.username, user.email, user.display_name, user.role, user.created_at)

    def actor(self) -> Actor:
        return Actor(self.id, self.username, self.role)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "display_name": self.display_name,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
        }


def refuse_local_users(site: str) -> None:
    """In front of WordPress, WordPress owns the people: a local user would have no WordPress
    account to act as, and local ids mirror WordPress ids, so none may be made here."""
    if site == "wordpress":
        raise Conflict(
            "People are managed in WordPress: add them there. They appear here after their first "
            "sign-in to AI Connector."
        )


def validate_role(role: str) -> str:
    try:
        return Role(role).value
    except ValueError:
        raise InvalidInput(
            f"unknown role {role!r}; choose one of: {', '.join(r.value for r in Role)}"
        ) from None


async def create_user(
    sessions: async_sessionmaker[AsyncSession],
    username: str,
    *,
    role: str,
    email: str = "",
    display_name: str = "",
    password: str | None = None,
    context: AuditContext | None = None,
) -> UserRecord:
    """Create the user and its ``user.created`` event in one transaction. ``context`` says who
    made them and from where (an administrator in the admin UI); the CLI passes none."""
    if not USERNAME_RE.match(username):
        raise InvalidInput("username must be 1-60 characters: letters, digits, '.', '_', '@' or '-'")
    role = validate_role(role)
    if password is not None and len(password) < 8:
        raise InvalidInput("password must be at least 8 characters")
    user = User(
        username=username,
        role=role,
        email=email,
        display_name=display_name or username,
        password_hash=hash_password(password) if password else None,
    )
    try:
        async with sessions.begin() as session:
            session.add(user)
            await session.flush()
            by = {"by": context.username} if context is not None and context.username else {}
            record_in(
                session,
                "user.created",
                context=context,
                user_id=user.id,
                detail={"username": username, "role": role, **by},
            )
    except IntegrityError:
        raise Conflict(f"user {username!r} already exists") from None
    return UserRecord.of(user)


async def list_users(sessions: async_sessionmaker[AsyncSession]) -> list[UserRecord]:
    async with sessions() as session:
        return [UserRecord.of(u) for u in (await session.scalars(select(User).order_by(User.id))).all()]


async def get_user_by_name(sessions: async_sessionmaker[AsyncSession], username: str) -> UserRecord:
    async with sessions() as session:
        user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} not found")
    return UserRecord.of(user)


async def count_users(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count(User.id))) or 0)


async def check_password(
    sessions: async_sessionmaker[AsyncSession], username: str, password: str
) -> UserRecord | None:
    """The user if the password matches; None otherwise (same cost whether or not they exist).

    Argon2 costs tens of milliseconds of CPU and 64 MiB per check, so it runs off the event
    loop (a burst of sign-ins, or someone flooding /login from many addresses, must not stall
    every other request) in a pool of its own, which also bounds the memory it can take."""
    async with sessions() as session:
        user = await session.scalar(select(User).where(User.username == username))
    matched = await asyncio.get_running_loop().run_in_executor(
        _ARGON2_POOL, verify_password, password, user.password_hash if user else None
    )
    if matched and user is not None:
        return UserRecord.of(user)
    return None


async def first_administrator(sessions: async_sessionmaker[AsyncSession]) -> UserRecord | None:
    """The oldest administrator: demo content is attributed to them."""
    async with sessions() as session:
        user = await session.scalar(
            select(User).where(User.role == "administrator").order_by(User.id).limit(1)
        )
    return UserRecord.of(user) if user else None
