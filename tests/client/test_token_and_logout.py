"""``aiconnector token`` and ``logout`` against a live server, with credentials minted
without the device flow (test_login.py covers that flow): discovery from either URL form,
refreshing only when needed, one refresh for many concurrent processes, revoking."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from aiconnector.client.credentials import CredentialStore
from aiconnector.client.discovery import discover
from tests.client.conftest import (
    RestartableServer,
    cli_command,
    cli_env,
    expire,
    make_creds,
    mcp_works,
    revoke,
    run_cli,
    seed_credentials,
)
from tests.conftest import LiveServer
from tests.support import run_sync


def test_discovery_from_site_or_mcp_url(live_server: LiveServer) -> None:
    async def both() -> tuple[object, object]:
        async with httpx.AsyncClient(timeout=30) as http:
            return await discover(http, live_server.base_url), await discover(http, live_server.mcp_url + "/")

    from_site, from_mcp = run_sync(both())
    assert from_site == from_mcp
    assert from_site.mcp_url == live_server.mcp_url  # type: ignore[attr-defined]
    assert from_site.token_endpoint == f"{live_server.base_url}/oauth/token"  # type: ignore[attr-defined]
    assert from_site.revocation_endpoint == f"{live_server.base_url}/oauth/revoke"  # type: ignore[attr-defined]


def test_token_without_login_says_what_to_do(live_server: LiveServer, config_dir: Path) -> None:
    result = run_cli(config_dir, "token", live_server.base_url)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"not logged in to {live_server.base_url}; run: aiconnector login" in result.stderr


def test_token_is_reused_then_refreshed(live_server: LiveServer, config_dir: Path) -> None:
    store = CredentialStore()
    creds = seed_credentials(live_server, store, agent_name="token reuse")
    # Still fresh: printed as stored, for the MCP URL as well as the site URL.
    first = run_cli(config_dir, "token", live_server.mcp_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == creds.access_token
    expire(store, live_server.base_url)
    second = run_cli(config_dir, "token", live_server.base_url)
    assert second.returncode == 0, second.stderr
    token = second.stdout.strip()
    assert token != creds.access_token and mcp_works(live_server, token)
    stored = store.load(live_server.base_url)
    assert stored is not None and stored.access_token == token
    assert stored.refresh_token != creds.refresh_token, "the rotated refresh token is kept"
    assert token not in second.stderr


def test_concurrent_processes_refresh_once(live_server: LiveServer, config_dir: Path) -> None:
    """Six processes find the token expired at once. The lock makes one refresh; the others
    re-read the file and print the same new token. Without the lock they would spend the same
    refresh token six times, which the server only tolerates within its grace window."""
    server = live_server
    store = CredentialStore()
    creds = seed_credentials(server, store, agent_name="token crowd")
    expire(store, server.base_url)
    procs = [
        subprocess.Popen(
            [*cli_command(), "token", server.base_url],
            env=cli_env(config_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _out, err in outputs]
    tokens = {out.strip() for out, _err in outputs}
    assert len(tokens) == 1 and creds.access_token not in tokens
    stored = store.load(server.base_url)
    assert stored is not None and stored.access_token in tokens


def test_revoked_connection_is_reported(short_ttl_server: RestartableServer, config_dir: Path) -> None:
    server = short_ttl_server.live
    seed_credentials(server, CredentialStore(), agent_name="token revoked")
    revoke(server, "token revoked")
    time.sleep(2.2)
    result = run_cli(config_dir, "token", server.base_url)
    assert result.returncode == 1 and result.stdout == ""
    assert f"connection revoked, run aiconnector login {server.base_url}" in result.stderr


def test_logout_revokes_and_forgets(live_server: LiveServer, config_dir: Path) -> None:
    store = CredentialStore()
    creds = seed_credentials(live_server, store, agent_name="logout")
    assert mcp_works(live_server, creds.access_token)
    result = run_cli(config_dir, "logout", live_server.mcp_url)
    assert result.returncode == 0, result.stderr
    assert "revoked" in result.stdout
    assert not store.path_for(live_server.base_url).exists()
    assert not mcp_works(live_server, creds.access_token)
    dead = httpx.post(
        f"{live_server.base_url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": creds.refresh_token,
            "client_id": creds.client_id,
        },
        timeout=30,
    )
    assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"
    again = run_cli(config_dir, "logout", live_server.base_url)
    assert again.returncode == 0 and "not logged in" in again.stderr


def test_logout_keeps_credentials_when_the_server_is_down(config_dir: Path) -> None:
    store = CredentialStore()
    origin = "http://127.0.0.1:9"  # discard port: nothing listens
    creds = make_creds(origin=origin)
    store.save(creds)
    result = run_cli(config_dir, "logout", origin)
    assert result.returncode == 1
    assert "credentials kept" in result.stderr and "--local-only" in result.stderr
    assert store.load(origin) is not None
    forced = run_cli(config_dir, "logout", origin, "--local-only")
    assert forced.returncode == 0 and store.load(origin) is None


@pytest.mark.parametrize("command", ["token", "logout", "proxy"])
def test_bad_urls_are_refused(config_dir: Path, command: str) -> None:
    result = run_cli(config_dir, command, "http://site.example")
    assert result.returncode == 1 and "unencrypted" in result.stderr
