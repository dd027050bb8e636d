"""Client side of AI Connector, for headless agents: sign in with the device grant
(``login``), hand out a fresh access token (``token``), bridge a stdio MCP client to the
site's HTTP endpoint (``proxy``) and revoke (``logout``).

Nothing here imports the server packages: this side only speaks HTTP to a site, which may be
any AI Connector server, so it must work from a machine that has no database at all."""

from aiconnector.client.errors import (
    ClientError,
    ConnectionRevoked,
    NotLoggedIn,
    ServerUnreachable,
)

__all__ = ["ClientError", "ConnectionRevoked", "NotLoggedIn", "ServerUnreachable"]
