"""Application-password authentication on a real server: challenges, audit, scopes, activity
tracking without a write per request, revocation from another process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aiconnector.core.connections import list_connections
from tests.conftest import LiveServer

ACCEPT = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-11-25",
}


def call(
    server: LiveServer, headers: dict[str, str], name: str, arguments: dict | None = None
) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments or {}},
    }
    return httpx.post(server.mcp_url, json=body, headers={**ACCEPT, **headers}, timeout=30)


def list_tools(server: LiveServer, headers: dict[str, str]) -> list[str]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    response = httpx.post(server.mcp_url, json=body, headers={**ACCEPT, **headers}, timeout=30)
    assert response.status_code == 200, response.text
    return [t["name"] for t in response.json()["result"]["tools"]]


def test_401_challenges_bearer_first_with_absolute_metadata_url(live_server: LiveServer) -> None:
    response = httpx.post(
        live_server.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=ACCEPT
    )
    assert response.status_code == 401
    challenges = response.headers.get_list("www-authenticate")
    assert challenges[0].startswith("Bearer ")
    assert (
        f'resource_metadata="{live_server.base_url}/.well-known/oauth-protected-resource/mcp"'
        in challenges[0]
    )
    assert any(c.startswith('Basic realm="AI Connector"') for c in challenges[1:])
    assert "Traceback" not in response.text


def test_protected_resource_metadata_names_the_mcp_url(live_server: LiveServer) -> None:
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        meta = httpx.get(live_server.base_url + path).json()
        assert meta["resource"] == live_server.mcp_url
        assert "content:read" in meta["scopes_supported"]


@pytest.mark.parametrize(
    "header",
    ["Basic", "Basic !!!notbase64", "Basic " + "YWRtaW4=", "Digest abc", "Bearer nonsense"],
    ids=["empty", "not-base64", "no-colon", "unknown-scheme", "unknown-bearer"],
)
def test_malformed_credentials_get_401_not_500(live_server: LiveServer, header: str) -> None:
    response = call(live_server, {"Authorization": header}, "whoami")
    assert response.status_code == 401, response.text


def test_valid_password_works_and_wrong_one_is_audited(live_server: LiveServer) -> None:
    password = live_server.app_password(name="audit probe")
    ok = call(live_server, live_server.basic_header("admin", password), "whoami")
    assert ok.status_code == 200, ok.text
    who = ok.json()["result"]["structuredContent"]
    assert who["username"] == "admin" and who["role"] == "administrator"

    wrong = call(live_server, live_server.basic_header("admin", password[:-1] + "#"), "whoami")
    assert wrong.status_code == 401

    async def failures(rt):  # noqa: ANN001, ANN202
        await asyncio_sleep_until(lambda: rt.audit.query(events=["auth.failure"], limit=5))
        return await rt.audit.query(events=["auth.failure"], limit=5)

    events = live_server.run(failures)
    assert any(e.detail.get("username") == "admin" for e in events)
    assert all(password not in str(e.detail) for e in events)


async def asyncio_sleep_until(probe, timeout: float = 5.0) -> None:  # noqa: ANN001
    import asyncio

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(0.1)


def test_scoped_password_sees_and_calls_only_its_tools(live_server: LiveServer) -> None:
    password = live_server.app_password(name="reader", scopes=frozenset({"content:read"}))
    headers = live_server.basic_header("admin", password)
    names = list_tools(live_server, headers)
    assert "list_posts" in names and "create_post" not in names and "list_users" not in names

    denied = call(live_server, headers, "create_post", {"title": "Nope"})
    assert denied.status_code == 403
    challenge = denied.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert "content:write" in challenge and "content:read" in challenge


def test_revoke_from_another_process_stops_the_password(live_server: LiveServer) -> None:
    password = live_server.app_password(name="to revoke")
    headers = live_server.basic_header("admin", password)
    assert call(live_server, headers, "whoami").status_code == 200  # now cached by the server

    [conn] = [
        c for c in live_server.run(lambda rt: list_connections(rt.sessions)) if c.agent_name == "to revoke"
    ]
    cli = str(Path(sys.executable).with_name("aiconnector"))
    subprocess.run(
        [
            cli,
            "--database-url",
            live_server.settings.effective_database_url,
            "connections",
            "revoke",
            conn.id,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + 5
    status = 200
    while time.monotonic() < deadline and status == 200:
        status = call(live_server, headers, "whoami").status_code
        time.sleep(0.1)
    assert status == 401, "a revoked password must stop working within the watcher interval"
