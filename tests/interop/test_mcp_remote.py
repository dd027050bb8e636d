"""mcp-remote, the stdio-to-HTTP bridge in Claude Desktop configs
(``npx mcp-remote https://site/mcp``), end to end with its own OAuth handling.

mcp-remote opens the authorization URL through ``$BROWSER``; here that is a tiny script that
writes the URL to a file, and chromium (Playwright) opens it, signs in and clicks Authorize.
The browser then really navigates to mcp-remote's callback server on
``http://localhost:PORT/oauth/callback``, so the hand-off is the one a desktop user gets. After
that the test speaks MCP JSON-RPC over mcp-remote's stdin/stdout like Claude Desktop would, with a
refresh (two-second access tokens) or a server-side revoke between calls. SQLite only (see
test_typescript_sdk.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import LiveServer
from tests.interop.conftest import (
    SHORT_ACCESS_TTL_S,
    NodeRun,
    NodeTools,
    authorize_in_browser,
    node_run,
    query_of,
    refresh_tokens_of,
    revoke_connection_now,
    wait_until_refused,
)
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


async def exchange(
    run: NodeRun, request_id: int, method: str, params: dict[str, Any], timeout_s: float = 60
) -> dict[str, Any]:
    """One JSON-RPC request over mcp-remote's stdio; its whole response message."""
    await run.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    while True:
        message = await run.receive(timeout_s=timeout_s)
        if message.get("id") == request_id:
            return message


async def rpc(run: NodeRun, request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """One JSON-RPC request over mcp-remote's stdio; its response's ``result``."""
    message = await exchange(run, request_id, method, params)
    assert "error" not in message, f"{message}\n{run.diagnostics()}"
    return message["result"]


@dataclass
class Bridge:
    """A signed-in mcp-remote: its run, where it keeps its tokens and what it opened."""

    run: NodeRun
    config_dir: Path
    urls_file: Path
    me: dict[str, Any]

    def tokens(self) -> dict[str, Any]:
        """mcp-remote's stored tokens (``<hash>_tokens.json`` under MCP_REMOTE_CONFIG_DIR)."""
        [path] = self.config_dir.rglob("*_tokens.json")
        return json.loads(path.read_text())

    def opened(self) -> list[str]:
        return self.urls_file.read_text().split()


@asynccontextmanager
async def bridge(
    node_tools: NodeTools, server: LiveServer, page: Page, tmp_path: Path
) -> AsyncIterator[Bridge]:
    """mcp-remote through its own OAuth dance (one browser consent) to a first ``whoami``."""
    proxy = node_tools.package("mcp-remote") / "dist" / "proxy.js"
    urls_file = tmp_path / "opened-urls"
    config_dir = tmp_path / "mcp-auth"  # fresh: a stale registration makes it wait forever
    port = free_port()
    env = node_tools.env(
        tmp_path, BROWSER=str(browser_script(tmp_path, urls_file)), MCP_REMOTE_CONFIG_DIR=str(config_dir)
    )
    async with node_run(
        node_tools, [str(proxy), server.mcp_url, str(port)], env=env, cwd=tmp_path, timeout_s=RUN_TIMEOUT_S
    ) as run:
        url = await wait_for_url(urls_file, run)
        params = query_of(url)
        assert params["redirect_uri"] == f"http://localhost:{port}/oauth/callback"
        assert params["resource"] == server.mcp_url
        answer = await authorize_in_browser(page, url, intercept=False)
        assert answer["iss"] == server.settings.origin
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
        yield Bridge(run, config_dir, urls_file, me["structuredContent"])


async def test_mcp_remote_bridges_after_browser_consent(
    node_tools: NodeTools, sqlite_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    async with bridge(node_tools, sqlite_server, page, tmp_path) as signed_in:
        assert signed_in.tokens()["refresh_token"]
        assert len(signed_in.opened()) == 1


async def test_mcp_remote_refreshes_an_expired_access_token(
    node_tools: NodeTools, short_ttl_sqlite_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    """The access token expires; the next call goes through after a refresh, with no second
    browser window, and mcp-remote's tokens file holds the rotated pair.

    mcp-remote refreshes *proactively*: a token within 60 s of expiry counts as expired each
    time it reads its tokens file, so with two-second tokens it refreshes before nearly every
    request (sign-in included), not once on a 401. Hence "at least one refresh, an unbroken
    rotation chain" rather than an exact count."""
    server = short_ttl_sqlite_server
    async with bridge(node_tools, server, page, tmp_path) as signed_in:
        before = signed_in.tokens()
        await asyncio.sleep(SHORT_ACCESS_TTL_S + 0.5)
        again = await rpc(signed_in.run, 4, "tools/call", {"name": "whoami", "arguments": {}})
        after = signed_in.tokens()
        assert len(signed_in.opened()) == 1, "a refresh, not a second consent"

    assert again.get("isError") is not True and again["structuredContent"]["username"] == "admin"
    connection_id = signed_in.me["connection_id"]
    assert again["structuredContent"]["connection_id"] == connection_id, "refresh keeps the connection"
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"], "public clients rotate"
    chain = refresh_tokens_of(server, connection_id)
    assert len(chain) >= 2 and all(chain[:-1]) and not chain[-1], chain


async def messages_within(run: NodeRun, seconds: float) -> list[dict[str, Any]]:
    """Whatever JSON mcp-remote prints on stdout within ``seconds`` (its stdout stays open)."""
    assert run.process.stdout is not None
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = await asyncio.wait_for(run.process.stdout.readline(), left)
        except TimeoutError:
            break
        if not line:
            break
        if line.strip().startswith(b"{"):
            seen.append(json.loads(line))
    return seen


async def test_mcp_remote_call_after_revoke_asks_to_sign_in_again(
    node_tools: NodeTools, sqlite_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    """After a server-side revoke the next call gets a 401 (the access token is an hour from
    expiry, so this is the revocation). mcp-remote neither answers the call nor exits: it opens
    the browser on a fresh authorization (same registration) and holds the request while it
    waits for that sign-in. No tool result reaches the desktop client."""
    async with bridge(node_tools, sqlite_server, page, tmp_path) as signed_in:
        revoke_connection_now(sqlite_server, signed_in.me["connection_id"])
        await wait_until_refused(sqlite_server, signed_in.tokens()["access_token"])
        await signed_in.run.send(
            {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
        )
        deadline = time.monotonic() + 30
        while len(signed_in.opened()) < 2:
            assert time.monotonic() < deadline, f"no second sign-in\n{signed_in.run.diagnostics()}"
            assert signed_in.run.process.returncode is None, signed_in.run.diagnostics()
            await asyncio.sleep(0.1)
        printed = await messages_within(signed_in.run, 3)
        assert signed_in.run.process.returncode is None, "still running, waiting for the sign-in"

    assert [m for m in printed if m.get("id") == 4] == [], f"a result after revoke: {printed}"
    first, second = (query_of(url) for url in signed_in.opened())
    assert second["client_id"] == first["client_id"] and second["resource"] == sqlite_server.mcp_url
    assert second["state"] != first["state"] and second["code_challenge"] != first["code_challenge"]
    assert "UnauthorizedError" in signed_in.run.diagnostics()
