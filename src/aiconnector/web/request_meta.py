"""Who is asking, for audit events and rate-limit keys.

The address is the TCP peer as the ASGI server reports it; behind a reverse proxy that is the
proxy unless uvicorn is told to trust ``X-Forwarded-For`` (``--forwarded-allow-ips``), which is
a deployment decision and not something a page should guess from headers anyone can send."""

from __future__ import annotations

from starlette.requests import Request


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")
