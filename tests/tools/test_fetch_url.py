"""SSRF rules of fetch_url, against literal addresses and a real local HTTP server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from aiconnector.config import Settings
from aiconnector.errors import InvalidInput
from aiconnector.mcp import fetch_url as fetch_url_module
from aiconnector.mcp.fetch_url import fetch_url
from tests.tools.conftest import PNG, Env

STRICT = Settings(max_upload_bytes=1024)
LAB = replace(STRICT, allow_private_fetch=True)  # tests only: loopback server, plain http


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hosts: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        if "Content_Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        type(self).hosts.append(self.headers.get("Host", ""))
        path = self.path
        if path == "/file.png":
            self._send(200, PNG, Content_Type="image/png; charset=binary")
        elif path == "/download":
            self._send(
                200,
                PNG,
                Content_Type="application/octet-stream",
                Content_Disposition='attachment; filename="x/y.png"',
            )
        elif path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            self._send(302, Location="/file.png" if left == 0 else f"/hop/{left - 1}")
        elif path == "/gzip":
            self._send(200, b"\x1f\x8b rest", Content_Type="text/plain", Content_Encoding="gzip")
        elif path == "/bad-location":
            self._send(302, Location="https://[zz]/")
        elif path == "/to-private":
            self._send(302, Location="http://10.0.0.1/secret")
        elif path == "/big":
            self._send(200, b"x" * 2048, Content_Type="text/plain")
        elif path == "/big-chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(8):
                self.wfile.write(b"100\r\n" + b"y" * 256 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/slow":
            time.sleep(2)
            self._send(200, b"late")
        else:
            self._send(404, b"no")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


# --- refusals that never touch the network ----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/x.png",
        "https://10.1.2.3/x.png",
        "https://192.168.0.1/x.png",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/x.png",
        "https://[::ffff:127.0.0.1]/x.png",
        "https://[fe80::1]/x.png",
        "https://0.0.0.0/x.png",
        "https://100.64.0.1/x.png",
        "https://localhost/x.png",
    ],
)
async def test_refuses_non_public_addresses(url: str) -> None:
    with pytest.raises(InvalidInput, match="non-public address"):
        await fetch_url(url, STRICT)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/x.png", "Only https"),
        ("ftp://example.com/x.png", "Only https"),
        ("file:///etc/passwd", "Only https"),
        ("https://user:pw@example.com/x.png", "user name or password"),
        ("x.png", "Only https"),
    ],
)
async def test_refuses_other_schemes_and_credentials(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        await fetch_url(url, STRICT)


async def test_refuses_a_name_with_any_private_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name resolving to a public and a private address (a rebinding setup) is refused."""

    async def fake_getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(InvalidInput, match="127.0.0.1"):
        await fetch_url("https://rebind.example/x.png", STRICT)


# --- against a real local server (allow_private_fetch, as in tests only) ----------------------


async def test_fetches_and_strips_content_type_params(server: str) -> None:
    got = await fetch_url(f"{server}/file.png", LAB)
    assert (got.data, got.content_type, got.filename) == (PNG, "image/png", "file.png")


async def test_filename_from_content_disposition_without_directories(server: str) -> None:
    got = await fetch_url(f"{server}/download", LAB)
    assert got.filename == "y.png" and got.content_type == "application/octet-stream"


async def test_connects_to_the_vetted_address_with_the_name_as_host(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS is asked once; the request goes to that address and carries the name in Host."""
    port = int(server.rsplit(":", 1)[1])
    calls: list[str] = []

    async def fake_getaddrinfo(host: str, port_: int, **kwargs: Any) -> list[Any]:
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port_))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
    _Handler.hosts.clear()
    got = await fetch_url(f"http://media.example:{port}/file.png", LAB)
    assert got.data == PNG
    assert calls == ["media.example"]
    assert _Handler.hosts == [f"media.example:{port}"]


async def test_follows_up_to_three_redirects(server: str) -> None:
    got = await fetch_url(f"{server}/hop/2", LAB)  # /hop/2 -> /hop/1 -> /hop/0 -> /file.png
    assert got.data == PNG and got.url.endswith("/file.png")
    with pytest.raises(InvalidInput, match="Too many redirects"):
        await fetch_url(f"{server}/hop/3", LAB)


async def test_redirects_are_vetted_again(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A redirect from an allowed host to a private address is refused at the hop.

    Strict rules apply, except that the local test server counts as public and plain http is
    allowed, so the first request goes through and the redirect is what gets vetted."""
    monkeypatch.setattr(fetch_url_module, "SCHEMES", ("https", "http"))
    monkeypatch.setattr(fetch_url_module, "is_public_address", lambda ip: str(ip) == "127.0.0.1")
    assert (await fetch_url(f"{server}/file.png", STRICT)).data == PNG
    with pytest.raises(InvalidInput, match="non-public address 10.0.0.1"):
        await fetch_url(f"{server}/to-private", STRICT)


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
async def test_size_cap(server: str, path: str) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        await fetch_url(f"{server}{path}", LAB)


async def test_http_errors_and_timeouts(server: str) -> None:
    with pytest.raises(InvalidInput, match="HTTP 404"):
        await fetch_url(f"{server}/missing", LAB)
    with pytest.raises(InvalidInput, match="compressed"):
        await fetch_url(f"{server}/gzip", LAB)
    with pytest.raises(InvalidInput, match="bad-location"):  # a broken Location is an error, not a crash
        await fetch_url(f"{server}/bad-location", LAB)
    with pytest.raises(InvalidInput, match="longer than"):
        await fetch_url(f"{server}/slow", LAB, time_limit=0.3)


async def test_upload_media_by_url(env: Env, server: str) -> None:
    settings = replace(env.settings, allow_private_fetch=True)
    item = await env.call(
        "upload_media", {"url": f"{server}/file.png", "alt_text": "fetched"}, settings=settings
    )
    assert (item.mime_type, item.filename, item.size, item.alt_text) == (
        "image/png",
        "file.png",
        len(PNG),
        "fetched",
    )
    with pytest.raises(InvalidInput, match="non-public"):
        await env.call("upload_media", {"url": "https://127.0.0.1/file.png"})
