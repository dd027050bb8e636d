"""WordPress people signing in to the connector, against a real WordPress (SQLite and PostgreSQL).

What is proven here: WordPress, not us, decides whether a password is right; the person is
mirrored under their WordPress id with the role their capabilities give; their own
"AI Connector" Application Password is created once, sealed at rest, reused, and replaced when
it was revoked in WordPress; an outage is reported as an outage, never as a wrong password."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select, update

from aiconnector.config import Settings
from aiconnector.core.audit import AuditFilter
from aiconnector.core.principal import Actor
from aiconnector.core.secretbox import SecretBox, generate_key, parse_key
from aiconnector.core.wp_identities import WordPressIdentities
from aiconnector.core.wp_login import WordPressLogin
from aiconnector.core.wp_service import APP_PASSWORD_NAME, WordPressService
from aiconnector.db.models import User, WordPressIdentity
from aiconnector.errors import NotAllowed, SiteUnavailable
from aiconnector.runtime import Runtime, open_runtime
from tests.support import DatabaseUnderTest
from tests.wordpress.instance import WordPressInstance

# One key for the module, like one server's: the database (and what is sealed in it) lives as
# long as the module.
MODULE_KEY = parse_key(generate_key())


@dataclass
class Parts:
    rt: Runtime
    identities: WordPressIdentities
    service: WordPressService
    key: bytes


def build(
    rt: Runtime, wordpress: WordPressInstance, key: bytes, service: WordPressService
) -> WordPressIdentities:
    return WordPressIdentities(
        rt.sessions,
        login=WordPressLogin(wordpress.url, timeout=10),
        service=service,
        box=SecretBox(key),
        audit=rt.audit,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def parts(
    database: DatabaseUnderTest,
    wordpress: WordPressInstance,
    tmp_path,  # noqa: ANN001
) -> AsyncIterator[Parts]:
    settings = Settings(data_dir=tmp_path, database_url=database.url, site="wordpress")
    async with open_runtime(settings) as rt:
        service = WordPressService(
            wordpress.url, wordpress.admin.username, wordpress.admin.app_password, timeout=10
        )
        key = MODULE_KEY
        try:
            yield Parts(rt, build(rt, wordpress, key, service), service, key)
        finally:
            await service.aclose()


def our_passwords(wordpress: WordPressInstance, user_id: int) -> list[dict]:
    found = wordpress.api("GET", f"users/{user_id}/application-passwords").json()
    return [p for p in found if p["name"] == APP_PASSWORD_NAME]


def whoami_in_wordpress(wordpress: WordPressInstance, login: str, app_password: str) -> httpx.Response:
    return httpx.get(f"{wordpress.url}/wp-json/wp/v2/users/me", auth=(login, app_password), timeout=30)


async def stored(rt: Runtime, user_id: int) -> WordPressIdentity | None:
    async with rt.sessions() as session:
        return await session.get(WordPressIdentity, user_id)


async def test_sign_in_mirrors_the_person_under_their_wordpress_id(
    parts: Parts, wordpress: WordPressInstance
) -> None:
    for role in ("editor", "contributor", "administrator"):
        person = wordpress.users[role]
        user = await parts.identities.sign_in(person.username, person.password)
        assert user is not None
        assert (user.id, user.username, user.role, user.email) == (
            person.id,
            person.username,
            role,
            person.email,
        )


async def test_a_wrong_password_is_refused_by_wordpress_and_creates_nothing(
    parts: Parts, wordpress: WordPressInstance
) -> None:
    author = wordpress.users["author"]
    assert await parts.identities.sign_in(author.username, author.password + "x") is None
    assert await parts.identities.sign_in("nobody-here", "whatever-password") is None
    # The application password is for REST, not for signing in.
    assert await parts.identities.sign_in(author.username, author.app_password) is None
    async with parts.rt.sessions() as session:
        assert await session.get(User, author.id) is None


async def test_an_email_address_signs_in_as_the_canonical_login(
    parts: Parts, wordpress: WordPressInstance
) -> None:
    author = wordpress.users["author"]
    user = await parts.identities.sign_in(author.email, author.password)
    assert user is not None and user.username == author.username and user.id == author.id


async def test_the_persons_own_password_is_created_once_sealed_and_works(
    parts: Parts, wordpress: WordPressInstance
) -> None:
    editor = wordpress.users["editor"]
    await parts.identities.sign_in(editor.username, editor.password)
    row = await stored(parts.rt, editor.id)
    assert row is not None
    login, app_password = await parts.identities.credentials_for(Actor(editor.id, editor.username, "editor"))
    assert login == editor.username
    assert app_password.replace(" ", "").encode() not in row.app_password_encrypted
    assert app_password.encode() not in row.app_password_encrypted
    me = whoami_in_wordpress(wordpress, login, app_password)
    assert me.status_code == 200 and me.json()["id"] == editor.id

    await parts.identities.sign_in(editor.username, editor.password)  # a second sign-in reuses it
    again = await stored(parts.rt, editor.id)
    assert again is not None and again.app_password_uuid == row.app_password_uuid
    assert [p["uuid"] for p in our_passwords(wordpress, editor.id)] == [row.app_password_uuid]


async def test_a_password_revoked_in_wordpress_is_replaced_at_the_next_sign_in(
    parts: Parts, wordpress: WordPressInstance
) -> None:
    contributor = wordpress.users["contributor"]
    await parts.identities.sign_in(contributor.username, contributor.password)
    before = await stored(parts.rt, contributor.id)
    assert before is not None
    gone = wordpress.api("DELETE", f"users/{contributor.id}/application-passwords/{before.app_password_uuid}")
    assert gone.status_code == 200, gone.text

    await parts.identities.sign_in(contributor.username, contributor.password)
    after = await stored(parts.rt, contributor.id)
    assert after is not None and after.app_password_uuid != before.app_password_uuid
    assert [p["uuid"] for p in our_passwords(wordpress, contributor.id)] == [after.app_password_uuid]
    _, app_password = await parts.identities.credentials_for(
        Actor(contributor.id, contributor.username, "contributor")
    )
    assert whoami_in_wordpress(wordpress, contributor.username, app_password).status_code == 200
    await parts.rt.audit.flush()
    matching = AuditFilter(events=("wordpress.app_password_created",), user_id=contributor.id)
    events = [e async for e in parts.rt.audit.iter_matching(matching)]
    assert [e.detail["replaced"] for e in events] == [True, False]  # newest first
    assert all(set(e.detail) == {"username", "uuid", "replaced"} for e in events)  # no secret


async def test_credentials_do_not_open_on_another_row_or_with_another_key(
    parts: Parts, wordpress: WordPressInstance
) -> None:
    editor, author = wordpress.users["editor"], wordpress.users["author"]
    for person in (editor, author):
        await parts.identities.sign_in(person.username, person.password)
    editor_row = await stored(parts.rt, editor.id)
    assert editor_row is not None
    async with parts.rt.sessions.begin() as session:  # an attacker with write access swaps ciphertexts
        await session.execute(
            update(WordPressIdentity)
            .where(WordPressIdentity.user_id == author.id)
            .values(app_password_encrypted=editor_row.app_password_encrypted)
        )
    parts.identities.forget(author.id)
    with pytest.raises(NotAllowed, match="cannot be decrypted"):
        await parts.identities.credentials_for(Actor(author.id, author.username, "author"))

    other_key = build(parts.rt, wordpress, parse_key(generate_key()), parts.service)
    with pytest.raises(NotAllowed, match="AICONNECTOR_CREDENTIALS_KEY"):
        await other_key.credentials_for(Actor(editor.id, editor.username, "editor"))


async def test_no_credentials_without_a_sign_in(parts: Parts, wordpress: WordPressInstance) -> None:
    subscriber = wordpress.users["subscriber"]
    with pytest.raises(NotAllowed, match="sign in to AI Connector"):
        await parts.identities.credentials_for(Actor(subscriber.id, subscriber.username, "subscriber"))


async def test_a_reused_login_keeps_the_old_persons_history_apart(
    parts: Parts, wordpress: WordPressInstance, database: DatabaseUnderTest
) -> None:
    login = f"reused-login-{database.kind}"
    first = wordpress.create_user(login, "author", "first-password-123")
    assert await parts.identities.sign_in(first.username, first.password) is not None
    wordpress.delete_user(first.id)
    second = wordpress.create_user(login, "editor", "second-password-123")
    user = await parts.identities.sign_in(second.username, second.password)
    assert user is not None and user.id == second.id != first.id and user.role == "editor"
    async with parts.rt.sessions() as session:
        old = await session.scalar(select(User).where(User.id == first.id))
    assert old is not None and old.username == f"{login}~removed-{first.id}"


async def test_wordpress_down_is_an_outage_not_a_wrong_password(
    parts: Parts, wordpress: WordPressInstance
) -> None:
    editor = wordpress.users["editor"]
    wordpress.stop_web()
    try:
        with pytest.raises(SiteUnavailable):
            await parts.identities.sign_in(editor.username, editor.password)
    finally:
        wordpress.start_web()
    assert await parts.identities.sign_in(editor.username, editor.password) is not None
