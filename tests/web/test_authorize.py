"""The authorization endpoint over real HTTP: which problems get a page and which a redirect,
PKCE, scope and resource checks, ``iss`` on every response, CSRF and tampering on the consent
POST, and what a code is bound to."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from aiconnector.security import sha256_hex
from tests.conftest import LiveServer
from tests.web.conftest import (
    CSRF_FIELD,
    CUSTOM_SCHEME_CALLBACK,
    HTTPS_CALLBACK,
    LOOPBACK_CALLBACK,
    REQUEST_FIELD,
    USER_PASSWORD,
    audit_events,
    authorize_params,
    consent_form,
    field,
    http_client,
    latest_code,
    pkce_pair,
    sign_in,
)
from tests.web.test_login import assert_auth_headers


def redirect_query(response, expected_target: str = LOOPBACK_CALLBACK) -> dict[str, str]:  # noqa: ANN001
    """The query of a 303 to ``expected_target``, one value per name."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(expected_target + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.fixture(scope="module")
def admin(web_server: LiveServer):  # noqa: ANN201
    with sign_in(web_server) as client:
        yield client


# --- problems that must never redirect --------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "title"),
    [
        ({"client_id": "no-such-client"}, "Unknown application"),
        ({"client_id": None}, "Missing application"),
        ({"redirect_uri": "https://evil.example/callback"}, "Unregistered return address"),
        ({"redirect_uri": "http://127.0.0.1:9/other-path"}, "Unregistered return address"),
        ({"redirect_uri": None}, "Invalid request"),  # the client has two redirect URIs
    ],
)
def test_untrusted_client_or_redirect_gets_a_page_not_a_redirect(
    web_server: LiveServer,
    admin,
    overrides: dict,
    title: str,  # noqa: ANN001
) -> None:
    # Also send every other error at once: none of them may turn into a redirect.
    params = authorize_params(**overrides, code_challenge_method="plain", response_type="token")
    for client in (admin, http_client(web_server)):  # signed in or not
        response = client.get("/oauth/authorize", params=params)
        assert response.status_code == 400
        assert "location" not in response.headers
        assert title in response.text
        assert_auth_headers(response.headers)


def test_redirect_uri_may_be_omitted_when_the_client_has_exactly_one(web_server: LiveServer, admin) -> None:  # noqa: ANN001
    response = admin.get(
        "/oauth/authorize", params=authorize_params(client_id="test-one-uri", redirect_uri=None)
    )
    assert response.status_code == 200
    assert "app.example" in response.text
    csrf, blob = field(CSRF_FIELD, response.text), field(REQUEST_FIELD, response.text)
    granted = admin.post(
        "/oauth/authorize",
        data={"csrf": csrf, "request": blob, "action": "authorize", "scope": ["content:read"]},
    )
    assert granted.headers["location"].startswith("https://app.example/oauth/callback?code=")
    code = latest_code(web_server, "test-one-uri")  # the code remembers the token side may omit it
    assert code is not None and code.redirect_uri_required is False


def test_a_code_for_a_request_that_named_its_redirect_uri_requires_it_again(
    web_server: LiveServer, admin
) -> None:  # noqa: ANN001
    page = admin.get("/oauth/authorize", params=authorize_params())
    csrf, blob = field(CSRF_FIELD, page.text), field(REQUEST_FIELD, page.text)
    admin.post(
        "/oauth/authorize",
        data={"csrf": csrf, "request": blob, "action": "authorize", "scope": ["content:read"]},
    )
    code = latest_code(web_server, "test-dynamic")
    assert code is not None and code.redirect_uri_required is True


# --- problems reported to the client, always with iss ------------------------------------


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"scope": "content:read everything:please"}, "invalid_scope"),
        ({"resource": "https://other.example/mcp"}, "invalid_target"),
    ],
)
def test_request_errors_redirect_with_error_state_and_iss(
    web_server: LiveServer, overrides: dict, error: str
) -> None:
    params = authorize_params(**overrides)
    with http_client(web_server) as anonymous:  # checked before sign-in is asked for
        query = redirect_query(anonymous.get("/oauth/authorize", params=params))
    assert query["error"] == error
    assert query["error_description"]
    assert query["state"] == params["state"]
    assert query["iss"] == web_server.settings.origin


def test_repeated_parameters_are_refused(web_server: LiveServer) -> None:
    params = list(authorize_params().items()) + [("scope", "site:admin")]
    with http_client(web_server) as client:
        query = redirect_query(client.get("/oauth/authorize", params=params))
    assert query["error"] == "invalid_request"
    assert query["iss"] == web_server.settings.origin


def test_signed_out_browser_is_sent_to_sign_in_and_back(web_server: LiveServer) -> None:
    params = authorize_params()
    with http_client(web_server) as client:
        response = client.get("/oauth/authorize", params=params)
        assert response.status_code == 303
        login = response.headers["location"]
        assert login.startswith("/login?next=%2Foauth%2Fauthorize%3F")
        page = client.get(login)
        assert "An application is asking to connect" in page.text
        token = field(CSRF_FIELD, page.text)
        next_value = parse_qs(urlsplit(login).query)["next"][0]
        back = client.post(
            "/login",
            data={
                "username": "admin",
                "password": "admin-test-password-123",
                "csrf": token,
                "next": next_value,
            },
        )
        assert back.status_code == 303
        consent = client.get(back.headers["location"])
    assert consent.status_code == 200
    assert "Claude Desktop" in consent.text


