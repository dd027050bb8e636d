"""Who is asking, for audit events and rate-limit keys.

The address is the client in the ASGI scope: the TCP peer, or — when that peer is one of the
``trusted_proxies`` — the client named in its ``X-Forwarded-For``, which ``ops.forwarded``
wrote into the scope before any route ran. Trusting a proxy is a deployment decision, not
something a page should guess from headers anyone can send."""

from __future__ import annotations

from starlette.requests import Request


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")
