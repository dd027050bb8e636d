"""Request ids and structured logs.

* Every response carries ``X-Request-Id``: the client's when well formed, a fresh one otherwise;
  the audit events of that request carry the same id.
* ``aiconnector serve --log-format json``: every line is a JSON object with ts, level, logger,
  message; access lines carry method, route, status, duration, client and request id.
* No secret reaches the logs: application passwords, bearer and refresh tokens, passwords,
  client secrets and the metrics token are sent in every place a request can carry them
  (headers, bodies, query strings) and searched for in everything the process wrote."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from aiconnector.config import Settings
from aiconnector.core.app_passwords import create_app_password
from aiconnector.db.models import AuditEvent
from aiconnector.ops.logs import JsonFormatter, RequestIdFilter, TextFormatter, mask_secrets
from aiconnector.ops.request_id import MAX_LENGTH, accept_request_id, current_request_id
from aiconnector.runtime import open_runtime
from tests.conftest import ADMIN_PASSWORD, LiveServer
from tests.ops.conftest import ACCEPT, METRICS_TOKEN, basic, mcp, serve_process, tool_call
from tests.support import fresh_database, mint_oauth_connection, run_sync

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


# --- request ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [b"abc", b"0f8fad5b-d9cb-469f-a165-70867728950e", b"a" * MAX_LENGTH, b"x.y_z:1-2"]
)
def test_well_formed_request_ids_are_kept(value: bytes) -> None:
    assert accept_request_id(value) == value.decode()


@pytest.mark.parametrize(
    "value", [None, b"", b"a" * (MAX_LENGTH + 1), b"has space", b"new\nline", b'quote"', b"\xff\xfe", b"a/b"]
)
def test_other_request_ids_are_replaced_by_a_fresh_one(value: bytes | None) -> None:
    fresh = accept_request_id(value)
    assert fresh != (value or b"").decode("latin-1")
    assert accept_request_id(fresh.encode()) == fresh  # generated ids are well formed
    assert accept_request_id(value) != fresh  # and unique


def test_responses_echo_the_request_id_and_audit_events_carry_it(live_server: LiveServer) -> None:
    password = live_server.app_password(name="request ids")
    headers = live_server.basic_header("admin", password)
    mine = "req-" + secrets.token_hex(8)
    echoed = mcp(live_server.base_url, {**headers, "X-Request-Id": mine}, "whoami")
    assert echoed.status_code == 200 and echoed.headers["x-request-id"] == mine
    forged = mcp(live_server.base_url, {**headers, "X-Request-Id": "evil\tid " + "x" * 200}, "whoami")
    replaced = forged.headers["x-request-id"]
    assert replaced and "evil" not in replaced and len(replaced) <= MAX_LENGTH
    for path in ("/healthz", "/nowhere", "/.well-known/oauth-protected-resource"):
        assert httpx.get(live_server.base_url + path).headers.get("x-request-id")

    async def tool_call_ids(rt: Any) -> list[str | None]:  # noqa: ANN401
        await asyncio.sleep(0)
        async with rt.sessions() as session:
            rows = await session.scalars(select(AuditEvent.detail).where(AuditEvent.event == "tool_call"))
            return [(detail or {}).get("request_id") for detail in rows]

    deadline = time.monotonic() + 30  # audit events are written in batches
    while not {mine, replaced} <= set(live_server.run(tool_call_ids)):
        assert time.monotonic() < deadline, "the tool calls' audit events lack their request ids"
        time.sleep(0.1)


# --- formatters --------------------------------------------------------------------------------


def _log_through(formatter: logging.Formatter, request_id: str | None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("tests.ops.formatter." + secrets.token_hex(4))
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = current_request_id.set(request_id)
    try:
        logger.info("hello %s", "world", extra={"fields": {"route": "/mcp", "status": 200}})
        try:
            raise RuntimeError("kaput with aic_at_abcdefghijklmnop")
        except RuntimeError:
            logger.exception("failed for Bearer aic_at_" + "z" * 30)
    finally:
        current_request_id.reset(token)
    return stream.getvalue()


def test_json_lines_have_the_required_fields() -> None:
    first, second = (json.loads(line) for line in _log_through(JsonFormatter(), "rid-1").splitlines())
    assert first["message"] == "hello world" and first["level"] == "info"
    assert first["logger"].startswith("tests.ops.formatter.")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first["request_id"] == "rid-1" and first["route"] == "/mcp" and first["status"] == 200
    assert second["level"] == "error" and "RuntimeError" in second["exc"]
    assert "aic_at_abc" not in second["exc"] and "z" * 30 not in second["message"]
    outside = json.loads(_log_through(JsonFormatter(), None).splitlines()[0])
    assert "request_id" not in outside


def test_text_lines_carry_the_request_id() -> None:
    text = _log_through(TextFormatter(), "rid-2")
    assert text.splitlines()[0].endswith("hello world [rid-2]")
    assert "aic_at_abc" not in text


def test_secret_shapes_are_masked() -> None:
    assert (
        mask_secrets("token aic_rt_AbC-123_x and aic_ap_zzzz")
        == "token aic_rt_[redacted] and aic_ap_[redacted]"
    )
    assert (
        mask_secrets("Authorization: Basic YWRtaW46c2VjcmV0LXBhc3N3b3Jk") == "Authorization: Basic [redacted]"
    )
    assert mask_secrets("a basic check of the configuration") == "a basic check of the configuration"


# --- a real server's logs ------------------------------------------------------------------------


def _seed_credentials(url: str, data_dir: Path, origin: str) -> tuple[str, str, str]:
    """An application password, and an access and refresh token, made in the database."""
    settings = Settings(data_dir=data_dir, database_url=url)

    async def make() -> tuple[str, str, str]:
        async with open_runtime(settings, apply_migrations=False) as rt:
            password, _ = await create_app_password(rt.sessions, "admin", name="log test", audit=rt.audit)
            _, pair = await mint_oauth_connection(
                rt.sessions, settings, scopes="content:read", resource=f"{origin}/mcp", agent_name="log oauth"
            )
            return password, pair.access_token, pair.refresh_token

    return run_sync(make())


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_serve_logs_carry_request_ids_and_never_a_secret(tmp_path: Path, log_format: str) -> None:
    wrong_password = "Wrong-Password-" + secrets.token_hex(8)
    client_secret = "aic_cs_" + secrets.token_hex(16)
    with (
        fresh_database("sqlite", tmp_path) as db,
        serve_process(
            db,
            tmp_path,
            "--log-format",
            log_format,
            "--trusted-proxy",
            "127.0.0.1",
            env={"AICONNECTOR_METRICS_TOKEN": METRICS_TOKEN, "AICONNECTOR_LOG_LEVEL": "debug"},
        ) as server,
    ):
        password, access, refresh = _seed_credentials(db.url, tmp_path, server.base_url)
        url = server.base_url
        rid = "trace-" + secrets.token_hex(6)
        ok = mcp(
            url,
            {**basic("admin", password), "X-Request-Id": rid, "X-Forwarded-For": "203.0.113.50"},
            "whoami",
        )
        assert ok.status_code == 200 and ok.headers["x-request-id"] == rid
        assert mcp(url, {"Authorization": f"Bearer {access}"}, "whoami").status_code == 200
        assert mcp(url, basic("admin", wrong_password), "whoami").status_code == 401
        assert mcp(url, {"Authorization": f"Bearer {access}x"}, "whoami").status_code == 401
        httpx.post(
            f"{url}/oauth/token?refresh_token={refresh}&client_secret={client_secret}",
            data={"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "test",
                  "client_secret": client_secret},
            headers={"Authorization": "Basic " + base64.b64encode(f"test:{client_secret}".encode()).decode()},
        )  # fmt: skip
        with httpx.Client(base_url=url) as browser:
            csrf = CSRF_FIELD.search(browser.get("/login").text)
            assert csrf
            for attempt in (wrong_password, ADMIN_PASSWORD):
                browser.post("/login", data={"username": "admin", "password": attempt, "csrf": csrf.group(1)})
        httpx.get(f"{url}/device?user_code=BCDF-GHJK&token={access}")
        assert (
            httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code
            == 200
        )
        body = json.dumps(tool_call("whoami")).encode()
        httpx.post(
            f"{url}/mcp?access_token={access}", content=body, headers={**ACCEPT, "Cookie": f"s={refresh}"}
        )
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
        output = server.output

    for secret in (password, access, refresh, wrong_password, ADMIN_PASSWORD, client_secret, METRICS_TOKEN):
        assert secret not in output, "a secret reached the logs"
    assert base64.b64encode(f"admin:{password}".encode()).decode() not in output
    lines = [line for line in output.splitlines() if line.strip()]
    if log_format == "json":
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)
        access_lines = [r for r in records if r["logger"] == "aiconnector.access"]
        [traced] = [r for r in access_lines if r.get("request_id") == rid]
        assert traced["route"] == "/mcp" and traced["method"] == "POST" and traced["status"] == 200
        assert traced["client"] == "203.0.113.50" and traced["duration_ms"] >= 0
        assert all(r.get("request_id") for r in access_lines)
        assert {r["route"] for r in access_lines} >= {"/mcp", "/oauth/token", "/login", "/metrics"}
        assert not any("?" in r["path"] for r in access_lines)
    else:
        assert any(
            '203.0.113.50 - "POST /mcp HTTP/1.1" 200' in line and line.endswith(f"[{rid}]") for line in lines
        )
