"""What a user installs, used as a person and as clients use it: the built wheel in a clean
virtual environment (runtime dependencies only), its ``aiconnector serve`` driven by chromium,
the official MCP Python SDK over OAuth, and the clean install's own ``aiconnector login`` and
``aiconnector proxy`` over the device flow.

Each test also reads the server's log: a traceback or a 5xx there fails the test that caused it."""

from __future__ import annotations

import asyncio
import re
import tempfile
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from aiconnector.app import create_app
from aiconnector.config import Settings
from tests.conftest import ADMIN_PASSWORD
from tests.install.conftest import TEST_ONLY_DISTRIBUTIONS, CleanInstall, InstalledServer, clean_env
from tests.interop.test_python_sdk import Agent
from tests.server_log_guard import assert_clean_server_log

if TYPE_CHECKING:  # playwright is imported by the fixtures
    from playwright.async_api import Page

SRC = Path(__file__).resolve().parents[2] / "src"
USER_CODE = re.compile(r"^\s+([B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4})\s*$", re.MULTILINE)
MAX_ADMIN_PAGES = 120


@pytest.fixture(autouse=True)
def server_log_stays_clean(installed_server: InstalledServer) -> Iterator[None]:
    """The part of the installed server's log written during this test has no traceback and
    no 5xx answer."""
    before = len(installed_server.log())
    yield
    assert_clean_server_log(installed_server.log()[before:])


def test_the_wheel_holds_every_file_of_the_package_and_nothing_of_the_tests(
    clean_install: CleanInstall,
) -> None:
    names = set(zipfile.ZipFile(clean_install.wheel).namelist())
    expected = {
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in path.as_posix()
    }
    assert expected - names == set(), "files under src/ that users never get"
    assert any(n.startswith("aiconnector/web/templates/admin/") for n in names)
    assert any(n.startswith("aiconnector/db/migrations/versions/") for n in names)
    installed = clean_install.installed()
    assert "aiconnector" in installed
    assert not installed & set(TEST_ONLY_DISTRIBUTIONS), "runtime dependencies only"


