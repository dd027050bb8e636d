"""The device grant at the token endpoint, ``grant_type=urn:ietf:params:oauth:grant-type:device_code``
(RFC 8628 §3.4–3.5): the form's ``device_code`` (and optional ``resource``) handed to
``core.device.poll_device_code``, whose errors (``authorization_pending``, ``slow_down``,
``access_denied``, ``expired_token``, ``invalid_grant``) the token endpoint renders as usual."""

from __future__ import annotations

from starlette.requests import Request

from aiconnector.core.clients import ClientRecord
from aiconnector.core.device import poll_device_code
from aiconnector.core.tokens import TokenPair
from aiconnector.errors import OAuthError
from aiconnector.oauth.state import OAuthState


async def device_code_grant(
    _request: Request, state: OAuthState, client: ClientRecord, form: dict[str, str]
) -> TokenPair:
    device_code = form.get("device_code")
    if device_code is None:
        raise OAuthError("invalid_request", "missing parameter 'device_code'")
    return await poll_device_code(
        state.sessions,
        device_code=device_code,
        client=client,
        resource=form.get("resource"),
        settings=state.settings,
        audit=state.audit,
    )
