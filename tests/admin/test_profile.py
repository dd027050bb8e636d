"""Profile → Application Passwords (/admin/profile) in chromium: the empty state, creating a
password (shown once, with a copy button and ready-made usage), listing, rotating and
revoking — and the password as the page shows it working in real clients: the official MCP
Python SDK with the shown Authorization header, and mcp-remote run with the shown command."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.admin.conftest import USER_PASSWORD, admin_client, csrf_of, ensure_user, signed_in_page
from tests.browser.conftest import screenshot
from tests.conftest import LiveServer
from tests.interop.conftest import NodeTools, mcp_client, node_run, node_tools, run_server, whoami  # noqa: F401
from tests.interop.test_mcp_remote import rpc
from tests.support import DatabaseUnderTest, run_sync

SIZES = {"1280": (1280, 800), "390": (390, 844)}


@pytest.fixture(scope="module")
def server(database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with run_server(database, tmp_path_factory.mktemp("admin-profile")) as live:
        yield live


def mcp_status(server: LiveServer, authorization: str) -> int:
    """The status of a ping on /mcp with this Authorization header."""
    response = httpx.post(
        server.mcp_url,
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={"Authorization": authorization, "Accept": "application/json, text/event-stream"},
        timeout=30,
    )
    return response.status_code


def create_in_ui(page: Any, name: str, scopes: tuple[str, ...] = ()) -> dict[str, str]:  # noqa: ANN401
    """Fill and submit the create form; the shown values by slug."""
    page.get_by_label("Name", exact=True).fill(name)
    for scope in scopes:
        page.locator(f'input[name="scope"][value="{scope}"]').check()
    page.get_by_role("button", name="Create password").click()
    page.get_by_role("heading", name=f"New password for “{name}”").wait_for()
    slugs = ["new-password", "username", "authorization-header", "mcp-remote-command", "connector-url"]
    return {slug: page.locator(f"pre#created-{slug}").inner_text() for slug in slugs}


def test_empty_state_then_create_list_and_use_with_the_sdk(browser: Any, server: LiveServer) -> None:  # noqa: ANN401
    for size, (width, height) in SIZES.items():
        page = signed_in_page(browser, server, width=width, height=height, next_path="/admin/profile")
        try:
            assert page.get_by_text("No application passwords yet.").is_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            screenshot(page, f"admin-profile-empty-{size}")
        finally:
            page.context.close()

    page = signed_in_page(browser, server, next_path="/admin/profile")
    try:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base_url)
        shown = create_in_ui(page, "Script on my laptop", ("content:read",))
        password = shown["new-password"]
        assert password.startswith("aic_ap_") and shown["username"] == "admin"
        assert shown["connector-url"] == server.mcp_url
        page.get_by_role("button", name="Copy").first.click()
        assert page.evaluate("navigator.clipboard.readText()") == password
        row = page.locator("table.passwords tbody tr", has_text="Script on my laptop")
        assert "content:read" in row.inner_text() and "active" in row.inner_text()
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            screenshot(page, f"admin-profile-created-{size}")

        created_url = page.url
        assert "/admin/profile?created=" in created_url, "the create POST answered with a redirect"
        page.reload()  # no form is posted again, and the password is gone
        assert password not in page.content(), "the password is shown only once"
        assert page.get_by_text("shown only once and cannot be shown again").is_visible()
        assert page.locator("table.passwords tbody tr", has_text="Script on my laptop").count() == 1
        page.goto(f"{server.base_url}/admin/profile")
        assert password not in page.content()

        async def use() -> dict[str, Any]:
            async with mcp_client(server, headers={"Authorization": shown["authorization-header"]}) as client:
                return await whoami(client)

        me = run_sync(use())
        assert me["username"] == "admin" and me["scopes"] == ["content:read"]

        row = page.locator("table.passwords tbody tr", has_text="Script on my laptop")
        deadline = time.monotonic() + 10  # activity is written in batches, a moment later
        while "127.0.0.1" not in row.inner_text() and time.monotonic() < deadline:
            page.wait_for_timeout(300)
            page.goto(f"{server.base_url}/admin/profile")
        assert "127.0.0.1" in row.inner_text(), "last address is listed after use"
        assert "never" not in row.inner_text(), "and when it was last used"
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            screenshot(page, f"admin-profile-list-{size}")
    finally:
        page.context.close()


def test_rotate_replaces_the_password_and_revoke_ends_it(browser: Any, server: LiveServer) -> None:  # noqa: ANN401
    page = signed_in_page(browser, server, next_path="/admin/profile")
    try:
        old = create_in_ui(page, "Rotating agent")["authorization-header"]
        assert mcp_status(server, old) == 200
        page.get_by_role("button", name="Rotate Rotating agent").click()
        assert page.get_by_text("was rotated: the old password no longer works").is_visible()
        assert "/admin/profile?created=" in page.url, "a redirect: a reload cannot rotate again"
        new = page.locator("pre#created-authorization-header").inner_text()
        assert new != old
        assert mcp_status(server, new) == 200
        assert mcp_status(server, old) == 401

        page.get_by_label("Revoke Rotating agent…").click()  # a confirmation step first
        assert page.get_by_text("Clients using “Rotating agent” are refused at once").is_visible()
        assert mcp_status(server, new) == 200, "opening the confirmation revokes nothing"
        page.get_by_role("button", name="Revoke Rotating agent for good").click()
        page.wait_for_url("**/admin/profile?done=revoked")
        assert page.get_by_text("The application password was revoked").is_visible()
        assert mcp_status(server, new) == 401
        rows = page.locator("table.passwords tbody tr", has_text="Rotating agent")
        assert rows.count() == 2 and all("revoked" in r.inner_text() for r in rows.all())
        assert page.get_by_role("button", name="Revoke Rotating agent for good").count() == 0
    finally:
        page.context.close()


def test_others_cannot_revoke_or_rotate_and_forms_need_csrf(server: LiveServer) -> None:
    ensure_user(server, "writer", role="author")
    with admin_client(server) as admin:
        token = csrf_of(admin.get("/admin/profile").text)
        assert admin.post("/admin/profile", data={"name": "no token"}).status_code == 403
        created = admin.post("/admin/profile", data={"csrf": token, "name": "Admin's agent"})
        assert created.status_code == 303 and created.headers["location"].startswith(
            "/admin/profile?created="
        )
        handed = created.cookies.get("aic_reveal")
        assert handed, "the password travels to the next page only, sealed"
        location = created.headers["location"]
        shown = admin.get(location)
        password = re.search(r"aic_ap_[A-Za-z0-9_-]{20,}", shown.text)
        assert password and password.group(0) not in handed
        password_id = max(r.id for r in server.run(_passwords_of("admin")))
    with admin_client(server, "writer", USER_PASSWORD) as writer:
        writer.cookies.set("aic_reveal", handed, path="/admin/profile")  # stolen from the admin
        stolen = writer.get(location)
        assert stolen.status_code == 200 and password.group(0) not in stolen.text
        assert "shown only once and cannot be shown again" in stolen.text
        token = csrf_of(writer.get("/admin/profile").text)
        for action in ("revoke", "rotate"):
            refused = writer.post(f"/admin/profile/passwords/{password_id}/{action}", data={"csrf": token})
            assert refused.status_code == 404, action
        assert "Admin&#39;s agent" not in writer.get("/admin/profile").text
        assert writer.get(f"/admin/profile/passwords/{password_id}/revoke").status_code == 303
        empty = writer.post("/admin/profile", data={"csrf": token, "name": "  "})
        assert empty.status_code == 400 and "Enter a name" in empty.text
    assert not [r for r in server.run(_passwords_of("admin")) if r.id == password_id][0].revoked


def _passwords_of(username: str) -> Any:  # noqa: ANN401
    from aiconnector.core.app_passwords import list_app_passwords

    return lambda rt: list_app_passwords(rt.sessions, username)


def test_mcp_remote_runs_with_the_shown_command(
    browser: Any,  # noqa: ANN401
    server: LiveServer,
    node_tools: NodeTools,  # noqa: F811 - fixture
    tmp_path: Path,
) -> None:
    proxy = node_tools.package("mcp-remote") / "dist" / "proxy.js"
    page = signed_in_page(browser, server, next_path="/admin/profile")
    try:
        command = shlex.split(create_in_ui(page, "mcp-remote bridge")["mcp-remote-command"])
    finally:
        page.context.close()
    assert command[:3] == ["npx", "-y", "mcp-remote"] and command[3] == server.mcp_url
    env = node_tools.env(tmp_path, BROWSER="/bin/false", MCP_REMOTE_CONFIG_DIR=str(tmp_path / "mcp-auth"))

    async def bridge() -> dict[str, Any]:
        async with node_run(node_tools, [str(proxy), *command[3:]], env=env, cwd=tmp_path) as run:
            await rpc(
                run,
                1,
                "initialize",
                {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "admin-profile-test", "version": "1.0"},
                },
            )
            await run.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            return await rpc(run, 2, "tools/call", {"name": "whoami", "arguments": {}})

    me = run_sync(bridge())
    assert me.get("isError") is not True
    assert me["structuredContent"]["username"] == "admin"
    assert me["structuredContent"]["agent_name"] == "mcp-remote bridge"