# --- the consent page --------------------------------------------------------------------


def test_consent_page_shows_client_destination_registration_user_and_scopes(admin) -> None:  # noqa: ANN001
    response = admin.get("/oauth/authorize", params=authorize_params(scope=None))
    html = response.text
    assert response.status_code == 200
    assert_auth_headers(response.headers)
    assert "form-action 'self' http://127.0.0.1:9;" in response.headers["content-security-policy"]
    assert "Claude Desktop" in html
    assert 'id="redirect-host">127.0.0.1:9<' in html
    assert "registered itself (dynamic registration)" in html
    assert "Site Admin" in html and "Not you? Sign out" in html
    # No scope asked for: the default, content:read, only.
    assert html.count('name="scope"') == 1
    assert 'value="content:read" checked' in html
    assert ">Authorize</button>" in html and ">Deny</button>" in html


def test_consent_page_escapes_the_client_name_and_names_custom_scheme_targets(admin) -> None:  # noqa: ANN001
    html = admin.get(
        "/oauth/authorize", params=authorize_params(client_id="test-one-uri", redirect_uri=HTTPS_CALLBACK)
    ).text
    assert "<b>Owner" not in html
    assert "&lt;b&gt;Owner" in html
    assert "pre-registered by the site owner" in html
    custom = admin.get("/oauth/authorize", params=authorize_params(redirect_uri=CUSTOM_SCHEME_CALLBACK))
    assert 'id="redirect-host">cursor://anysphere.cursor-mcp<' in custom.text
    assert "form-action 'self' cursor:;" in custom.headers["content-security-policy"]


def test_scopes_a_role_cannot_use_are_disabled_and_never_granted(web_server: LiveServer) -> None:
    with sign_in(web_server, "reader", USER_PASSWORD) as reader:
        params = authorize_params(scope="content:read content:write site:admin")
        page = reader.get("/oauth/authorize", params=params).text
        assert 'value="content:write" disabled' in page
        assert 'value="site:admin" disabled' in page
        assert "your role (subscriber) cannot do this" in page
        csrf, blob = field(CSRF_FIELD, page), field(REQUEST_FIELD, page)
        # A hand-made POST asking for them anyway gets only what the role can use.
        response = reader.post(
            "/oauth/authorize",
            data={
                "csrf": csrf,
                "request": blob,
                "action": "authorize",
                "scope": ["content:read", "content:write", "site:admin"],
            },
        )
    redirect_query(response)
    code = latest_code(web_server, "test-dynamic")
    assert code is not None and code.scopes == "content:read"


# --- the consent POST ----------------------------------------------------------------------


def test_consent_post_without_csrf_token_is_refused(web_server: LiveServer, admin) -> None:  # noqa: ANN001
    csrf, blob = consent_form(admin)
    for bad in ({}, {"csrf": "forged"}, {"csrf": csrf[:-2] + "xx"}):
        response = admin.post(
            "/oauth/authorize", data={**bad, "request": blob, "action": "authorize", "scope": "content:read"}
        )
        assert response.status_code == 403
        assert "location" not in response.headers
    ok = admin.post(
        "/oauth/authorize",
        data={"csrf": csrf, "request": blob, "action": "authorize", "scope": "content:read"},
    )
    assert redirect_query(ok)["code"]


def test_a_consent_page_decides_only_once(web_server: LiveServer, admin) -> None:  # noqa: ANN001
    """Re-posting a consent form (within its 30 minutes) cannot mint a second code, nor turn
    a grant into a denial or back."""
    csrf, blob = consent_form(admin)
    form = {"csrf": csrf, "request": blob, "action": "authorize", "scope": "content:read"}
    first = redirect_query(admin.post("/oauth/authorize", data=form))["code"]
    for action in ("authorize", "deny"):
        again = admin.post("/oauth/authorize", data={**form, "action": action})
        assert again.status_code == 400 and "location" not in again.headers
        assert "already used" in again.text
    code = latest_code(web_server, "test-dynamic")
    assert code is not None and code.code_hash == sha256_hex(first)  # no second code was stored
    # A denial spends its page too; a fresh page works.
    csrf, blob = consent_form(admin)
    assert redirect_query(admin.post("/oauth/authorize", data={**form, "request": blob, "action": "deny"}))
    assert admin.post("/oauth/authorize", data={**form, "request": blob}).status_code == 400


def test_consent_csrf_token_of_another_session_is_refused(web_server: LiveServer, admin) -> None:  # noqa: ANN001
    with sign_in(web_server, "editor1", USER_PASSWORD) as other:
        other_csrf, _ = consent_form(other)
    _, blob = consent_form(admin)
    response = admin.post(
        "/oauth/authorize", data={"csrf": other_csrf, "request": blob, "action": "authorize"}
    )
    assert response.status_code == 403


