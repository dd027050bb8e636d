"""Error types raised in core and site code and rendered at the edge (HTTP, JSON-RPC, CLI).

Each carries a user-facing message; the edge decides the wire shape. Nothing here knows HTTP."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class: ``message`` is safe to show to the caller."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ConnectorError):
    code = "not_found"


class NotAllowed(ConnectorError):
    """The user's role does not allow this action on this object."""

    code = "not_allowed"


class InvalidInput(ConnectorError):
    code = "invalid_input"


class Conflict(ConnectorError):
    code = "conflict"


class SiteUnavailable(ConnectorError):
    code = "site_unavailable"


class AuthenticationFailed(ConnectorError):
    code = "authentication_failed"


class RateLimited(ConnectorError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
