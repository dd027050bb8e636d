"""Client ID Metadata Documents: fetched from a real local HTTP server (``allow_private_fetch``
is on in tests, as loopback is not public), validated, cached per Cache-Control, refused under
the SSRF rules when private fetching is off, and fetched within limits (failures cached,
fetches counted per URL and per address)."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, update

from aiconnector.core.client_metadata import MAX_CACHE_SECONDS, MIN_CACHE_SECONDS, cache_seconds
from aiconnector.core.clients import aware, resolve_client
from aiconnector.core.document_fetch_limits import DocumentFetchLimits
from aiconnector.core.tokens import verify_access_token
from aiconnector.db.models import OAuthClient, RateCounter, utcnow
from aiconnector.errors import OAuthError, RateLimited
from aiconnector.runtime import Runtime, open_runtime
from tests.oauth.conftest import REDIRECT, AuthServer, Flow, new_verifier, run_auth_server
from tests.oauth.test_rate_limits import from_address
from tests.support import DatabaseUnderTest


class DocumentServer:
    """Serves ``documents[path] = (status, body, headers)`` and counts requests per path."""

    def __init__(self) -> None:
        self.documents: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.hits: dict[str, int] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                status, body, headers = owner.documents.get(self.path, (404, b"", {}))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def publish(self, path: str, document: dict[str, Any] | bytes, status: int = 200, **headers: str) -> str:
        url = self.base + path
        if isinstance(document, dict):
            document = json.dumps({"client_id": url, **document}).encode()
        self.documents[path] = (status, document, {"Content-Type": "application/json", **headers})
        return url


@pytest.fixture(scope="module")
def docs() -> Iterator[DocumentServer]:
    server = DocumentServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()


GOOD = {"client_name": "Claude Code", "redirect_uris": ["http://localhost/callback", REDIRECT]}


async def test_document_is_fetched_validated_and_cached(
    docs: DocumentServer, auth_server: AuthServer, rt: Runtime
) -> None:
    path = f"/{secrets.token_hex(4)}/good.json"  # fresh per database run: hits are counted per path
    url = docs.publish(path, GOOD, **{"Cache-Control": "public, max-age=3600"})
    client = await resolve_client(rt.sessions, url, settings=auth_server.settings)
    assert client.kind == "metadata_document" and client.client_id == url and client.name == "Claude Code"
    assert (
        client.redirect_uris == tuple(GOOD["redirect_uris"]) and client.token_endpoint_auth_method == "none"
    )
    await resolve_client(rt.sessions, url, settings=auth_server.settings)
    assert docs.hits[path] == 1  # served from the cache
    async with rt.sessions() as s:
        row = await s.get(OAuthClient, url)
    assert timedelta(minutes=59) < aware(row.refresh_after) - utcnow() <= timedelta(hours=1)
    async with rt.sessions.begin() as s:
        await s.execute(
            update(OAuthClient)
            .where(OAuthClient.client_id == url)
            .values(refresh_after=utcnow() - timedelta(seconds=1))
        )
    docs.publish(path, {**GOOD, "client_name": "Claude Code 2"})
    assert (await resolve_client(rt.sessions, url, settings=auth_server.settings)).name == "Claude Code 2"
    assert docs.hits[path] == 2


async def test_stale_copy_is_used_when_the_document_is_unreachable(
    docs: DocumentServer, auth_server: AuthServer, rt: Runtime
) -> None:
    url = docs.publish("/flaky.json", GOOD)
    await resolve_client(rt.sessions, url, settings=auth_server.settings)
    async with rt.sessions.begin() as s:
        await s.execute(
            update(OAuthClient)
            .where(OAuthClient.client_id == url)
            .values(refresh_after=utcnow() - timedelta(seconds=1))
        )
    docs.publish("/flaky.json", b"oops", status=503)
    assert (await resolve_client(rt.sessions, url, settings=auth_server.settings)).name == "Claude Code"


@pytest.mark.parametrize(
    ("path", "document", "message"),
    [
        ("/mismatch.json", {"client_id": "https://elsewhere.example/client.json", **GOOD}, "must equal"),
        ("/no-redirects.json", {"client_name": "x"}, "redirect_uris"),
        ("/bad-redirect.json", {"redirect_uris": ["javascript:alert(1)"]}, "javascript"),
        ("/secret.json", {**GOOD, "token_endpoint_auth_method": "client_secret_basic"}, "none"),
        ("/not-json.json", b"<html>", "not JSON"),
        ("/array.json", b"[]", "not a JSON object"),
        ("/big.json", b'{"x": "' + b"a" * 70_000 + b'"}', "could not fetch"),
        ("/missing.json", None, "could not fetch"),
    ],
)
async def test_unacceptable_documents_are_invalid_client(
    docs: DocumentServer, auth_server: AuthServer, rt: Runtime, path: str, document: Any, message: str
) -> None:
    if document is None:
        url = docs.base + path
    elif isinstance(document, dict) and "client_id" in document:
        docs.documents[path] = (200, json.dumps(document).encode(), {"Content-Type": "application/json"})
        url = docs.base + path
    else:
        url = docs.publish(path, document)
    with pytest.raises(OAuthError, match=message) as exc:
        await resolve_client(rt.sessions, url, settings=auth_server.settings)
    assert exc.value.error == "invalid_client"


@pytest.mark.parametrize("suffix", ["", "/", "/client.json#frag", "/a/../client.json"])
async def test_document_url_rules(
    docs: DocumentServer, auth_server: AuthServer, rt: Runtime, suffix: str
) -> None:
    with pytest.raises(OAuthError) as exc:
        await resolve_client(rt.sessions, docs.base + suffix, settings=auth_server.settings)
    assert exc.value.error == "invalid_client"


async def test_private_addresses_are_refused_without_lab_mode(
    docs: DocumentServer, auth_server: AuthServer, rt: Runtime
) -> None:
    strict = replace(auth_server.settings, allow_private_fetch=False)
    port = docs.base.rsplit(":", 1)[1]
    with pytest.raises(OAuthError, match="non-public address 127.0.0.1") as exc:
        await resolve_client(rt.sessions, f"https://127.0.0.1:{port}/ssrf.json", settings=strict)
    assert exc.value.error == "invalid_client"
    assert "/ssrf.json" not in docs.hits
    # Plain http is not a metadata document URL at all in production.
    with pytest.raises(OAuthError, match="unknown client"):
        await resolve_client(rt.sessions, docs.publish("/plain.json", GOOD), settings=strict)


def test_cache_lifetime_is_bounded() -> None:
    assert cache_seconds(None) == MIN_CACHE_SECONDS
    assert cache_seconds("no-store") == MIN_CACHE_SECONDS
    assert cache_seconds("max-age=10") == MIN_CACHE_SECONDS
    assert cache_seconds("public, max-age=7200") == 7200
    assert cache_seconds("max-age=99999999") == MAX_CACHE_SECONDS


async def test_a_shared_client_id_never_replaces_the_same_persons_other_install(
    docs: DocumentServer, auth_server: AuthServer, flow: Flow
) -> None:
    """Claude Code on two laptops presents one metadata-document URL: the second
    authorization must not end the first laptop's connection (a dynamic client's must)."""
    url = docs.publish("/two-laptops.json", GOOD)
    client = await resolve_client(flow.rt.sessions, url, settings=auth_server.settings)
    cimd = Flow(flow.server, flow.rt, flow.http, client)
    first = (await cimd.tokens())["access_token"]
    second = (await cimd.tokens())["access_token"]
    for token in (first, second):
        assert await verify_access_token(flow.rt.sessions, token, resource=auth_server.settings.mcp_url)


async def test_metadata_document_client_gets_tokens(
    docs: DocumentServer, auth_server: AuthServer, flow: Flow
) -> None:
    url = docs.publish("/token-client.json", GOOD)
    client = await resolve_client(flow.rt.sessions, url, settings=auth_server.settings)
    cimd = Flow(flow.server, flow.rt, flow.http, client)
    verifier = new_verifier()
    response = await cimd.redeem(await cimd.code(verifier), verifier)
    assert response.status_code == 200, response.text


# --- fetch limits (core/document_fetch_limits.py) ----------------------------------------------

FETCH_LIMIT = 3


def fresh_minute() -> None:
    """The failure cache and the fetch counters use one-minute windows: start where a rollover
    cannot split the test."""
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)


async def forget_fetch_history(rt: Runtime) -> None:
    """What the end of the minute does: the failure cache and fetch counts are gone."""
    async with rt.sessions.begin() as s:
        await s.execute(delete(RateCounter).where(RateCounter.key.like("cimd-%")))


async def test_a_failed_fetch_is_not_repeated_for_a_minute(
    docs: DocumentServer, auth_server: AuthServer, rt: Runtime
) -> None:
    path = f"/{secrets.token_hex(4)}/later.json"
    url = docs.base + path
    fresh_minute()
    for _ in range(5):
        with pytest.raises(OAuthError, match="could not fetch") as exc:
            await resolve_client(rt.sessions, url, settings=auth_server.settings, ip="192.0.2.1")
        assert exc.value.error == "invalid_client"
    assert docs.hits[path] == 1, "failures are cached"
    docs.publish(path, GOOD)
    with pytest.raises(OAuthError, match="failed moments ago"):
        await resolve_client(rt.sessions, url, settings=auth_server.settings)
    assert docs.hits[path] == 1
    await forget_fetch_history(rt)
    assert (await resolve_client(rt.sessions, url, settings=auth_server.settings)).name == "Claude Code"
    assert docs.hits[path] == 2


async def test_invalid_documents_are_cached_as_failures_too(
    docs: DocumentServer, auth_server: AuthServer, rt: Runtime
) -> None:
    path = f"/{secrets.token_hex(4)}/invalid.json"
    url = docs.publish(path, b"<html>")
    fresh_minute()
    for _ in range(3):
        with pytest.raises(OAuthError):
            await resolve_client(rt.sessions, url, settings=auth_server.settings)
    assert docs.hits[path] == 1


@pytest.fixture(scope="module")
def fetch_limited(
    database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthServer]:
    with run_auth_server(
        database, tmp_path_factory.mktemp("fetch-limits"), metadata_fetches_per_minute=FETCH_LIMIT
    ) as server:
        yield server


def test_fetches_are_limited_per_address(docs: DocumentServer, fetch_limited: AuthServer) -> None:
    """New URLs every time (so the failure cache does not help): one address makes at most
    ``FETCH_LIMIT`` fetches a minute, then gets 429; another address is not affected."""
    prefix = f"/{secrets.token_hex(4)}"
    url = f"{fetch_limited.base_url}/oauth/token"

    def ask(http: httpx.Client, n: int) -> httpx.Response:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": "x",
            "client_id": f"{docs.base}{prefix}/{n}.json",
        }
        return http.post(url, data=form)

    fresh_minute()
    with from_address("127.0.0.6") as flooder, from_address("127.0.0.7") as other:
        answers = [ask(flooder, n) for n in range(FETCH_LIMIT + 3)]
        assert [a.status_code for a in answers] == [401] * FETCH_LIMIT + [429] * 3
        assert answers[-1].json()["error"] == "temporarily_unavailable" and answers[-1].headers["retry-after"]
        assert sum(hits for path, hits in docs.hits.items() if path.startswith(prefix)) == FETCH_LIMIT
        docs.publish(f"{prefix}/good.json", GOOD)
        good = other.post(url, data={"grant_type": "refresh_token", "refresh_token": "x",
                                      "client_id": f"{docs.base}{prefix}/good.json"})  # fmt: skip
        assert good.status_code == 400 and good.json()["error"] == "invalid_grant"  # the client is known


async def test_fetches_are_limited_per_document_url(docs: DocumentServer, fetch_limited: AuthServer) -> None:
    """However many addresses ask, one URL is fetched at most ``FETCH_LIMIT`` times a minute;
    past that a copy already held is used."""
    async with open_runtime(fetch_limited.settings, apply_migrations=False) as rt:
        path = f"/{secrets.token_hex(4)}/busy.json"
        url = docs.publish(path, GOOD)
        limits = DocumentFetchLimits(rt.sessions, fetch_limited.settings)
        fresh_minute()
        for n in range(FETCH_LIMIT):
            await limits.admit(url, f"198.51.100.{n}")
        with pytest.raises(RateLimited):
            await limits.admit(url, "198.51.100.200")
        await forget_fetch_history(rt)
        await resolve_client(rt.sessions, url, settings=fetch_limited.settings)  # now held
        async with rt.sessions.begin() as s:
            await s.execute(
                update(OAuthClient)
                .where(OAuthClient.client_id == url)
                .values(refresh_after=utcnow() - timedelta(seconds=1))
            )
        for n in range(FETCH_LIMIT - 1):  # the fetch above was the first of this minute
            await limits.admit(url, f"203.0.113.{n}")
        hits = docs.hits[path]
        held = await resolve_client(rt.sessions, url, settings=fetch_limited.settings, ip="203.0.113.99")
        assert held.name == "Claude Code" and docs.hits[path] == hits  # the held copy, no fetch
