"""Every redirect the sign-in and consent pages answer with has a valid ASCII ``Location``:
non-ASCII characters (a ``next`` path, a redirect URI stored before such URIs were refused at
registration, an international host name) are percent-encoded, never a 500."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from aiconnector.db.models import OAuthClient
from aiconnector.web.pages import location_header
from tests.conftest import LiveServer
from tests.web.conftest import CSRF_FIELD, REQUEST_FIELD, authorize_params, field, sign_in

NON_ASCII_PATH = "http://127.0.0.1:9/cb/例"
IDN_HOST = "https://例え.jp/cb"


@pytest.fixture(scope="module")
def legacy_clients(web_server: LiveServer) -> dict[str, str]:
    """Clients whose redirect URI registration now refuses, stored as an older version did."""
    clients = {"legacy-path": NON_ASCII_PATH, "legacy-idn": IDN_HOST}

    async def seed(rt: Any) -> None:  # noqa: ANN401 - Runtime
        async with rt.sessions.begin() as session:
            for client_id, uri in clients.items():
                session.add(
                    OAuthClient(
                        client_id=client_id,
                        kind="dynamic",
                        name="Legacy",
                        redirect_uris=[uri],
                        grant_types=["authorization_code", "refresh_token"],
                        token_endpoint_auth_method="none",
                        document={},
                    )  # fmt: skip
                )

    web_server.run(seed)
    return clients


def ascii_location(response: Any) -> str:  # noqa: ANN401 - httpx.Response
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.isascii() and " " not in location, location
    return location


def test_location_header_percent_encodes_only_what_is_not_printable_ascii() -> None:
    assert location_header("/%E3%80%82x?a=%20&b=c") == "/%E3%80%82x?a=%20&b=c"  # already a URI
    assert location_header("/。x") == "/%E3%80%82x"
    assert location_header("https://例え.jp/a b\r\n") == "https://%E4%BE%8B%E3%81%88.jp/a%20b%0D%0A"


def test_sign_in_next_with_non_ascii_characters_redirects(web_server: LiveServer) -> None:
    with sign_in(web_server) as client:
        response = client.get("/login?next=/%E3%80%82x")
    assert ascii_location(response) == "/%E3%80%82x"


@pytest.mark.parametrize("client_id", ["legacy-path", "legacy-idn"])
def test_consent_and_error_redirects_to_a_non_ascii_uri_are_encoded(
    web_server: LiveServer, legacy_clients: dict[str, str], client_id: str
) -> None:
    target = legacy_clients[client_id]
    params = authorize_params(client_id=client_id, redirect_uri=target, state="état-例")
    with sign_in(web_server) as client:
        error = client.get("/oauth/authorize", params={**params, "response_type": "token"})
        query = parse_qs(urlsplit(ascii_location(error)).query)
        assert unquote(ascii_location(error)).startswith(target + "?")
        assert query["error"] == ["unsupported_response_type"] and query["state"] == ["état-例"]

        page = client.get("/oauth/authorize", params=params)
        assert page.status_code == 200, page.text
        granted = client.post(
            "/oauth/authorize",
            data={
                "csrf": field(CSRF_FIELD, page.text),
                "request": field(REQUEST_FIELD, page.text),
                "action": "authorize",
                "scope": "content:read",
            },
        )
    location = ascii_location(granted)
    assert unquote(location).startswith(target + "?code=")
    assert parse_qs(urlsplit(location).query)["state"] == ["état-例"]
