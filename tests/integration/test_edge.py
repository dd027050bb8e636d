"""Bad input at the edge, on a real server over both databases: text PostgreSQL cannot store
(NUL, unpaired surrogates) gets a 4xx in the shape its endpoint speaks, never a 500 and a
traceback; and a ``Host`` that does not name the server gets 421 (DNS-rebinding protection).

Every test here also runs under ``tests/server_log_guard.py``, which fails it if the server
logged an error or answered a 5xx; the tests assert that explicitly too."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from aiconnector.app import create_app
from tests.conftest import LiveServer, make_settings
from tests.server_log_guard import ServerLogGuard
from tests.support import DatabaseUnderTest, free_port, serve_in_thread
from tests.web.conftest import CSRF_FIELD, field, http_client, sign_in

NUL = "a\x00b"
OAUTH_FORMS = {
    "/oauth/token": {"grant_type": "refresh_token", "refresh_token": "x", "client_id": NUL},
    "/oauth/revoke": {"token": "x", "client_id": NUL},
    "/oauth/introspect": {"token": "x", "client_id": NUL},
    "/oauth/device_authorization": {"client_id": NUL},
}
MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-11-25",
}


def assert_html_400(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "must not contain NUL characters" in response.text


def call_tool(server: LiveServer, headers: dict[str, str], name: str, arguments: dict) -> dict:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }
    response = httpx.post(server.mcp_url, json=body, headers={**MCP_HEADERS, **headers}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("path", sorted(OAUTH_FORMS))
def test_nul_in_an_oauth_form_is_invalid_request(
    live_server: LiveServer, server_log_guard: ServerLogGuard, path: str
) -> None:
    response = httpx.post(live_server.base_url + path, data=OAUTH_FORMS[path], timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert "'client_id'" in response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"
    assert server_log_guard.problems == []


def test_nul_in_a_client_id_sent_with_basic_is_invalid_client(
    live_server: LiveServer, server_log_guard: ServerLogGuard
) -> None:
    credentials = base64.b64encode(b"a%00b:secret").decode()
    response = httpx.post(
        live_server.base_url + "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        headers={"Authorization": f"Basic {credentials}"},
        timeout=30,
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert server_log_guard.problems == []


def test_nul_in_a_query_parameter_gets_the_error_page(
    live_server: LiveServer, server_log_guard: ServerLogGuard
) -> None:
    response = httpx.get(
        live_server.base_url + "/oauth/authorize", params={"client_id": NUL, "response_type": "code"}
    )
    assert_html_400(response)
    assert "&#39;client_id&#39;" in response.text  # named, HTML-escaped
    assert server_log_guard.problems == []


def test_nul_in_the_sign_in_form_is_400(live_server: LiveServer, server_log_guard: ServerLogGuard) -> None:
    with http_client(live_server) as client:
        token = field(CSRF_FIELD, client.get("/login").text)
        form = {"username": NUL, "password": "whatever-it-is", "csrf": token, "next": "/"}
        assert_html_400(client.post("/login", data=form))
        # The same form as multipart/form-data (Starlette parses both): refused the same way.
        assert_html_400(client.post("/login", files={k: (None, v) for k, v in form.items()}))
        # A form with nothing wrong reaches the endpoint intact (its CSRF token is accepted).
        good = client.post("/login", data={**form, "username": "nobody-here"})
        assert good.status_code == 400 and "Wrong username or password" in good.text, good.text
    assert server_log_guard.problems == []


def test_nul_in_a_path_is_400(live_server: LiveServer, server_log_guard: ServerLogGuard) -> None:
    assert_html_400(httpx.get(live_server.base_url + "/media/a%00b/x.png"))
    with sign_in(live_server) as admin:
        assert_html_400(admin.get("/admin/connections/a%00b"))
    assert server_log_guard.problems == []


def test_nul_in_basic_credentials_on_mcp_is_401(
    live_server: LiveServer, server_log_guard: ServerLogGuard
) -> None:
    for user, password in ((NUL, "x"), ("admin", NUL)):
        response = httpx.post(
            live_server.mcp_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={**MCP_HEADERS, **live_server.basic_header(user, password)},
            timeout=30,
        )
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_token"
    assert server_log_guard.problems == []


@pytest.mark.parametrize(
    ("tool", "arguments", "named"),
    [
        ("list_posts", {"search": NUL}, "search"),
        ("list_posts", {"author": NUL}, "author"),
        ("list_posts", {"category": NUL}, "category"),
        ("create_post", {"title": NUL}, "title"),
        ("create_post", {"title": "ok", "tags": ["fine", NUL]}, "tags"),
    ],
)
def test_nul_in_tool_arguments_is_a_tool_error_naming_the_argument(
    live_server: LiveServer, server_log_guard: ServerLogGuard, tool: str, arguments: dict, named: str
) -> None:
    headers = live_server.basic_header("admin", live_server.app_password(name=f"nul {tool} {named}"))
    result = call_tool(live_server, headers, tool, arguments)["result"]
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert f"{named}: must not contain NUL characters" in text, text
    assert server_log_guard.problems == []


# --- Host ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def public_server(
    database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The whole server with a public URL, as behind a reverse proxy."""
    port = free_port()
    settings = make_settings(
        database, tmp_path_factory.mktemp("public"), port, public_url="https://site.example"
    )
    with serve_in_thread(create_app(settings), port) as base_url:
        yield LiveServer(base_url, settings, database)


@pytest.mark.parametrize(
    "host", ["site.example", "SITE.example:443", "127.0.0.1:1234", "localhost", "[::1]:8"]
)
def test_the_public_host_and_loopback_are_served(public_server: LiveServer, host: str) -> None:
    for path in ("/login", "/.well-known/oauth-authorization-server"):
        response = httpx.get(public_server.base_url + path, headers={"Host": host})
        assert response.status_code == 200, (host, path)


@pytest.mark.parametrize("host", ["evil.example", "site.example:8443", "site.example.evil.example", "a b"])
def test_another_host_is_misdirected(public_server: LiveServer, host: str) -> None:
    base = public_server.base_url
    page = httpx.get(base + "/login", headers={"Host": host})
    assert page.status_code == 421
    assert page.headers["content-type"].startswith("text/html")
    token = httpx.post(base + "/oauth/token", data={"grant_type": "x"}, headers={"Host": host})
    assert token.status_code == 421
    assert token.json()["error"] == "invalid_request"
    mcp = httpx.post(
        base + "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={**MCP_HEADERS, "Host": host},
    )
    assert mcp.status_code == 421
    assert mcp.json()["error"]["code"] == -32600
    # Health probes address instances by IP: never refused for their Host.
    assert httpx.get(base + "/healthz", headers={"Host": host}).status_code == 200


def test_without_a_public_url_a_loopback_server_answers_only_loopback_names(live_server: LiveServer) -> None:
    base = live_server.base_url
    assert httpx.get(base + "/login", headers={"Host": "localhost:1"}).status_code == 200
    assert httpx.get(base + "/login", headers={"Host": "rebound.evil.example"}).status_code == 421
    mcp = httpx.post(
        live_server.mcp_url,
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={**MCP_HEADERS, "Host": "rebound.evil.example:8000"},
    )
    assert mcp.status_code == 421
