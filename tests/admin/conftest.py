"""Shared by the admin-page tests: the full server (``live_server``, both databases), a real
browser, and two ways to be signed in — a Playwright page signed in through /login, and an
httpx client signed in through the same form (with its CSRF token)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.browser.conftest import browser, page  # noqa: F401 - re-exported fixtures
from tests.conftest import ADMIN_PASSWORD, LiveServer

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
USER_PASSWORD = "correct horse battery"


def csrf_of(html: str) -> str:
    """The first CSRF token in a page (every admin form carries the session's token)."""
    match = CSRF_FIELD.search(html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def signed_in_page(
    browser: Any,  # noqa: ANN401, F811 - playwright Browser
    server: LiveServer,
    username: str = "admin",
    password: str = ADMIN_PASSWORD,
    *,
    width: int = 1280,
    height: int = 800,
    next_path: str = "/admin",
    **context_options: Any,  # noqa: ANN401 - e.g. timezone_id="Asia/Tokyo"
) -> Any:  # noqa: ANN401 - playwright Page
    """A new browser context of the given viewport, signed in through the /login form and left
    on ``next_path``. Close it with ``page.context.close()``."""
    context = browser.new_context(viewport={"width": width, "height": height}, **context_options)
    tab = context.new_page()
    tab.goto(f"{server.base_url}/login?next={next_path}")
    tab.get_by_label("Username").fill(username)
    tab.get_by_label("Password").fill(password)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url(re.compile(r".*/admin.*"))
    return tab


@contextmanager
def admin_client(
    server: LiveServer, username: str = "admin", password: str = ADMIN_PASSWORD
) -> Iterator[httpx.Client]:
    """An httpx client signed in through the /login form; it keeps its session cookie."""
    with httpx.Client(base_url=server.base_url, follow_redirects=False, timeout=30) as client:
        token = csrf_of(client.get("/login").text)
        response = client.post(
            "/login", data={"username": username, "password": password, "csrf": token, "next": "/admin"}
        )
        assert response.status_code == 303, response.text
        yield client


def ensure_user(
    server: LiveServer, username: str, role: str = "author", password: str = USER_PASSWORD
) -> int:
    """Create a user once per server (module-scoped servers are shared by tests); its id."""
    from sqlalchemy import select

    from aiconnector.core.users import create_user
    from aiconnector.db.models import User

    async def make(rt: Any) -> int:  # noqa: ANN401 - Runtime
        async with rt.sessions() as session:
            existing = await session.scalar(select(User.id).where(User.username == username))
        if existing is not None:
            return existing
        return (await create_user(rt.sessions, username, role=role, password=password)).id

    return server.run(make)


def shot(tab: Any, server: LiveServer, name: str) -> None:  # noqa: ANN401 - playwright Page
    """Save ``test-artifacts/screenshots/<name>.png`` once (from the SQLite run): both databases
    render the same page, and one file per page keeps the artifacts easy to review."""
    if server.database.kind == "sqlite":
        from tests.browser.conftest import screenshot

        screenshot(tab, name)
