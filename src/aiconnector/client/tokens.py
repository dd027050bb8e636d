"""A valid access token for one server, refreshed only when needed and only once.

Refresh tokens rotate, and the server treats reuse after a short grace window as theft that
ends the connection. So refreshing is done under the store's cross-process lock, and whoever
holds the lock re-reads the credentials first: if another process (or another request of this
proxy) has refreshed meanwhile, its token is used and no second refresh is spent.

A refresh answered with ``invalid_grant`` means the connection is over (revoked by an admin,
by ``logout`` elsewhere, or for security reasons). That refresh token is remembered as dead so
later requests fail at once with the same clear message, without asking the server again;
a new ``aiconnector login`` writes a new refresh token, which this source picks up."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from aiconnector.client.credentials import Credentials, CredentialStore
from aiconnector.client.errors import (
    ClientError,
    ConnectionRevoked,
    NotLoggedIn,
    ProtocolError,
    ServerUnreachable,
)
from aiconnector.client.oauth_http import describe, json_object, oauth_error, post_form

# Refresh errors that mean "this connection will never work again" (RFC 6749 §5.2).
DEAD_CONNECTION_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})


class TokenSource:
    """Hands out access tokens for one server origin."""

    def __init__(self, store: CredentialStore, origin: str, http: httpx.AsyncClient) -> None:
        self.store = store
        self.origin = origin
        self.http = http
        self._creds: Credentials | None = None
        self._dead_refresh_token: str | None = None
        self._local = asyncio.Lock()  # one refresh at a time inside this process

    def _load(self) -> Credentials:
        creds = self.store.load(self.origin)
        if creds is None:
            raise NotLoggedIn(self.origin)
        self._creds = creds
        return creds

    @property
    def credentials(self) -> Credentials:
        return self._creds if self._creds is not None else self._load()

    @staticmethod
    def _usable(creds: Credentials, rejected: str | None) -> bool:
        return creds.access_token != rejected and not creds.expiring()

    async def access_token(self, *, rejected: str | None = None) -> str:
        """A token that is not near expiry; ``rejected`` is one the server just refused
        (401), which is never handed out again."""
        creds = self.credentials
        if self._usable(creds, rejected) and creds.refresh_token != self._dead_refresh_token:
            return creds.access_token
        async with self._local, self.store.alocked(self.origin):
            creds = self._load()  # another process may have refreshed, or logged in again
            if creds.refresh_token is not None and creds.refresh_token == self._dead_refresh_token:
                raise ConnectionRevoked(self.origin)
            if self._usable(creds, rejected):
                return creds.access_token
            creds = await self._refresh(creds)
            self.store.save(creds)
            self._creds = creds
            return creds.access_token

    async def _refresh(self, creds: Credentials) -> Credentials:
        if creds.refresh_token is None:
            raise ConnectionRevoked(self.origin)  # nothing to refresh with: a new login is needed
        response = await post_form(
            self.http,
            creds.endpoints.token_endpoint,
            {
                "grant_type": "refresh_token",
                "refresh_token": creds.refresh_token,
                "client_id": creds.client_id,
                "resource": creds.endpoints.mcp_url,
            },
        )
        if response.status_code == 200:
            return creds.with_tokens(json_object(response))
        error, description = oauth_error(response)
        if error in DEAD_CONNECTION_ERRORS:
            self._dead_refresh_token = creds.refresh_token
            raise ConnectionRevoked(self.origin)
        if response.status_code >= 500 or response.status_code == 429:
            raise ServerUnreachable(f"refreshing the token failed, HTTP {response.status_code}; try again")
        raise ProtocolError(f"refreshing the token failed: {describe(error, description)}")


async def revoke(http: httpx.AsyncClient, creds: Credentials) -> None:
    """RFC 7009: revoking the refresh token ends the whole connection on the server (every
    access token with it); the access token is only sent when there is no refresh token."""
    endpoint = creds.endpoints.revocation_endpoint
    if endpoint is None:
        raise ClientError(f"{creds.origin} offers no revocation endpoint")
    kind, token = "refresh_token", creds.refresh_token
    if token is None:
        kind, token = "access_token", creds.access_token
    response = await post_form(
        http, endpoint, {"token": token, "token_type_hint": kind, "client_id": creds.client_id}
    )
    if response.status_code != 200:
        raise ClientError(f"the server refused to revoke: {describe(*oauth_error(response))}")


async def revoke_quietly(http: httpx.AsyncClient, creds: Credentials) -> None:
    """Best effort, for a login that replaces an older one: the new credentials are
    already stored, so a failure here must not fail the login."""
    with contextlib.suppress(ClientError):
        await revoke(http, creds)
