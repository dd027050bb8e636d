"""Fetch a URL named by an outsider without becoming an SSRF proxy.

Used by ``upload_media`` (an agent names a file) and by Client ID Metadata Documents (a
client's ``client_id`` is the URL of its metadata). An outsider can name any URL, so the
server must not be talked into reading its own cloud metadata endpoint (169.254.169.254), an
admin port on localhost, or a service on the private network. The rules:

* ``https`` only (``http`` too when ``settings.allow_private_fetch`` is on, for tests);
  no credentials in the URL.
* The host is resolved once with ``getaddrinfo`` and *every* address must be public: not
  private, loopback, link-local, multicast, reserved, unspecified or otherwise non-global,
  for IPv4 and IPv6, looking through IPv4-mapped (``::ffff:a.b.c.d``) and NAT64
  (``64:ff9b::/96``) addresses to the IPv4 inside. A name that resolves to one public and one
  private address is refused: that is what rebinding setups look like.
* The connection goes to the vetted address itself (pinning). The request URL carries the
  IP, the ``Host`` header carries the name, and httpcore's ``sni_hostname`` request extension
  makes TLS send the name as SNI *and verify the certificate against the name*. So DNS is
  asked exactly once and a rebinding answer between check and connect cannot change where
  the bytes go, while certificate checking stays as strict as for a normal request.
  ``trust_env=False`` keeps environment proxies out (a proxy would undo the pinning).
* Redirects are not followed by the client; up to ``MAX_REDIRECTS`` are followed here, each
  new location vetted like the first URL.
* One deadline of ``time_limit`` seconds covers the whole fetch, redirects included, so a server
  trickling bytes cannot hold a worker; the body is streamed and abandoned as soon as it
  exceeds ``max_bytes`` (default ``settings.max_upload_bytes``).

Every refusal is ``InvalidInput`` with a message the agent can act on."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from pathlib import PurePosixPath
from urllib.parse import unquote

import httpx

from aiconnector.config import Settings
from aiconnector.errors import InvalidInput

MAX_REDIRECTS = 3
SCHEMES: tuple[str, ...] = ("https",)
LAB_SCHEMES: tuple[str, ...] = ("https", "http")  # with allow_private_fetch (tests, development)
DEFAULT_TIMEOUT = 10.0
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class FetchedFile:
    data: bytes
    content_type: str | None  # media type without parameters, lowercased; None if not sent
    filename: str | None  # from Content-Disposition, else the last URL path segment
    url: str  # the final URL, after redirects
    # Response headers (lowercased names), e.g. for honouring Cache-Control.
    headers: Mapping[str, str] = field(default_factory=dict)


def is_public_address(ip: IPAddress) -> bool:
    """True when ``ip`` is a globally routable unicast address a server may fetch from."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def _parse_url(raw: str, settings: Settings, base: httpx.URL | None = None) -> httpx.URL:
    """Parse (relative to ``base`` for redirects) and check scheme and credentials."""
    try:
        url = base.join(raw) if base is not None else httpx.URL(raw)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise InvalidInput(f"Not a valid URL: {raw[:200]!r}") from None
    allowed = LAB_SCHEMES if settings.allow_private_fetch else SCHEMES
    if url.scheme not in allowed:
        raise InvalidInput(
            f"Only https:// URLs can be fetched, not {url.scheme or 'a relative'} URL {raw[:200]!r}."
        )
    if not url.host:
        raise InvalidInput(f"The URL {raw[:200]!r} has no host.")
    if url.userinfo:
        raise InvalidInput("URLs with a user name or password cannot be fetched.")
    return url


async def _vetted_address(url: httpx.URL, settings: Settings) -> IPAddress:
    """Resolve the URL's host once and return the address to connect to, or refuse."""
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InvalidInput(f"The host {host!r} could not be resolved.") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise InvalidInput(f"The host {host!r} could not be resolved.")
    if not settings.allow_private_fetch:
        for address in addresses:
            if not is_public_address(address):
                raise InvalidInput(
                    f"Refusing to fetch {host!r}: it resolves to the non-public address {address}. "
                    "Only files on the public internet can be fetched."
                )
    return addresses[0]


