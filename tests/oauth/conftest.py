"""The authorization server's endpoints on a real uvicorn (127.0.0.1, free port), once per
database kind, in a tiny Starlette app holding only ``oauth_routes``. Codes are minted through
``core.tokens.create_authorization_code`` (the browser half is tested with the consent page);
everything after that goes over HTTP as a client would send it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from aiconnector.config import Settings
from aiconnector.core.clients import ClientRecord, NewClient, create_pre_registered_client
from aiconnector.core.code_grant import s256
from aiconnector.core.scopes import DEFAULT_SCOPES
from aiconnector.core.tokens import create_authorization_code
from aiconnector.oauth import OAuthState, oauth_routes
from aiconnector.runtime import Runtime, ensure_admin, open_runtime
from tests.conftest import make_settings
from tests.support import DatabaseUnderTest, free_port, serve_in_thread

REDIRECT = "http://127.0.0.1:7777/callback"


def oauth_app(settings: Settings) -> Starlette:
    holder: dict[str, OAuthState] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with open_runtime(settings) as rt:
            await ensure_admin(rt)
            await rt.audit.start()
            holder["state"] = OAuthState.build(settings, rt.sessions, rt.audit, rt.bus)
            try:
                yield
            finally:
                await rt.audit.stop()

    return Starlette(routes=oauth_routes(lambda: holder["state"]), lifespan=lifespan)


@dataclass
class AuthServer:
    base_url: str
    settings: Settings

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"


@contextmanager
def run_auth_server(database: DatabaseUnderTest, tmp: Path, **overrides: Any) -> Iterator[AuthServer]:
    port = free_port()
    settings = make_settings(database, tmp, port, **overrides)
    with serve_in_thread(oauth_app(settings), port) as base_url:
        yield AuthServer(base_url, settings)


@pytest.fixture(scope="module")
def auth_server(
    database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthServer]:
    # Generous limits: tests in one module share an address and a minute; the limits have
    # their own module with their own server.
    with run_auth_server(
        database,
        tmp_path_factory.mktemp("oauth"),
        auth_failures_per_minute=10_000,
        registrations_per_minute=10_000,
        metadata_fetches_per_minute=10_000,
    ) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def rt(auth_server: AuthServer) -> AsyncIterator[Runtime]:
    """The server's database, opened from the test's own event loop."""
    async with open_runtime(auth_server.settings, apply_migrations=False) as runtime:
        yield runtime


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def new_verifier() -> str:
    return secrets.token_urlsafe(48)[:64]


@dataclass
class Flow:
    """A client plus helpers to mint codes for it and redeem them over HTTP."""

    server: AuthServer
    rt: Runtime
    http: httpx.AsyncClient
    client: ClientRecord
    secret: str | None = None

    async def code(
        self,
        verifier: str,
        *,
        scopes: frozenset[str] = DEFAULT_SCOPES,
        user_id: int = 1,
        redirect_uri: str = REDIRECT,
        challenge: str | None = None,
        resource: str | None = None,
        agent_name: str = "test agent",
        redirect_uri_required: bool = True,
    ) -> str:
        return await create_authorization_code(
            self.rt.sessions,
            client=self.client,
            user_id=user_id,
            redirect_uri=redirect_uri,
            code_challenge=challenge or s256(verifier),
            scopes=scopes,
            resource=resource or self.server.settings.mcp_url,
            agent_name=agent_name,
            redirect_uri_required=redirect_uri_required,
        )

    def auth(self) -> dict[str, str]:
        """Client authentication as form fields (client_secret_post for confidential ones)."""
        fields = {"client_id": self.client.client_id}
        if self.secret:
            fields["client_secret"] = self.secret
        return fields

    async def post(self, form: dict[str, str], **kwargs: Any) -> httpx.Response:
        return await self.http.post(self.server.token_url, data=form, **kwargs)

    async def redeem(self, code: str, verifier: str | None, **extra: str) -> httpx.Response:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **self.auth()}
        if verifier is not None:
            form["code_verifier"] = verifier
        return await self.post({**form, **extra})

    async def tokens(self, **code_kwargs: Any) -> dict[str, Any]:
        """A fresh connection's token response."""
        verifier = new_verifier()
        response = await self.redeem(await self.code(verifier, **code_kwargs), verifier)
        assert response.status_code == 200, response.text
        return response.json()

    async def refresh(self, refresh_token: str, **extra: str) -> httpx.Response:
        return await self.post(
            {"grant_type": "refresh_token", "refresh_token": refresh_token, **self.auth(), **extra}
        )


async def make_client(rt: Runtime, *, confidential: bool = False, name: str = "Test client") -> NewClient:
    return await create_pre_registered_client(
        rt.sessions, name=name, redirect_uris=[REDIRECT], confidential=confidential
    )


@pytest_asyncio.fixture(loop_scope="session")
async def flow(auth_server: AuthServer, rt: Runtime, http: httpx.AsyncClient) -> Flow:
    """A fresh public client."""
    new = await make_client(rt)
    return Flow(auth_server, rt, http, new.record)


@pytest_asyncio.fixture(loop_scope="session")
async def confidential_flow(auth_server: AuthServer, rt: Runtime, http: httpx.AsyncClient) -> Flow:
    new = await make_client(rt, confidential=True)
    return Flow(auth_server, rt, http, new.record, new.secret)
