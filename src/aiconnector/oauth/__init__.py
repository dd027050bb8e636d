"""The OAuth 2.1 authorization server's HTTP endpoints, one module each (fosite-style):
``metadata``, ``register``, ``token`` (its grants: ``device_grant`` besides the core ones),
``device_authorization``, ``revoke``, ``introspect`` (and ``authorize``, with the browser
side). Rules and transactions live in ``core``; these modules only speak HTTP."""

from __future__ import annotations

from starlette.routing import Route

from aiconnector.oauth.device_authorization import device_authorization_endpoint
from aiconnector.oauth.http import endpoint
from aiconnector.oauth.introspect import introspect_endpoint
from aiconnector.oauth.metadata import metadata_endpoint
from aiconnector.oauth.register import register_endpoint
from aiconnector.oauth.revoke import revoke_endpoint
from aiconnector.oauth.state import OAuthState, StateSource
from aiconnector.oauth.token import token_endpoint

__all__ = ["OAuthState", "oauth_routes"]


def oauth_routes(state: StateSource) -> list[Route]:
    """Routes for metadata, registration, token, device authorization, revocation and
    introspection.

    ``state`` is the ``OAuthState`` or a zero-argument callable returning it (the state needs
    the database, which exists only once the server's lifespan has started)."""
    get, post = ("GET",), ("POST",)
    metadata = endpoint(metadata_endpoint, state, cors=True, methods=get)
    return [
        Route("/.well-known/oauth-authorization-server", metadata, methods=[*get, "OPTIONS"]),
        Route("/.well-known/openid-configuration", metadata, methods=[*get, "OPTIONS"]),
        Route(
            "/oauth/register",
            endpoint(register_endpoint, state, cors=True, methods=post),
            methods=[*post, "OPTIONS"],
        ),
        Route(
            "/oauth/token",
            endpoint(token_endpoint, state, cors=True, methods=post),
            methods=[*post, "OPTIONS"],
        ),
        Route(
            "/oauth/device_authorization",
            endpoint(device_authorization_endpoint, state, cors=True, methods=post),
            methods=[*post, "OPTIONS"],
        ),
        Route(
            "/oauth/revoke",
            endpoint(revoke_endpoint, state, cors=True, methods=post),
            methods=[*post, "OPTIONS"],
        ),
        Route(
            "/oauth/introspect", endpoint(introspect_endpoint, state, cors=False, methods=post), methods=post
        ),
    ]
