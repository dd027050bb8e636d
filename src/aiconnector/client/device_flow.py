"""``aiconnector login``: the OAuth 2.0 Device Authorization Grant (RFC 8628).

Headless machines have no browser, so the person approves on another device: we show a short
user code and a URL, then poll the token endpoint at the server's pace. Without a client id of
the user's choosing we register ourselves (RFC 7591) as a public client for the device grant;
that client id is kept with the credentials and reused on the next login, and registered anew
if the server has since forgotten it (dynamic clients without connections are garbage
collected).

Presentation (what the terminal shows) is the caller's: this module reports through the
``LoginView`` protocol so it stays testable and the CLI decides about TTYs and QR codes."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from aiconnector.client.credentials import Credentials, CredentialStore, token_fields
from aiconnector.client.discovery import DEVICE_GRANT, Endpoints, discover
from aiconnector.client.errors import ClientError, ProtocolError, ServerUnreachable
from aiconnector.client.oauth_http import describe, json_object, oauth_error, post_form
from aiconnector.client.tokens import revoke_quietly

DEFAULT_INTERVAL = 5  # RFC 8628 §3.2
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5


class AccessDenied(ClientError):
    def __init__(self) -> None:
        super().__init__("the request was denied; nothing was stored")


class CodeExpired(ClientError):
    def __init__(self) -> None:
        super().__init__("the code expired before it was approved; run aiconnector login again")


class UnknownClient(ClientError):
    """The server does not know (or no longer knows) the client id."""


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """The device authorization response (RFC 8628 §3.2)."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceAuthorization:
        try:
            return cls(
                device_code=str(data["device_code"]),
                user_code=str(data["user_code"]),
                verification_uri=str(data["verification_uri"]),
                verification_uri_complete=data.get("verification_uri_complete"),
                expires_in=int(data["expires_in"]),
                interval=int(data.get("interval") or DEFAULT_INTERVAL),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"incomplete device authorization response ({exc})") from exc

    def __repr__(self) -> str:  # the device code is a secret
        return f"DeviceAuthorization(user_code={self.user_code!r}, uri={self.verification_uri!r})"


class LoginView(Protocol):
    """What the person sees while logging in."""

    def show_code(self, auth: DeviceAuthorization) -> None: ...

    def waiting(self, seconds_left: float) -> None: ...

    def note(self, message: str) -> None: ...

    def done(self) -> None: ...


Sleep = Callable[[float], Awaitable[None]]


def client_name() -> str:
    return f"aiconnector CLI on {socket.gethostname()}"


async def register_client(http: httpx.AsyncClient, endpoints: Endpoints) -> str:
    """RFC 7591 registration as a public device-grant client (no redirect URIs)."""
    if endpoints.registration_endpoint is None:
        raise ClientError(f"{endpoints.origin} does not allow client registration; pass --client-id")
    body = {
        "client_name": client_name(),
        "grant_types": [DEVICE_GRANT, "refresh_token"],
        "token_endpoint_auth_method": "none",
    }
    try:
        response = await http.post(endpoints.registration_endpoint, json=body)
    except httpx.TransportError as exc:
        raise ServerUnreachable(f"cannot reach {endpoints.registration_endpoint}: {exc}") from exc
    if response.status_code not in (200, 201):
        raise ClientError(f"client registration failed: {describe(*oauth_error(response))}")
    client_id = json_object(response).get("client_id")
    if not isinstance(client_id, str):
        raise ProtocolError("the registration response has no client_id")
    return client_id


