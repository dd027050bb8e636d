"""Helpers for the client-side commands: a config directory of the test's own, the
``aiconnector`` executable, a server that can be stopped and started again on the same port
and database, and credentials minted without the device flow (for tests whose subject is
what happens after login)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiconnector.client.credentials import CONFIG_DIR_ENV, Credentials, CredentialStore, token_fields
from aiconnector.client.discovery import Endpoints, discover
from aiconnector.config import Settings
from aiconnector.core.clients import create_pre_registered_client
from aiconnector.core.code_grant import s256
from aiconnector.core.connections import list_connections
from aiconnector.core.scopes import DEFAULT_SCOPES
from aiconnector.core.tokens import create_authorization_code
from tests.browser.conftest import browser, page  # noqa: F401 - re-exported fixtures
from tests.conftest import LiveServer, make_settings
from tests.support import DatabaseUnderTest, free_port, run_sync, serve_in_thread

ORIGIN = "https://site.example"
CLI_PATH = Path(sys.executable).with_name("aiconnector")
REDIRECT = "http://127.0.0.1:9/callback"


def _agent_commands_registered() -> bool:
    from aiconnector.cli.main import cli, register_commands

    register_commands()
    return "login" in cli.commands


def cli_command() -> list[str]:
    """The installed ``aiconnector``. Until cli/main.py registers ``cli.agent.COMMANDS`` (the
    lead's file), an equivalent launcher that adds them, so these tests run either way."""
    if _agent_commands_registered():
        return [str(CLI_PATH)]
    launcher = (
        "from aiconnector.cli.main import cli, register_commands\n"
        "from aiconnector.cli.agent import COMMANDS\n"
        "register_commands()\n"
        "[cli.add_command(c) for c in COMMANDS]\n"
        "cli.main(prog_name='aiconnector')\n"
    )
    return [sys.executable, "-c", launcher]


def make_creds(origin: str = ORIGIN, access: str = "aic_at_one", expires_in: float = 3600) -> Credentials:
    """Credentials for unit tests (no server behind them)."""
    endpoints = Endpoints(
        origin=origin,
        mcp_url=f"{origin}/mcp",
        issuer=origin,
        token_endpoint=f"{origin}/oauth/token",
        revocation_endpoint=f"{origin}/oauth/revoke",
    )
    return Credentials(
        endpoints=endpoints,
        client_id="cid",
        dynamic_client=True,
        access_token=access,
        refresh_token="aic_rt_secret",
        expires_at=time.time() + expires_in,
        lifetime=expires_in,
        scope="content:read",
    )


def expire(store: CredentialStore, origin: str) -> None:
    """Make the stored access token look expired (it still works on the server)."""
    creds = store.load(origin)
    assert creds is not None
    store.save(dataclasses.replace(creds, expires_at=time.time() - 1))


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh config directory for this test, for in-process code and subprocesses alike."""
    path = tmp_path / "config" / "aiconnector"
    monkeypatch.setenv(CONFIG_DIR_ENV, str(path))
    return path


def cli_env(config: Path) -> dict[str, str]:
    return {**os.environ, CONFIG_DIR_ENV: str(config)}


def run_cli(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli_command(), *args], env=cli_env(config), capture_output=True, text=True, timeout=timeout
    )


@dataclass
class RestartableServer:
    """The whole app on a fixed port; ``stop``/``start`` simulate a server restart."""

    settings: Settings
    database: DatabaseUnderTest
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def base_url(self) -> str:
        return self.settings.origin

    @property
    def mcp_url(self) -> str:
        return self.settings.mcp_url

    @property
    def live(self) -> LiveServer:
        return LiveServer(self.base_url, self.settings, self.database)

    def start(self) -> None:
        from aiconnector.app import create_app

        self._stack.enter_context(serve_in_thread(create_app(self.settings), self.settings.port))

    def stop(self) -> None:
        self._stack.close()
        self._stack = contextlib.ExitStack()


@contextlib.contextmanager
def app_server(database: DatabaseUnderTest, tmp: Path, **overrides: Any) -> Iterator[RestartableServer]:
    """The whole app on a free port with settings ``overrides``; generous rate limits, since
    every test of a module shares one address."""
    settings = make_settings(
        database,
        tmp,
        free_port(),
        auth_failures_per_minute=10_000,
        registrations_per_minute=10_000,
        **overrides,
    )
    server = RestartableServer(settings, database)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def short_ttl_server(
    database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RestartableServer]:
    """Access tokens live two seconds, so tests see them expire mid-session."""
    with app_server(database, tmp_path_factory.mktemp("short-ttl"), access_token_ttl=2) as server:
        yield server


def seed_credentials(server: LiveServer, store: CredentialStore, *, agent_name: str) -> Credentials:
    """Log in without the device flow: a pre-registered client, a code minted in core for the
    admin, redeemed over HTTP like any client would, stored like ``login`` stores it."""
    mcp_url = server.settings.mcp_url

    async def mint(rt: Any) -> tuple[str, str, str]:  # noqa: ANN401 - Runtime
        new = await create_pre_registered_client(rt.sessions, name=agent_name, redirect_uris=[REDIRECT])
        verifier = secrets.token_urlsafe(48)
        code = await create_authorization_code(
            rt.sessions,
            client=new.record,
            user_id=1,
            redirect_uri=REDIRECT,
            code_challenge=s256(verifier),
            scopes=DEFAULT_SCOPES,
            resource=mcp_url,
            agent_name=agent_name,
        )
        return new.record.client_id, code, verifier

    client_id, code, verifier = server.run(mint)

    async def redeem() -> Credentials:
        async with httpx.AsyncClient(timeout=30) as http:
            endpoints = await discover(http, server.base_url)
            response = await http.post(
                endpoints.token_endpoint,
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "code_verifier": verifier,
                    "redirect_uri": REDIRECT,
                    "client_id": client_id,
                    "resource": mcp_url,
                },
            )
            assert response.status_code == 200, response.text
            return Credentials(
                endpoints=endpoints,
                client_id=client_id,
                dynamic_client=False,
                **token_fields(response.json()),
            )

    creds = run_sync(redeem())
    store.save(creds)
    return creds


def connection_id(server: LiveServer, agent_name: str) -> str:
    [conn] = [c for c in server.run(lambda rt: list_connections(rt.sessions)) if c.agent_name == agent_name]
    return conn.id


def revoke(server: LiveServer, agent_name: str) -> None:
    from aiconnector.core.connections import revoke_connection

    conn = connection_id(server, agent_name)
    server.run(lambda rt: revoke_connection(rt.sessions, conn, audit=rt.audit, bus=rt.bus))


def mcp_works(server: LiveServer, token: str) -> bool:
    """Does ``token`` authorize a tools/list on /mcp?"""
    response = httpx.post(
        server.mcp_url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
        },
        timeout=30,
    )
    return response.status_code == 200 and "list_posts" in response.text
