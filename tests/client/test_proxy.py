"""``aiconnector proxy`` launched by the official MCP SDK's stdio client, the way agent
frameworks launch stdio servers, against the real app whose access tokens live 2 seconds:
tools keep working across expiry (by refreshing ahead of time, and after a 401), a revoked
connection gives a clear instruction, a restarted server is picked up again, and a new login
is picked up without restarting the proxy."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from aiconnector.client.credentials import CONFIG_DIR_ENV, CredentialStore
from aiconnector.client.proxy import encode_header_value
from tests.client.conftest import RestartableServer, cli_command, cli_env, revoke, seed_credentials

EXPIRY_WAIT = 2.5  # past the 2-second access token lifetime


@asynccontextmanager
async def proxied(server: RestartableServer, config: Path, mode: str = "legacy") -> AsyncIterator[Client]:
    command, *args = cli_command()
    params = StdioServerParameters(
        command=command, args=[*args, "proxy", server.base_url], env={CONFIG_DIR_ENV: str(config)}
    )
    async with Client(stdio_client(params), mode=mode) as client:
        yield client


async def list_posts(client: Client) -> list[dict]:
    result = await client.call_tool("list_posts", {"limit": 3})
    assert result.is_error is False, result.content
    return result.structured_content["items"]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_tools_work_across_token_expiry(
    short_ttl_server: RestartableServer, config_dir: Path, mode: str
) -> None:
    store = CredentialStore()
    creds = seed_credentials(short_ttl_server.live, store, agent_name=f"proxy {mode}")
    # Claim an hour of life for the 2-second token: the proxy cannot see the expiry coming,
    # so the first call after it gets a 401 and must refresh and retry.
    store.save(dataclasses.replace(creds, expires_at=time.time() + 3600, lifetime=3600))
    async with proxied(short_ttl_server, config_dir, mode) as client:
        expected = "2025-11-25" if mode == "legacy" else "2026-07-28"
        assert client.session.protocol_version == expected
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"list_posts", "get_post", "whoami"} <= names
        assert len(await list_posts(client)) == 3
        await asyncio.sleep(EXPIRY_WAIT)
        assert len(await list_posts(client)) == 3  # 401 -> refresh -> retry
        first_refresh = store.load(short_ttl_server.base_url)
        assert first_refresh is not None and first_refresh.access_token != creds.access_token
        await asyncio.sleep(EXPIRY_WAIT)
        assert len(await list_posts(client)) == 3  # refreshed ahead of expiry this time
        second_refresh = store.load(short_ttl_server.base_url)
        assert second_refresh is not None and second_refresh.access_token != first_refresh.access_token
        post = await client.call_tool("get_post", {"id": (await list_posts(client))[0]["id"]})
        assert post.structured_content["title"]


async def test_revoked_connection_then_new_login(
    short_ttl_server: RestartableServer, config_dir: Path
) -> None:
    server = short_ttl_server.live
    store = CredentialStore()
    seed_credentials(server, store, agent_name="proxy revoked")
    async with proxied(short_ttl_server, config_dir) as client:
        assert await list_posts(client)
        revoke(server, "proxy revoked")
        await asyncio.sleep(EXPIRY_WAIT)
        for _ in range(2):  # and it keeps saying so
            with pytest.raises(MCPError) as caught:
                await client.call_tool("list_posts", {"limit": 1})
            assert str(caught.value) == f"connection revoked, run aiconnector login {server.base_url}"
        # A new login (in another terminal) is picked up without restarting the proxy.
        seed_credentials(server, store, agent_name="proxy revoked, again")
        assert await list_posts(client)


async def test_survives_a_server_restart(short_ttl_server: RestartableServer, config_dir: Path) -> None:
    seed_credentials(short_ttl_server.live, CredentialStore(), agent_name="proxy restart")
    async with proxied(short_ttl_server, config_dir) as client:
        assert await list_posts(client)
        short_ttl_server.stop()
        try:
            with pytest.raises(MCPError, match="cannot reach .*will retry on the next request"):
                await client.call_tool("list_posts", {"limit": 1})
            await asyncio.sleep(EXPIRY_WAIT)  # the token expires while the server is down
            with pytest.raises(MCPError, match="will retry"):
                await client.list_tools()
        finally:
            short_ttl_server.start()
        assert await list_posts(client)
        assert (await client.list_tools()).tools


def test_not_logged_in_is_answered_not_crashed(short_ttl_server: RestartableServer, config_dir: Path) -> None:
    url = short_ttl_server.base_url
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        "not json",
        {"jsonrpc": "2.0", "id": "two", "method": "tools/list"},
    ]
    stdin = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    result = subprocess.run(
        [*cli_command(), "proxy", url],
        input=stdin,
        env=cli_env(config_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    by_id = {a["id"]: a for a in answers}
    assert set(by_id) == {1, None, "two"}
    hint = f"not logged in to {url}; run: aiconnector login {url}"
    assert by_id[1]["error"]["message"] == hint and by_id["two"]["error"]["message"] == hint
    assert by_id[None]["error"]["code"] == -32700
    assert hint in result.stderr


async def test_relays_progress_notifications(short_ttl_server: RestartableServer, config_dir: Path) -> None:
    """SSE answers: progress notifications reach the stdio client as they stream."""
    seed_credentials(short_ttl_server.live, CredentialStore(), agent_name="proxy progress")
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with proxied(short_ttl_server, config_dir) as client:
        result = await client.call_tool(
            "export_posts", {"page_size": 5, "delay_ms": 10}, progress_callback=on_progress
        )
        assert result.is_error is False, result.content
    assert progress, "progress notifications were relayed"


def test_routing_header_encoding() -> None:
    assert encode_header_value("list_posts") == "list_posts"
    assert encode_header_value("écho") == "=?base64?w6ljaG8=?="
    assert encode_header_value(" padded") == "=?base64?IHBhZGRlZA==?="
