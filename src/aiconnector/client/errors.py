"""Errors of the client side. Each message is written for the person at the terminal: it says
what happened and what to run next, and never contains a secret."""

from __future__ import annotations


class ClientError(Exception):
    """A failure the CLI reports on stderr with a non-zero exit (no traceback)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotLoggedIn(ClientError):
    """No stored credentials for the server."""

    def __init__(self, server: str) -> None:
        super().__init__(f"not logged in to {server}; run: aiconnector login {server}")


class ConnectionRevoked(ClientError):
    """The refresh token was refused (``invalid_grant``): the connection was revoked in the
    admin UI or CLI, or ended for security reasons. Only a new login helps."""

    def __init__(self, server: str) -> None:
        super().__init__(f"connection revoked, run aiconnector login {server}")


class ServerUnreachable(ClientError):
    """The network or the server is down; retrying later may work, unlike the other errors."""


class ProtocolError(ClientError):
    """The server answered, but not the way the OAuth or MCP specs say it should."""