def _pinned_request(
    client: httpx.AsyncClient, url: httpx.URL, address: IPAddress, accept: str = "*/*"
) -> httpx.Request:
    """A GET for ``url`` sent to ``address``, with the name in Host and in TLS SNI/verification."""
    host = url.raw_host.decode("ascii")
    bracketed = f"[{host}]" if ":" in host else host  # IPv6 literal
    host_header = bracketed if url.port is None else f"{bracketed}:{url.port}"
    return client.build_request(
        "GET",
        url.copy_with(host=str(address)),
        headers={"Host": host_header, "Accept": accept, "Accept-Encoding": "identity"},
        extensions={"sni_hostname": host},
    )


def _filename(response: httpx.Response, url: httpx.URL) -> str | None:
    disposition = response.headers.get("content-disposition")
    if disposition:
        msg = Message()
        msg["content-disposition"] = disposition
        name = msg.get_filename()
        if name:
            return PurePosixPath(name.replace("\\", "/")).name or None
    last = PurePosixPath(unquote(url.path)).name
    return last or None


def _content_type(response: httpx.Response) -> str | None:
    raw = response.headers.get("content-type")
    if not raw:
        return None
    return raw.split(";", 1)[0].strip().lower() or None


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    """The body as sent, abandoned as soon as it passes ``limit`` bytes.

    Identity encoding was asked for; a compressed body is refused rather than inflated, since
    a small compressed chunk can expand far past the limit before it could be counted."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise InvalidInput(
            f"The server sent {encoding}-compressed content; only uncompressed files are accepted."
        )
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise InvalidInput(f"The file is {int(declared)} bytes; the limit is {limit} bytes.")
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > limit:
            raise InvalidInput(f"The file is larger than the limit of {limit} bytes.")
    return bytes(body)


async def _fetch(raw_url: str, settings: Settings, max_bytes: int, accept: str) -> FetchedFile:
    url = _parse_url(raw_url, settings)
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=DEFAULT_TIMEOUT) as client:
        for _ in range(MAX_REDIRECTS + 1):
            address = await _vetted_address(url, settings)
            request = _pinned_request(client, url, address, accept)
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise InvalidInput(f"Could not fetch {url}: {type(exc).__name__}.") from None
            try:
                if response.status_code in _REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if not location:
                        raise InvalidInput(f"{url} redirected without a Location.")
                    url = _parse_url(location, settings, base=url)
                    continue
                if response.status_code != 200:
                    raise InvalidInput(
                        f"Fetching {url} failed: the server answered HTTP {response.status_code}."
                    )
                try:
                    data = await _read_capped(response, max_bytes)
                except httpx.HTTPError as exc:
                    raise InvalidInput(f"Could not read {url}: {type(exc).__name__}.") from None
                return FetchedFile(
                    data,
                    _content_type(response),
                    _filename(response, url),
                    str(url),
                    {k.lower(): v for k, v in response.headers.items()},
                )
            finally:
                await response.aclose()
    raise InvalidInput(f"Too many redirects (more than {MAX_REDIRECTS}) fetching {raw_url[:200]!r}.")


async def fetch_url(
    raw_url: str,
    settings: Settings,
    *,
    time_limit: float = DEFAULT_TIMEOUT,
    max_bytes: int | None = None,
    accept: str = "*/*",
) -> FetchedFile:
    """Download ``raw_url`` under the rules above, within ``time_limit`` seconds overall and
    at most ``max_bytes`` (default ``settings.max_upload_bytes``)."""
    limit = settings.max_upload_bytes if max_bytes is None else max_bytes
    try:
        async with asyncio.timeout(time_limit):
            return await _fetch(raw_url, settings, limit, accept)
    except TimeoutError:
        raise InvalidInput(f"Fetching {raw_url[:200]!r} took longer than {time_limit:g} seconds.") from None
