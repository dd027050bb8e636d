"""RFC 8414 metadata and CORS on the authorization server's public endpoints."""

from __future__ import annotations

import httpx
import pytest

from aiconnector.core.scopes import ALL_SCOPES
from tests.oauth.conftest import AuthServer

PATHS = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")


@pytest.mark.parametrize("path", PATHS)
def test_metadata_describes_what_is_served(auth_server: AuthServer, path: str) -> None:
    response = httpx.get(auth_server.base_url + path)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    meta = response.json()
    origin = auth_server.base_url
    assert meta["issuer"] == origin  # exactly the URL the document is served under
    assert meta["authorization_endpoint"] == f"{origin}/oauth/authorize"
    assert meta["token_endpoint"] == f"{origin}/oauth/token"
    assert meta["registration_endpoint"] == f"{origin}/oauth/register"
    assert meta["revocation_endpoint"] == f"{origin}/oauth/revoke"
    assert meta["introspection_endpoint"] == f"{origin}/oauth/introspect"
    assert meta["response_types_supported"] == ["code"]
    assert meta["grant_types_supported"] == [
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code",
    ]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["token_endpoint_auth_methods_supported"] == [
        "none",
        "client_secret_post",
        "client_secret_basic",
    ]
    assert meta["scopes_supported"] == list(ALL_SCOPES) and "offline_access" not in meta["scopes_supported"]
    assert meta["client_id_metadata_document_supported"] is True
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["device_authorization_endpoint"] == f"{origin}/oauth/device_authorization"


@pytest.mark.parametrize("path", [*PATHS, "/oauth/register", "/oauth/token", "/oauth/revoke"])
def test_cors_preflight(auth_server: AuthServer, path: str) -> None:
    response = httpx.options(
        auth_server.base_url + path,
        headers={
            "Origin": "http://localhost:6274",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "Authorization" in response.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in response.headers


def test_introspection_has_no_cors(auth_server: AuthServer) -> None:
    response = httpx.post(f"{auth_server.base_url}/oauth/introspect", data={"token": "x"})
    assert "access-control-allow-origin" not in response.headers


def test_errors_are_json_and_wrong_methods_refused(auth_server: AuthServer) -> None:
    assert httpx.get(f"{auth_server.base_url}/oauth/token").status_code == 405
    response = httpx.post(
        f"{auth_server.base_url}/oauth/token", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
