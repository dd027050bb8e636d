"""Client authentication at the token, revocation and introspection endpoints.

Methods (RFC 6749 §2.3): ``client_secret_basic`` (HTTP Basic with the URL-encoded id and
secret), ``client_secret_post`` (``client_id`` and ``client_secret`` in the form) and ``none``
(public clients: only ``client_id``). Rules:

* one method per request — Basic together with a form secret is ``invalid_request``;
* a confidential client (registered with a secret) must present it; either secret method is
  accepted for it; a public client must not send a secret;
* secrets are compared as SHA-256 digests in constant time (``core.clients``);
* failures are ``invalid_client`` (HTTP 401, with a Basic challenge when Basic was tried), are
  audited, and counted **per address only**: past the limit that address gets 429 before the
  secret is looked at.

Why not per client: a client id is public (a metadata-document client's id is a URL shared by
every install), so a per-client counter lets anyone lock every user of a client out of the
token endpoint with a few bad requests. A public client has no secret to guess, and a client
secret is 186 random bits, which no rate of guessing can find; counting per client would only
serve an attacker. The per-address counter still bounds the work one address can cause."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_plus

from starlette.requests import Request

from aiconnector.core.clients import ClientRecord, resolve_client, verify_client_secret
from aiconnector.errors import OAuthError
from aiconnector.oauth.state import OAuthState
from aiconnector.storable import is_storable


class InvalidClient(OAuthError):
    """``invalid_client``; remembers whether the client tried HTTP Basic, which obliges the
    response to carry a ``WWW-Authenticate: Basic`` challenge."""

    def __init__(self, description: str, *, basic_attempted: bool) -> None:
        super().__init__("invalid_client", description, status=401)
        self.basic_attempted = basic_attempted


@dataclass(frozen=True, slots=True)
class PresentedCredentials:
    client_id: str | None
    secret: str | None
    method: str  # client_secret_basic | client_secret_post | none


def presented_credentials(form: dict[str, str], authorization: str | None) -> PresentedCredentials:
    """What the request offers, before anything is checked against the database."""
    if authorization and authorization[:6].lower() == "basic ":
        if "client_secret" in form:
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidClient("malformed Basic credentials", basic_attempted=True) from None
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep or not raw_id:
            raise InvalidClient("malformed Basic credentials", basic_attempted=True)
        client_id = unquote_plus(raw_id)
        if not is_storable(client_id):  # the form's fields were checked at the edge (web.edge)
            raise InvalidClient("malformed Basic credentials", basic_attempted=True)
        if form.get("client_id", client_id) != client_id:
            raise OAuthError("invalid_request", "client_id differs from the Basic credentials")
        return PresentedCredentials(client_id, unquote_plus(raw_secret) or None, "client_secret_basic")
    secret = form.get("client_secret")
    return PresentedCredentials(form.get("client_id"), secret, "client_secret_post" if secret else "none")


async def authenticate_client(
    request: Request, form: dict[str, str], state: OAuthState, *, confidential_only: bool = False
) -> ClientRecord:
    """The client making this request, authenticated; raise ``InvalidClient`` otherwise."""
    creds = presented_credentials(form, request.headers.get("authorization"))
    basic = creds.method == "client_secret_basic"
    if not creds.client_id:
        raise InvalidClient("client authentication required (client_id)", basic_attempted=basic)
    ip = request.client.host if request.client else "unknown"
    keys = [f"oauth-ip:{ip}"]  # never the client id: see the module docstring
    await state.limiter.check(keys)

    async def fail(reason: str) -> InvalidClient:
        await state.limiter.record_failure(keys)
        state.audit.record(
            "oauth.client_auth_failure",
            outcome="failure",
            ip=ip,
            user_agent=request.headers.get("user-agent"),
            detail={"client_id": creds.client_id[:200], "method": creds.method, "reason": reason},
        )
        return InvalidClient(reason, basic_attempted=basic)

    try:
        client = await resolve_client(state.sessions, creds.client_id, settings=state.settings, ip=ip)
    except OAuthError as exc:
        raise await fail(exc.description) from None
    if client.confidential:
        if creds.secret is None:
            raise await fail("this client must authenticate with its client secret")
        if not await verify_client_secret(state.sessions, client.client_id, creds.secret):
            raise await fail("wrong client secret")
    elif creds.secret is not None:
        raise await fail("this client is public and has no client secret")
    if confidential_only and not client.confidential:
        raise await fail("only confidential clients may use this endpoint")
    return client
