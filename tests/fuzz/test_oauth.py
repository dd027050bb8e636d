"""Fuzzing the authorization server's JSON endpoints: registration (RFC 7591), token (every
grant), revocation (RFC 7009), introspection (RFC 7662) and device authorization (RFC 8628).

Every answer is checked by ``shapes.check_oauth``: no 5xx, and errors as JSON in the
endpoint's RFC vocabulary. Requests mix working parts (seeded clients, secrets, tokens,
device codes) with hostile ones, so both the refusals and the code behind them run."""

from __future__ import annotations

import httpx
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from tests.fuzz import shapes
from tests.fuzz.conftest import DEVICE_GRANT, ODD_REDIRECTS, REDIRECT, FuzzTarget, Probe, fuzz
from tests.fuzz.strategies import (
    FieldValue,
    authorization,
    basic,
    field_value,
    form_request,
    hostile_text,
    json_body,
    json_values,
    one_of_or_hostile,
)

GRANT_TYPES = (
    "authorization_code",
    "refresh_token",
    DEVICE_GRANT,
    "client_credentials",
    "password",
    "implicit",
)
SCOPES = (
    "content:read",
    "content:read content:write",
    "content:publish users:read",
    "admin",
    "openid",
    "content:read  x",
)
# Metadata-document client ids that cannot reach anything (private fetches are off).
DOCUMENT_CLIENT_IDS = (
    "https://127.0.0.1:9/client.json",
    "https://localhost/c",
    "https://[::1]/c",
    "http://127.0.0.1/c",
)
REDIRECT_URIS = (
    REDIRECT,
    *ODD_REDIRECTS,
    "http://user:pw@127.0.0.1/cb",
    "jar:http://127.0.0.1/x!/",
    "view-source:http://127.0.0.1/",
    "javascript:alert(1)",
    "data:text/html,x",
    "file:///etc/passwd",
    "http://127.0.0.1/c\tb",
    "http://127.0.0.1/c\r\nb",
    "http://127.0.0.1/cb#frag",
    "https://evil.example/cb",
    "http://evil.example/cb",
    "http://127.0.0.1:99999/cb",
    "http://[::1/cb",
    "http://127.0.0.1/cb\x00",
    "http://127.0.0.1/\ud800",
    "HTTP://127.0.0.1/CB",
)
Fields = dict[str, SearchStrategy[FieldValue]]


def client_authentication(target: FuzzTarget) -> SearchStrategy[tuple[Fields, dict[str, bytes]]]:
    """How the request says which client it is: right, wrong, or nonsense (RFC 6749 §2.3)."""
    cid, secret = target.confidential_client, target.confidential_secret
    ids = one_of_or_hostile(target.public_client, target.device_client, cid, *DOCUMENT_CLIENT_IDS)
    wrong = field_value(20)
    return st.one_of(
        st.just(({}, {})),
        st.just(({"client_id": ids}, {})),
        st.just(({"client_id": st.just(cid), "client_secret": one_of_or_hostile(secret)}, {})),
        st.builds(
            lambda value: ({}, {"Authorization": value}),
            st.one_of(st.just(basic(cid, secret)), authorization()),
        ),
        st.builds(lambda value: ({}, {"Authorization": basic(cid, value)}), wrong),
        # A public client that sends a secret: refused, and must not lock the client out.
        st.just(({"client_id": st.just(target.public_client), "client_secret": wrong}, {})),
        st.builds(
            lambda value: ({"client_id": ids}, {"Authorization": value}), authorization([basic(cid, secret)])
        ),
    )


@st.composite
def oauth_form(draw: st.DrawFn, target: FuzzTarget, fields: Fields) -> tuple[dict[str, bytes | str], bytes]:
    """(headers, body) of a POST to an OAuth endpoint: ``fields`` plus client authentication."""
    auth_fields, auth_headers = draw(client_authentication(target))
    headers, body = draw(form_request({**fields, **auth_fields}))
    return {**headers, **auth_headers}, body


def token_fields(target: FuzzTarget) -> Fields:
    """Any grant's parameters, each right or wrong."""
    server = target.server.settings
    return {
        "grant_type": one_of_or_hostile(*GRANT_TYPES),
        "code": one_of_or_hostile("aic_ac_" + "A" * 32),
        "redirect_uri": one_of_or_hostile(REDIRECT, *ODD_REDIRECTS),
        "code_verifier": one_of_or_hostile("a" * 43, "a" * 129),
        "refresh_token": one_of_or_hostile(*target.refresh_tokens, "aic_rt_" + "A" * 32),
        "device_code": one_of_or_hostile(*target.device_codes),
        "scope": one_of_or_hostile(*SCOPES),
        "resource": one_of_or_hostile(server.mcp_url, server.origin, "https://evil.example/mcp"),
    }


def token_request(target: FuzzTarget) -> SearchStrategy[tuple[dict[str, bytes | str], bytes]]:
    """One grant's request, mostly coherent (so the grant's own code runs: rotation, polling,
    code redemption), or parameters of every grant at once."""
    fields = token_fields(target)
    ok = one_of_or_hostile
    scoped = {"scope": fields["scope"], "resource": fields["resource"]}
    refresh = {"grant_type": ok("refresh_token"), "refresh_token": ok(*target.refresh_tokens), **scoped}
    device = {"grant_type": ok(DEVICE_GRANT), "device_code": ok(*target.device_codes), **scoped}
    code = {
        "grant_type": ok("authorization_code"),
        **{name: fields[name] for name in ("code", "redirect_uri", "code_verifier", "resource")},
    }
    return st.one_of(
        form_request({**refresh, "client_id": ok(target.public_client)}),
        form_request({**device, "client_id": ok(target.device_client)}),
        form_request({**code, "client_id": ok(target.public_client)}),
        oauth_form(target, fields),
        oauth_form(target, fields),
    )


