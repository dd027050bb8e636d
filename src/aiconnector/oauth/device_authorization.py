"""The device authorization endpoint, ``POST /oauth/device_authorization`` (RFC 8628 §3.1–3.2).

A form with ``client_id`` (and the client's secret if it has one), optional ``scope`` and
``resource``; the answer is the code pair, where to enter the user code, how long it lives and
how often to poll. The rules and the stored state are in ``core.device``. Every request writes
a row, so requests are limited per address like registrations; errors are RFC 6749 JSON."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.audit import AuditContext
from aiconnector.core.device import start_device_authorization
from aiconnector.oauth.client_auth import authenticate_client
from aiconnector.oauth.http import NO_STORE, client_ip, json_response, read_form
from aiconnector.oauth.state import OAuthState

VERIFICATION_PATH = "/device"


async def device_authorization_endpoint(request: Request, state: OAuthState) -> Response:
    ip = client_ip(request)
    keys = [f"oauth-device-ip:{ip}"]
    await state.registration_limiter.check(keys)
    await state.registration_limiter.record_failure(keys)  # counts every request
    form = await read_form(request)
    client = await authenticate_client(request, form, state)
    started = await start_device_authorization(
        state.sessions,
        client=client,
        scope=form.get("scope"),
        resource=form.get("resource"),
        settings=state.settings,
        context=AuditContext(ip=ip, user_agent=request.headers.get("user-agent")),
    )
    verification_uri = state.settings.origin + VERIFICATION_PATH
    return json_response(
        {
            "device_code": started.device_code,
            "user_code": started.user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?{urlencode({'user_code': started.user_code})}",
            "expires_in": started.expires_in,
            "interval": started.interval,
        },
        headers=NO_STORE,
    )
