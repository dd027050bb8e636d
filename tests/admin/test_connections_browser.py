"""The connections pages in a real browser (Debian chromium via Playwright), both databases:
screenshots at desktop and phone widths, times in the viewer's timezone, no CSP violations,
new connections appearing without a reload, keyboard use, and the whole revoke story —
clicking Revoke and confirming ends a live client's in-flight export_posts call with
"connection revoked" within about a second, and its application password then gets 401."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import httpx
from playwright.sync_api import expect

from aiconnector.core.connections import list_connections
from tests.admin.conftest import signed_in_page
from tests.browser.conftest import screenshot
from tests.conftest import LiveServer

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


def connection_id(server: LiveServer, name: str) -> str:
    rows = server.run(lambda rt: list_connections(rt.sessions))
    return next(c.id for c in rows if c.agent_name == name)


def watch_csp(page: Any) -> list[str]:  # noqa: ANN401
    """Console messages about the Content-Security-Policy (there must be none)."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    return problems


def no_horizontal_scroll(page: Any) -> None:  # noqa: ANN401
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"page is {overflow}px wider than the viewport"


def test_pages_at_desktop_and_phone_width(browser: Any, live_server: LiveServer) -> None:  # noqa: ANN401
    db = live_server.database.kind
    for name in ("Claude Desktop", "Cursor on laptop", "Nightly export script"):
        live_server.app_password(name=name)
    live_server.app_password(name="Old phone agent")
    old = connection_id(live_server, "Old phone agent")
    for size, (width, height) in SIZES.items():
        page = signed_in_page(browser, live_server, width=width, height=height, timezone_id="Asia/Tokyo")
        problems = watch_csp(page)
        try:
            expect(page.get_by_role("heading", name="Connections")).to_be_visible()
            row = page.locator("tr", has_text="Claude Desktop")
            # admin-time.js rewrote the UTC fallback in the viewer's timezone.
            connected = row.locator("td[data-label=Connected] time")
            expect(connected).not_to_contain_text("UTC")
            assert "+09" not in (connected.get_attribute("datetime") or "")
            no_horizontal_scroll(page)
            screenshot(page, f"connections-{size}-{db}")

            page.get_by_label("Search by name").fill("no such agent")
            page.get_by_role("button", name="Apply").click()
            expect(page.get_by_text("No connections match these filters")).to_be_visible()
            screenshot(page, f"connections-empty-{size}-{db}")

            page.goto(f"{live_server.base_url}/admin/connections/{old}")
            expect(page.get_by_role("heading", name="Old phone agent")).to_be_visible()
            expect(page.get_by_role("img", name=re.compile("Tool calls, last 24 hours"))).to_be_visible()
            no_horizontal_scroll(page)
            screenshot(page, f"connection-detail-{size}-{db}")

            page.get_by_role("link", name="Revoke connection…").click()
            expect(page.get_by_role("heading", name="Revoke “Old phone agent”?")).to_be_visible()
            screenshot(page, f"connection-revoke-confirm-{size}-{db}")
            if size == "phone":
                page.get_by_label(re.compile("Reason")).fill("Phone replaced")
                page.get_by_role("button", name="Revoke connection").click()
                expect(page.get_by_text("Connection revoked.")).to_be_visible()
                page.goto(f"{live_server.base_url}/admin/connections?status=revoked")
                expect(page.locator("tr", has_text="Old phone agent")).to_contain_text("Phone replaced")
                screenshot(page, f"connections-revoked-{size}-{db}")
            assert problems == []
        finally:
            page.context.close()


def test_new_connections_appear_without_reload(browser: Any, live_server: LiveServer) -> None:  # noqa: ANN401
    page = signed_in_page(browser, live_server)
    try:
        expect(page.get_by_role("heading", name="Connections")).to_be_visible()
        page.evaluate("window.__sameDocument = true")
        live_server.app_password(name="Arrived while watching")
        expect(page.locator("tr", has_text="Arrived while watching")).to_be_visible(timeout=8000)
        assert page.evaluate("window.__sameDocument") is True, "the page was not reloaded"
        expect(page.locator("#live-status")).to_contain_text("1 new connection")
    finally:
        page.context.close()


def test_keyboard_only_rename_and_narrow(browser: Any, live_server: LiveServer) -> None:  # noqa: ANN401
    live_server.app_password(name="Keyboard agent")
    conn = connection_id(live_server, "Keyboard agent")
    page = signed_in_page(browser, live_server, next_path=f"/admin/connections/{conn}")
    try:
        name = page.get_by_label("Agent name")
        name.focus()
        name.press("Control+a")
        page.keyboard.type("Keyboard agent (renamed)")
        page.keyboard.press("Enter")
        expect(page.get_by_text("The connection was renamed.")).to_be_visible()
        expect(page.get_by_role("heading", name="Keyboard agent (renamed)")).to_be_visible()
        write = page.get_by_role("checkbox", name=re.compile("content:write"))
        write.focus()
        page.keyboard.press("Space")
        expect(write).not_to_be_checked()
        page.get_by_role("button", name="Save scopes").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_text("Scopes narrowed.")).to_be_visible()
        expect(page.get_by_role("checkbox", name=re.compile("content:write"))).to_have_count(0)
    finally:
        page.context.close()


class ExportCall:
    """A raw streamable-HTTP client running a slow export_posts (SSE, with a progressToken)
    in a thread, recording every event and when the stream ended."""

    def __init__(self, server: LiveServer, password: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.ended_at: float | None = None
        self.started = threading.Event()
        self._args = (server, password)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        server, password = self._args
        body = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {
                "name": "export_posts",
                "arguments": {"page_size": 1, "delay_ms": 400},
                "_meta": {"progressToken": "export-1"},
            },
        }
        headers = {
            **server.basic_header("admin", password),
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
        }
        with httpx.stream("POST", server.mcp_url, json=body, headers=headers, timeout=60) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    self.events.append(json.loads(line[6:]))
                    self.started.set()
        self.ended_at = time.monotonic()


def test_revoke_in_the_browser_ends_a_live_call(browser: Any, live_server: LiveServer) -> None:  # noqa: ANN401
    password = live_server.app_password(name="Exporting agent")
    page = signed_in_page(browser, live_server)
    try:
        call = ExportCall(live_server, password)
        assert call.started.wait(15), "the export started streaming progress"
        assert call.events[0]["method"] == "notifications/progress"
        page.reload()
        page.get_by_role("link", name="Revoke Exporting agent").click()
        page.get_by_label(re.compile("Reason")).fill("Stop the export")
        confirm = page.get_by_role("button", name="Revoke connection")
        clicked = time.monotonic()
        confirm.click()
        call.thread.join(5)
        assert call.ended_at is not None, "the stream closed"
        assert call.ended_at - clicked < 1.0, f"took {call.ended_at - clicked:.2f}s"
        assert call.events[-1]["error"]["message"] == "connection revoked"
        progress = [e for e in call.events if e.get("method") == "notifications/progress"]
        total = progress[0]["params"].get("total")
        assert total is None or len(progress) < total, "the export stopped early"
        expect(page.get_by_text("Connection revoked.")).to_be_visible()
        expect(page.get_by_text("Stop the export")).to_be_visible()
        after = httpx.post(
            live_server.mcp_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={
                **live_server.basic_header("admin", password),
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-11-25",
            },
        )
        assert after.status_code == 401
    finally:
        page.context.close()
