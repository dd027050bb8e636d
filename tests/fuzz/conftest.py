"""One real server per database for the whole fuzz package, seeded through its own HTTP API
(clients, tokens, device codes, an admin session, application passwords), and ``probe``,
which sends one fuzzed request and fails it at once when the server logged a problem.

Limits are generous, so the fuzzer reaches the code behind them instead of a 429 after a few
examples (``tests/fuzz/test_limits.py`` checks the 429s of a server with the real limits)."""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, event, note, settings
from sqlalchemy import select

from aiconnector.app import create_app
from aiconnector.core.login_limits import LoginLimits
from aiconnector.db.models import Connection
from tests.conftest import ADMIN_PASSWORD, LiveServer, make_settings
from tests.server_log_guard import ServerLogGuard
from tests.support import DatabaseUnderTest, free_port, fresh_database, serve_in_thread

EXAMPLES_ENV = "AICONNECTOR_FUZZ_EXAMPLES"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REDIRECT = "http://127.0.0.1:9/callback"
# Redirect URIs a client might register; the ones the server accepts make clients whose
# consent pages and error redirects the fuzzer then exercises (non-Latin-1, IDN, odd schemes).
ODD_REDIRECTS = (
    "http://127.0.0.1:9999/cb/例",
    "http://例え.テスト/cb",
    "https://xn--r8jz45g.xn--zckzah/cb",
    "https://app.example/cb?x=1&y=%E4%BE%8B",
    "cursor://anysphere.cursor-mcp/oauth/callback",
    "http://localhost:9/cb",
    "http://[::1]:9/cb",
    "https://app.example/c%20b",
    "com.example.app:/oauth2redirect",
)
LIMITLESS = 10**6
GENEROUS_SETTINGS: dict[str, object] = {
    "registrations_per_minute": LIMITLESS,
    "auth_failures_per_minute": LIMITLESS,
    "device_wrong_codes_per_user": LIMITLESS,
    "device_wrong_codes_per_address": LIMITLESS,
    # Fuzzed metadata-document ids and media URLs must not make the server fetch anything.
    "allow_private_fetch": False,
}
GENEROUS_LOGIN = LoginLimits(
    per_pair_minute=LIMITLESS,
    per_pair_hour=LIMITLESS,
    per_address_minute=LIMITLESS,
    per_account_hour=LIMITLESS,
    delay_after=LIMITLESS,
)
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
REQUEST_FIELD = re.compile(r'name="request" value="([^"]+)"')
MCP_ACCEPT = "application/json, text/event-stream"


