"""Who is asking, for audit events and rate-limit keys.

The address is the client in the ASGI scope: the TCP peer, or — when that peer is one of the
``trusted_proxies`` — the client named in its ``X-Forwarded-For``, which ``ops.forwarded``
wrote into the scope before any route ran. Trusting a proxy is a deployment decision, not
something a page should guess from headers anyone can send."""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request

from aiconnector.core.audit import AuditContext


class _Person(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def username(self) -> str: ...


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")


def audit_context(request: Request, person: _Person | None = None, *, via: str | None = None) -> AuditContext:
    """Who is asking and from where, for a core function that writes its change's audit event
    in its own transaction."""
    return AuditContext(
        user_id=person.id if person is not None else None,
        username=person.username if person is not None else None,
        ip=client_ip(request),
        user_agent=user_agent(request),
        via=via,
    )
