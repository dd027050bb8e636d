"""The whole connector in front of a real WordPress, driven by the official MCP Python SDK.

A WordPress editor signs in with their WordPress password in chromium, consents, and their
agent lists, creates, edits, publishes and deletes posts; WordPress records the editor as the
author. A person demoted to contributor in WordPress is refused publishing by WordPress itself.
Revoking never needs WordPress; a person removed from WordPress gets a clear error."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from aiconnector.core.connections import revoke_connection
from aiconnector.core.secretbox import SecretBox, load_or_create_key
from aiconnector.core.users import list_users
from aiconnector.core.wp_identities import WordPressIdentities
from aiconnector.core.wp_login import WordPressLogin
from aiconnector.core.wp_service import WordPressService
from tests.conftest import LiveServer
from tests.interop.conftest import authorize_in_browser, browser, mcp_client, page, run_server, whoami
from tests.interop.test_python_sdk import Agent
from tests.support import DatabaseUnderTest
from tests.wordpress.instance import WordPressInstance, WordPressUser

__all__ = ["browser", "page"]  # fixtures used by this module


@pytest.fixture(scope="module")
def wp_server(
    database: DatabaseUnderTest, wordpress: WordPressInstance, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with run_server(
        database,
        tmp_path_factory.mktemp("wp-server"),
        site="wordpress",
        demo=False,
        wp_url=wordpress.url,
        wp_user=wordpress.admin.username,
        wp_app_password=wordpress.admin.app_password,
        wp_cache_seconds=0.5,
    ) as server:
        yield server


@dataclass
class PersonAgent(Agent):
    """The SDK agent of one WordPress person: signs in with their WordPress password."""

    person: WordPressUser | None = None

    async def redirect_handler(self, url: str) -> None:
        assert self.person is not None
        self.authorize_urls.append(url)
        self._pending = await authorize_in_browser(
            self.page, url, username=self.person.username, password=self.person.password
        )


@pytest_asyncio.fixture(loop_scope="session")
async def make_agent(page):  # noqa: ANN001, ANN201
    def make(person: WordPressUser) -> PersonAgent:
        return PersonAgent(page, person=person)

    return make


def ok(result) -> dict:  # noqa: ANN001
    assert result.is_error is False, result.content
    return result.structured_content


def error_text(result) -> str:  # noqa: ANN001
    assert result.is_error is True, result.structured_content
    return " ".join(getattr(block, "text", "") for block in result.content)


async def test_a_wordpress_editor_works_on_real_posts_through_the_sdk(
    wp_server: LiveServer,
    wordpress: WordPressInstance,
    make_agent,  # noqa: ANN001
) -> None:
    editor = wordpress.users["editor"]
    agent = make_agent(editor)
    async with agent.connect(wp_server, "legacy") as client:
        me = await whoami(client)
        assert (me["user_id"], me["username"], me["role"]) == (editor.id, editor.username, "editor")
        info = ok(await client.call_tool("site_info", {}))
        assert info["backend"] == "wordpress"

        created = ok(
            await client.call_tool("create_post", {"title": "Written by an agent", "content": "<p>Hi</p>"})
        )
        post_id = created["id"]
        assert created["status"] == "draft" and created["author"]["id"] == editor.id
        edited = ok(await client.call_tool("update_post", {"id": post_id, "title": "Edited by an agent"}))
        assert edited["title"] == "Edited by an agent"
        published = ok(await client.call_tool("publish_post", {"id": post_id}))
        assert published["status"] == "publish"
        listed = ok(await client.call_tool("list_posts", {"search": "Edited by an agent"}))
        assert [p["id"] for p in listed["items"]] == [post_id]

        in_wordpress = wordpress.api("GET", f"posts/{post_id}", params={"context": "edit"}).json()
        assert in_wordpress["status"] == "publish" and in_wordpress["author"] == editor.id
        assert in_wordpress["title"]["raw"] == "Edited by an agent"

        deleted = ok(await client.call_tool("delete_post", {"id": post_id, "permanent": True}))
        assert deleted["permanent"] is True and deleted["post"]["id"] == post_id
    assert wordpress.api("GET", f"posts/{post_id}").status_code == 404
    assert len(agent.authorize_urls) >= 2, "read first, then step-ups to write, publish and delete"


async def test_a_contributor_is_refused_publishing_by_wordpress_itself(
    wp_server: LiveServer,
    wordpress: WordPressInstance,
    make_agent,  # noqa: ANN001
) -> None:
    """An author connects with the publish scope; WordPress then demotes them to contributor.
    Our side still holds the scope (and the old role until the next sign-in), so only
    WordPress stands between the agent and publishing, and it says no."""
    person = wordpress.create_user(f"demoted-{wp_server.database.kind}", "author", "demoted-password-123")
    agent = make_agent(person)
    async with agent.connect(wp_server, "legacy") as client:
        ok(
            await client.call_tool(
                "publish_post", {"id": ok(await client.call_tool("create_post", {"title": "Allowed"}))["id"]}
            )
        )
        demoted = wordpress.api("POST", f"users/{person.id}", json={"roles": ["contributor"]})
        assert demoted.status_code == 200, demoted.text

        refused = await client.call_tool("create_post", {"title": "Not allowed", "status": "publish"})
        message = error_text(refused)
        assert "not allowed" in message.lower() or "sorry" in message.lower(), message
        pending = ok(await client.call_tool("create_post", {"title": "For review", "status": "pending"}))
    assert pending["status"] == "pending"
    mine = wordpress.api(
        "GET", "posts", params={"author": person.id, "status": "publish,pending,draft", "context": "edit"}
    )
    assert sorted((p["title"]["raw"], p["status"]) for p in mine.json()) == [
        ("Allowed", "publish"), ("For review", "pending"),
    ]  # fmt: skip


def sign_in_directly(server: LiveServer, wordpress: WordPressInstance, person: WordPressUser) -> None:
    """What the sign-in page does, done from the test (same database and credentials key)."""

    async def run(rt):  # noqa: ANN001, ANN202
        service = WordPressService(
            wordpress.url, wordpress.admin.username, wordpress.admin.app_password, timeout=10
        )
        try:
            identities = WordPressIdentities(
                rt.sessions,
                login=WordPressLogin(wordpress.url, timeout=10),
                service=service,
                box=SecretBox(load_or_create_key(None, Path(server.settings.data_dir))),
                audit=rt.audit,
            )
            assert await identities.sign_in(person.username, person.password) is not None
        finally:
            await service.aclose()

    server.run(run)


async def status_within(server: LiveServer, headers: dict[str, str], wanted: int, *, seconds: float) -> int:
    """Poll ``/mcp`` until it answers ``wanted`` or time runs out; the last status."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=30) as http:
        while True:
            status = (
                await http.post(
                    server.mcp_url,
                    headers={**headers, "Accept": "application/json, text/event-stream"},
                    json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                )
            ).status_code
            if status == wanted or time.monotonic() > deadline:
                return status
            await asyncio.sleep(0.1)


