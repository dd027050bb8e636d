"""Which ``Host`` headers name this server: DNS-rebinding protection.

A page on ``evil.example`` whose DNS name is re-pointed at 127.0.0.1 (or at a private address)
makes the victim's browser talk to a server it cannot otherwise reach, and the browser treats
the answers as same-origin. What gives it away is the ``Host`` header: it still says
``evil.example``. The MCP specification asks local servers to guard against this, and the
official SDK answers a foreign Host with 421 when bound to loopback; so do we, on ``/mcp`` and
every page except the health probes.

The check is on when it can be exact: a public URL is configured (its host is the name clients
use; a reverse proxy must pass ``Host`` through, as docs/deployment.md's nginx example does), or
the server is bound to loopback (only loopback names can reach it legitimately). Bound to
another interface without a public URL, clients may use any name or address of the machine, so
there is nothing to compare with and the check is off. Loopback names (``localhost``,
``127.0.0.1``, ``[::1]``, any port) are always accepted: local health checks, the CLI and a
proxy on the same machine that does not pass ``Host`` use them, and a rebinding attack cannot
produce them (the attacker's page keeps its own name)."""

from __future__ import annotations

from aiconnector.config import Settings

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def split_authority(authority: str) -> tuple[str, str | None] | None:
    """``host[:port]`` (``[v6]:port`` for IPv6) as (lower-case host, port or None); None when
    malformed."""
    text = authority.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:] if rest else None
    else:
        host, sep, port_text = text.partition(":")
        port = port_text if sep else None
    if not host or (port is not None and not port.isdigit()):
        return None
    return host, port


class HostPolicy:
    """``allows(host)`` for the ``Host`` header of a request (bytes, as ASGI gives it)."""

    def __init__(self, own: tuple[str, str] | None, default_port: str = "") -> None:
        # (host, port) of the configured origin, and the port a Host without one means (its
        # scheme's default); None switches the check off.
        self._own = own
        self._default_port = default_port

    @classmethod
    def from_settings(cls, settings: Settings) -> HostPolicy:
        if not settings.public_url:
            bound_to_loopback = settings.host.strip("[]").lower() in LOOPBACK_HOSTS
            # Only loopback names reach a loopback listener, and those are always allowed.
            return cls(("localhost", str(settings.port))) if bound_to_loopback else cls(None)
        scheme, _, rest = settings.public_url.partition("://")
        parts = split_authority(rest.split("/", 1)[0])
        if parts is None:
            return cls(None)
        host, port = parts
        default_port = _DEFAULT_PORTS.get(scheme.lower(), "")
        return cls((host, port or default_port), default_port)

    @property
    def enforced(self) -> bool:
        return self._own is not None

    def allows(self, header: bytes | None) -> bool:
        """A missing Host (HTTP/1.0) is allowed: browsers always send one."""
        if self._own is None or header is None:
            return True
        parts = split_authority(header.decode("latin-1"))
        if parts is None:
            return False
        host, port = parts
        if host in LOOPBACK_HOSTS:
            return True
        own_host, own_port = self._own
        return host == own_host and (port or self._default_port) == own_port
