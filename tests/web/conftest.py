"""A real server with the sign-in and consent routes (``web_routes``) on a free loopback port,
once per database, plus helpers: test users and clients, PKCE pairs, a signed-in httpx client.

The server is a small Starlette app rather than the whole product, so these tests exercise
exactly the browser-facing authorization pages; the lead's ``live_server`` covers the wiring."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from aiconnector.config import Settings
from aiconnector.core.login_limits import LoginLimits
from aiconnector.core.users import create_user
from aiconnector.db.models import AuditEvent, AuthorizationCode, OAuthClient, RateCounter
from aiconnector.runtime import ensure_admin, open_runtime
from aiconnector.web.routes import web_routes
from aiconnector.web.state import WebState
from tests.browser.conftest import browser, page  # noqa: F401 - re-exported fixtures
from tests.conftest import ADMIN_PASSWORD, LiveServer, make_settings
from tests.support import DatabaseUnderTest, free_port, serve_in_thread

# Redirect URIs of the test clients. Port 9 (discard) is never listening: browser tests
# intercept these with page.route, httpx tests only read the Location header.
LOOPBACK_CALLBACK = "http://127.0.0.1:9/callback"
CUSTOM_SCHEME_CALLBACK = "cursor://anysphere.cursor-mcp/oauth/callback"
HTTPS_CALLBACK = "https://app.example/oauth/callback"
USER_PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
REQUEST_FIELD = re.compile(r'name="request" value="([^"]+)"')


def web_app(settings: Settings, login_limits: LoginLimits | None = None) -> Starlette:
    """The web routes alone, with their state built in the lifespan (as the real app does)."""
    holder: dict[str, WebState] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with open_runtime(settings) as rt:
            await ensure_admin(rt)
            await rt.audit.start()
            holder["state"] = WebState.create(settings, rt.sessions, rt.audit, login_limits=login_limits)
            try:
                yield
            finally:
                await rt.audit.stop()

    async def home(_request: object) -> PlainTextResponse:
        return PlainTextResponse("home")

    return Starlette(routes=[*web_routes(lambda: holder["state"]), Route("/", home)], lifespan=lifespan)


@pytest.fixture(scope="module")
def web_server(database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    port = free_port()
    settings = make_settings(database, tmp_path_factory.mktemp("web"), port)
    with serve_in_thread(web_app(settings), port) as base_url:
        server = LiveServer(base_url, settings, database)
        server.run(_seed)
        yield server


async def _seed(rt: Any) -> None:  # noqa: ANN401 - Runtime
    for username, role in (("editor1", "editor"), ("reader", "subscriber"), ("victim", "author")):
        await create_user(rt.sessions, username, role=role, password=USER_PASSWORD)
    async with rt.sessions.begin() as session:
        session.add_all(
            [
                OAuthClient(
                    client_id="test-dynamic",
                    kind="dynamic",
                    name="Claude Desktop",
                    redirect_uris=[LOOPBACK_CALLBACK, CUSTOM_SCHEME_CALLBACK],
                    grant_types=["authorization_code", "refresh_token"],
                    token_endpoint_auth_method="none",
                    document={},
                ),
                OAuthClient(
                    client_id="test-one-uri",
                    kind="pre_registered",
                    name="<b>Owner's</b> tool",
                    redirect_uris=[HTTPS_CALLBACK],
                    grant_types=["authorization_code", "refresh_token"],
                    token_endpoint_auth_method="none",
                    document={},
                ),
            ]
        )


# --- helpers -----------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(**overrides: str | None) -> dict[str, str]:
    """A valid request for the dynamic test client; ``None`` in overrides drops a parameter."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": "test-dynamic",
        "redirect_uri": LOOPBACK_CALLBACK,
        "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
        "state": "st-" + secrets.token_hex(4),
        "scope": "content:read content:write",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def field(pattern: re.Pattern[str], html: str) -> str:
    match = pattern.search(html)
    assert match, "field not found in page"
    return match.group(1).replace("&#34;", '"').replace("&amp;", "&")


def http_client(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, follow_redirects=False, timeout=30)


@contextmanager
def sign_in(
    server: LiveServer, username: str = "admin", password: str = ADMIN_PASSWORD
) -> Iterator[httpx.Client]:
    """An httpx client with a live session (it keeps its cookies)."""
    with http_client(server) as client:
        token = field(CSRF_FIELD, client.get("/login").text)
        response = client.post(
            "/login", data={"username": username, "password": password, "csrf": token, "next": "/"}
        )
        assert response.status_code == 303, response.text
        yield client


def consent_form(client: httpx.Client, **overrides: str | None) -> tuple[str, str]:
    """Open the consent page; return its (csrf, request) hidden fields."""
    response = client.get("/oauth/authorize", params=authorize_params(**overrides))
    assert response.status_code == 200, response.text
    return field(CSRF_FIELD, response.text), field(REQUEST_FIELD, response.text)


def reset_rate_limits(server: LiveServer) -> None:
    async def clear(rt: Any) -> None:  # noqa: ANN401
        async with rt.sessions.begin() as session:
            await session.execute(delete(RateCounter))

    server.run(clear)


def start_of_fresh_window(needed_seconds: float = 10, window: int = 60) -> None:
    """Rate limits count in fixed windows; sleep into the next one when the current one might
    end before a test's burst of attempts does (else the burst is split and never trips)."""
    remaining = window - time.time() % window
    if remaining < needed_seconds:
        time.sleep(remaining + 0.05)


def latest_code(server: LiveServer, client_id: str) -> AuthorizationCode | None:
    async def fetch(rt: Any) -> AuthorizationCode | None:  # noqa: ANN401
        async with rt.sessions() as session:
            return await session.scalar(
                select(AuthorizationCode)
                .where(AuthorizationCode.client_id == client_id)
                .order_by(AuthorizationCode.created_at.desc())
                .limit(1)
            )

    return server.run(fetch)


def audit_events(
    server: LiveServer, event: str, match: Callable[[AuditEvent], bool] = lambda _e: True
) -> list[AuditEvent]:
    """Events named ``event`` that satisfy ``match``, newest first; waits (up to 10 s) for the
    server's batched audit writer to store at least one."""

    async def fetch(rt: Any) -> list[AuditEvent]:  # noqa: ANN401
        async with rt.sessions() as session:
            rows = await session.scalars(
                select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id.desc())
            )
            return [row for row in rows if match(row)]

    deadline = time.monotonic() + 10
    while True:
        rows = server.run(fetch)
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)
