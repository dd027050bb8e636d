"""Token revocation, ``POST /oauth/revoke`` (RFC 7009).

What revoking ends (see ``core.tokens.revoke_token``):

* a **refresh token** ends its whole connection — every access and refresh token of it,
  exactly like revoking the connection in the admin UI or CLI (audited, published on the
  revocation bus, so it bites on the very next request);
* an **access token** ends only that token, also at once and everywhere: the revoking
  transaction notifies every instance (and this one's bus) that the connection changed, so
  each drops the connection's cached credentials and checks the next request against the
  database.

Unknown, expired or already revoked tokens get 200 (§2.2: the client's goal is reached, and
the answer reveals nothing). ``token_type_hint`` is accepted and ignored: one lookup by hash
finds either kind. The client authenticates as at the token endpoint."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.tokens import revoke_token
from aiconnector.errors import OAuthError
from aiconnector.oauth.client_auth import authenticate_client
from aiconnector.oauth.http import NO_STORE, client_ip, read_form
from aiconnector.oauth.state import OAuthState


async def revoke_endpoint(request: Request, state: OAuthState) -> Response:
    form = await read_form(request)
    client = await authenticate_client(request, form, state)
    token = form.get("token")
    if token is None:
        raise OAuthError("invalid_request", "missing parameter 'token'")
    await revoke_token(
        state.sessions, token, client=client, audit=state.audit, bus=state.bus, ip=client_ip(request)
    )
    return Response(status_code=200, headers=NO_STORE)
