"""``X-Forwarded-For`` and ``X-Forwarded-Proto``, believed only from trusted proxies.

Behind a reverse proxy the TCP peer is the proxy, so rate limits, the audit log and the access
log would all see one address. The proxy says who its client was in ``X-Forwarded-For``; but
anyone can send that header, so it counts only when the *immediate peer* is one of
``trusted_proxies`` (addresses or CIDR networks). Then the list is read from the right: each
trusted hop is skipped, and the first untrusted address is the client (the rightmost hop an
attacker cannot have written). If every hop is trusted the leftmost one is the client; a
malformed hop ends the walk at the last good address. ``X-Forwarded-Proto`` from a trusted
peer sets the scheme (its rightmost value: what the nearest proxy saw).

``TrustedProxies`` rewrites ``scope["client"]`` and ``scope["scheme"]`` before anything else
runs, so every part of the application sees the real client with no code of its own. Uvicorn's
``proxy_headers`` stays off: this layer replaces it."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_XFF = b"x-forwarded-for"
_XFP = b"x-forwarded-proto"
_SCHEMES = {"http": ("http", "ws"), "https": ("https", "wss")}
_CACHE_LIMIT = 4096


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``10.0.0.1``, ``10.0.0.0/8``, ``::1``, ``fd00::/8``; raises ValueError naming a bad one."""
    networks = []
    for value in values:
        text = value.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR network: {text!r}") from None
    return tuple(networks)


def _address(text: str) -> IPAddress | None:
    """An address from a hop: ``1.2.3.4``, ``1.2.3.4:5678``, ``::1``, ``[::1]:443``; None when
    it is anything else (``unknown``, an obfuscated identifier, garbage)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    def __init__(self, app: App, trusted: Iterable[str]) -> None:
        self._app = app
        self._networks = parse_networks(trusted)
        self._verdicts: dict[str, bool] = {}

    def is_trusted(self, host: str) -> bool:
        verdict = self._verdicts.get(host)
        if verdict is None:
            address = _address(host)
            verdict = address is not None and any(address in net for net in self._networks)
            if len(self._verdicts) >= _CACHE_LIMIT:
                self._verdicts.clear()
            self._verdicts[host] = verdict
        return verdict

    def client_of(self, peer: str, forwarded_for: list[str]) -> str:
        """The client address for a request from trusted ``peer`` with these hops."""
        client = peer
        for raw in reversed(forwarded_for):
            address = _address(raw)
            if address is None:
                break
            client = str(address)
            if not self.is_trusted(client):
                break
        return client

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            if peer and self.is_trusted(peer[0]):
                scope = self._rewritten(scope, peer[0])
        await self._app(scope, receive, send)

    def _rewritten(self, scope: Scope, peer: str) -> Scope:
        hops: list[str] = []
        proto: str | None = None
        for name, value in scope["headers"]:
            if name == _XFF:
                hops.extend(value.decode("latin-1").split(","))
            elif name == _XFP:
                proto = value.decode("latin-1").split(",")[-1].strip().lower()
        if not hops and proto is None:
            return scope
        scope = dict(scope)
        if hops:
            scope["client"] = (self.client_of(peer, hops), 0)
        schemes = _SCHEMES.get(proto or "")
        if schemes is not None:
            scope["scheme"] = schemes[0] if scope["type"] == "http" else schemes[1]
        return scope


def with_trusted_proxies(app: App, trusted: Iterable[str]) -> App:
    """``app`` itself when no proxy is trusted (nothing to do, nothing to pay)."""
    trusted = tuple(trusted)
    return TrustedProxies(app, trusted) if trusted else app
