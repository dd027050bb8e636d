"""``X-Forwarded-For`` / ``X-Forwarded-Proto`` count only from trusted proxies, and then every
part of the server sees the real client: the rate limiter's keys, the audit log of /mcp, of the
sign-in page and of the OAuth token endpoint. Real servers on SQLite and PostgreSQL (the rate
counters and the audit log live in the database)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from aiconnector.db.models import AuditEvent, RateCounter
from aiconnector.ops.forwarded import TrustedProxies, parse_networks, with_trusted_proxies
from tests.ops.conftest import Running, basic, running
from tests.support import DatabaseUnderTest

PROXIES = ("127.0.0.1", "10.0.0.0/8")  # the tests' own address is the "proxy"


@pytest.fixture(scope="module")
def behind_proxy(database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(database, tmp_path_factory.mktemp("trusting"), trusted_proxies=PROXIES) as server:
        yield server


@pytest.fixture(scope="module")
def direct(database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(database, tmp_path_factory.mktemp("direct")) as server:
        yield server


def audit_ip(server: Running, event: str, **detail: str) -> str | None:
    """The address of the audit event whose detail has these values (waits for the batch)."""

    async def find(rt: Any) -> str | None:  # noqa: ANN401
        async with rt.sessions() as session:
            rows = (
                await session.execute(
                    select(AuditEvent.ip, AuditEvent.detail).where(AuditEvent.event == event)
                )
            ).all()
        for ip, found in rows:
            if all((found or {}).get(k) == v for k, v in detail.items()):
                return ip
        return None

    deadline = time.monotonic() + 30
    while (ip := server.live.run(find)) is None:
        assert time.monotonic() < deadline, f"no {event} audit event with {detail}"
        time.sleep(0.1)
    return ip


def rate_keys(server: Running, prefix: str) -> dict[str, int]:
    async def read(rt: Any) -> dict[str, int]:  # noqa: ANN401
        async with rt.sessions() as session:
            rows = (await session.execute(select(RateCounter.key, RateCounter.count))).all()
        totals: dict[str, int] = {}
        for key, count in rows:
            if key.startswith(prefix):
                totals[key] = totals.get(key, 0) + count
        return totals

    return server.live.run(read)


def clear_rate_counters(server: Running) -> None:
    async def clear(rt: Any) -> None:  # noqa: ANN401
        async with rt.sessions.begin() as session:
            await session.execute(delete(RateCounter))

    server.live.run(clear)


def wrong_password(server: Running, forwarded: list[tuple[str, str]]) -> str:
    username = "xff-" + secrets.token_hex(6)
    headers = [*forwarded, *basic(username, "aic_ap_" + "x" * 32).items()]
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    response = httpx.post(
        f"{server.url}/mcp",
        json=body,
        headers=[*headers, ("Accept", "application/json, text/event-stream")],
    )
    assert response.status_code == 401, response.text
    return username


# --- end to end -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ([("X-Forwarded-For", "203.0.113.7")], "203.0.113.7"),
        # The client wrote 6.6.6.6 itself; our edge proxy appended what it saw; an internal
        # trusted hop (10.1.2.3) forwarded it: the rightmost untrusted hop is the client.
        ([("X-Forwarded-For", "6.6.6.6, 203.0.113.8, 10.1.2.3")], "203.0.113.8"),
        # Repeated headers are one list, in order.
        ([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.9:4711")], "203.0.113.9"),
        ([("X-Forwarded-For", "10.0.0.5, 10.0.0.6")], "10.0.0.5"),  # all trusted: the leftmost
        ([("X-Forwarded-For", "203.0.113.10, not-an-address")], "127.0.0.1"),  # malformed: the peer
        ([("X-Forwarded-For", "[2001:db8::1]:443")], "2001:db8::1"),
    ],
)
def test_from_a_trusted_proxy_the_forwarded_client_is_audited(
    behind_proxy: Running, forwarded: list[tuple[str, str]], client: str
) -> None:
    username = wrong_password(behind_proxy, forwarded)
    assert audit_ip(behind_proxy, "auth.failure", username=username) == client


def test_from_an_untrusted_peer_forwarded_headers_are_ignored(direct: Running) -> None:
    username = wrong_password(direct, [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")])
    assert audit_ip(direct, "auth.failure", username=username) == "127.0.0.1"


def test_rate_limits_count_the_forwarded_client_only_from_a_trusted_proxy(
    behind_proxy: Running, direct: Running
) -> None:
    clear_rate_counters(direct)  # one database: clears both servers' counters
    for _ in range(2):
        wrong_password(behind_proxy, [("X-Forwarded-For", "198.51.100.1")])
    wrong_password(behind_proxy, [("X-Forwarded-For", "198.51.100.2")])
    for spoofed in ("198.51.100.3", "198.51.100.4"):
        wrong_password(direct, [("X-Forwarded-For", spoofed)])
    counted = rate_keys(direct, "ip:")
    assert counted == {"ip:198.51.100.1": 2, "ip:198.51.100.2": 1, "ip:127.0.0.1": 2}


def test_sign_in_and_token_endpoint_audit_the_forwarded_client(
    behind_proxy: Running, direct: Running
) -> None:
    for server, expected in ((behind_proxy, "203.0.113.20"), (direct, "127.0.0.1")):
        username = "xff-" + secrets.token_hex(6)
        headers = {"X-Forwarded-For": "203.0.113.20"}
        page = httpx.post(
            f"{server.url}/login", data={"username": username, "password": "x"}, headers=headers
        )
        assert page.status_code == 403  # no CSRF token: refused and audited
        assert audit_ip(server, "login.failure", username=username) == expected
        client_id = "nobody-" + secrets.token_hex(6)
        token = httpx.post(
            f"{server.url}/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": client_id},
            headers=headers,
        )
        assert token.status_code == 401
        assert audit_ip(server, "oauth.client_auth_failure", client_id=client_id) == expected


# --- the layer itself ---------------------------------------------------------------------------


class _Capture:
    def __init__(self) -> None:
        self.scope: dict[str, Any] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        self.scope = scope


def _run(layer: Any, peer: str, headers: list[tuple[bytes, bytes]], kind: str = "http") -> dict[str, Any]:  # noqa: ANN401
    inner = layer._app
    scope = {"type": kind, "client": (peer, 5000), "scheme": "http", "headers": headers}
    asyncio.run(layer(scope, None, None))
    return inner.scope


def test_layer_rewrites_client_and_scheme_only_for_trusted_peers() -> None:
    layer = TrustedProxies(_Capture(), ["10.0.0.0/8", "::1"])
    headers = [(b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-proto", b"http, https")]
    seen = _run(layer, "10.9.9.9", headers)
    assert seen["client"] == ("198.51.100.7", 0) and seen["scheme"] == "https"
    seen = _run(layer, "::1", headers, kind="websocket")
    assert seen["client"] == ("198.51.100.7", 0) and seen["scheme"] == "wss"
    seen = _run(layer, "192.0.2.1", headers)  # not a trusted peer
    assert seen["client"] == ("192.0.2.1", 5000) and seen["scheme"] == "http"
    seen = _run(layer, "10.9.9.9", [(b"x-forwarded-proto", b"gopher")])  # unknown scheme ignored
    assert seen["scheme"] == "http" and seen["client"] == ("10.9.9.9", 5000)
    seen = _run(layer, "::ffff:10.0.0.1", [(b"x-forwarded-for", b"198.51.100.8")])  # v4-mapped peer
    assert seen["client"] == ("198.51.100.8", 0)


def test_no_trusted_proxies_means_no_layer_and_bad_entries_are_refused() -> None:
    app = _Capture()
    assert with_trusted_proxies(app, ()) is app
    assert parse_networks(["10.0.0.1", " 192.168.0.0/16 ", "", "fd00::/8"])[1].num_addresses == 65536
    with pytest.raises(ValueError, match="not-an-ip"):
        parse_networks(["not-an-ip"])
