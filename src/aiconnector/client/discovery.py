"""Finding a server's OAuth endpoints from the one URL a person types.

The URL may be the site's address (``https://site.example``) or its MCP URL
(``https://site.example/mcp``); both must work (DESIGN §2). The chain is the one MCP clients
follow: RFC 9728 protected-resource metadata names the MCP URL exactly and its authorization
server, whose RFC 8414 metadata lists the device, token, registration and revocation
endpoints. Credentials are kept per origin, so both spellings of the URL share one login."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from aiconnector.client.errors import ClientError, ProtocolError, ServerUnreachable

DEFAULT_MCP_PATH = "/mcp"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Plain HTTP is only acceptable where nothing can listen in between: this machine.
_LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """What discovery found; stored with the credentials so that ``token`` and ``proxy`` need
    no network round trip before their first real request."""

    origin: str
    mcp_url: str
    issuer: str
    token_endpoint: str
    device_authorization_endpoint: str | None = None
    registration_endpoint: str | None = None
    revocation_endpoint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Endpoints:
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in data.items() if k in names})


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_server_url(url: str) -> tuple[str, str]:
    """``(origin, mcp_url guess)`` for what the person typed. The guess is replaced by the
    metadata's ``resource`` during discovery; it only matters for finding that metadata.

    Refuses anything but https, except for loopback addresses (a refresh token sent over
    plain HTTP to another machine could be read on the way)."""
    raw = url.strip()
    if "://" not in raw:
        raw = "https://" + raw
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        raise ClientError(f"{url!r} is not a server address; expected something like https://site.example")
    if scheme == "http" and not _is_loopback(host):
        raise ClientError(f"refusing plain http for {host}: credentials would travel unencrypted; use https")
    try:
        port = parts.port
    except ValueError as exc:
        raise ClientError(f"{url!r} has an invalid port") from exc
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != (443 if scheme == "https" else 80):
        netloc = f"{netloc}:{port}"
    origin = f"{scheme}://{netloc}"
    path = parts.path.rstrip("/")
    return origin, origin + (path or DEFAULT_MCP_PATH)


def origin_of(url: str) -> str:
    return split_server_url(url)[0]


async def get_json(http: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    """A metadata document, or None when the server has none at that address (404 and the
    like). Network failures raise ``ServerUnreachable``; a non-JSON 200 is a protocol error."""
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
    except httpx.TransportError as exc:
        raise ServerUnreachable(f"cannot reach {url}: {exc or type(exc).__name__}") from exc
    if response.status_code != 200:
        return None
    try:
        data = response.json()
    except ValueError as exc:
        raise ProtocolError(f"{url} did not return JSON") from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"{url} did not return a JSON object")
    return data


def _well_known(base: str, name: str) -> str:
    """RFC 8414 §3 / RFC 9728 §3.1: the well-known segment goes between host and path."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}/.well-known/{name}{path}"


async def discover(http: httpx.AsyncClient, url: str) -> Endpoints:
    """Follow protected-resource metadata to the authorization server's metadata."""
    origin, mcp_guess = split_server_url(url)
    resource_meta = await get_json(http, _well_known(mcp_guess, "oauth-protected-resource"))
    if resource_meta is None:
        resource_meta = await get_json(http, f"{origin}/.well-known/oauth-protected-resource")
    if resource_meta is None:
        raise ClientError(f"{url} does not look like an AI Connector (no OAuth protected-resource metadata)")
    mcp_url = resource_meta.get("resource")
    servers = resource_meta.get("authorization_servers")
    if not isinstance(mcp_url, str) or not isinstance(servers, list) or not servers:
        raise ProtocolError(f"{origin}'s protected-resource metadata lacks resource or authorization_servers")
    issuer = str(servers[0]).rstrip("/")
    as_meta = await get_json(http, _well_known(issuer, "oauth-authorization-server"))
    if as_meta is None:
        as_meta = await get_json(http, _well_known(issuer, "openid-configuration"))
    if as_meta is None or not isinstance(as_meta.get("token_endpoint"), str):
        raise ProtocolError(f"no authorization server metadata found for {issuer}")

    def endpoint(name: str) -> str | None:
        value = as_meta.get(name)
        return value if isinstance(value, str) else None

    return Endpoints(
        origin=origin,
        mcp_url=mcp_url,
        issuer=issuer,
        token_endpoint=as_meta["token_endpoint"],
        device_authorization_endpoint=endpoint("device_authorization_endpoint"),
        registration_endpoint=endpoint("registration_endpoint"),
        revocation_endpoint=endpoint("revocation_endpoint"),
    )
