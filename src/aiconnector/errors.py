"""Error types raised in core and site code and rendered at the edge (HTTP, JSON-RPC, CLI).

Each carries a user-facing message; the edge decides the wire shape. Nothing here knows HTTP."""

from __future__ import annotations

from aiconnector.core.scopes import format_scopes


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


class InsufficientScope(Exception):
    """The connection lacks a scope this call needs. Deliberately not a ``ConnectorError``:
    it is not a tool failure the agent can fix, but a step-up the client must perform, so the
    MCP edge answers HTTP 403 with ``WWW-Authenticate: Bearer error="insufficient_scope",
    scope="<granted + needed>"`` and the client re-authorizes with the union."""

    def __init__(self, granted: frozenset[str], needed: str, message: str | None = None) -> None:
        self.granted = granted
        self.needed = needed
        self.message = (
            message or f"Insufficient scope: this connection needs {needed!r}; re-authorize to grant it"
        )
        super().__init__(self.message)

    @property
    def scope(self) -> str:
        """Every scope the client should ask for: what it has plus what it lacks."""
        return format_scopes(self.granted | {self.needed})


class OAuthError(ConnectorError):
    """An OAuth error as the RFCs name it (``invalid_request``, ``invalid_client``,
    ``invalid_grant``, ``unauthorized_client``, ``unsupported_grant_type``, ``invalid_scope``,
    ``access_denied``, ``invalid_redirect_uri``, ``invalid_client_metadata``,
    ``authorization_pending``, ``slow_down``, ``expired_token``…). ``status`` is the HTTP status
    for JSON endpoints (401 for ``invalid_client``, else 400 unless stated)."""

    def __init__(self, error: str, description: str, *, status: int | None = None) -> None:
        super().__init__(description)
        self.code = error
        self.error = error
        self.description = description
        self.status = status if status is not None else (401 if error == "invalid_client" else 400)
