"""mcp-remote, the stdio-to-HTTP bridge in Claude Desktop configs
(``npx mcp-remote https://site/mcp``), end to end with its own OAuth handling.

mcp-remote opens the authorization URL through ``$BROWSER``; here that is a tiny script that
writes the URL to a file, and chromium (Playwright) opens it, signs in and clicks Authorize.
The browser then really navigates to mcp-remote's callback server on
``http://localhost:PORT/oauth/callback``, so the hand-off is the one a desktop user gets. After
that the test speaks MCP JSON-RPC over mcp-remote's stdin/stdout like Claude Desktop would.
SQLite only (see test_typescript_sdk.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import LiveServer
from tests.interop.conftest import NodeRun, NodeTools, authorize_in_browser, node_run, query_of
from tests.support import free_port

if TYPE_CHECKING:
    from playwright.async_api import Page

RUN_TIMEOUT_S = 120


def browser_script(directory: Path, urls_file: Path) -> Path:
    """What mcp-remote will run as the browser: append the URL to ``urls_file``."""
    script = directory / "record-url"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{urls_file}"\n')
    script.chmod(0o755)
    return script


async def wait_for_url(path: Path, run: NodeRun, timeout_s: float = 60) -> str:
    """The first URL mcp-remote asked the browser to open."""
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and path.read_text().strip()):
        if run.process.returncode is not None or time.monotonic() > deadline:
            pytest.fail(
                f"mcp-remote never opened a browser (exit {run.process.returncode})\n{run.diagnostics()}"
            )
        await asyncio.sleep(0.1)
    return path.read_text().split()[0]


async def rpc(run: NodeRun, request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """One JSON-RPC request over mcp-remote's stdio; its response's ``result``."""
    await run.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    while True:
        message = await run.receive(timeout_s=60)
        if message.get("id") == request_id:
            assert "error" not in message, f"{message}\n{run.diagnostics()}"
            return message["result"]


async def test_mcp_remote_bridges_after_browser_consent(
    node_tools: NodeTools, sqlite_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    proxy = node_tools.package("mcp-remote") / "dist" / "proxy.js"
    urls_file = tmp_path / "opened-urls"
    config_dir = tmp_path / "mcp-auth"  # fresh: a stale registration makes it wait forever
    port = free_port()
    env = node_tools.env(
        tmp_path, BROWSER=str(browser_script(tmp_path, urls_file)), MCP_REMOTE_CONFIG_DIR=str(config_dir)
    )
    async with node_run(
        node_tools,
        [str(proxy), sqlite_server.mcp_url, str(port)],
        env=env,
        cwd=tmp_path,
        timeout_s=RUN_TIMEOUT_S,
    ) as run:
        url = await wait_for_url(urls_file, run)
        params = query_of(url)
        assert params["redirect_uri"] == f"http://localhost:{port}/oauth/callback"
        assert params["resource"] == sqlite_server.mcp_url
        answer = await authorize_in_browser(page, url, intercept=False)
        assert answer["iss"] == sqlite_server.settings.origin
        # The page mcp-remote's own callback server answered the browser with.
        assert "Authorization successful" in await page.locator("body").inner_text(), run.diagnostics()

        init = await rpc(
            run,
            1,
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "interop-claude-desktop", "version": "1.0"},
            },
        )
        assert init["serverInfo"]["name"]
        await run.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        tools = {t["name"] for t in (await rpc(run, 2, "tools/list", {}))["tools"]}
        assert {"whoami", "list_posts"} <= tools
        me = await rpc(run, 3, "tools/call", {"name": "whoami", "arguments": {}})
        assert me.get("isError") is not True
        assert me["structuredContent"]["username"] == "admin"
        assert me["structuredContent"]["auth_method"] == "oauth"
