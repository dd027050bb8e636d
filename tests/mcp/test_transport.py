"""The /mcp transport over real HTTP: every malformed input, both protocol eras, progress,
cancellation and revocation, then the official SDK client in both eras."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from aiconnector.mcp.eras import SUPPORTED_VERSIONS
from aiconnector.mcp.jsonrpc import CONNECTION_REVOKED
from aiconnector.mcp.transport import create_mcp_app
from tests.mcp.conftest import PASSWORD, McpUnderTest, basic, connection_id, serve_asgi

MODERN = "2026-07-28"
LEGACY = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
ACCEPT_BOTH = "application/json, text/event-stream"


@pytest.fixture
async def http(mcp_server: McpUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client that fails any test the moment the server answers 500."""

    async def no_500(response: httpx.Response) -> None:
        assert response.status_code != 500, "the transport must never answer 500"

    async with httpx.AsyncClient(
        base_url=mcp_server.base_url, timeout=10, event_hooks={"response": [no_500]}
    ) as client:
        yield client


def headers_for(
    *, user: str | None = "alice", version: str | None = None, accept: str = ACCEPT_BOTH, **extra: str
) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": accept}
    if user is not None:
        headers["Authorization"] = basic(user)
    if version is not None:
        headers["MCP-Protocol-Version"] = version
    headers.update(extra)
    return headers


def rpc(method: str, params: dict[str, Any] | None = None, id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def envelope(**extra: Any) -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "0"},
        **extra,
    }


async def legacy(
    http: httpx.AsyncClient,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    version: str | None = None,
    **kw: Any,
) -> httpx.Response:
    return await http.post(
        "/mcp", json=rpc(method, params, kw.pop("id", 1)), headers=headers_for(version=version, **kw)
    )


async def modern(
    http: httpx.AsyncClient,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    meta: dict[str, Any] | None = None,
    **header_overrides: str,
) -> httpx.Response:
    body = rpc(method, {**(params or {}), "_meta": meta if meta is not None else envelope()})
    headers = headers_for(version=MODERN, **{"Mcp-Method": method})
    if name is not None:
        headers["Mcp-Name"] = name
    headers.update(header_overrides)
    return await http.post("/mcp", json=body, headers=headers)


def error_of(response: httpx.Response) -> dict[str, Any]:
    return response.json()["error"]