def examples(default: int) -> int:
    """Examples per fuzz test: ``default``, or ``AICONNECTOR_FUZZ_EXAMPLES`` when set."""
    raw = os.environ.get(EXAMPLES_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else default


def fuzz(default_examples: int) -> settings:
    """Hypothesis settings of every fuzz test: the same examples on every run (derandomized:
    the seed is derived from the test), no example database (nothing written to the tree),
    no deadline (a request's time depends on the machine), a bounded number of examples."""
    return settings(
        max_examples=examples(default_examples),
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # ``probe`` only reads the log guard
            HealthCheck.too_slow,  # every example is a request to a real server
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


def field_of(pattern: re.Pattern[str], page: str) -> str:
    match = pattern.search(page)
    assert match, f"field {pattern.pattern!r} not found in page"
    return html.unescape(match.group(1))


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def sign_in(base_url: str, username: str = "admin", password: str = ADMIN_PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=60)
    token = field_of(CSRF_FIELD, client.get("/login").text)
    signed = client.post(
        "/login", data={"username": username, "password": password, "csrf": token, "next": "/"}
    )
    assert signed.status_code == 303, signed.text
    return client


def register(base_url: str, **metadata: Any) -> dict[str, Any]:
    response = httpx.post(f"{base_url}/oauth/register", json=metadata, timeout=60)
    assert response.status_code == 201, response.text
    return response.json()


def authorize(admin: httpx.Client, client_id: str, redirect_uri: str, scope: str) -> dict[str, str]:
    """The whole code flow as a browser and a client do it; the token response."""
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "fuzz",
        "scope": scope,
    }
    page = admin.get("/oauth/authorize", params=params)
    assert page.status_code == 200, page.text
    decided = admin.post(
        "/oauth/authorize",
        data={
            "csrf": field_of(CSRF_FIELD, page.text),
            "request": field_of(REQUEST_FIELD, page.text),
            "action": "authorize",
            "scope": scope.split(),
        },
    )
    assert decided.status_code == 303, decided.text
    code = dict(parse_qsl(urlsplit(decided.headers["location"]).query))["code"]
    tokens = httpx.post(
        f"{admin.base_url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        timeout=60,
    )
    assert tokens.status_code == 200, tokens.text
    return tokens.json()


@dataclass
class FuzzTarget:
    """The running server and what the fuzzer may use as valid parts of its requests."""

    server: LiveServer
    admin_cookies: dict[str, str]
    admin_csrf: str
    public_client: str
    confidential_client: str
    confidential_secret: str
    device_client: str
    odd_clients: list[tuple[str, str]] = field(default_factory=list)  # (client_id, redirect_uri)
    access_tokens: list[str] = field(default_factory=list)
    narrow_access_token: str = ""  # content:read only
    refresh_tokens: list[str] = field(default_factory=list)
    device_codes: list[str] = field(default_factory=list)
    user_codes: list[str] = field(default_factory=list)
    app_password_basic: bytes = b""
    form_connection_id: str = ""  # the admin-form fuzzer renames, narrows and revokes this one
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def clients(self) -> list[tuple[str, str]]:
        """Every seeded client that can authorize, with a redirect URI it registered."""
        return [(self.public_client, REDIRECT), (self.confidential_client, REDIRECT), *self.odd_clients]


def _seed(server: LiveServer) -> FuzzTarget:
    base = server.base_url
    admin = sign_in(base)
    profile = admin.get("/admin/profile")
    public = register(
        base, client_name="fuzz public", redirect_uris=[REDIRECT], token_endpoint_auth_method="none"
    )
    confidential = register(
        base,
        client_name="fuzz confidential",
        redirect_uris=[REDIRECT],
        token_endpoint_auth_method="client_secret_basic",
    )
    device = register(
        base,
        client_name="fuzz device",
        grant_types=[DEVICE_GRANT, "refresh_token"],
        token_endpoint_auth_method="none",
    )
    target = FuzzTarget(
        server=server,
        admin_cookies=dict(admin.cookies),
        admin_csrf=field_of(CSRF_FIELD, profile.text),
        public_client=public["client_id"],
        confidential_client=confidential["client_id"],
        confidential_secret=confidential["client_secret"],
        device_client=device["client_id"],
    )
    for uri in ODD_REDIRECTS:
        response = httpx.post(
            f"{base}/oauth/register", json={"client_name": "odd", "redirect_uris": [uri]}, timeout=60
        )
        if response.status_code == 201:
            target.odd_clients.append((response.json()["client_id"], uri))
    for scope in ("content:read content:write", "content:read"):
        tokens = authorize(admin, target.public_client, REDIRECT, scope)
        target.access_tokens.append(tokens["access_token"])
        target.refresh_tokens.append(tokens["refresh_token"])
    target.narrow_access_token = target.access_tokens[-1]
    for _ in range(2):
        started = httpx.post(
            f"{base}/oauth/device_authorization", data={"client_id": target.device_client}, timeout=60
        )
        assert started.status_code == 200, started.text
        target.device_codes.append(started.json()["device_code"])
        target.user_codes.append(started.json()["user_code"])
    password = server.app_password(name="fuzz: mcp")
    target.app_password_basic = b"Basic " + base64.b64encode(f"admin:{password}".encode())
    server.app_password(name="fuzz: admin forms")
    target.form_connection_id = server.run(_connection_named("fuzz: admin forms"))
    target.tools = _tool_schemas(base, target.app_password_basic)
    admin.close()
    return target


def _connection_named(name: str) -> Any:  # noqa: ANN401 - a coroutine factory for LiveServer.run
    async def find(rt: Any) -> str:  # noqa: ANN401 - Runtime
        async with rt.sessions() as session:
            return (await session.scalars(select(Connection.id).where(Connection.agent_name == name))).one()

    return find


def _tool_schemas(base_url: str, authorization: bytes) -> dict[str, dict[str, Any]]:
    """The real tools and their input schemas, as ``tools/list`` gives them."""
    response = httpx.post(
        f"{base_url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": authorization, "Accept": MCP_ACCEPT},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return {tool["name"]: tool["inputSchema"] for tool in response.json()["result"]["tools"]}


@pytest.fixture(params=["sqlite", "postgresql"], scope="package")
def fuzz_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseUnderTest]:
    with fresh_database(request.param, tmp_path_factory.mktemp("fuzz-db")) as db:
        yield db


