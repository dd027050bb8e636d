"""Token introspection, ``POST /oauth/introspect`` (RFC 7662).

Only confidential clients, authenticating with their secret, may ask — introspection tells
who stands behind a token, which a public client (whose "authentication" is a public id)
must not learn about tokens it merely found. A client learns about its own tokens only;
anything else, including unknown, expired, revoked and rotated tokens, is
``{"active": false}``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.tokens import introspect_token
from aiconnector.errors import OAuthError
from aiconnector.oauth.client_auth import authenticate_client
from aiconnector.oauth.http import NO_STORE, json_response, read_form
from aiconnector.oauth.state import OAuthState


async def introspect_endpoint(request: Request, state: OAuthState) -> Response:
    form = await read_form(request)
    client = await authenticate_client(request, form, state, confidential_only=True)
    token = form.get("token")
    if token is None:
        raise OAuthError("invalid_request", "missing parameter 'token'")
    answer = await introspect_token(state.sessions, token, client=client)
    if answer["active"]:
        answer["iss"] = state.settings.origin
    return json_response(answer, headers=NO_STORE)