def sse_events(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.split("\r\n\r\n"):
        for line in block.split("\r\n"):
            if line.startswith("data: "):
                events.append(orjson.loads(line[6:]))
    return events


# --- malformed JSON-RPC ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"jsonrpc":"2.0","id":1,"method":"ping","x":1' + b"9" * 400,
    ],
    ids=["garbage", "empty", "deep-nesting", "truncated"],
)
async def test_parse_error_is_400_with_null_id(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post("/mcp", content=body[:60_000], headers=headers_for())
    assert response.status_code == 400
    assert response.json()["id"] is None
    assert error_of(response)["code"] == -32700


@pytest.mark.parametrize("number", [b"9" * 40, b"1e999", b"-" + b"9" * 400])
async def test_out_of_range_numbers_are_rejected(http: httpx.AsyncClient, number: bytes) -> None:
    body = b'{"jsonrpc":"2.0","id":' + number + b',"method":"ping"}'
    response = await http.post("/mcp", content=body, headers=headers_for())
    assert response.status_code == 400
    assert error_of(response)["code"] in (-32700, -32600)  # orjson reads some as floats: not a valid id


@pytest.mark.parametrize(
    "body",
    [
        [{"jsonrpc": "2.0", "id": 1, "method": "ping"}],
        {"jsonrpc": "1.0", "id": 1, "method": "ping"},
        {"id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": None, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": True, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
        {"jsonrpc": "2.0", "id": [1], "method": "ping"},
        {"jsonrpc": "2.0", "id": 1, "result": {}},
        {"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "x"}},
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1]},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": None},
        "ping",
    ],
    ids=[
        "batch",
        "jsonrpc-1.0",
        "no-jsonrpc",
        "id-null",
        "id-bool",
        "id-float",
        "id-array",
        "posted-result",
        "posted-error",
        "no-method",
        "method-int",
        "params-array",
        "params-null",
        "string",
    ],
)
async def test_invalid_request_is_400(http: httpx.AsyncClient, body: Any) -> None:
    response = await http.post("/mcp", content=orjson.dumps(body), headers=headers_for())
    assert response.status_code == 400
    assert response.json() == {"jsonrpc": "2.0", "id": None, "error": response.json()["error"]}
    assert error_of(response)["code"] == -32600


@pytest.mark.parametrize("request_id", ["abc", 0, -5, 2**53])
async def test_id_is_echoed_with_its_type(http: httpx.AsyncClient, request_id: Any) -> None:
    response = await legacy(http, "ping", id=request_id)
    assert response.status_code == 200
    assert response.json() == {"jsonrpc": "2.0", "id": request_id, "result": {}}


async def test_unknown_method_legacy_200_modern_404(http: httpx.AsyncClient) -> None:
    response = await legacy(http, "foo/bar")
    assert response.status_code == 200
    assert error_of(response) == {"code": -32601, "message": "Method not found", "data": "foo/bar"}
    response = await modern(http, "foo/bar")
    assert response.status_code == 404
    assert error_of(response)["code"] == -32601


@pytest.mark.parametrize("method", ["ping", "logging/setLevel", "completion/complete", "resources/subscribe"])
async def test_methods_we_do_not_serve_in_modern_era_are_404(http: httpx.AsyncClient, method: str) -> None:
    response = await modern(http, method)
    assert response.status_code == 404
    assert error_of(response)["code"] == -32601


async def test_legacy_only_serves_what_it_advertises(http: httpx.AsyncClient) -> None:
    for method in ("server/discover", "completion/complete"):
        response = await legacy(http, method, {}, version="2025-11-25")
        assert response.status_code == 200
        assert error_of(response)["code"] == -32601


async def test_legacy_logging_set_level_is_validated_and_accepted(http: httpx.AsyncClient) -> None:
    response = await legacy(http, "logging/setLevel", {"level": "info"}, version="2025-11-25")
    assert response.status_code == 200 and response.json()["result"] == {}
    response = await legacy(http, "logging/setLevel", {"level": "loud"}, version="2025-11-25")
    assert error_of(response)["code"] == -32602


async def test_invalid_params(http: httpx.AsyncClient) -> None:
    response = await legacy(http, "tools/call", {"arguments": {}})
    assert response.status_code == 200
    assert error_of(response)["code"] == -32602
    assert "name" in error_of(response)["message"]
    response = await modern(http, "tools/call", {"name": 5}, name="5")
    assert response.status_code == 400
    assert error_of(response)["code"] == -32602
    response = await legacy(http, "tools/list", {"cursor": 5})
    assert error_of(response)["code"] == -32602


async def test_notification_is_202_with_empty_body(http: httpx.AsyncClient) -> None:
    for version in (None, "2025-11-25"):
        response = await http.post(
            "/mcp",
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers=headers_for(version=version),
        )
        assert response.status_code == 202
        assert response.content == b""
    response = await http.post(
        "/mcp",
        json={"jsonrpc": "2.0", "method": "notifications/whatever", "params": {"_meta": envelope()}},
        headers=headers_for(version=MODERN, **{"Mcp-Method": "notifications/whatever"}),
    )
    assert response.status_code == 202


async def test_notification_with_unsupported_version_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/mcp",
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers=headers_for(version="2099-01-01"),
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == -32022


# --- HTTP-level checks -------------------------------------------------------------------------


async def test_oversized_body_by_content_length(http: httpx.AsyncClient) -> None:
    big = orjson.dumps(rpc("tools/call", {"name": "echo", "arguments": {"message": "x" * 70_000}}))
    response = await http.post("/mcp", content=big, headers=headers_for())
    assert response.status_code == 413


async def test_oversized_body_chunked(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
        yield b'"params":{"name":"echo","arguments":{"message":"'
        for _ in range(20):
            yield b"x" * 8192
        yield b'"}}}'

    response = await http.post("/mcp", content=chunks(), headers=headers_for())
    assert response.status_code == 413


async def test_chunked_body_within_limit_is_served(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"jsonrpc":"2.0","id":1,'
        yield b'"method":"ping"}'

    response = await http.post("/mcp", content=chunks(), headers=headers_for())
    assert response.status_code == 200
    assert response.json()["result"] == {}


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        None,
        "application/jsonx",  # a prefix test let these through
        "application/json-seq",
        "application/json2; charset=utf-8",
    ],
)
async def test_wrong_content_type_is_415(http: httpx.AsyncClient, content_type: str | None) -> None:
    headers = headers_for()
    del headers["Content-Type"]
    if content_type:
        headers["Content-Type"] = content_type
    response = await http.post("/mcp", content=orjson.dumps(rpc("ping")), headers=headers)
    assert response.status_code == 415
    assert error_of(response)["code"] == -32600


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON ;charset=UTF-8"]
)
async def test_content_type_with_charset_is_fine(http: httpx.AsyncClient, content_type: str) -> None:
    headers = headers_for(**{"Content-Type": content_type})
    response = await http.post("/mcp", content=orjson.dumps(rpc("ping")), headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize("accept", ["text/html", "image/png, text/plain"])
async def test_unacceptable_accept_is_406(http: httpx.AsyncClient, accept: str) -> None:
    response = await legacy(http, "ping", accept=accept)
    assert response.status_code == 406


@pytest.mark.parametrize("accept", ["*/*", "application/*", "application/json;q=0.9", "application/json"])
async def test_accept_variants_get_json(http: httpx.AsyncClient, accept: str) -> None:
    response = await legacy(http, "ping", accept=accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_sse_only_accept_gets_an_event_stream(http: httpx.AsyncClient) -> None:
    response = await legacy(http, "ping", accept="text/event-stream")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert sse_events(response.text) == [{"jsonrpc": "2.0", "id": 1, "result": {}}]


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "PATCH"])
async def test_other_http_methods_are_405(http: httpx.AsyncClient, method: str) -> None:
    response = await http.request(
        method, "/mcp", headers={"Authorization": basic(), "Accept": "text/event-stream"}
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "mcp-session-id" not in response.headers


async def test_origin_rules(http: httpx.AsyncClient, mcp_server: McpUnderTest) -> None:
    for bad in ("https://evil.example", "null", "http://localhost.evil.example", "http://127.0.0.1.nip.io"):
        response = await legacy(http, "ping", Origin=bad)
        assert response.status_code == 403, bad
    for good in (
        mcp_server.origin,
        "http://localhost:6274",
        "http://127.0.0.1:9",
        "http://[::1]:80",
        "https://inspector.example",
    ):
        response = await legacy(http, "ping", Origin=good)
        assert response.status_code == 200, good
        assert response.headers["access-control-allow-origin"] == good
        exposed = response.headers["access-control-expose-headers"]
        assert "WWW-Authenticate" in exposed
        assert "X-Request-Id" in exposed, "browser clients can quote the request id in a report"


@pytest.mark.parametrize("host", ["evil.example", "rebound.evil.example:8000", "127.0.0.1.nip.io", "a, b"])
async def test_a_foreign_host_is_421_dns_rebinding(http: httpx.AsyncClient, host: str) -> None:
    """Bound to loopback, only loopback names can reach the server legitimately: a page whose
    DNS name was re-pointed at 127.0.0.1 still sends its own name in Host."""
    response = await legacy(http, "ping", Host=host)
    assert response.status_code == 421
    assert error_of(response)["code"] == -32600


@pytest.mark.parametrize("host", ["localhost", "localhost:6274", "127.0.0.1:1", "[::1]:80"])
async def test_loopback_hosts_are_served(http: httpx.AsyncClient, host: str) -> None:
    response = await legacy(http, "ping", Host=host)
    assert response.status_code == 200


@pytest.fixture(scope="module")
async def public_https_mcp(mcp_server: McpUnderTest) -> AsyncIterator[str]:
    """The same endpoint configured with a public https URL (as behind a TLS proxy)."""
    settings = dataclasses.replace(
        mcp_server.services.settings,
        public_url="https://mcp.example",
        allowed_origins=("http://localhost:6274",),
    )
    services = dataclasses.replace(mcp_server.services, settings=settings)
    async with serve_asgi(create_mcp_app(services)) as base_url:
        yield base_url


async def test_a_public_https_server_refuses_loopback_origins(public_https_mcp: str) -> None:
    async with httpx.AsyncClient(base_url=public_https_mcp, timeout=10) as client:
        for bad in ("http://localhost:3000", "http://127.0.0.1:9", "https://[::1]"):
            response = await legacy(client, "ping", Origin=bad)
            assert response.status_code == 403, bad
        for good in ("https://mcp.example", "http://localhost:6274"):  # its own, and one listed
            response = await legacy(client, "ping", Origin=good)
            assert response.status_code == 200, good
        assert (await legacy(client, "ping", Host="mcp.example")).status_code == 200
        assert (await legacy(client, "ping", Host="mcp.example:443")).status_code == 200
        assert (await legacy(client, "ping", Host="other.example")).status_code == 421


async def test_origin_is_checked_before_authentication(http: httpx.AsyncClient) -> None:
    response = await legacy(http, "ping", user=None, Origin="https://evil.example")
    assert response.status_code == 403


async def test_cors_preflight(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/mcp",
        headers={
            "Origin": "http://localhost:6274",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, mcp-protocol-version",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "http://localhost:6274"
    allowed = response.headers["access-control-allow-headers"]
    for name in ("Authorization", "MCP-Protocol-Version", "Mcp-Method", "Mcp-Name", "Last-Event-ID"):
        assert name in allowed
    assert "access-control-allow-credentials" not in response.headers
    response = await http.options(
        "/mcp", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 403


# --- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        (None, "unauthorized"),
        ("Basic !!!not-base64", "invalid_token"),
        ("Basic " + base64.b64encode(b"no-colon").decode(), "invalid_token"),
        (basic("alice", "wrong"), "invalid_token"),
        ("Bearer sometoken", "invalid_token"),
    ],
    ids=["missing", "malformed", "no-colon", "wrong-password", "unknown-bearer"],
)
async def test_unauthenticated_is_401_with_both_challenges(
    http: httpx.AsyncClient, mcp_server: McpUnderTest, authorization: str | None, error: str
) -> None:
    headers = headers_for(user=None)
    if authorization is not None:
        headers["Authorization"] = authorization
    response = await http.post("/mcp", json=rpc("tools/list"), headers=headers)
    assert response.status_code == 401
    challenges = response.headers.get_list("www-authenticate")
    assert len(challenges) == 2
    assert challenges[0].startswith("Bearer ")
    assert (
        f'resource_metadata="{mcp_server.origin}/.well-known/oauth-protected-resource/mcp"' in challenges[0]
    )
    assert 'scope="content:read"' in challenges[0]
    assert challenges[1] == 'Basic realm="AI Connector"'
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]
    assert PASSWORD not in response.text


async def test_authentication_happens_before_the_body_is_parsed(http: httpx.AsyncClient) -> None:
    response = await http.post("/mcp", content=b"{garbage", headers=headers_for(user=None))
    assert response.status_code == 401


async def test_rate_limited_is_429_with_retry_after(http: httpx.AsyncClient) -> None:
    response = await legacy(http, "ping", user="flood")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"


# --- modern-era header and envelope rules ------------------------------------------------------


async def test_modern_echo_call(http: httpx.AsyncClient) -> None:
    response = await modern(http, "tools/call", {"name": "echo", "arguments": {"message": "hi"}}, name="echo")
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["content"] == [{"type": "text", "text": "hi"}]
    assert result["structuredContent"] == {"text": "hi"}
    assert result["isError"] is False
    assert result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "AI Connector"
    assert "ttlMs" not in result and "cacheScope" not in result


async def test_missing_mcp_method_header_is_32020(http: httpx.AsyncClient) -> None:
    body = rpc("tools/list", {"_meta": envelope()})
    response = await http.post("/mcp", json=body, headers=headers_for(version=MODERN))
    assert response.status_code == 400
    assert error_of(response)["code"] == -32020


@pytest.mark.parametrize(
    ("method", "params", "headers"),
    [
        ("tools/list", {}, {"Mcp-Method": "tools/call"}),
        ("prompts/list", {}, {"Mcp-Method": "Prompts/List"}),
        ("tools/call", {"name": "echo", "arguments": {"message": "x"}}, {"Mcp-Method": "tools/call"}),
        (
            "tools/call",
            {"name": "echo", "arguments": {"message": "x"}},
            {"Mcp-Method": "tools/call", "Mcp-Name": "slow"},
        ),
        (
            "resources/read",
            {"uri": "aiconnector://posts/1"},
            {"Mcp-Method": "resources/read", "Mcp-Name": "x"},
        ),
        ("tools/call", {"name": "echo"}, {"Mcp-Method": "tools/call", "Mcp-Name": "=?base64?!!!?="}),
    ],
    ids=["method-mismatch", "method-case", "name-missing", "name-mismatch", "uri-mismatch", "bad-sentinel"],
)
async def test_routing_header_mismatch_is_32020(
    http: httpx.AsyncClient, method: str, params: dict[str, Any], headers: dict[str, str]
) -> None:
    body = rpc(method, {**params, "_meta": envelope()})
    response = await http.post("/mcp", json=body, headers=headers_for(version=MODERN, **headers))
    assert response.status_code == 400
    assert error_of(response)["code"] == -32020


@pytest.mark.parametrize("repeated", ["MCP-Protocol-Version", "Mcp-Method", "Mcp-Name"])
async def test_duplicate_routing_header_is_32020(http: httpx.AsyncClient, repeated: str) -> None:
    values = {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "echo"}
    headers = [("Content-Type", "application/json"), ("Accept", ACCEPT_BOTH), ("Authorization", basic())]
    headers += list(values.items()) + [(repeated, values[repeated])]
    body = rpc("tools/call", {"name": "echo", "arguments": {"message": "x"}, "_meta": envelope()})
    response = await http.post("/mcp", content=orjson.dumps(body), headers=headers)
    assert response.status_code == 400
    assert error_of(response)["code"] == -32020


async def test_base64_sentinel_names_are_decoded(http: httpx.AsyncClient) -> None:
    encoded = "=?base64?" + base64.b64encode(b"echo").decode() + "?="
    response = await modern(http, "tools/call", {"name": "echo", "arguments": {"message": "x"}}, name=encoded)
    assert response.status_code == 200
    # A non-ASCII name must travel encoded; it is decoded, matches, and is then an unknown tool.
    encoded = "=?base64?" + base64.b64encode("écho".encode()).decode() + "?="
    response = await modern(http, "tools/call", {"name": "écho", "arguments": {}}, name=encoded)
    assert response.status_code == 400
    assert error_of(response) == {"code": -32602, "message": "Unknown tool: écho"}


@pytest.mark.parametrize(
    ("meta", "missing"),
    [
        ({"io.modelcontextprotocol/protocolVersion": MODERN}, "clientCapabilities"),
        ({"io.modelcontextprotocol/clientCapabilities": {}}, "protocolVersion"),
        ({}, "protocolVersion"),
    ],
)
async def test_missing_envelope_keys_are_32602(
    http: httpx.AsyncClient, meta: dict[str, Any], missing: str
) -> None:
    response = await modern(http, "tools/list", meta=meta)
    assert response.status_code == 400
    assert error_of(response)["code"] == -32602
    assert missing in error_of(response)["message"]


async def test_modern_request_without_params_is_32602(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/mcp", json=rpc("tools/list"), headers=headers_for(version=MODERN, **{"Mcp-Method": "tools/list"})
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == -32602


async def test_envelope_version_mismatch_is_32020(http: httpx.AsyncClient) -> None:
    meta = envelope(**{"io.modelcontextprotocol/protocolVersion": "2025-11-25"})
    response = await modern(http, "tools/list", meta=meta)
    assert response.status_code == 400
    assert error_of(response)["code"] == -32020


async def test_modern_envelope_without_header_is_32020(http: httpx.AsyncClient) -> None:
    body = rpc("tools/list", {"_meta": envelope()})
    response = await http.post("/mcp", json=body, headers=headers_for())
    assert response.status_code == 400
    assert error_of(response)["code"] == -32020


@pytest.mark.parametrize("version", ["2099-01-01", "garbage", "2025-13-01", ""])
async def test_unsupported_version_lists_both_eras(http: httpx.AsyncClient, version: str) -> None:
    response = await modern(http, "tools/list", **{"MCP-Protocol-Version": version})
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == -32022
    assert error["data"]["requested"] == version
    assert set(error["data"]["supported"]) == {*LEGACY, MODERN}
    assert response.json()["id"] == 1


async def test_initialize_is_not_a_modern_method(http: httpx.AsyncClient) -> None:
    params = {"protocolVersion": MODERN, "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}
    response = await modern(http, "initialize", params)
    assert response.status_code == 404
    assert "2025-11-25" in error_of(response)["message"]


async def test_modern_ignores_session_id_and_last_event_id(http: httpx.AsyncClient) -> None:
    response = await modern(http, "tools/list", **{"Mcp-Session-Id": "abc", "Last-Event-ID": "1"})
    assert response.status_code == 200


async def test_discover(http: httpx.AsyncClient) -> None:
    response = await modern(http, "server/discover")
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["supportedVersions"][0] == MODERN
    assert set(result["supportedVersions"]) == set(SUPPORTED_VERSIONS) == {*LEGACY, MODERN}
    assert result["capabilities"]["tools"] == {"listChanged": False}
    assert result["capabilities"]["resources"] == {"subscribe": False, "listChanged": False}
    assert "logging" not in result["capabilities"] and "completions" not in result["capabilities"]
    assert result["instructions"]
    assert result["resultType"] == "complete"
    assert isinstance(result["ttlMs"], int) and result["cacheScope"] in ("public", "private")
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"] == {
        "name": "AI Connector",
        "version": "0.1.0",
    }


async def test_modern_cacheable_results_carry_hints(http: httpx.AsyncClient) -> None:
    for method in ("tools/list", "prompts/list", "resources/list", "resources/templates/list"):
        result = (await modern(http, method)).json()["result"]
        assert result["resultType"] == "complete"
        assert "ttlMs" in result and "cacheScope" in result, method
    result = (await modern(http, "tools/list")).json()["result"]
    assert result["cacheScope"] == "private"  # depends on the connection's scopes


# --- legacy era --------------------------------------------------------------------------------


def initialize_params(version: str) -> dict[str, Any]:
    return {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(v, v) for v in LEGACY] + [("2099-01-01", "2025-11-25"), (MODERN, "2025-11-25")],
)
async def test_initialize_negotiates(http: httpx.AsyncClient, requested: str, expected: str) -> None:
    response = await legacy(http, "initialize", initialize_params(requested))
    assert response.status_code == 200
    assert "mcp-session-id" not in response.headers
    result = response.json()["result"]
    assert result["protocolVersion"] == expected
    assert result["serverInfo"] == {"name": "AI Connector", "version": "0.1.0"}
    assert result["capabilities"] == {
        "tools": {"listChanged": False},
        "resources": {"subscribe": False, "listChanged": False},
        "prompts": {"listChanged": False},
        "logging": {},
    }
    assert "resultType" not in result and "_meta" not in result and "ttlMs" not in result


async def test_initialize_validates_params(http: httpx.AsyncClient) -> None:
    response = await legacy(http, "initialize", {"protocolVersion": "2025-11-25"})
    assert response.status_code == 200
    assert error_of(response)["code"] == -32602
    assert "capabilities" in error_of(response)["message"]


async def test_legacy_results_have_no_modern_decorations(http: httpx.AsyncClient) -> None:
    for method in ("tools/list", "prompts/list", "resources/list", "resources/templates/list"):
        result = (await legacy(http, method, version="2025-11-25")).json()["result"]
        assert not {"resultType", "ttlMs", "cacheScope", "_meta"} & set(result), method


def tool_named(tools: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(t for t in tools if t["name"] == name)


async def test_tools_are_gated_by_version(http: httpx.AsyncClient) -> None:
    old = (await legacy(http, "tools/list", version="2024-11-05")).json()["result"]["tools"]
    assert set(tool_named(old, "echo")) == {"name", "description", "inputSchema"}
    default = (await legacy(http, "tools/list")).json()["result"]["tools"]  # no header: 2025-03-26
    echo = tool_named(default, "echo")
    assert "title" not in echo and "outputSchema" not in echo
    assert echo["annotations"]["title"] == "Echo"
    assert echo["annotations"]["readOnlyHint"] is True
    new = (await legacy(http, "tools/list", version="2025-06-18")).json()["result"]["tools"]
    echo = tool_named(new, "echo")
    assert echo["title"] == "Echo"
    assert echo["outputSchema"]["properties"]["text"]["type"] == "string"
    assert echo["inputSchema"]["required"] == ["message"]


async def test_structured_content_is_gated_by_version(http: httpx.AsyncClient) -> None:
    params = {"name": "echo", "arguments": {"message": "a", "repeat": 2}}
    for version in (None, "2024-11-05", "2025-03-26"):
        result = (await legacy(http, "tools/call", params, version=version)).json()["result"]
        assert result == {"content": [{"type": "text", "text": "a a"}], "isError": False}
    for version in ("2025-06-18", "2025-11-25"):
        result = (await legacy(http, "tools/call", params, version=version)).json()["result"]
        assert result["structuredContent"] == {"text": "a a"}


async def test_tools_list_shows_only_visible_tools(http: httpx.AsyncClient) -> None:
    names = {t["name"] for t in (await legacy(http, "tools/list")).json()["result"]["tools"]}
    assert names == {"echo", "slow", "fails", "missing", "boom"}  # no write_note (scope), admin_only (role)
    names = {t["name"] for t in (await legacy(http, "tools/list", user="writer")).json()["result"]["tools"]}
    assert "write_note" in names
    result = (await legacy(http, "tools/list")).json()["result"]
    assert "nextCursor" not in result


@pytest.mark.parametrize("cursor", ["nope", "", base64.urlsafe_b64encode(b'["resources",0]').decode(), "W10"])
async def test_invalid_cursor_is_32602(http: httpx.AsyncClient, cursor: str) -> None:
    for method in ("tools/list", "resources/list", "prompts/list", "resources/templates/list"):
        response = await legacy(http, method, {"cursor": cursor})
        assert error_of(response)["code"] == -32602, method


# --- tools/call outcomes -----------------------------------------------------------------------


async def test_unknown_tool_is_32602(http: httpx.AsyncClient) -> None:
    response = await legacy(http, "tools/call", {"name": "nope", "arguments": {}})
    assert response.status_code == 200
    assert error_of(response) == {"code": -32602, "message": "Unknown tool: nope"}
    response = await modern(http, "tools/call", {"name": "nope", "arguments": {}}, name="nope")
    assert response.status_code == 400
    assert error_of(response)["code"] == -32602


@pytest.mark.parametrize(
    ("arguments", "fields"),
    [({}, ["message"]), ({"message": 5}, ["message"]), ({"message": "x", "repeat": 99}, ["repeat"])],
)
async def test_invalid_arguments_are_an_error_result_naming_the_field(
    http: httpx.AsyncClient, arguments: dict[str, Any], fields: list[str]
) -> None:
    response = await legacy(
        http, "tools/call", {"name": "echo", "arguments": arguments}, version="2025-11-25"
    )
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["isError"] is True
    for field_name in fields:
        assert field_name in result["content"][0]["text"]


@pytest.mark.server_errors(logs=("tool boom failed",))  # the failing tool is logged, as it should be
async def test_tool_failures_are_error_results(http: httpx.AsyncClient) -> None:
    result = (await legacy(http, "tools/call", {"name": "fails", "arguments": {}})).json()["result"]
    assert result == {
        "content": [{"type": "text", "text": "Not allowed: you may not do that to post 5"}],
        "isError": True,
    }
    result = (await legacy(http, "tools/call", {"name": "missing"})).json()["result"]
    assert result["content"][0]["text"] == "Not found: post 404"
    response = await legacy(http, "tools/call", {"name": "boom", "arguments": {}})
    assert response.status_code == 200
    assert response.json()["result"]["content"][0]["text"] == "Internal error"
    assert "passwd" not in response.text and "Traceback" not in response.text


async def test_role_without_capability_gets_not_allowed(http: httpx.AsyncClient) -> None:
    result = (await legacy(http, "tools/call", {"name": "admin_only", "arguments": {}})).json()["result"]
    assert result["isError"] is True
    assert result["content"][0]["text"].startswith("Not allowed")


async def test_insufficient_scope_is_403_step_up(http: httpx.AsyncClient, mcp_server: McpUnderTest) -> None:
    for response in (
        await legacy(http, "tools/call", {"name": "write_note", "arguments": {"title": "t"}}),
        await modern(
            http, "tools/call", {"name": "write_note", "arguments": {"title": "t"}}, name="write_note"
        ),
    ):
        assert response.status_code == 403
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="insufficient_scope"')
        assert 'scope="content:read content:write"' in challenge
        assert (
            f'resource_metadata="{mcp_server.origin}/.well-known/oauth-protected-resource/mcp"' in challenge
        )
        assert response.json()["id"] == 1
        assert "content:write" in error_of(response)["message"]
    ok = await legacy(http, "tools/call", {"name": "write_note", "arguments": {"title": "t"}}, user="writer")
    assert ok.json()["result"]["content"][0]["text"] == '{"text":"saved t"}'  # no render_text: compact JSON


async def test_tool_calls_are_audited_with_argument_names_only(
    http: httpx.AsyncClient, mcp_server: McpUnderTest
) -> None:
    await legacy(
        http,
        "tools/call",
        {"name": "echo", "arguments": {"repeat": 1, "message": "s3cr3t-value"}},
        user="auditee",
    )
    await legacy(http, "tools/call", {"name": "fails", "arguments": {}}, user="auditee")
    await legacy(http, "tools/call", {"name": "write_note", "arguments": {"title": "x"}}, user="auditee")
    audit = mcp_server.services.audit
    await audit.flush()
    events = await audit.query(connection_id=connection_id("auditee"), events=["tool_call"])
    by_tool = {e.detail["tool"]: e for e in events}
    echo = by_tool["echo"]
    assert echo.outcome == "success"
    assert echo.detail["arguments"] == ["message", "repeat"]
    assert "s3cr3t-value" not in orjson.dumps(echo.detail).decode()
    assert echo.user_id == 7 and echo.ip == "127.0.0.1" and echo.user_agent
    assert isinstance(echo.detail["duration_ms"], float | int)
    assert by_tool["fails"].outcome == "error"
    assert by_tool["fails"].detail["error"].startswith("Not allowed")
    assert by_tool["write_note"].outcome == "denied"


# --- resources ---------------------------------------------------------------------------------


async def test_resources_list_pages_through_posts_then_pages(http: httpx.AsyncClient) -> None:
    uris: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"cursor": cursor} if cursor else {}
        result = (await legacy(http, "resources/list", params, version="2025-11-25")).json()["result"]
        uris += [r["uri"] for r in result["resources"]]
        cursor = result.get("nextCursor")
        if cursor is None:
            break
    assert uris == ["aiconnector://posts/1", "aiconnector://posts/3", "aiconnector://pages/2"]
    first = (await legacy(http, "resources/list", version="2025-11-25")).json()["result"]["resources"][0]
    assert first == {
        "uri": "aiconnector://posts/1",
        "name": "hello-world",
        "title": "Hello World",
        "mimeType": "text/html",
        "description": "About Hello World",
    }
    old = (await legacy(http, "resources/list")).json()["result"]["resources"][0]
    assert old["name"] == "Hello World" and "title" not in old


async def test_resource_templates(http: httpx.AsyncClient) -> None:
    result = (await legacy(http, "resources/templates/list", version="2025-11-25")).json()["result"]
    templates = {t["uriTemplate"] for t in result["resourceTemplates"]}
    assert templates == {"aiconnector://posts/{id}", "aiconnector://pages/{id}"}


async def test_read_resource(http: httpx.AsyncClient) -> None:
    result = (await legacy(http, "resources/read", {"uri": "aiconnector://posts/1"})).json()["result"]
    content = result["contents"][0]
    assert content["uri"] == "aiconnector://posts/1"
    assert content["mimeType"] == "text/html"
    assert content["text"].startswith("<h1>Hello World</h1>")
    assert "Alice &lt;A&gt;" in content["text"]
    assert content["text"].endswith("<p>Body of Hello World</p>")
    result = (
        await modern(http, "resources/read", {"uri": "aiconnector://pages/2"}, name="aiconnector://pages/2")
    ).json()
    assert result["result"]["contents"][0]["text"].startswith("<h1>About</h1>")
    assert result["result"]["ttlMs"] == 0


@pytest.mark.parametrize(
    "uri", ["aiconnector://posts/99", "aiconnector://pages/1", "aiconnector://posts/x", "file:///etc/passwd"]
)
async def test_missing_resource_codes_by_era(http: httpx.AsyncClient, uri: str) -> None:
    response = await legacy(http, "resources/read", {"uri": uri}, version="2025-11-25")
    assert response.status_code == 200
    assert error_of(response)["code"] == -32002
    assert error_of(response)["data"] == {"uri": uri}
    response = await modern(http, "resources/read", {"uri": uri}, name=uri)
    assert response.status_code == 400
    assert error_of(response)["code"] == -32602


async def test_resources_need_content_read(http: httpx.AsyncClient) -> None:
    for method, params in (("resources/list", {}), ("resources/read", {"uri": "aiconnector://posts/1"})):
        response = await legacy(http, method, params, user="noread")
        assert response.status_code == 403
        assert 'scope="content:read users:read"' in response.headers["www-authenticate"]


async def test_prompts(http: httpx.AsyncClient) -> None:
    assert (await legacy(http, "prompts/list")).json()["result"] == {"prompts": []}
    response = await legacy(http, "prompts/get", {"name": "x"})
    assert error_of(response)["code"] == -32602


# --- progress, SSE, cancellation, revocation ---------------------------------------------------


def slow_call(
    tag: str, *, steps: int = 3, delay: float = 0.01, token: Any = "p1", request_id: Any = 1
) -> dict[str, Any]:
    params: dict[str, Any] = {"name": "slow", "arguments": {"steps": steps, "delay": delay, "tag": tag}}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    return rpc("tools/call", params, request_id)


async def test_progress_streams_as_sse(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/mcp", json=slow_call("sse", token=42), headers=headers_for(version="2025-11-25")
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache, no-transform"
    assert response.headers["x-accel-buffering"] == "no"
    assert "event: message\r\ndata: " in response.text
    events = sse_events(response.text)
    progress = [e["params"] for e in events if e.get("method") == "notifications/progress"]
    assert progress == [
        {"progressToken": 42, "progress": n, "total": 3, "message": f"step {n}/3"} for n in (1, 2, 3)
    ]
    assert events[-1]["id"] == 1
    assert events[-1]["result"]["structuredContent"] == {"done": 3}


async def test_modern_progress_streams_as_sse(http: httpx.AsyncClient) -> None:
    body = slow_call("modern-sse", token="t")
    body["params"]["_meta"].update(envelope())
    headers = headers_for(version=MODERN, **{"Mcp-Method": "tools/call", "Mcp-Name": "slow"})
    response = await http.post("/mcp", json=body, headers=headers)
    assert response.headers["content-type"] == "text/event-stream"
    events = sse_events(response.text)
    assert [e["params"]["progress"] for e in events[:-1]] == [1, 2, 3]
    assert events[-1]["result"]["resultType"] == "complete"


async def test_progress_without_sse_accept_is_plain_json(http: httpx.AsyncClient) -> None:
    response = await http.post("/mcp", json=slow_call("json"), headers=headers_for(accept="application/json"))
    assert response.headers["content-type"] == "application/json"
    assert response.json()["result"]["isError"] is False


async def test_progress_token_without_notifications_still_gets_json(http: httpx.AsyncClient) -> None:
    """Lazy choice: nothing to stream before the result, so the reply is JSON with its status."""
    body = rpc("tools/call", {"name": "echo", "arguments": {"message": "q"}, "_meta": {"progressToken": 1}})
    response = await http.post("/mcp", json=body, headers=headers_for())
    assert response.headers["content-type"] == "application/json"
    body = rpc("tools/call", {"name": "nope", "_meta": {"progressToken": 1}})
    body["params"]["_meta"].update(envelope())
    response = await http.post(
        "/mcp",
        json=body,
        headers=headers_for(version=MODERN, **{"Mcp-Method": "tools/call", "Mcp-Name": "nope"}),
    )
    assert response.status_code == 400


async def test_progress_message_is_gated_for_2024_11_05(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/mcp", json=slow_call("old", steps=1), headers=headers_for(version="2024-11-05")
    )
    events = sse_events(response.text)
    assert events[0]["params"] == {"progressToken": "p1", "progress": 1, "total": 1}


async def test_client_disconnect_cancels_the_tool(mcp_server: McpUnderTest) -> None:
    probe = mcp_server.probe
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream(
            "POST",
            mcp_server.url,
            json=slow_call("gone", steps=100, delay=0.05),
            headers=headers_for(user="leaver"),
        ) as response,
    ):
        assert response.headers["content-type"] == "text/event-stream"
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                break
    await asyncio.wait_for(probe.cancelled_event("gone").wait(), 3)
    # The tool may change things, so its audit row was written ahead; the handler commits the
    # "cancelled" outcome on it before the request leaves the in-flight table.
    for _ in range(500):
        if mcp_server.services.inflight.count(connection_id("leaver")) == 0:
            break
        await asyncio.sleep(0.01)
    assert mcp_server.services.inflight.count(connection_id("leaver")) == 0
    await mcp_server.services.audit.flush()
    events = await mcp_server.services.audit.query(
        connection_id=connection_id("leaver"), events=["tool_call"]
    )
    assert events[0].outcome == "cancelled"


async def test_revocation_ends_a_json_request_promptly(
    http: httpx.AsyncClient, mcp_server: McpUnderTest
) -> None:
    probe, inflight = mcp_server.probe, mcp_server.services.inflight
    pending = asyncio.create_task(
        http.post(
            "/mcp",
            json=slow_call("revoked-json", steps=500, delay=0.05, token=None),
            headers=headers_for(user="revokee"),
        )
    )
    await asyncio.wait_for(probe.started_event("revoked-json").wait(), 3)
    assert inflight.cancel_connection(connection_id("revokee")) == 1
    response = await asyncio.wait_for(pending, 2)
    assert response.status_code == 200
    assert error_of(response) == {"code": CONNECTION_REVOKED, "message": "connection revoked"}
    assert probe.cancelled_event("revoked-json").is_set()
    # The server task that ran the call keeps serving: the next request on it works.
    assert (await legacy(http, "ping")).status_code == 200


async def test_revocation_ends_an_sse_stream_with_an_error(
    http: httpx.AsyncClient, mcp_server: McpUnderTest
) -> None:
    probe, inflight = mcp_server.probe, mcp_server.services.inflight
    pending = asyncio.create_task(
        http.post(
            "/mcp", json=slow_call("revoked-sse", steps=500, delay=0.05), headers=headers_for(user="revokee2")
        )
    )
    await asyncio.wait_for(probe.started_event("revoked-sse").wait(), 3)
    await asyncio.sleep(0.1)
    inflight.cancel_connection(connection_id("revokee2"))
    response = await asyncio.wait_for(pending, 2)
    assert response.headers["content-type"] == "text/event-stream"
    events = sse_events(response.text)
    assert events[0]["method"] == "notifications/progress"
    assert events[-1] == {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {"code": CONNECTION_REVOKED, "message": "connection revoked"},
    }


async def test_legacy_cancel_notification_stops_the_request(
    http: httpx.AsyncClient, mcp_server: McpUnderTest
) -> None:
    probe = mcp_server.probe
    pending = asyncio.create_task(
        http.post(
            "/mcp",
            json=slow_call("cancel-me", steps=500, delay=0.05, request_id="req-77"),
            headers=headers_for(user="canceller", version="2025-11-25"),
        )
    )
    await asyncio.wait_for(probe.started_event("cancel-me").wait(), 3)
    await asyncio.sleep(0.1)
    # Another connection using the same request id cannot cancel it.
    notification = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "req-77"}}
    response = await http.post(
        "/mcp", json=notification, headers=headers_for(user="other", version="2025-11-25")
    )
    assert response.status_code == 202
    await asyncio.sleep(0.1)
    assert not pending.done()
    response = await http.post(
        "/mcp", json=notification, headers=headers_for(user="canceller", version="2025-11-25")
    )
    assert response.status_code == 202
    response = await asyncio.wait_for(pending, 2)
    assert probe.cancelled_event("cancel-me").is_set()
    events = sse_events(response.text)
    assert events and all(e.get("method") == "notifications/progress" for e in events)  # no result