def post(probe: Probe, path: str, request: tuple[dict[str, bytes | str], bytes]) -> httpx.Response:
    headers, body = request
    return probe.send("POST", path, headers=headers, body=body)


@fuzz(80)
@given(data=st.data())
def test_token_endpoint(probe: Probe, data: st.DataObject) -> None:
    response = post(probe, "/oauth/token", data.draw(token_request(probe.target)))
    body = shapes.check_oauth(response, shapes.TOKEN_ERRORS)
    if response.status_code == 200:
        assert isinstance(body["access_token"], str) and body["token_type"].lower() == "bearer", body
        assert "no-store" in response.headers.get("cache-control", "")


def token_only_fields(target: FuzzTarget) -> Fields:
    tokens = (*target.access_tokens, *target.refresh_tokens)
    return {
        "token": one_of_or_hostile(*tokens, "aic_at_" + "A" * 32),
        "token_type_hint": one_of_or_hostile("access_token", "refresh_token", "id_token"),
    }


@fuzz(40)
@given(data=st.data())
def test_revocation_endpoint(probe: Probe, data: st.DataObject) -> None:
    response = post(
        probe, "/oauth/revoke", data.draw(oauth_form(probe.target, token_only_fields(probe.target)))
    )
    shapes.check_oauth(response, shapes.REVOKE_ERRORS)


@fuzz(40)
@given(data=st.data())
def test_introspection_endpoint(probe: Probe, data: st.DataObject) -> None:
    response = post(
        probe, "/oauth/introspect", data.draw(oauth_form(probe.target, token_only_fields(probe.target)))
    )
    body = shapes.check_oauth(response, shapes.INTROSPECT_ERRORS)
    if response.status_code == 200:
        assert isinstance(body.get("active"), bool), body


@fuzz(40)
@given(data=st.data())
def test_device_authorization_endpoint(probe: Probe, data: st.DataObject) -> None:
    server = probe.target.server.settings
    fields = {
        "scope": one_of_or_hostile(*SCOPES),
        "resource": one_of_or_hostile(server.mcp_url, "https://evil.example/mcp"),
    }
    response = post(probe, "/oauth/device_authorization", data.draw(oauth_form(probe.target, fields)))
    body = shapes.check_oauth(response, shapes.DEVICE_AUTHORIZATION_ERRORS)
    if response.status_code == 200:
        assert isinstance(body["device_code"], str) and isinstance(body["user_code"], str), body
        assert type(body["expires_in"]) is int and type(body["interval"]) is int, body


def _sometimes_wrong(good: SearchStrategy[object]) -> SearchStrategy[object]:
    return st.one_of(good, good, good, json_values())


REGISTRATION = st.fixed_dictionaries(
    {},
    optional={
        "redirect_uris": _sometimes_wrong(
            st.lists(st.one_of(st.sampled_from(REDIRECT_URIS), hostile_text()), max_size=3)
        ),
        "client_name": _sometimes_wrong(hostile_text()),
        "grant_types": _sometimes_wrong(
            st.lists(st.one_of(st.sampled_from(GRANT_TYPES), hostile_text(10)), max_size=3)
        ),
        "response_types": _sometimes_wrong(
            st.lists(st.sampled_from(["code", "token", "id_token"]), max_size=2)
        ),
        "token_endpoint_auth_method": _sometimes_wrong(
            st.sampled_from(["none", "client_secret_basic", "client_secret_post", "private_key_jwt"])
        ),
        "scope": _sometimes_wrong(st.sampled_from(SCOPES)),
        "client_uri": _sometimes_wrong(st.sampled_from(REDIRECT_URIS)),
        "logo_uri": _sometimes_wrong(st.sampled_from(REDIRECT_URIS)),
        "software_id": _sometimes_wrong(hostile_text()),
        "software_version": _sometimes_wrong(hostile_text()),
        "software_statement": _sometimes_wrong(hostile_text()),
        "contacts": _sometimes_wrong(st.lists(hostile_text(), max_size=2)),
        "client_id": _sometimes_wrong(st.sampled_from(DOCUMENT_CLIENT_IDS)),
        "jwks": json_values(),
    },
)
JSON_CONTENT_TYPES = ("application/json",) * 6 + (
    "application/json; charset=utf-8",
    "Application/JSON",
    "application/jsonx",
    "application/x-www-form-urlencoded",
    "text/plain",
    "",
)


@fuzz(80)
@given(
    body=json_body(REGISTRATION),
    content_type=st.sampled_from(JSON_CONTENT_TYPES),
    auth=st.one_of(st.none(), authorization()),
)
def test_registration_endpoint(probe: Probe, body: bytes, content_type: str, auth: bytes | None) -> None:
    headers: dict[str, bytes | str] = {"Content-Type": content_type} if content_type else {}
    if auth is not None:
        headers["Authorization"] = auth
    response = probe.send("POST", "/oauth/register", headers=headers, body=body)
    answer = shapes.check_oauth(response, shapes.REGISTER_ERRORS)
    if response.status_code == 201:
        assert isinstance(answer["client_id"], str) and isinstance(answer["redirect_uris"], list), answer
