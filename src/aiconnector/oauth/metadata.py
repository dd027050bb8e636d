"""RFC 8414 authorization-server metadata, served at ``/.well-known/oauth-authorization-server``
and ``/.well-known/openid-configuration`` (some clients only look there).

``issuer`` is the public origin exactly, the URL the document is served under. Only what is
actually served is advertised — including the device authorization endpoint and grant
(RFC 8628), which VS Code and ``aiconnector login`` look for. ``scopes_supported`` is our
vocabulary and never ``offline_access`` (Cursor and Claude Code request every listed scope;
refresh tokens come with every grant anyway)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from aiconnector.config import Settings
from aiconnector.core.client_metadata import AUTH_METHODS, SUPPORTED_GRANTS
from aiconnector.core.scopes import ALL_SCOPES
from aiconnector.oauth.http import json_response
from aiconnector.oauth.state import OAuthState


def authorization_server_metadata(settings: Settings) -> dict[str, Any]:
    origin = settings.origin
    return {
        "issuer": origin,
        "authorization_endpoint": f"{origin}/oauth/authorize",
        "token_endpoint": f"{origin}/oauth/token",
        "registration_endpoint": f"{origin}/oauth/register",
        "revocation_endpoint": f"{origin}/oauth/revoke",
        "introspection_endpoint": f"{origin}/oauth/introspect",
        "device_authorization_endpoint": f"{origin}/oauth/device_authorization",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(SUPPORTED_GRANTS),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": list(ALL_SCOPES),
        "client_id_metadata_document_supported": True,
        "authorization_response_iss_parameter_supported": True,
        "service_documentation": f"{origin}/",
    }


async def metadata_endpoint(_request: Request, state: OAuthState) -> Response:
    return json_response(
        authorization_server_metadata(state.settings), headers={"Cache-Control": "public, max-age=300"}
    )