async def test_legacy_cancel_of_a_json_request_answers_32800(
    http: httpx.AsyncClient, mcp_server: McpUnderTest
) -> None:
    pending = asyncio.create_task(
        http.post(
            "/mcp",
            json=slow_call("cancel-json", steps=500, delay=0.05, token=None, request_id=9),
            headers=headers_for(user="canceller2"),
        )
    )
    await asyncio.wait_for(mcp_server.probe.started_event("cancel-json").wait(), 3)
    notification = {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": 9, "reason": "x"},
    }
    assert (
        await http.post("/mcp", json=notification, headers=headers_for(user="canceller2"))
    ).status_code == 202
    response = await asyncio.wait_for(pending, 2)
    assert error_of(response)["code"] == -32800


async def test_cancel_notification_with_string_id_does_not_match_int_id(
    http: httpx.AsyncClient, mcp_server: McpUnderTest
) -> None:
    pending = asyncio.create_task(
        http.post(
            "/mcp",
            json=slow_call("typed-id", steps=5, delay=0.05, token=None, request_id=5),
            headers=headers_for(user="typed"),
        )
    )
    await asyncio.wait_for(mcp_server.probe.started_event("typed-id").wait(), 3)
    notification = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "5"}}
    await http.post("/mcp", json=notification, headers=headers_for(user="typed"))
    response = await asyncio.wait_for(pending, 3)
    assert response.json()["result"]["isError"] is False


