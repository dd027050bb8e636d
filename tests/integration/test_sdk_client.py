"""The official MCP SDK client against the real server, real tools and the demo site, in both
protocol eras: what a user sees when they ask an agent to "list my recent posts"."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from aiconnector.core.connections import list_connections
from tests.conftest import LiveServer

MODES = ["legacy", "auto"]


@asynccontextmanager
async def sdk_client(
    server: LiveServer, password: str, mode: str, username: str = "admin"
) -> AsyncIterator[Client]:
    headers = server.basic_header(username, password)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http_client,
        Client(streamable_http_client(server.mcp_url, http_client=http_client), mode=mode) as client,
    ):
        yield client


@pytest.mark.parametrize("mode", MODES)
async def test_list_my_recent_posts(live_server: LiveServer, mode: str) -> None:
    password = live_server.app_password(name=f"sdk {mode}")
    async with sdk_client(live_server, password, mode) as client:
        expected = "2025-11-25" if mode == "legacy" else "2026-07-28"
        assert client.session.protocol_version == expected
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {"list_posts", "get_post", "search", "fetch", "whoami", "create_post"} <= set(tools)
        assert tools["list_posts"].annotations is not None and tools["list_posts"].annotations.read_only_hint

        result = await client.call_tool("list_posts", {"limit": 5})
        assert result.is_error is False
        posts = result.structured_content["items"]
        assert len(posts) == 5
        dates = [p["date"] for p in posts]
        assert dates == sorted(dates, reverse=True), "newest first"
        assert all(p["status"] == "publish" for p in posts)

        first = await client.call_tool("get_post", {"id": posts[0]["id"]})
        assert first.structured_content["title"] == posts[0]["title"]
        assert first.structured_content["content"]


@pytest.mark.parametrize("mode", MODES)
async def test_write_read_and_resources(live_server: LiveServer, mode: str) -> None:
    password = live_server.app_password(name=f"writer {mode}")
    async with sdk_client(live_server, password, mode) as client:
        created = await client.call_tool(
            "create_post", {"title": f"Draft from the SDK ({mode})", "content": "<p>x</p>"}
        )
        assert created.is_error is False, created.content
        post = created.structured_content
        assert post["status"] == "draft" and post["author"]["username"] == "admin"

        found = await client.call_tool("search", {"query": "coffee"})
        results = found.structured_content["results"]
        assert results and {"id", "title", "url"} <= set(results[0])
        fetched = await client.call_tool("fetch", {"id": results[0]["id"]})
        assert fetched.structured_content["text"]

        missing = await client.call_tool("get_post", {"id": 987654})
        assert missing.is_error is True and "not found" in missing.content[0].text.lower()

        listed = await client.list_resources()
        uri = listed.resources[0].uri
        read = await client.read_resource(uri)
        assert read.contents[0].text


async def test_role_limits_reach_the_agent_as_tool_errors(live_server: LiveServer) -> None:
    async def make_contributor(rt):  # noqa: ANN001, ANN202
        from aiconnector.core.users import create_user

        await create_user(rt.sessions, "conny", role="contributor")

    live_server.run(make_contributor)
    password = live_server.app_password("conny", name="contributor agent")
    async with sdk_client(live_server, password, "legacy", username="conny") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "publish_post" not in names, "a contributor's role cannot publish, so the tool is hidden"
        draft = await client.call_tool("create_post", {"title": "Contributor draft"})
        assert draft.is_error is False
        other = await client.call_tool("update_post", {"id": 1, "title": "Hijacked"})
        assert other.is_error is True and "not allowed" in other.content[0].text.lower()


async def test_revoke_cancels_an_in_flight_call(live_server: LiveServer) -> None:
    password = live_server.app_password(name="long export")
    [conn] = [
        c for c in live_server.run(lambda rt: list_connections(rt.sessions)) if c.agent_name == "long export"
    ]
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def revoke_when_running() -> float:
        while not progress:
            await asyncio.sleep(0.05)
        cli = str(Path(sys.executable).with_name("aiconnector"))
        url = live_server.settings.effective_database_url
        await asyncio.to_thread(
            subprocess.run,
            [cli, "--database-url", url, "connections", "revoke", conn.id],
            check=True,
            timeout=60,
        )
        return time.monotonic()

    async with sdk_client(live_server, password, "legacy") as client:
        revoker = asyncio.create_task(revoke_when_running())
        call = client.call_tool(
            "export_posts", {"page_size": 2, "delay_ms": 500}, progress_callback=on_progress
        )
        with pytest.raises(MCPError, match="connection revoked"):
            await asyncio.wait_for(call, timeout=60)
        ended = time.monotonic()
        revoked_at = await revoker
    # The revoke happened in another process; the server's watcher notices within its poll
    # interval (1 s) and cancels the call, which ends with a clear JSON-RPC error.
    assert ended - revoked_at < 3.0
    assert len(progress) < 10, "the export stopped instead of running to completion"
