"""Application passwords: generation, storage as hashes only, verification, revocation."""

from __future__ import annotations

import math
import secrets

from sqlalchemy import select, text

from aiconnector.core import app_passwords, connections, users
from aiconnector.core.scopes import ALL_SCOPES
from aiconnector.db.models import AppPassword
from aiconnector.security import _ALPHABET, APP_PASSWORD_PREFIX


async def make_user(rt, role: str = "editor") -> str:  # noqa: ANN001
    name = f"u{secrets.token_hex(4)}"
    await users.create_user(rt.sessions, name, role=role)
    return name


async def test_password_is_long_prefixed_and_stored_only_as_hash(rt) -> None:  # noqa: ANN001
    name = await make_user(rt)
    password, record = await app_passwords.create_app_password(
        rt.sessions, name, name="Cursor", audit=rt.audit
    )
    assert password.startswith(APP_PASSWORD_PREFIX)
    body = password[len(APP_PASSWORD_PREFIX) :]
    assert len(body) * math.log2(len(_ALPHABET)) >= 128
    assert record.hint == body[:4]
    async with rt.sessions() as session:
        row = await session.scalar(select(AppPassword).where(AppPassword.id == record.id))
        dump = " ".join(str(v) for v in (await session.execute(text("SELECT * FROM app_passwords"))).all())
    assert row is not None and row.secret_hash != password and len(row.secret_hash) == 64
    assert body not in dump, "the plain password must never be stored"


async def test_each_password_is_its_own_connection_with_all_scopes_by_default(rt) -> None:  # noqa: ANN001
    name = await make_user(rt)
    _, first = await app_passwords.create_app_password(rt.sessions, name, name="one", audit=rt.audit)
    _, second = await app_passwords.create_app_password(
        rt.sessions, name, name="two", scopes=frozenset({"content:read"}), audit=rt.audit
    )
    assert first.connection_id != second.connection_id
    assert first.scopes.split() == list(ALL_SCOPES)
    assert second.scopes == "content:read"
    conn = await connections.get_connection(rt.sessions, second.connection_id)
    assert conn.method == "application_password" and conn.agent_name == "two" and conn.active


async def test_verify_checks_username_and_revocation(rt) -> None:  # noqa: ANN001
    name = await make_user(rt, "author")
    password, record = await app_passwords.create_app_password(
        rt.sessions, name, name="agent", audit=rt.audit
    )
    principal = await app_passwords.verify_app_password(rt.sessions, name, password)
    assert principal is not None
    assert principal.actor.username == name and principal.actor.role == "author"
    assert principal.connection_id == record.connection_id
    assert await app_passwords.verify_app_password(rt.sessions, "someone-else", password) is None
    assert await app_passwords.verify_app_password(rt.sessions, name, password + "x") is None
    assert await app_passwords.verify_app_password(rt.sessions, name, "not-a-password") is None

    assert await connections.revoke_connection(
        rt.sessions, record.connection_id, audit=rt.audit, reason="test"
    )
    assert await app_passwords.verify_app_password(rt.sessions, name, password) is None
    # Revoking twice is harmless and says so.
    assert not await connections.revoke_connection(rt.sessions, record.connection_id, audit=rt.audit)


async def test_revocation_is_audited_in_the_same_transaction(rt) -> None:  # noqa: ANN001
    name = await make_user(rt)
    _, record = await app_passwords.create_app_password(rt.sessions, name, name="agent", audit=rt.audit)
    await connections.revoke_connection(
        rt.sessions, record.connection_id, audit=rt.audit, revoked_by=1, reason="lost laptop"
    )
    events = await rt.audit.query(connection_id=record.connection_id)
    kinds = [e.event for e in events]
    assert kinds == ["connection.revoked", "connection.created"]
    assert events[0].detail["reason"] == "lost laptop"
    listed = await app_passwords.list_app_passwords(rt.sessions, name)
    assert [p.revoked for p in listed] == [True]