async def test_home_page_and_static_files_are_served(installed_server: InstalledServer) -> None:
    async with httpx.AsyncClient(base_url=installed_server.base_url) as http:
        home = await http.get("/")
        assert home.status_code == 200 and "<style" in home.text and "Lantern" in home.text
        script = await http.get("/static/admin-copy.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]


async def test_sdk_client_authorizes_in_the_browser_and_lists_posts(
    installed_server: InstalledServer, page: Page
) -> None:
    """DCR → sign-in → consent → Authorize → token → tools/call, as Claude or Cursor do it."""
    agent = Agent(page)
    async with agent.connect(installed_server, "legacy") as client:  # type: ignore[arg-type]
        posts = await client.call_tool("list_posts", {"limit": 5})
        assert posts.is_error is False, posts.content
        assert len(posts.structured_content["items"]) == 5
        media = await client.call_tool("list_media", {})
        assert media.is_error is False, media.content
        items = media.structured_content["items"]
    assert agent.storage.tokens is not None and agent.storage.tokens.refresh_token
    assert [path for _, path, _ in agent.responses].count("/oauth/register") == 1
    assert items, "the demo site ships media"
    async with httpx.AsyncClient() as http:  # the demo's images are packaged and served
        for item in items[:3]:
            image = await http.get(item["url"])
            assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
            assert len(image.content) > 100


async def _read_user_code(proc: asyncio.subprocess.Process, seen: list[str]) -> tuple[str, str]:
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        assert line, f"login ended without a code: {''.join(seen)}"
        seen.append(line.decode())
        text = "".join(seen)
        code, url = USER_CODE.search(text), re.search(r"^\s+(http\S+/device)\s*$", text, re.MULTILINE)
        if code and url:
            return code.group(1), url.group(1)


async def _sign_in(page: Page, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_load_state()


async def test_device_login_then_proxy_from_the_clean_install(
    installed_server: InstalledServer, clean_install: CleanInstall, page: Page, tmp_path: Path
) -> None:
    env = clean_env(AICONNECTOR_CONFIG_DIR=str(tmp_path / "config"))
    login = await asyncio.create_subprocess_exec(
        clean_install.bin("aiconnector"),
        "login",
        installed_server.base_url,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    seen: list[str] = []
    try:
        user_code, verification_uri = await _read_user_code(login, seen)
        assert verification_uri == f"{installed_server.base_url}/device"
        await page.goto(verification_uri)
        if urlsplit(page.url).path == "/login":
            await _sign_in(page)
        await page.get_by_label("Code").fill(user_code)
        await page.get_by_role("button", name="Continue").click()
        await page.get_by_role("button", name="Authorize").click()
        await page.wait_for_load_state()
        assert await asyncio.wait_for(login.wait(), timeout=60) == 0, await login.stderr.read()  # type: ignore[union-attr]
    finally:
        if login.returncode is None:
            login.kill()
            await login.wait()
    assert "Approved. Logged in to" in "".join(seen) + (await login.stdout.read()).decode()  # type: ignore[union-attr]

    params = StdioServerParameters(
        command=clean_install.bin("aiconnector"), args=["proxy", installed_server.base_url], env=env
    )
    async with Client(stdio_client(params), mode="legacy") as client:
        posts = await client.call_tool("list_posts", {"limit": 3})
        assert posts.is_error is False, posts.content
        assert len(posts.structured_content["items"]) == 3


# --- every admin page, and one form on each -------------------------------------------------


def admin_get_routes() -> list[re.Pattern[str]]:
    """The GET routes under /admin that the server defines: each must be reached by the crawl,
    so a new page that answers 500 (or that nothing links to) fails this test."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp), database_url=f"sqlite+aiosqlite:///{tmp}/x.db"))
    return [
        route.path_regex
        for route in app.routes  # the route table is the truth
        if getattr(route, "path", "").startswith("/admin") and "GET" in (getattr(route, "methods", ()) or ())
    ]


async def crawl_admin(page: Page, base: str, starts: list[str]) -> dict[str, int]:
    """Every /admin URL reachable from ``starts`` by links, form actions and redirects: its HTTP
    status, requested with the browser's own cookies (as the signed-in person sees it). A GET
    on a POST-only action must answer a redirect or 405, never an error."""
    seen: dict[str, int] = {}
    queue = [base + path for path in starts]
    while queue and len(seen) < MAX_ADMIN_PAGES:
        url = queue.pop(0)
        if url in seen:
            continue
        response = await page.request.get(url, max_redirects=0)
        seen[url] = response.status
        location = response.headers.get("location", "")
        if response.status in (302, 303, 307) and location.startswith(("/admin", base + "/admin")):
            queue.append(location if location.startswith(base) else base + location)
        if response.status != 200 or "text/html" not in response.headers.get("content-type", ""):
            continue
        await page.set_content(await response.text())  # read its links without running its scripts twice
        targets = await page.eval_on_selector_all(
            "a[href], form[action]", "els => els.map(e => e.getAttribute('href') || e.getAttribute('action'))"
        )
        queue += [base + t.split("#")[0] for t in targets if t and t.startswith("/admin")]
    return seen


@pytest_asyncio.fixture(loop_scope="session")
async def admin_page(installed_server: InstalledServer, page: Page) -> AsyncIterator[Page]:
    """Signed in at /login, as a person opens the admin."""
    statuses: list[tuple[int, str]] = []
    page.on("response", lambda r: statuses.append((r.status, r.url)))
    await page.goto(f"{installed_server.base_url}/login")
    await _sign_in(page)
    assert urlsplit(page.url).path != "/login", "signed in"
    yield page
    assert [s for s in statuses if s[0] >= 500] == []


async def test_every_admin_page_and_a_form_on_each(
    installed_server: InstalledServer, admin_page: Page
) -> None:
    page, base = admin_page, installed_server.base_url

    # Application Passwords: create one (it also makes a connection to look at).
    await page.goto(f"{base}/admin/profile")
    await page.get_by_label("Name").fill("Installed wheel agent")
    await page.get_by_role("button", name="Create password").click()
    await page.wait_for_load_state()
    assert "aic_ap_" in await page.content(), "the new password is shown once"

    # Users: add a person.
    await page.goto(f"{base}/admin/users")
    await page.get_by_label("Username").fill("maria")
    await page.get_by_label("Password").fill("maria-password-123")
    await page.get_by_role("button", name="Create user").click()
    await page.wait_for_load_state()
    assert "maria" in await page.content()

    # Add Connection → generic: register a client (shown with its id).
    await page.goto(f"{base}/admin/add/generic")
    await page.get_by_label("Client name").fill("Installed wheel client")
    await page.get_by_label("Redirect URIs").fill("http://127.0.0.1/callback")
    await page.get_by_role("button", name="Register client").click()
    await page.wait_for_load_state()
    assert "Installed wheel client" in await page.content()

    # Audit log: filter.
    await page.goto(f"{base}/admin/audit")
    await page.get_by_role("button", name="Apply filters").click()
    await page.wait_for_load_state()
    assert urlsplit(page.url).path == "/admin/audit"

    # Every page reachable from the navigation answers 200, and every admin GET route is reached.
    # /admin/connections.json is what the Connections page's script polls for live updates.
    statuses = await crawl_admin(page, base, ["/admin", "/admin/", "/admin/connections.json"])
    assert {url: s for url, s in statuses.items() if s not in (200, 302, 303, 307, 405)} == {}
    assert sum(s == 200 for s in statuses.values()) >= 10, statuses
    paths = {urlsplit(url).path for url in statuses}
    unreached = [p.pattern for p in admin_get_routes() if not any(p.match(path) for path in paths)]
    assert unreached == [], "admin pages no link leads to (or the crawl missed)"

    # A connection: rename it, then revoke it from its confirmation page.
    await page.goto(f"{base}/admin/connections")
    await page.get_by_role("link", name="Installed wheel agent").first.click()
    await page.wait_for_load_state()
    await page.get_by_label("Agent name").fill("Renamed wheel agent")
    await page.get_by_role("button", name="Rename").click()
    await page.wait_for_load_state()
    assert "Renamed wheel agent" in await page.content()
    await page.get_by_role("link", name="Revoke connection…").click()
    await page.get_by_label("Reason").fill("install test")
    await page.get_by_role("button", name="Revoke connection").click()
    await page.wait_for_load_state()
    assert "Revoked" in await page.content()