# --- the official SDK client -------------------------------------------------------------------


async def _sdk_session(mcp_server: McpUnderTest, mode: str) -> str | None:
    """List, call (ok, invalid, with progress) and read through the SDK; return the version."""
    import httpx2
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with httpx2.AsyncClient(headers={"Authorization": basic("sdk")}, timeout=10) as http_client:
        transport = streamable_http_client(mcp_server.url, http_client=http_client)
        async with Client(transport, mode=mode) as client:
            version = client.session.protocol_version
            if mode != MODERN:  # a version pin adopts without asking the server
                assert client.session.server_info is not None
                assert client.session.server_info.name == "AI Connector"
            tools = await client.list_tools()
            assert {t.name for t in tools.tools} >= {"echo", "slow"}
            result = await client.call_tool("echo", {"message": "via sdk"})
            assert result.is_error is False
            assert result.content[0].text == "via sdk"  # type: ignore[union-attr]
            assert result.structured_content == {"text": "via sdk"}
            bad = await client.call_tool("echo", {})
            assert bad.is_error is True
            resource = await client.read_resource("aiconnector://posts/1")
            assert resource.contents[0].text.startswith("<h1>Hello World</h1>")  # type: ignore[union-attr]
            listed = await client.list_resources()
            assert listed.resources[0].uri == "aiconnector://posts/1"
            done = await client.call_tool(
                "slow", {"steps": 3, "delay": 0.01, "tag": f"sdk-{mode}"}, progress_callback=on_progress
            )
            assert done.structured_content == {"done": 3}
    assert [p[0] for p in progress] == [1, 2, 3]
    return version


async def test_sdk_client_legacy_mode(mcp_server: McpUnderTest) -> None:
    assert await _sdk_session(mcp_server, "legacy") == "2025-11-25"


@pytest.mark.parametrize("mode", ["auto", MODERN])
async def test_sdk_client_modern_modes(mcp_server: McpUnderTest, mode: str) -> None:
    assert await _sdk_session(mcp_server, mode) == MODERN


async def test_slow_silent_request_switches_to_sse_with_keepalives(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lazy choice: with nothing to send for KEEPALIVE_SECONDS, the stream starts with a ping."""
    from aiconnector.mcp import transport

    monkeypatch.setattr(transport, "KEEPALIVE_SECONDS", 0.05)
    body = slow_call("keepalive", steps=3, delay=0.1, token=None)
    response = await http.post("/mcp", json=body, headers=headers_for(accept="text/event-stream"))
    assert response.headers["content-type"] == "text/event-stream"
    assert response.text.startswith(": ping\r\n\r\n")
    assert sse_events(response.text)[-1]["result"]["isError"] is False
