"""The token endpoint, ``POST /oauth/token`` (RFC 6749 §3.2, OAuth 2.1).

Order of work: read the form strictly (``application/x-www-form-urlencoded`` only,
parameters once each), authenticate the client (``client_auth``), check the grant type is
one we serve and the client registered, then hand over to the grant, whose rules and
transaction live in core: ``core.code_grant`` (``authorization_code``), ``core.refresh``
(``refresh_token``) and ``core.device`` (the RFC 8628 device grant, via ``device_grant``).
Successful responses carry ``Cache-Control: no-store`` and ``Pragma: no-cache`` (RFC 6749
§5.1)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.client_metadata import DEVICE_CODE_GRANT
from aiconnector.core.clients import ClientRecord
from aiconnector.core.code_grant import redeem_authorization_code
from aiconnector.core.refresh import refresh_token_grant
from aiconnector.core.tokens import TokenPair
from aiconnector.errors import OAuthError
from aiconnector.oauth.client_auth import authenticate_client
from aiconnector.oauth.device_grant import device_code_grant
from aiconnector.oauth.http import NO_STORE, client_ip, json_response, read_form
from aiconnector.oauth.state import OAuthState

Grant = Callable[[Request, OAuthState, ClientRecord, dict[str, str]], Awaitable[TokenPair]]


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if value is None:
        raise OAuthError("invalid_request", f"missing parameter {name!r}")
    return value


async def _authorization_code(
    request: Request, state: OAuthState, client: ClientRecord, form: dict[str, str]
) -> TokenPair:
    return await redeem_authorization_code(
        state.sessions,
        code=_required(form, "code"),
        client=client,
        redirect_uri=form.get("redirect_uri"),
        code_verifier=form.get("code_verifier"),
        resource=form.get("resource"),
        settings=state.settings,
        audit=state.audit,
        bus=state.bus,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )


async def _refresh_token(
    request: Request, state: OAuthState, client: ClientRecord, form: dict[str, str]
) -> TokenPair:
    return await refresh_token_grant(
        state.sessions,
        refresh_token=_required(form, "refresh_token"),
        client=client,
        scope=form.get("scope"),
        resource=form.get("resource"),
        settings=state.settings,
        audit=state.audit,
        bus=state.bus,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )


GRANTS: dict[str, Grant] = {
    "authorization_code": _authorization_code,
    "refresh_token": _refresh_token,
    DEVICE_CODE_GRANT: device_code_grant,
}


async def token_endpoint(request: Request, state: OAuthState) -> Response:
    form = await read_form(request)
    grant_type = _required(form, "grant_type")
    client = await authenticate_client(request, form, state)
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type[:100]!r} is not supported")
    if grant_type not in client.grant_types:
        raise OAuthError("unauthorized_client", f"this client is not registered for {grant_type}")
    pair = await grant(request, state, client, form)
    return json_response(pair.to_json(), headers=NO_STORE)