async def test_revoking_never_needs_wordpress(wp_server: LiveServer, wordpress: WordPressInstance) -> None:
    author = wordpress.users["author"]
    sign_in_directly(wp_server, wordpress, author)
    password = wp_server.app_password(author.username, name="revoked while WordPress is down")
    headers = wp_server.basic_header(author.username, password)
    async with mcp_client(wp_server, headers=headers) as client:
        connection_id = (await whoami(client))["connection_id"]
    wordpress.stop_web()
    try:
        assert wp_server.run(
            lambda rt: revoke_connection(rt.sessions, connection_id, audit=rt.audit, reason="test")
        )
        # Another process revoked it: this server notices through its revocation watcher
        # (NOTIFY on PostgreSQL, a 1 s poll on SQLite), so allow that window.
        assert await status_within(wp_server, headers, 401, seconds=5) == 401
    finally:
        wordpress.start_web()


async def test_a_person_removed_from_wordpress_gets_a_clear_error(
    wp_server: LiveServer, wordpress: WordPressInstance
) -> None:
    person = wordpress.create_user(f"leaver-{wp_server.database.kind}", "editor", "leaver-password-123")
    sign_in_directly(wp_server, wordpress, person)
    password = wp_server.app_password(person.username, name="agent of a leaver")
    async with mcp_client(wp_server, headers=wp_server.basic_header(person.username, password)) as client:
        ok(await client.call_tool("list_posts", {"limit": 1}))
        wordpress.delete_user(person.id)
        message = error_text(await client.call_tool("list_posts", {"limit": 1}))
    assert "sign in" in message.lower() and "wordpress" in message.lower(), message


@pytest.mark.server_errors(status=(503,))  # sign-in while WordPress is down: "not possible right now"
async def test_the_sign_in_page_asks_wordpress(wp_server: LiveServer, wordpress: WordPressInstance) -> None:
    editor = wordpress.users["editor"]
    async with httpx.AsyncClient(base_url=wp_server.base_url, timeout=30) as http:
        form = await http.get("/login")
        token = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        wrong = await http.post(
            "/login", data={"username": editor.username, "password": "nope", "csrf": token}
        )
        assert wrong.status_code == 400 and "Wrong username or password" in wrong.text
        wordpress.stop_web()
        try:
            down = await http.post(
                "/login", data={"username": editor.username, "password": editor.password, "csrf": token}
            )
        finally:
            wordpress.start_web()
        assert down.status_code == 503 and "not possible right now" in down.text
        right = await http.post(
            "/login", data={"username": editor.username, "password": editor.password, "csrf": token}
        )
        assert right.status_code == 303, right.text


async def test_people_are_added_in_wordpress_not_here(
    wp_server: LiveServer, wordpress: WordPressInstance
) -> None:
    admin = wordpress.users["administrator"]
    async with httpx.AsyncClient(base_url=wp_server.base_url, timeout=30) as http:
        login_form = await http.get("/login")
        token = login_form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        signed_in = await http.post(
            "/login", data={"username": admin.username, "password": admin.password, "csrf": token}
        )
        assert signed_in.status_code == 303, signed_in.text
        page = await http.get("/admin/users")
        assert page.status_code == 200 and "People are managed in WordPress" in page.text
        assert 'action="/admin/users"' not in page.text
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        refused = await http.post(
            "/admin/users",
            data={"csrf": csrf, "username": "local-only", "role": "editor", "password": "local-password-1"},
        )
    assert refused.status_code == 400 and "managed in WordPress" in refused.text

    cli = subprocess.run(
        [
            str(Path(sys.executable).parent / "aiconnector"),
            "users",
            "create",
            "local-only",
            "--role",
            "editor",
        ],
        env={
            **os.environ,
            "AICONNECTOR_SITE": "wordpress",
            "AICONNECTOR_DATA_DIR": str(wp_server.settings.data_dir),
            "AICONNECTOR_DATABASE_URL": wp_server.settings.effective_database_url,
        },
        capture_output=True,
        text=True,
    )
    assert cli.returncode != 0 and "managed in WordPress" in cli.stderr, cli.stderr
    assert "local-only" not in {u.username for u in wp_server.run(lambda rt: list_users(rt.sessions))}
