"""``/metrics``: protected on the main port, or open on a separate private listener; request,
tool-call, auth-failure, connection and revocation metrics with bounded labels. Real servers
on SQLite and PostgreSQL (the active-connection gauge and revocations come from the database)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aiconnector.core.connections import list_connections, revoke_connection
from aiconnector.ops.metrics import METHODS, AuthFailure, Histogram, Metrics
from tests.conftest import ADMIN_PASSWORD, LiveServer
from tests.ops.conftest import (
    METRICS_TOKEN,
    Running,
    basic,
    mcp,
    parse_exposition,
    running,
    scrape,
)
from tests.support import DatabaseUnderTest, free_port, fresh_database


@pytest.fixture(scope="module")
def metered(database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(
        database,
        tmp_path_factory.mktemp("metrics"),
        metrics_token=METRICS_TOKEN,
        auth_failures_per_minute=10_000,
        registrations_per_minute=10_000,
    ) as server:
        server.server.metrics.active_connections_cache_seconds = 0  # read the database every scrape
        yield server


def app_password(server: Running, name: str, scopes: list[str] | None = None) -> str:
    return server.live.app_password(name=name, scopes=scopes)


# --- protection ---------------------------------------------------------------------------------


def test_metrics_on_the_main_port_needs_the_bearer_token(metered: Running) -> None:
    before = scrape(metered.url).value("aiconnector_auth_failures_total", kind="metrics_token") or 0
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {METRICS_TOKEN}x"},
        {"Authorization": f"Basic {METRICS_TOKEN}"},
    ):
        response = httpx.get(f"{metered.url}/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "aiconnector_" not in response.text
    after = scrape(metered.url).value("aiconnector_auth_failures_total", kind="metrics_token")
    assert after == before + 4


def test_metrics_is_not_found_without_a_configured_token(live_server: LiveServer) -> None:
    """The default configuration exposes nothing: the path does not exist."""
    assert live_server.settings.metrics_token is None
    for headers in ({}, {"Authorization": "Bearer anything"}):
        assert httpx.get(f"{live_server.base_url}/metrics", headers=headers).status_code == 404


def test_separate_listener_serves_only_metrics_without_authentication(
    tmp_path: Path,
) -> None:
    port = free_port()
    with (
        fresh_database("sqlite", tmp_path) as db,
        running(db, tmp_path, metrics_bind=f"127.0.0.1:{port}") as srv,
    ):
        listener = f"http://127.0.0.1:{port}"
        body = scrape(listener, token=None)
        assert body.value("aiconnector_build_info") == 1
        assert httpx.get(f"{listener}/mcp").status_code == 404
        assert httpx.get(f"{listener}/").status_code == 404
        assert httpx.post(f"{listener}/metrics").status_code == 405
        # Main port: no token configured, so no /metrics there.
        assert httpx.get(f"{srv.url}/metrics").status_code == 404
    with pytest.raises(httpx.TransportError):  # stopped with the server
        httpx.get(f"{listener}/metrics", timeout=2)


# --- what is measured -------------------------------------------------------------------------


def test_exposition_is_well_formed_with_types_and_process_info(metered: Running) -> None:
    found = scrape(metered.url)
    assert found.value("aiconnector_build_info", version="0.1.0") == 1
    assert found.types["aiconnector_http_requests_total"] == "counter"
    assert found.types["aiconnector_http_request_duration_seconds"] == "histogram"
    assert found.types["aiconnector_tool_calls_total"] == "counter"
    assert found.types["aiconnector_tool_call_duration_seconds"] == "histogram"
    assert found.types["aiconnector_auth_failures_total"] == "counter"
    assert found.types["aiconnector_active_connections"] == "gauge"
    assert found.types["aiconnector_revocations_total"] == "counter"
    assert found.types["aiconnector_inflight_requests"] == "gauge"
    assert found.value("aiconnector_inflight_requests") == 1  # this scrape itself
    assert found.label_values("aiconnector_auth_failures_total", "kind") == {k.value for k in AuthFailure}
    assert (found.value("process_start_time_seconds") or 0) > 1_600_000_000
    assert found.value("process_cpu_seconds_total") is not None


def test_requests_are_counted_by_route_template_never_by_raw_path(metered: Running) -> None:
    secret_id = "conn_" + secrets.token_hex(8)
    stray = "/nowhere/" + secrets.token_hex(8)
    password = app_password(metered, "route labels")
    before = scrape(metered.url)
    assert mcp(metered.url, basic("admin", password), "whoami").status_code == 200
    httpx.get(f"{metered.url}/admin/connections/{secret_id}")  # a redirect to sign in: still counted
    assert httpx.get(f"{metered.url}{stray}").status_code == 404
    assert httpx.request("PROPFIND", f"{metered.url}/healthz").status_code == 405
    assert httpx.get(f"{metered.url}/static/{secrets.token_hex(4)}.css").status_code == 404
    after = scrape(metered.url)
    requests = "aiconnector_http_requests_total"

    def grew(**labels: str) -> float:
        return after.total(requests, **labels) - before.total(requests, **labels)

    assert grew(route="/mcp", method="POST", status="200") == 1
    assert grew(route="/admin/connections/{id}", method="GET") == 1
    assert grew(route="other", method="GET", status="404") == 1
    assert grew(route="/healthz", method="other", status="405") == 1
    assert grew(route="/static/{path}", method="GET", status="404") == 1
    routes = after.label_values(requests, "route")
    assert all(r == "other" or r.startswith("/") for r in routes)
    assert not any(secret_id in r or stray in r for r in routes)
    assert after.label_values(requests, "method") <= METHODS | {"other"}
    # The duration histogram is by route; its count matches the requests of that route.
    count = after.value("aiconnector_http_request_duration_seconds_count", route="/mcp")
    assert count == after.total(requests, route="/mcp")
    assert after.value("aiconnector_http_request_duration_seconds_bucket", route="/mcp", le="+Inf") == count


def test_tool_calls_are_counted_by_tool_and_outcome(metered: Running) -> None:
    reader = basic("admin", app_password(metered, "tool outcomes", scopes=["content:read"]))
    before = scrape(metered.url)
    assert mcp(metered.url, reader, "whoami").status_code == 200
    denied = mcp(metered.url, reader, "create_post", {"title": "no"})
    assert denied.status_code == 403
    bad = mcp(metered.url, reader, "get_post", {"id": "not a number"})
    assert bad.json()["result"]["isError"] is True
    after = scrape(metered.url)
    calls = "aiconnector_tool_calls_total"

    def grew(name: str, **labels: str) -> float:
        return after.total(name, **labels) - before.total(name, **labels)

    assert grew(calls, tool="whoami", outcome="ok") == 1
    assert grew(calls, tool="create_post", outcome="denied") == 1
    assert grew(calls, tool="get_post", outcome="error") == 1
    assert grew("aiconnector_auth_failures_total", kind="insufficient_scope") == 1
    assert grew("aiconnector_tool_call_duration_seconds_count", tool="whoami") == 1
    assert after.label_values(calls, "outcome") <= {"ok", "error", "denied", "cancelled"}


def test_auth_failures_are_counted_by_kind(metered: Running) -> None:
    url = metered.url
    before = scrape(url)
    mcp(url, {}, "whoami")  # missing_credentials
    mcp(url, {"Authorization": "Basic !!!"}, "whoami")  # malformed_credentials
    mcp(url, {"Authorization": "Digest x"}, "whoami")  # malformed_credentials
    mcp(url, basic("admin", "aic_ap_wrongwrongwrongwrongwrongwrong"), "whoami")  # bad_app_password
    mcp(url, {"Authorization": "Bearer aic_at_" + secrets.token_hex(16)}, "whoami")  # bad_bearer_token
    assert httpx.post(f"{url}/login", data={"username": "admin", "password": "x"}).status_code == 403
    registered = httpx.post(
        f"{url}/oauth/register",
        json={"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"},
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    form = {"grant_type": "refresh_token", "refresh_token": "aic_rt_" + secrets.token_hex(16)}
    assert httpx.post(f"{url}/oauth/token", data={**form, "client_id": client_id}).status_code == 400
    assert httpx.post(f"{url}/oauth/token", data={**form, "client_id": "nobody"}).status_code == 401
    after = scrape(url)

    def grew(kind: str) -> float:
        name = "aiconnector_auth_failures_total"
        return (after.value(name, kind=kind) or 0) - (before.value(name, kind=kind) or 0)

    assert grew("missing_credentials") == 1
    assert grew("malformed_credentials") == 2
    assert grew("bad_app_password") == 1
    assert grew("bad_bearer_token") == 1
    assert grew("login_failure") == 1
    assert grew("invalid_grant") == 1
    assert grew("invalid_client") == 1


def test_active_connections_and_revocations_come_from_the_database(metered: Running) -> None:
    """Created and revoked by another process (the test's own runtime, like the CLI): the
    gauge reads the database; the revocation arrives on the server's bus (watcher or NOTIFY)."""

    def active_in_db() -> int:
        async def count(rt):  # noqa: ANN001, ANN202
            return len(await list_connections(rt.sessions, include_revoked=False, limit=10_000))

        return metered.live.run(count)

    before = scrape(metered.url)
    app_password(metered, "to be revoked")
    assert scrape(metered.url).value("aiconnector_active_connections") == active_in_db()
    assert active_in_db() == before.value("aiconnector_active_connections") + 1

    async def revoke(rt):  # noqa: ANN001, ANN202
        [conn] = [c for c in await list_connections(rt.sessions) if c.agent_name == "to be revoked"]
        await revoke_connection(rt.sessions, conn.id, audit=rt.audit, reason="metrics test")

    metered.live.run(revoke)
    deadline = time.monotonic() + 30  # the watcher polls every second; NOTIFY is faster
    revocations = before.value("aiconnector_revocations_total") or 0
    while (scrape(metered.url).value("aiconnector_revocations_total") or 0) == revocations:
        assert time.monotonic() < deadline, "the revocation never reached the server's bus"
        time.sleep(0.1)
    after = scrape(metered.url)
    assert after.value("aiconnector_revocations_total") == revocations + 1
    assert after.value("aiconnector_active_connections") == active_in_db()
    assert after.value("aiconnector_active_connections") == before.value("aiconnector_active_connections")


# --- units ------------------------------------------------------------------------------------------


def test_histogram_buckets_are_less_or_equal_and_cumulative() -> None:
    metrics = Metrics()
    for seconds in (0.005, 0.0051, 0.2, 100.0):
        metrics.observe_http("/x", "GET", 200, seconds)
    found = parse_exposition(asyncio.run(metrics.render()).decode())
    bucket = "aiconnector_http_request_duration_seconds_bucket"
    assert found.value(bucket, route="/x", le="0.005") == 1  # a value on a bound counts in it
    assert found.value(bucket, route="/x", le="0.01") == 2
    assert found.value(bucket, route="/x", le="0.25") == 3
    assert found.value(bucket, route="/x", le="60") == 3
    assert found.value(bucket, route="/x", le="+Inf") == 4
    assert found.value("aiconnector_http_request_duration_seconds_count", route="/x") == 4
    assert found.value("aiconnector_http_request_duration_seconds_sum", route="/x") == pytest.approx(100.2101)
    hist = Histogram((1.0,))
    hist.observe(2.0)
    assert hist.counts == [0, 1]


def test_label_values_are_escaped_and_revocations_counted_once() -> None:
    metrics = Metrics()
    metrics.tool_call('we"ird\\tool\n', "success", 0.01)
    metrics.revocation_seen("conn_a")
    metrics.revocation_seen("conn_a")  # our own publish, then our own NOTIFY
    metrics.revocation_seen("conn_b")
    text = asyncio.run(metrics.render()).decode()
    assert 'tool="we\\"ird\\\\tool\\n"' in text
    found = parse_exposition(text)
    assert found.value("aiconnector_revocations_total") == 2
    assert found.value("aiconnector_tool_calls_total", outcome="ok") == 1


def test_admin_password_is_not_in_metrics(metered: Running) -> None:
    assert (
        ADMIN_PASSWORD
        not in httpx.get(f"{metered.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    )
