"""The official MCP Python SDK's OAuth client (``mcp.client.auth.OAuthClientProvider``) against
the whole server, on SQLite and PostgreSQL, with chromium doing sign-in and consent.

The SDK does everything a deployed client does on its own: reads the 401 challenge, discovers
the protected-resource and authorization-server metadata, registers itself (DCR), sends the
person to ``/oauth/authorize`` with PKCE and ``resource``, checks ``state`` and ``iss``,
redeems the code, refreshes on expiry and re-authorizes with the union of scopes on a 403
``insufficient_scope``. Each of those is a place where our server and a real client can
disagree, so each has a test here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
import pytest_asyncio
from mcp.client.auth import OAuthClientProvider
from mcp.client.client import Client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from aiconnector.core.connections import list_connections, revoke_connection
from tests.conftest import LiveServer
from tests.interop.conftest import (
    authorize_in_browser,
    bearer,
    http_client,
    mcp_client,
    query_of,
    run_server,
    whoami,
)
from tests.support import DatabaseUnderTest, fresh_database

if TYPE_CHECKING:
    from playwright.async_api import Page

MODES = ["legacy", "auto"]
PROTOCOL = {"legacy": "2025-11-25", "auto": "2026-07-28"}
# Nothing listens here: the browser's page.route answers, as a native client's listener would.
REDIRECT_URI = "http://127.0.0.1:9/sdk/callback"
SHORT_TTL_S = 2


class MemoryTokenStorage:
    """The SDK's ``TokenStorage`` in memory: one agent's registration and tokens."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class ConsentWithheld(Exception):
    """The person did not approve another authorization (tests that expect none)."""


