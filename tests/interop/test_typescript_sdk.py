"""The official TypeScript SDK (``@modelcontextprotocol/sdk``, v1 line) as an OAuth client:
ts_client.mjs connects, gets ``UnauthorizedError`` after the SDK has discovered, registered and
built the authorization URL; chromium consents; the script finishes the auth with the code,
reconnects and calls tools; then the test sends it more calls, with a refresh (two-second access
tokens) or a server-side revoke in between. SQLite only: the database is covered by the Python SDK tests, and
this one is about the TypeScript SDK's reading of our metadata and responses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from playwright.async_api import Page

SCRIPT = Path(__file__).with_name("ts_client.mjs")
REDIRECT_URI = "http://127.0.0.1:9/ts/callback"  # answered by page.route; nothing listens


@asynccontextmanager
async def signed_in(
    node_tools: NodeTools, server: LiveServer, page: Page, tmp_path: Path
) -> AsyncIterator[tuple[NodeRun, dict[str, Any]]]:
    """ts_client.mjs through discovery, registration and one browser consent to its first tool
    calls; yields the run (waiting for commands) and its first result."""
    node_tools.package("@modelcontextprotocol/sdk")
    env = node_tools.env(tmp_path, AICONNECTOR_NODE_MODULES=str(node_tools.modules))
    async with node_run(
        node_tools, [str(SCRIPT), server.mcp_url, REDIRECT_URI], env=env, cwd=tmp_path
    ) as run:
        request = await run.receive()
        assert request["event"] == "authorize", request
        params = query_of(request["url"])
        assert request["url"].startswith(f"{server.base_url}/oauth/authorize?")
        assert params["resource"] == server.mcp_url and params["code_challenge_method"] == "S256"

        answer = await authorize_in_browser(page, request["url"])
        assert answer["iss"] == server.settings.origin
        await run.send({"code": answer["code"], "state": answer["state"]})

        result = await run.receive()
        assert result["event"] == "result", f"{result}\n{run.diagnostics()}"
        assert result["isError"] is False and result["whoami"]["username"] == "admin", result
        yield run, result


async def call(run: NodeRun, name: str = "whoami") -> dict[str, Any]:
    await run.send({"cmd": "call", "name": name, "arguments": {}})
    return await run.receive()


async def finish(run: NodeRun) -> None:
    await run.send({"cmd": "exit"})
    assert await asyncio.wait_for(run.process.wait(), 30) == 0, run.diagnostics()


async def test_typescript_sdk_connects_after_browser_consent(
    node_tools: NodeTools, sqlite_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    async with signed_in(node_tools, sqlite_server, page, tmp_path) as (run, result):
        await finish(run)

    assert {"whoami", "list_posts"} <= set(result["tools"])
    assert result["whoami"]["agent_name"].startswith("Interop TypeScript SDK")
    assert result["scope"] == "content:read" and result["hasRefreshToken"] is True


async def test_typescript_sdk_refreshes_an_expired_access_token(
    node_tools: NodeTools, short_ttl_sqlite_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    """The access token expires; the next call's 401 makes the SDK use its refresh token (no
    second consent: an ``authorize`` event would be the next line instead of ``called``)."""
    server = short_ttl_sqlite_server
    async with signed_in(node_tools, server, page, tmp_path) as (run, result):
        await asyncio.sleep(SHORT_ACCESS_TTL_S + 0.5)
        again = await call(run)
        assert again["event"] == "called", f"{again}\n{run.diagnostics()}"
        await finish(run)

    assert again["isError"] is False and again["structured"]["username"] == "admin"
    connection_id = result["whoami"]["connection_id"]
    assert again["structured"]["connection_id"] == connection_id, "refresh keeps the connection"
    before, after = result["tokens"], again["tokens"]
    assert after["access"] != before["access"] and after["refresh"] != before["refresh"], "rotated"
    assert refresh_tokens_of(server, connection_id) == [True, False], "one refresh: the first rotated"


async def test_typescript_sdk_call_after_revoke_is_unauthorized(
    node_tools: NodeTools, sqlite_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    """After a server-side revoke the access token (an hour from expiry) is refused (401), the
    SDK's refresh is refused too (``invalid_grant``: the provider drops its tokens), and the
    call ends in ``UnauthorizedError`` after the SDK asked for a new authorization; no tool
    result."""
    async with signed_in(node_tools, sqlite_server, page, tmp_path) as (run, result):
        revoke_connection_now(sqlite_server, result["whoami"]["connection_id"])
        await wait_until_refused(sqlite_server, result["tokens"]["access"])
        events = [await call(run)]
        if events[0]["event"] == "authorize":  # the SDK falls back to a fresh authorization
            events.append(await run.receive())
        await finish(run)

    assert [e["event"] for e in events] == ["authorize", "error"], f"{events}\n{run.diagnostics()}"
    assert events[1]["unauthorized"] is True and events[1]["invalidated"] == ["tokens"], events[1]
    assert events[1]["tokens"]["access"] is None
    assert query_of(events[0]["url"])["resource"] == sqlite_server.mcp_url
