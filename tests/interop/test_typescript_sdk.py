"""The official TypeScript SDK (``@modelcontextprotocol/sdk``, v1 line) as an OAuth client:
ts_client.mjs connects, gets ``UnauthorizedError`` after the SDK has discovered, registered and
built the authorization URL; chromium consents; the script finishes the auth with the code,
reconnects and calls tools. SQLite only: the database is covered by the Python SDK tests, and
this one is about the TypeScript SDK's reading of our metadata and responses."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tests.conftest import LiveServer
from tests.interop.conftest import NodeTools, authorize_in_browser, node_run, query_of

if TYPE_CHECKING:
    from playwright.async_api import Page

SCRIPT = Path(__file__).with_name("ts_client.mjs")
REDIRECT_URI = "http://127.0.0.1:9/ts/callback"  # answered by page.route; nothing listens


async def test_typescript_sdk_connects_after_browser_consent(
    node_tools: NodeTools, sqlite_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    node_tools.package("@modelcontextprotocol/sdk")
    env = node_tools.env(tmp_path, AICONNECTOR_NODE_MODULES=str(node_tools.modules))
    async with node_run(
        node_tools, [str(SCRIPT), sqlite_server.mcp_url, REDIRECT_URI], env=env, cwd=tmp_path
    ) as run:
        request = await run.receive()
        assert request["event"] == "authorize", request
        params = query_of(request["url"])
        assert request["url"].startswith(f"{sqlite_server.base_url}/oauth/authorize?")
        assert params["resource"] == sqlite_server.mcp_url and params["code_challenge_method"] == "S256"

        answer = await authorize_in_browser(page, request["url"])
        assert answer["iss"] == sqlite_server.settings.origin
        await run.send({"code": answer["code"], "state": answer["state"]})

        result = await run.receive()
        assert result["event"] == "result", f"{result}\n{run.diagnostics()}"
        assert await run.process.wait() == 0, run.diagnostics()

    assert {"whoami", "list_posts"} <= set(result["tools"])
    assert result["isError"] is False and result["whoami"]["username"] == "admin"
    assert result["whoami"]["agent_name"].startswith("Interop TypeScript SDK")
    assert result["scope"] == "content:read" and result["hasRefreshToken"] is True
