"""The connections pages over HTTP against the full server (both databases): who may see and
change what (checked on the server), filters and keyset pages, the live feed, rename,
narrowing (which reaches live access tokens and the very next request), revoke, CSRF."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from aiconnector.core.connections import get_connection, list_connections
from aiconnector.core.tokens import verify_access_token
from aiconnector.db.models import OAuthToken
from tests.admin.conftest import USER_PASSWORD, admin_client, csrf_of, ensure_user
from tests.conftest import LiveServer
from tests.support import mint_oauth_connection


def connection_id(server: LiveServer, name: str) -> str:
    rows = server.run(lambda rt: list_connections(rt.sessions))
    return next(c.id for c in rows if c.agent_name == name)


def rows_of(html: str) -> list[str]:
    return re.findall(r'<tr data-id="([^"]+)"', html)


def mcp_call(server: LiveServer, password: str, tool: str, arguments: dict[str, Any]) -> httpx.Response:
    """One legacy-era tools/call with an application password of the admin."""
    return httpx.post(
        server.mcp_url,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        },
        headers={
            **server.basic_header("admin", password),
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
        },
        timeout=30,
    )


def test_sign_in_required_and_admin_redirect(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.base_url) as anonymous:
        response = anonymous.get("/admin/connections?status=active")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=%2Fadmin%2Fconnections")
        assert anonymous.get("/admin/connections.json").status_code == 303
    with admin_client(live_server) as client:
        home = client.get("/admin")
        assert home.status_code == 303 and home.headers["location"] == "/admin/connections"
        page = client.get("/admin/connections")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text, "no inline script under the strict CSP"
        assert 'src="/static/admin-connections.js"' in page.text


def test_users_see_and_revoke_only_their_own(live_server: LiveServer) -> None:
    ensure_user(live_server, "olga", "author")
    ensure_user(live_server, "pete", "author")
    live_server.app_password("olga", name="olga agent")
    live_server.app_password("pete", name="pete agent")
    pete_conn = connection_id(live_server, "pete agent")
    with admin_client(live_server, "olga", USER_PASSWORD) as olga:
        page = olga.get("/admin/connections", params={"user": "1"})  # cannot widen to others
        assert "olga agent" in page.text and "pete agent" not in page.text
        assert 'id="f-user"' not in page.text, "no user filter for non-administrators"
        feed = olga.get("/admin/connections.json").json()
        assert {c["username"] for c in feed["connections"]} == {"olga"}
        assert olga.get(f"/admin/connections/{pete_conn}").status_code == 404
        csrf = csrf_of(page.text)
        refused = olga.post(f"/admin/connections/{pete_conn}/revoke", data={"csrf": csrf})
        assert refused.status_code == 404
        assert live_server.run(lambda rt: get_connection(rt.sessions, pete_conn)).active
        # Narrowing is for administrators only, even on one's own connection.
        own = connection_id(live_server, "olga agent")
        narrowed = olga.post(f"/admin/connections/{own}/scopes", data={"csrf": csrf, "scope": "content:read"})
        assert narrowed.status_code == 403
        assert olga.post(f"/admin/connections/{own}/revoke", data={"csrf": csrf}).status_code == 303
        assert not live_server.run(lambda rt: get_connection(rt.sessions, own)).active
    with admin_client(live_server) as admin:
        everyone = admin.get("/admin/connections").text
        assert "olga agent" in everyone and "pete agent" in everyone


def test_csrf_is_required_on_every_form(live_server: LiveServer) -> None:
    live_server.app_password(name="csrf target")
    conn = connection_id(live_server, "csrf target")
    with admin_client(live_server) as client:
        for action, data in (
            ("revoke", {}),
            ("name", {"name": "x"}),
            ("scopes", {"scope": "content:read"}),
        ):
            for token in (None, "forged"):
                body = {**data, **({"csrf": token} if token else {})}
                assert client.post(f"/admin/connections/{conn}/{action}", data=body).status_code == 403
    record = live_server.run(lambda rt: get_connection(rt.sessions, conn))
    assert record.active and record.agent_name == "csrf target"


def test_filters_search_and_keyset_pages(live_server: LiveServer) -> None:
    ensure_user(live_server, "quinn", "editor")
    names = [f"pager bot {i:02d}" for i in range(57)]
    for name in names:
        live_server.app_password("quinn", name=name)
    with admin_client(live_server) as client:
        first = client.get("/admin/connections", params={"q": "PAGER BOT"})
        ids_first = rows_of(first.text)
        assert len(ids_first) == 50
        older = re.search(r'href="([^"]+)" rel="next"', first.text)
        assert older, "an Older link when there are more rows"
        second = client.get(older.group(1).replace("&amp;", "&"))
        ids_second = rows_of(second.text)
        assert len(ids_second) == 7 and not set(ids_first) & set(ids_second)
        assert 'rel="next"' not in second.text
        newer = re.search(r'href="([^"]+)" rel="prev"', second.text)
        assert newer
        back = client.get(newer.group(1).replace("&amp;", "&"))
        assert rows_of(back.text) == ids_first
        # Newest first across both pages: the last created comes first.
        shown = [re.sub(r"<[^>]+>", "", n) for n in re.findall(r'class="name"[^>]*>([^<]+)<', first.text)]
        assert shown[0] == "pager bot 56"
        # Search is a literal substring: % and _ are not wildcards.
        assert rows_of(client.get("/admin/connections", params={"q": "pager%bot"}).text) == []
        # Method, user and status filters.
        quinn_id = ensure_user(live_server, "quinn", "editor")
        only_quinn = client.get("/admin/connections.json", params={"user": quinn_id}).json()
        assert {c["username"] for c in only_quinn["connections"]} == {"quinn"}
        by_method = client.get("/admin/connections.json", params={"method": "oauth"}).json()
        assert all(c["method"] == "oauth" for c in by_method["connections"])
        target = connection_id(live_server, "pager bot 03")
        csrf = csrf_of(first.text)
        client.post(f"/admin/connections/{target}/revoke", data={"csrf": csrf, "reason": "Laptop lost"})
        revoked = client.get("/admin/connections", params={"status": "revoked", "q": "pager"})
        assert rows_of(revoked.text) == [target]
        assert "Laptop lost" in revoked.text and "by admin" in revoked.text
        active = client.get("/admin/connections.json", params={"status": "active", "q": "pager"}).json()
        assert target not in {c["id"] for c in active["connections"]}
        empty = client.get("/admin/connections", params={"q": "no such agent"})
        assert "No connections match these filters" in empty.text


def test_feed_signature_changes_when_a_connection_appears(live_server: LiveServer) -> None:
    with admin_client(live_server) as client:
        before = client.get("/admin/connections.json").json()
        live_server.app_password(name="fresh arrival")
        after = client.get("/admin/connections.json").json()
        assert after["signature"] != before["signature"]
        assert after["connections"][0]["agent_name"] == "fresh arrival"
        page = client.get("/admin/connections")
        assert f'data-signature="{after["signature"]}"' in page.text


def test_rename_and_narrow_apply_to_the_next_request(live_server: LiveServer) -> None:
    password = live_server.app_password(name="narrow me")
    conn = connection_id(live_server, "narrow me")
    # Authenticate once so the server caches the credential with all scopes.
    created = mcp_call(live_server, password, "create_post", {"title": "a"})
    assert created.json()["result"]["isError"] is False
    with admin_client(live_server) as client:
        detail = client.get(f"/admin/connections/{conn}")
        csrf = csrf_of(detail.text)
        assert 'name="scope" value="content:write" checked' in detail.text
        renamed = client.post(
            f"/admin/connections/{conn}/name", data={"csrf": csrf, "name": "  Renamed   agent "}
        )
        assert renamed.status_code == 303
        assert (
            client.post(f"/admin/connections/{conn}/name", data={"csrf": csrf, "name": " "}).status_code
            == 400
        )
        narrowed = client.post(
            f"/admin/connections/{conn}/scopes", data={"csrf": csrf, "scope": ["content:read"]}
        )
        assert narrowed.status_code == 303
        shown = client.get(narrowed.headers["location"]).text
        assert "Scopes narrowed" in shown and "Renamed agent" in shown
        widened = client.post(
            f"/admin/connections/{conn}/scopes", data={"csrf": csrf, "scope": ["content:read", "site:admin"]}
        )
        assert widened.status_code == 400 and "only be narrowed" in widened.text
    record = live_server.run(lambda rt: get_connection(rt.sessions, conn))
    assert record.agent_name == "Renamed agent" and record.scopes == "content:read"
    refused = mcp_call(live_server, password, "create_post", {"title": "b"})
    assert refused.status_code == 403 and "Insufficient scope" in refused.text


def test_narrowing_narrows_live_access_tokens(live_server: LiveServer) -> None:
    """Access tokens carry their own scopes; narrowing the connection narrows them too."""
    settings = live_server.settings

    async def make_token(rt: Any) -> tuple[str, str]:  # noqa: ANN401
        connection_id, pair = await mint_oauth_connection(
            rt.sessions,
            settings,
            scopes="content:read content:write",
            resource=settings.mcp_url,
            agent_name="oauth narrow",
        )
        return connection_id, pair.access_token

    conn, token = live_server.run(make_token)
    with admin_client(live_server) as client:
        csrf = csrf_of(client.get(f"/admin/connections/{conn}").text)
        client.post(f"/admin/connections/{conn}/scopes", data={"csrf": csrf, "scope": "content:read"})

    async def check(rt: Any) -> tuple[frozenset[str], set[str]]:  # noqa: ANN401
        principal, _ = await verify_access_token(rt.sessions, token, resource=settings.mcp_url)
        async with rt.sessions() as session:
            stored = set(
                await session.scalars(select(OAuthToken.scopes).where(OAuthToken.connection_id == conn))
            )
        return principal.scopes, stored

    scopes, stored = live_server.run(check)
    assert scopes == {"content:read"} and stored == {"content:read"}


def test_detail_page_chart_calls_and_audit(live_server: LiveServer) -> None:
    password = live_server.app_password(name="busy agent")
    conn = connection_id(live_server, "busy agent")
    for _ in range(3):
        assert mcp_call(live_server, password, "list_posts", {"limit": 1}).status_code == 200
    with admin_client(live_server) as client:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            page = client.get(f"/admin/connections/{conn}")
            if page.text.count(">list_posts<") >= 3:
                break
            time.sleep(0.2)
        assert page.text.count(">list_posts<") == 3, "recent tool calls from the audit log"
        assert '<svg class="chart"' in page.text and "3 requests in total" in page.text
        month = client.get(f"/admin/connections/{conn}", params={"range": "30d"})
        assert "per day" in month.text and "3 requests in total" in month.text
        confirm = client.get(f"/admin/connections/{conn}/revoke")
        assert "Revoke “busy agent”?" in confirm.text
        done = client.post(
            f"/admin/connections/{conn}/revoke", data={"csrf": csrf_of(confirm.text), "reason": "done"}
        )
        assert done.headers["location"] == f"/admin/connections/{conn}?done=revoked"
        after = client.get(done.headers["location"]).text
        assert "Connection revoked" in after and "by <strong>admin</strong>" in after
        assert 'action="/admin/connections/' + conn + '/revoke"' not in after
        assert client.get("/admin/connections/conn_nope").status_code == 404


@pytest.mark.parametrize("path", ["/admin/connections/{id}", "/admin/connections/{id}/revoke"])
def test_pages_escape_agent_names(live_server: LiveServer, path: str) -> None:
    live_server.app_password(name="<script>alert(1)</script>")
    conn = connection_id(live_server, "<script>alert(1)</script>")
    with admin_client(live_server) as client:
        page = client.get(path.format(id=conn)).text
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