@dataclass
class Agent:
    """One SDK client identity: its storage, the person at the browser, and a log of every
    HTTP response the SDK saw (``(method, path, status)``), OAuth requests included."""

    page: Page
    storage: MemoryTokenStorage = field(default_factory=MemoryTokenStorage)
    withhold_consent: bool = False
    authorize_urls: list[str] = field(default_factory=list)
    responses: list[tuple[str, str, int]] = field(default_factory=list)
    _pending: dict[str, str] | None = None

    async def redirect_handler(self, url: str) -> None:
        self.authorize_urls.append(url)
        if self.withhold_consent:
            raise ConsentWithheld(url)
        self._pending = await authorize_in_browser(self.page, url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        answer, self._pending = self._pending, None
        assert answer is not None, "callback without a completed consent"
        return AuthorizationCodeResult(code=answer["code"], state=answer.get("state"), iss=answer.get("iss"))

    async def log(self, response: httpx2.Response) -> None:
        self.responses.append((response.request.method, response.request.url.path, response.status_code))

    def token_statuses(self) -> list[int]:
        return [
            status for method, path, status in self.responses if (method, path) == ("POST", "/oauth/token")
        ]

    @asynccontextmanager
    async def connect(self, server: LiveServer, mode: str = "legacy") -> AsyncIterator[Client]:
        provider = OAuthClientProvider(
            server_url=server.mcp_url,
            client_metadata=OAuthClientMetadata(
                client_name="Interop Python SDK",
                redirect_uris=[REDIRECT_URI],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method="none",
            ),
            storage=self.storage,
            redirect_handler=self.redirect_handler,
            callback_handler=self.callback_handler,
        )
        async with mcp_client(server, mode=mode, auth=provider, on_response=self.log) as client:
            yield client


@pytest_asyncio.fixture(loop_scope="session")
async def agent(page: Page) -> Agent:
    return Agent(page)


@pytest.fixture(scope="module")
def short_ttl_server(
    database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """Access tokens that live two seconds, so a test sees the SDK refresh (own database)."""
    tmp = tmp_path_factory.mktemp("short-ttl")
    with (
        fresh_database(database.kind, tmp) as db,
        run_server(db, tmp, access_token_ttl=SHORT_TTL_S) as server,
    ):
        yield server


def connection_of(server: LiveServer, agent: Agent) -> str:
    """The id of the (single) connection the agent's consent created."""
    assert agent.storage.client_info is not None
    client_id = agent.storage.client_info.client_id
    ids = [c.id for c in server.run(lambda rt: list_connections(rt.sessions)) if c.client_id == client_id]
    assert len(ids) == 1, ids
    return ids[0]


@pytest.mark.parametrize("mode", MODES)
async def test_sdk_signs_in_through_the_browser_and_uses_tools(
    interop_server: LiveServer, agent: Agent, mode: str
) -> None:
    async with agent.connect(interop_server, mode) as client:
        assert client.session.protocol_version == PROTOCOL[mode]
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"whoami", "list_posts", "get_post"} <= names
        me = await whoami(client)
        assert me["username"] == "admin" and me["auth_method"] == "oauth"
        assert me["scopes"] == ["content:read"], "the 401 challenge asks for content:read only"
        posts = await client.call_tool("list_posts", {"limit": 3})
        assert posts.is_error is False and len(posts.structured_content["items"]) == 3

    [url] = agent.authorize_urls  # exactly one consent
    params = query_of(url)
    assert params["resource"] == interop_server.mcp_url
    assert params["code_challenge_method"] == "S256" and params["scope"] == "content:read"
    assert agent.storage.tokens is not None and agent.storage.tokens.refresh_token
    assert me["connection_id"] == connection_of(interop_server, agent)


@pytest.mark.parametrize("mode", MODES)
async def test_step_up_from_read_to_write_asks_again(
    interop_server: LiveServer, agent: Agent, mode: str
) -> None:
    """create_post needs content:write: 403 ``insufficient_scope`` makes the SDK re-authorize
    with the union of scopes (SEP-2350); the person consents a second time, the call succeeds."""
    async with agent.connect(interop_server, mode) as client:
        assert (await whoami(client))["scopes"] == ["content:read"]
        created = await client.call_tool("create_post", {"title": f"Written after a step-up ({mode})"})
        assert created.is_error is False, created.content
        assert created.structured_content["status"] == "draft"
        assert set((await whoami(client))["scopes"]) == {"content:read", "content:write"}

    assert ("POST", "/mcp", 403) in agent.responses
    first, second = agent.authorize_urls
    assert query_of(first)["scope"] == "content:read"
    assert set(query_of(second)["scope"].split()) == {"content:read", "content:write"}


async def test_sdk_refreshes_an_expired_access_token(short_ttl_server: LiveServer, agent: Agent) -> None:
    async with agent.connect(short_ttl_server, "legacy") as client:
        before = await whoami(client)
        first = agent.storage.tokens
        assert first is not None and first.expires_in == SHORT_TTL_S
        await asyncio.sleep(SHORT_TTL_S + 0.5)
        after = await whoami(client)
        second = agent.storage.tokens
    assert second is not None
    assert len(agent.authorize_urls) == 1, "a refresh, not a second consent"
    assert agent.token_statuses() == [200, 200], "code redemption, then one refresh"
    assert second.access_token != first.access_token
    assert second.refresh_token and second.refresh_token != first.refresh_token, "public clients rotate"
    assert after["connection_id"] == before["connection_id"], "refresh keeps the connection"


def revoke(server: LiveServer, agent: Agent) -> None:
    """Revoke the agent's connection as the site owner would (core API, another event loop:
    the server learns of it through its revocation watcher, as with the CLI)."""
    connection_id = connection_of(server, agent)
    assert server.run(
        lambda rt: revoke_connection(rt.sessions, connection_id, audit=rt.audit, reason="interop test")
    )


@asynccontextmanager
async def refused_reauthorization(agent: Agent) -> AsyncIterator[None]:
    """The block's SDK call must end in a fresh authorization the person declines. The SDK's
    failure surfaces when its transport's task group closes, as an exception group, so this
    wraps the whole ``agent.connect`` block."""
    with pytest.raises(BaseExceptionGroup) as failure:
        yield
    assert failure.group_contains(ConsentWithheld), failure.value


async def test_revoked_connection_gets_401_and_its_refresh_token_is_dead(
    interop_server: LiveServer, agent: Agent
) -> None:
    """After a revoke the next call is refused (401; the token is an hour from expiry, so this
    is the revocation) and the refresh token no longer works: only a new consent helps."""
    async with refused_reauthorization(agent), agent.connect(interop_server, "legacy") as client:
        await whoami(client)
        tokens = agent.storage.tokens
        assert tokens is not None and tokens.refresh_token
        revoke(interop_server, agent)
        status = await wait_for_mcp_status(interop_server, tokens.access_token, 401)
        assert status == 401, "the revoked access token must stop working within the watcher's poll"
        seen = len(agent.responses)
        agent.withhold_consent = True
        await asyncio.wait_for(client.call_tool("whoami", {}), timeout=30)
    assert ("POST", "/mcp", 401) in agent.responses[seen:]
    assert len(agent.authorize_urls) == 2, "the SDK fell back to asking the person again"

    assert agent.storage.client_info is not None
    async with http_client(interop_server) as http:
        refused = await http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens.refresh_token,
                "client_id": agent.storage.client_info.client_id,
            },
        )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text


async def test_sdk_refresh_after_revoke_is_refused(short_ttl_server: LiveServer, agent: Agent) -> None:
    """The SDK's own refresh path: its access token expired after a revoke, it tries the
    refresh token, is refused (400), and has to start a new authorization."""
    async with refused_reauthorization(agent), agent.connect(short_ttl_server, "legacy") as client:
        await whoami(client)
        revoke(short_ttl_server, agent)
        agent.withhold_consent = True
        await asyncio.sleep(SHORT_TTL_S + 0.5)
        await asyncio.wait_for(client.call_tool("whoami", {}), timeout=30)
    assert agent.token_statuses() == [200, 400], "code redemption, then the refused refresh"
    assert len(agent.authorize_urls) == 2, "then it fell back to a fresh authorization"


async def wait_for_mcp_status(server: LiveServer, token: str, wanted: int, within_s: float = 5.0) -> int:
    """Poll ``/mcp`` with a bearer token until it answers ``wanted`` (revocation is noticed by a
    background watcher, so there is a short window); return the last status."""
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {**bearer(token), "Accept": "application/json, text/event-stream"}
    deadline = time.monotonic() + within_s
    async with http_client(server) as http:
        while True:
            status = (await http.post("/mcp", json=body, headers=headers)).status_code
            if status == wanted or time.monotonic() > deadline:
                return status
            await asyncio.sleep(0.2)