def test_tampered_or_foreign_request_field_is_refused(web_server: LiveServer, admin) -> None:  # noqa: ANN001
    csrf, blob = consent_form(admin)
    body, _, signature = blob.partition(".")
    forged = body[:-3] + ("AAA" if body[-3:] != "AAA" else "BBB") + "." + signature
    response = admin.post("/oauth/authorize", data={"csrf": csrf, "request": forged, "action": "authorize"})
    assert response.status_code == 400
    assert "location" not in response.headers
    # A pending request signed for another session is shown again to this user, not granted.
    with sign_in(web_server, "editor1", USER_PASSWORD) as other:
        _, other_blob = consent_form(other)
    response = admin.post(
        "/oauth/authorize",
        data={"csrf": csrf, "request": other_blob, "action": "authorize", "scope": "content:read"},
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/oauth/authorize?")


def test_authorize_binds_the_code_and_narrows_scope(web_server: LiveServer, admin) -> None:  # noqa: ANN001
    params = authorize_params(scope="content:read content:write content:publish")
    page = admin.get(
        "/oauth/authorize",
        params=params,
        headers={"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5)"},
    )
    csrf, blob = field(CSRF_FIELD, page.text), field(REQUEST_FIELD, page.text)
    response = admin.post(
        "/oauth/authorize",
        data={
            "csrf": csrf,
            "request": blob,
            "action": "authorize",
            "scope": ["content:read", "content:publish"],
        },
        headers={"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5)"},
    )
    query = redirect_query(response)
    assert set(query) == {"code", "state", "iss"}
    assert query["state"] == params["state"]
    assert query["iss"] == web_server.settings.origin
    code = latest_code(web_server, "test-dynamic")
    assert code is not None
    assert code.scopes == "content:read content:publish"
    assert code.code_challenge == params["code_challenge"]
    assert code.redirect_uri == LOOPBACK_CALLBACK
    assert code.resource == web_server.settings.mcp_url
    assert code.agent_name == "Claude Desktop on macOS"
    assert audit_events(
        web_server, "oauth.consent", lambda e: e.detail.get("scopes") == "content:read content:publish"
    )


def test_unchecking_every_scope_asks_again(admin) -> None:  # noqa: ANN001
    csrf, blob = consent_form(admin)
    response = admin.post("/oauth/authorize", data={"csrf": csrf, "request": blob, "action": "authorize"})
    assert response.status_code == 400
    assert "Choose at least one" in response.text


def test_deny_redirects_access_denied_with_state_and_iss(web_server: LiveServer, admin) -> None:  # noqa: ANN001
    params = authorize_params(resource=web_server.settings.mcp_url)
    page = admin.get("/oauth/authorize", params=params).text
    response = admin.post(
        "/oauth/authorize",
        data={"csrf": field(CSRF_FIELD, page), "request": field(REQUEST_FIELD, page), "action": "deny"},
    )
    query = redirect_query(response)
    assert query["error"] == "access_denied"
    assert query["state"] == params["state"]
    assert query["iss"] == web_server.settings.origin
    assert "code" not in query
    assert audit_events(web_server, "oauth.denied")


def test_consent_post_after_sign_out_goes_through_sign_in_again(web_server: LiveServer) -> None:
    with sign_in(web_server) as client:
        csrf, blob = consent_form(client)
        client.cookies.delete("aic_session")
        response = client.post(
            "/oauth/authorize", data={"csrf": csrf, "request": blob, "action": "authorize"}
        )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2Foauth%2Fauthorize%3F")


def test_issued_code_redeems_at_the_token_side_with_the_verifier(web_server: LiveServer, admin) -> None:  # noqa: ANN001
    """Interop with the token endpoint's checks: the code is bound to exactly what the client
    will present (client, redirect URI, S256 challenge, resource)."""
    from aiconnector.core.clients import resolve_client
    from aiconnector.core.code_grant import redeem_authorization_code

    verifier, challenge = pkce_pair()
    page = admin.get("/oauth/authorize", params=authorize_params(code_challenge=challenge, scope=None))
    response = admin.post(
        "/oauth/authorize",
        data={
            "csrf": field(CSRF_FIELD, page.text),
            "request": field(REQUEST_FIELD, page.text),
            "action": "authorize",
            "scope": "content:read",
        },
    )
    code = redirect_query(response)["code"]

    async def redeem(rt):  # noqa: ANN001, ANN202
        client = await resolve_client(rt.sessions, "test-dynamic", settings=web_server.settings)
        return await redeem_authorization_code(
            rt.sessions,
            code=code,
            client=client,
            redirect_uri=LOOPBACK_CALLBACK,
            code_verifier=verifier,
            resource=web_server.settings.mcp_url,
            settings=web_server.settings,
            audit=rt.audit,
            bus=None,
        )

    pair = web_server.run(redeem)
    assert pair.access_token and pair.scope == "content:read"