@pytest.fixture(scope="package")
def fuzz_target(
    fuzz_database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzTarget]:
    """The whole product (``create_app``) with generous limits. The sign-in limits are not
    settings, so the running server's guard gets generous ones once it has started."""
    port = free_port()
    config = make_settings(fuzz_database, tmp_path_factory.mktemp("fuzz"), port, **GENEROUS_SETTINGS)
    app = create_app(config)
    with serve_in_thread(app, port) as base_url:
        app._web.login_guard.limits = GENEROUS_LOGIN  # noqa: SLF001 - no public knob exists
        yield _seed(LiveServer(base_url, config, fuzz_database))


class Probe:
    """Sends fuzzed requests to the target. Each request is noted for Hypothesis's report,
    and fails as soon as the server logged an error or traceback while answering it (the
    suite's log guard collects those), so the failing input is the one shrunk and shown."""

    def __init__(self, target: FuzzTarget, guard: ServerLogGuard) -> None:
        self.target = target
        self.guard = guard
        self._client = httpx.Client(base_url=target.base_url, follow_redirects=False, timeout=120)

    def close(self) -> None:
        self._client.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        headers: dict[str, Any] | None = None,
        body: bytes = b"",
        admin: bool = False,
        cookies: dict[str, str] | None = None,
    ) -> httpx.Response:
        self._client.cookies.clear()
        for name, value in ({**(self.target.admin_cookies if admin else {}), **(cookies or {})}).items():
            self._client.cookies.set(name, value)
        url = path + (f"?{query}" if query else "")
        note(
            f"{method} {url[:500]}{' as admin' if admin else ''} headers={headers!r:.500} body={body[:500]!r}"
        )
        before = len(self.guard.problems)
        response = self._client.request(method, url, headers=headers, content=body)
        event(f"{response.status_code} {_error_code(response)}".strip())  # --hypothesis-show-statistics
        if os.environ.get("FUZZ_DEBUG"):
            print("DEBUG", path, response.status_code, len(body), response.text[:160].replace("\n", " "))
        logged = self.guard.problems[before:]
        assert not logged, f"{method} {path} -> {response.status_code}; the server logged:\n" + "\n".join(
            logged
        )
        return response


def _error_code(response: httpx.Response) -> str:
    """The OAuth or JSON-RPC error an answer carries, for the statistics."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return ""
    try:
        body = response.json()
    except ValueError:
        return "(not JSON)"
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code") if isinstance(error, dict) else error or "")


@pytest.fixture
def probe(fuzz_target: FuzzTarget, server_log_guard: ServerLogGuard) -> Iterator[Probe]:
    p = Probe(fuzz_target, server_log_guard)
    try:
        yield p
    finally:
        p.close()