async def request_device_code(
    http: httpx.AsyncClient, endpoints: Endpoints, client_id: str, scope: str | None
) -> DeviceAuthorization:
    if endpoints.device_authorization_endpoint is None:
        raise ClientError(f"{endpoints.origin} does not offer the device authorization grant")
    form = {"client_id": client_id, "resource": endpoints.mcp_url}
    if scope:
        form["scope"] = scope
    response = await post_form(http, endpoints.device_authorization_endpoint, form)
    if response.status_code == 200:
        return DeviceAuthorization.from_json(json_object(response))
    error, description = oauth_error(response)
    if error in ("invalid_client", "unauthorized_client"):
        raise UnknownClient(f"the server refused client {client_id}: {describe(error, description)}")
    raise ClientError(f"the server refused the login request: {describe(error, description)}")


async def poll_for_tokens(
    http: httpx.AsyncClient,
    endpoints: Endpoints,
    client_id: str,
    auth: DeviceAuthorization,
    view: LoginView,
    *,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until approved, denied or expired (RFC 8628 §3.4–3.5). ``slow_down`` adds five
    seconds to the interval for good. A server that is briefly unreachable (restarting) does
    not end the wait: the code is still valid on its side."""
    interval = float(auth.interval)
    deadline = clock() + auth.expires_in
    form = {"grant_type": DEVICE_GRANT, "device_code": auth.device_code, "client_id": client_id}
    while True:
        wake = clock() + interval
        while (now := clock()) < wake:
            view.waiting(max(0.0, deadline - now))
            await sleep(min(1.0, wake - now))
        if clock() >= deadline:
            raise CodeExpired()
        try:
            response = await post_form(http, endpoints.token_endpoint, form)
        except ServerUnreachable:
            view.note("server unreachable, still trying")
            continue
        if response.status_code == 200:
            return json_object(response)
        error, description = oauth_error(response)
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += SLOW_DOWN_STEP
            continue
        if error == "access_denied":
            raise AccessDenied()
        if error == "expired_token":
            raise CodeExpired()
        if response.status_code >= 500:
            view.note(f"server error (HTTP {response.status_code}), still trying")
            continue
        raise ClientError(f"login failed: {describe(error, description)}")


async def _device_code_for(
    http: httpx.AsyncClient,
    endpoints: Endpoints,
    previous: Credentials | None,
    client_id: str | None,
    scope: str | None,
) -> tuple[str, DeviceAuthorization]:
    """The client id to log in with and its device code. A client id the user gave is used
    as is; otherwise the one we registered last time, or a newly registered one."""
    if client_id is not None:
        return client_id, await request_device_code(http, endpoints, client_id, scope)
    if previous is not None and previous.dynamic_client:
        try:
            return previous.client_id, await request_device_code(http, endpoints, previous.client_id, scope)
        except UnknownClient:
            pass  # garbage-collected by the server: register again
    registered = await register_client(http, endpoints)
    return registered, await request_device_code(http, endpoints, registered, scope)


async def login(
    url: str,
    *,
    store: CredentialStore,
    view: LoginView,
    http: httpx.AsyncClient,
    client_id: str | None = None,
    scope: str | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Credentials:
    """The whole login: discover, (re)use or register a client, show the code, wait, store.
    A previous login to the same server is replaced, and its connection revoked so it does
    not linger as an unused but valid credential on the server."""
    endpoints = await discover(http, url)
    if endpoints.device_authorization_endpoint is None:
        raise ClientError(f"{endpoints.origin} does not offer the device authorization grant")
    try:
        previous = store.load(endpoints.origin)
    except ClientError:
        previous = None  # a damaged old file must not stand in the way of a fresh login
    used_client, auth = await _device_code_for(http, endpoints, previous, client_id, scope)
    view.show_code(auth)
    try:
        response = await poll_for_tokens(http, endpoints, used_client, auth, view, sleep=sleep, clock=clock)
    finally:
        view.done()
    creds = Credentials(
        endpoints=endpoints,
        client_id=used_client,
        dynamic_client=client_id is None,
        **token_fields(response),
    )
    async with store.alocked(endpoints.origin):
        store.save(creds)
    if previous is not None and previous.refresh_token not in (None, creds.refresh_token):
        await revoke_quietly(http, previous)
    return creds
