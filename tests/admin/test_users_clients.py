"""The administrators' Users and Clients pages (/admin/users, /admin/clients), on both
databases: access control, the create-user form (CSRF required, validation, audit), client
details and connections, deleting a client revoking its connections (checked through core),
empty states, and both pages in a real browser at 1280 and 390 px wide."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from aiconnector.core.clients import list_clients
from aiconnector.core.connections import list_connections, new_connection
from aiconnector.core.users import list_users
from aiconnector.db.models import AuditEvent, OAuthClient, utcnow
from tests.admin.conftest import USER_PASSWORD, admin_client, csrf_of, ensure_user, shot, signed_in_page
from tests.conftest import LiveServer

DESK_CLIENT = "dyn_test_desk"
SCRIPT_CLIENT = "app_test_script"


def add_client(server: LiveServer, client_id: str, *, name: str, kind: str, owners: list[int]) -> list[str]:
    """A client with one connection per owner (plus one revoked for the first); their ids."""

    async def make(rt: Any) -> list[str]:  # noqa: ANN401 - Runtime
        conns = [
            new_connection(
                user_id=uid,
                agent_name=f"{name} agent {i}",
                method="oauth",
                scopes="content:read",
                client_id=client_id,
            )
            for i, uid in enumerate(owners)
        ]
        revoked = new_connection(
            user_id=owners[0],
            agent_name=f"{name} old",
            method="oauth",
            scopes="content:read",
            client_id=client_id,
        )
        revoked.revoked_at = utcnow()
        async with rt.sessions.begin() as session:
            session.add(
                OAuthClient(
                    client_id=client_id,
                    kind=kind,
                    name=name,
                    redirect_uris=["http://127.0.0.1/callback", "https://desk.example/oauth/cb"],
                    grant_types=["authorization_code", "refresh_token"],
                    token_endpoint_auth_method="none",
                    document={},
                )
            )
            session.add_all([*conns, revoked])
        return [c.id for c in conns]

    return server.run(make)


def test_pages_need_an_administrator(live_server: LiveServer) -> None:
    ensure_user(live_server, "bob", role="editor")
    with admin_client(live_server, "bob", USER_PASSWORD) as client:
        token = csrf_of(client.get("/admin/audit").text)
        for path in ("/admin/users", "/admin/clients"):
            assert client.get(path).status_code == 403
            assert (
                client.post(path, data={"csrf": token, "username": "x", "client_id": "x"}).status_code == 403
            )
        assert 'href="/admin/clients"' not in client.get("/admin/audit").text
    with httpx.Client(base_url=live_server.base_url) as anonymous:
        assert anonymous.get("/admin/users").status_code == 303


def test_clients_empty_state(live_server: LiveServer, browser: Any) -> None:  # noqa: ANN401
    """Runs before any client is added in this module (module-scoped server, fresh database)."""
    for width, height in ((1280, 800), (390, 844)):
        page = signed_in_page(browser, live_server, width=width, height=height, next_path="/admin/clients")
        try:
            assert page.get_by_text("No clients are registered yet.").is_visible()
            shot(page, live_server, f"admin-clients-empty-{width}")
        finally:
            page.context.close()


def test_users_list_roles_and_connection_counts(live_server: LiveServer) -> None:
    carol = ensure_user(live_server, "carol", role="contributor")

    async def connect(rt: Any) -> None:  # noqa: ANN401
        async with rt.sessions.begin() as session:
            for i in range(2):
                session.add(
                    new_connection(user_id=carol, agent_name=f"c{i}", method="oauth", scopes="content:read")
                )

    live_server.run(connect)
    with admin_client(live_server) as client:
        html = client.get("/admin/users").text
    row = re.search(r"<strong>carol</strong>.*?</tr>", html, re.S)
    assert row, html
    assert "contributor" in row.group(0) and "2 active" in row.group(0)
    assert "<strong>admin</strong>" in html


def test_create_user_requires_csrf(live_server: LiveServer) -> None:
    with admin_client(live_server) as client:
        form = {"username": "forged", "role": "administrator", "email": "", "password": "long-enough-pw"}
        assert client.post("/admin/users", data=form).status_code == 403
        assert client.post("/admin/users", data={**form, "csrf": "not-the-token"}).status_code == 403
    assert "forged" not in {u.username for u in live_server.run(lambda rt: list_users(rt.sessions))}


def test_create_user_validates_and_audits(live_server: LiveServer) -> None:
    with admin_client(live_server) as client:
        token = csrf_of(client.get("/admin/users").text)
        base = {"csrf": token, "role": "author", "email": "dora@example.com"}
        short = client.post("/admin/users", data={**base, "username": "dora", "password": "short"})
        assert short.status_code == 400 and "at least 8 characters" in short.text
        assert 'value="dora"' in short.text and "short" not in re.findall(r'value="([^"]*)"', short.text)
        bad_role = client.post(
            "/admin/users", data={**base, "username": "dora", "password": "x" * 12, "role": "root"}
        )
        assert bad_role.status_code == 400 and "unknown role" in bad_role.text
        made = client.post("/admin/users", data={**base, "username": "dora", "password": "dora-password-1"})
        assert made.status_code == 303 and made.headers["location"] == "/admin/users?created=dora"
        assert "User <strong>dora</strong> was created" in client.get(made.headers["location"]).text
        again = client.post("/admin/users", data={**base, "username": "dora", "password": "dora-password-1"})
        assert again.status_code == 400 and "already exists" in again.text
    dora = next(u for u in live_server.run(lambda rt: list_users(rt.sessions)) if u.username == "dora")
    assert (dora.role, dora.email) == ("author", "dora@example.com")
    with admin_client(live_server, "dora", "dora-password-1") as client:
        assert client.get("/admin/audit").status_code == 200, "the new user can sign in"

    async def created_events(rt: Any) -> list[AuditEvent]:  # noqa: ANN401
        from sqlalchemy import select

        async with rt.sessions() as session:
            return list(await session.scalars(select(AuditEvent).where(AuditEvent.user_id == dora.id)))

    for _ in range(50):  # the server's audit writer flushes in batches
        events = [e for e in live_server.run(created_events) if e.event == "user.created"]
        if events:
            break
    assert events
    detail = dict(events[0].detail)
    assert detail.pop("request_id")  # made while serving the admin's request (ops.request_id)
    assert detail == {"username": "dora", "role": "author", "by": "admin"}
    assert "dora-password-1" not in repr(events[0].detail)


def test_clients_page_shows_details_and_connections(live_server: LiveServer) -> None:
    alice = ensure_user(live_server, "alice")
    add_client(
        live_server, SCRIPT_CLIENT, name="<b>Owner's</b> script", kind="pre_registered", owners=[alice]
    )
    with admin_client(live_server) as client:
        html = client.get("/admin/clients").text
    assert "&lt;b&gt;Owner&#39;s&lt;/b&gt; script" in html and "<b>Owner" not in html
    assert "Added by the site owner" in html
    assert "https://desk.example/oauth/cb" in html
    assert "1 active, 1 revoked" in html
    assert re.search(r'<time datetime="[^"]+Z">', html)


def test_delete_client_needs_csrf_and_revokes_its_connections(live_server: LiveServer) -> None:
    admin_id = ensure_user(live_server, "admin")
    alice = ensure_user(live_server, "alice")
    conn_ids = add_client(
        live_server, "dyn_to_delete", name="Doomed app", kind="dynamic", owners=[admin_id, alice]
    )
    with admin_client(live_server) as client:
        assert client.post("/admin/clients", data={"client_id": "dyn_to_delete"}).status_code == 403
        token = csrf_of(client.get("/admin/clients").text)
        done = client.post("/admin/clients", data={"client_id": "dyn_to_delete", "csrf": token})
        assert done.status_code == 303 and done.headers["location"] == "/admin/clients?deleted=1&revoked=2"
        assert "2 connections were revoked" in client.get(done.headers["location"]).text
        gone = client.post("/admin/clients", data={"client_id": "dyn_to_delete", "csrf": token})
        assert gone.headers["location"] == "/admin/clients?missing=1"
    assert "dyn_to_delete" not in {
        c.record.client_id for c in live_server.run(lambda rt: list_clients(rt.sessions))
    }
    connections = live_server.run(lambda rt: list_connections(rt.sessions))
    revoked = {c.id: c for c in connections if c.id in conn_ids}
    assert len(revoked) == 2 and all(
        not c.active and c.revoke_reason == "client deleted" for c in revoked.values()
    )


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
def test_users_page_in_a_browser(live_server: LiveServer, browser: Any, width: int, height: int) -> None:  # noqa: ANN401
    page = signed_in_page(browser, live_server, width=width, height=height, next_path="/admin/users")
    username = f"erin{width}"
    try:
        page.get_by_label("Username").fill(username)
        page.get_by_label("Role").select_option("editor")
        page.get_by_label("Email").fill(f"{username}@example.com")
        page.get_by_label("Password").fill("erin-password-123")
        page.keyboard.press("Enter")  # the form submits from the keyboard
        page.wait_for_url(re.compile(r".*created="))
        assert page.get_by_role("status").get_by_text(username).is_visible()
        assert page.evaluate(
            "document.querySelector('main').scrollWidth <= document.querySelector('main').clientWidth"
        )
        shot(page, live_server, f"admin-users-{width}")
    finally:
        page.context.close()
    assert username in {u.username for u in live_server.run(lambda rt: list_users(rt.sessions))}


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
def test_delete_client_in_a_browser(live_server: LiveServer, browser: Any, width: int, height: int) -> None:  # noqa: ANN401
    alice = ensure_user(live_server, "alice")
    client_id = f"{DESK_CLIENT}_{width}"
    conn_ids = add_client(live_server, client_id, name=f"Desk {width}", kind="dynamic", owners=[alice])
    page = signed_in_page(browser, live_server, width=width, height=height, next_path="/admin/clients")
    try:
        card = page.locator("article", has_text=client_id)
        assert card.get_by_text("Registered itself").is_visible()
        assert card.get_by_text(f"Desk {width} agent 0").is_visible()
        shot(page, live_server, f"admin-clients-{width}")
        card.get_by_text("Delete this client…").click()
        button = card.get_by_role("button", name=f"Delete Desk {width} and revoke 1 connection")
        assert button.is_visible()
        shot(page, live_server, f"admin-clients-confirm-{width}")
        button.click()
        page.wait_for_url(re.compile(r".*deleted=1"))
        assert page.get_by_text("1 connection was revoked").is_visible()
        assert page.locator("article", has_text=client_id).count() == 0
    finally:
        page.context.close()
    connections = live_server.run(lambda rt: list_connections(rt.sessions, user_id=alice))
    assert all(not c.active for c in connections if c.id in conn_ids)
