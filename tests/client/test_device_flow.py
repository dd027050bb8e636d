"""The device-flow client against a scripted authorization server (httpx.MockTransport) with
a fake clock: the polling rules of RFC 8628 §3.4–3.5 are about timing, which a live server
cannot show quickly. The live login is in test_login.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest

from aiconnector.client.credentials import CredentialStore
from aiconnector.client.device_flow import (
    AccessDenied,
    CodeExpired,
    DeviceAuthorization,
    login,
    poll_for_tokens,
)
from aiconnector.client.discovery import DEVICE_GRANT, Endpoints

ORIGIN = "https://site.example"
ENDPOINTS = Endpoints(
    origin=ORIGIN,
    mcp_url=f"{ORIGIN}/mcp",
    issuer=ORIGIN,
    token_endpoint=f"{ORIGIN}/oauth/token",
    device_authorization_endpoint=f"{ORIGIN}/oauth/device_authorization",
    registration_endpoint=f"{ORIGIN}/oauth/register",
    revocation_endpoint=f"{ORIGIN}/oauth/revoke",
)
AUTH = DeviceAuthorization("dc_secret", "BCDF-GHJK", f"{ORIGIN}/device", None, expires_in=60, interval=5)
TOKENS = {
    "access_token": "aic_at_x",
    "refresh_token": "aic_rt_x",
    "expires_in": 3600,
    "scope": "content:read",
}


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class View:
    def __init__(self) -> None:
        self.shown: list[DeviceAuthorization] = []
        self.notes: list[str] = []
        self.ticks = 0

    def show_code(self, auth: DeviceAuthorization) -> None:
        self.shown.append(auth)

    def waiting(self, seconds_left: float) -> None:
        self.ticks += 1

    def note(self, message: str) -> None:
        self.notes.append(message)

    def done(self) -> None:
        pass


def scripted(answers: list[tuple[int, dict]], fake: FakeTime, polls: list[float]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        assert form == {"grant_type": DEVICE_GRANT, "device_code": "dc_secret", "client_id": "cid"}
        polls.append(fake.now)
        status, body = answers.pop(0)
        return httpx.Response(status, json=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def poll(answers: list[tuple[int, dict]]) -> tuple[dict, list[float], View]:
    fake, polls, view = FakeTime(), [], View()
    async with scripted(answers, fake, polls) as http:
        result = await poll_for_tokens(http, ENDPOINTS, "cid", AUTH, view, sleep=fake.sleep, clock=fake.clock)
    return result, [p - 1000.0 for p in polls], view


def pending() -> tuple[int, dict]:
    return 400, {"error": "authorization_pending"}


async def test_polls_at_the_interval_and_slows_down_for_good() -> None:
    result, polls, view = await poll([pending(), (400, {"error": "slow_down"}), pending(), (200, TOKENS)])
    assert result == TOKENS
    gaps = [round(b - a, 3) for a, b in zip([0.0, *polls], polls, strict=False)]
    assert gaps == [5, 5, 10, 10], "slow_down adds 5 s to every later interval"
    assert view.ticks >= 25, "progress is reported while waiting"


@pytest.mark.parametrize(
    ("error", "exception", "message"),
    [
        ("access_denied", AccessDenied, "denied"),
        ("expired_token", CodeExpired, "expired"),
    ],
)
async def test_denied_and_expired_end_the_wait(error: str, exception: type[Exception], message: str) -> None:
    with pytest.raises(exception, match=message):
        await poll([pending(), (400, {"error": error})])


async def test_gives_up_when_the_code_lifetime_is_over() -> None:
    with pytest.raises(CodeExpired):
        await poll([pending()] * 20)


async def test_unreachable_server_does_not_end_the_wait() -> None:
    fake, view, calls = FakeTime(), View(), []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("connection refused")
        return httpx.Response(200, json=TOKENS)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        assert await poll_for_tokens(http, ENDPOINTS, "cid", AUTH, view, sleep=fake.sleep, clock=fake.clock)
    assert view.notes == ["server unreachable, still trying"]


def discovery_routes(extra: Callable[[httpx.Request], httpx.Response | None]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/oauth-protected-resource/mcp":
            return httpx.Response(200, json={"resource": f"{ORIGIN}/mcp", "authorization_servers": [ORIGIN]})
        if path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json={k: v for k, v in ENDPOINTS.to_json().items() if k != "origin"})
        answer = extra(request)
        return answer if answer is not None else httpx.Response(404)

    return httpx.MockTransport(handler)


async def test_login_registers_reuses_and_re_registers_a_forgotten_client(config_dir: object) -> None:
    registered: list[dict] = []
    known: set[str] = set()
    revoked: list[str] = []
    issued: list[str] = []
    fake = FakeTime()

    def server(request: httpx.Request) -> httpx.Response | None:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if request.url.path == "/oauth/register":
            registered.append(json.loads(request.content))
            client_id = f"client-{len(registered)}"
            known.add(client_id)
            return httpx.Response(201, json={"client_id": client_id})
        if request.url.path == "/oauth/device_authorization":
            if form["client_id"] not in known:
                return httpx.Response(401, json={"error": "invalid_client"})
            assert form["resource"] == f"{ORIGIN}/mcp" and form["scope"] == "content:read content:write"
            return httpx.Response(200, json=_auth_json())
        if request.url.path == "/oauth/token":
            issued.append(f"aic_rt_{len(issued) + 1}")
            return httpx.Response(200, json={**TOKENS, "refresh_token": issued[-1]})
        if request.url.path == "/oauth/revoke":
            revoked.append(form["token"])
            return httpx.Response(200)
        return None

    store = CredentialStore()
    async with httpx.AsyncClient(transport=discovery_routes(server)) as http:

        async def run() -> str:
            view = View()
            creds = await login(
                f"{ORIGIN}/mcp",
                store=store,
                view=view,
                http=http,
                scope="content:read content:write",
                sleep=fake.sleep,
                clock=fake.clock,
            )
            assert view.shown and view.shown[0].user_code == "BCDF-GHJK"
            return creds.client_id

        assert await run() == "client-1"
        assert registered[0] == {
            "client_name": registered[0]["client_name"],
            "grant_types": [DEVICE_GRANT, "refresh_token"],
            "token_endpoint_auth_method": "none",
        }
        assert registered[0]["client_name"].startswith("aiconnector CLI on ")
        assert await run() == "client-1", "the registered client is reused"
        assert revoked == ["aic_rt_1"], "the replaced login's connection is revoked"
        known.clear()  # the server garbage-collected it
        assert await run() == "client-2"
    stored = store.load(ORIGIN)
    assert stored is not None and stored.dynamic_client and stored.client_id == "client-2"


def _auth_json() -> dict:
    return {
        "device_code": AUTH.device_code,
        "user_code": AUTH.user_code,
        "verification_uri": AUTH.verification_uri,
        "expires_in": 60,
        "interval": 1,
    }
