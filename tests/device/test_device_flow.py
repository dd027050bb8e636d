"""RFC 8628 over HTTP, one test per rule: the device authorization response, polling
(pending, slow_down with a growing interval, denied, expired), single use, binding to the
client, user-code format and lenient entry, the verification page's CSRF, sign-in and
anti-framing, registration and metadata."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from aiconnector.core.client_metadata import DEVICE_CODE_GRANT
from aiconnector.core.device import USER_CODE_ALPHABET
from aiconnector.core.tokens import verify_access_token
from aiconnector.db.models import utcnow
from aiconnector.security import _ALPHABET
from tests.conftest import LiveServer
from tests.device.conftest import (
    USER_CODE,
    approve,
    audit_events,
    connection,
    decide_on,
    device_row,
    enter_code,
    error_of,
    forget_wrong_codes,
    new_code_client,
    new_device,
    set_device,
    signed_in,
)
from tests.web.conftest import CSRF_FIELD, REQUEST_FIELD, field


@pytest.fixture(autouse=True)
def _clean(server: LiveServer) -> None:
    forget_wrong_codes(server)


def past_interval(server: LiveServer, device_code: str) -> None:
    """Pretend the device waited its interval since its last poll."""
    set_device(server, device_code, last_poll_at=utcnow() - timedelta(seconds=60))


# --- POST /oauth/device_authorization ------------------------------------------------------


def test_device_authorization_response(server: LiveServer) -> None:
    device = new_device(server)
    response = device.start(scope="content:read content:write")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert USER_CODE.match(body["user_code"])
    assert body["verification_uri"] == f"{server.settings.origin}/device"
    complete = urlsplit(body["verification_uri_complete"])
    assert complete.path == "/device" and parse_qs(complete.query) == {"user_code": [body["user_code"]]}
    assert body["expires_in"] == 600  # ~10 minutes
    assert body["interval"] == server.settings.device_poll_interval
    row = device_row(server, body["device_code"])
    assert row.status == "pending" and row.scopes == "content:read content:write"
    assert row.client_id == device.client_id and row.user_code == body["user_code"].replace("-", "")


def test_device_code_has_at_least_128_bits_and_user_codes_the_rfc_alphabet(server: LiveServer) -> None:
    device = new_device(server)
    bodies = [device.begin() for _ in range(20)]
    codes = [b["device_code"] for b in bodies]
    assert len(set(codes)) == len(codes)
    random_part = codes[0].removeprefix("aic_dc_")
    assert len(random_part) * math.log2(len(_ALPHABET)) >= 128
    assert all(c.startswith("aic_dc_") and len(c) == len(codes[0]) for c in codes)
    assert USER_CODE_ALPHABET == "BCDFGHJKLMNPQRSTVWXZ"
    assert all(USER_CODE.match(b["user_code"]) for b in bodies)
    assert len({b["user_code"] for b in bodies}) == len(bodies)


def test_device_authorization_refusals(server: LiveServer) -> None:
    device = new_device(server)
    assert error_of(device.start(scope="content:everything")) == "invalid_scope"
    assert error_of(device.start(resource="https://elsewhere.example/mcp")) == "invalid_target"
    code_only = new_code_client(server)
    refused = httpx.post(f"{server.base_url}/oauth/device_authorization", data={"client_id": code_only})
    assert refused.status_code == 400 and error_of(refused) == "unauthorized_client"
    unknown = httpx.post(f"{server.base_url}/oauth/device_authorization", data={"client_id": "nope"})
    assert unknown.status_code == 401 and error_of(unknown) == "invalid_client"
    no_form = httpx.post(
        f"{server.base_url}/oauth/device_authorization", json={"client_id": device.client_id}
    )
    assert error_of(no_form) == "invalid_request"


def test_no_scope_means_content_read(server: LiveServer) -> None:
    device = new_device(server)
    body = device.begin()
    assert device_row(server, body["device_code"]).scopes == "content:read"


# --- polling ----------------------------------------------------------------------------------


def test_authorization_pending_until_decided(server: LiveServer) -> None:
    device = new_device(server)
    body = device.begin()
    response = device.poll(body["device_code"])
    assert response.status_code == 400 and error_of(response) == "authorization_pending"
    assert response.headers["cache-control"] == "no-store"


def test_slow_down_is_enforced_and_the_interval_grows_by_5s(server: LiveServer) -> None:
    device = new_device(server)
    code = device.begin()["device_code"]
    assert error_of(device.poll(code)) == "authorization_pending"
    assert error_of(device.poll(code)) == "slow_down"  # 1 s interval not waited
    assert device_row(server, code).interval == 1 + 5
    assert error_of(device.poll(code)) == "slow_down"
    assert device_row(server, code).interval == 1 + 5 + 5  # for this and all later requests
    set_device(server, code, last_poll_at=utcnow() - timedelta(seconds=10))
    assert error_of(device.poll(code)) == "slow_down"  # 10 s < 11 s: the grown interval counts
    past_interval(server, code)
    assert error_of(device.poll(code)) == "authorization_pending"


def test_full_flow_issues_a_device_connection(server: LiveServer) -> None:
    device = new_device(server, name="CI runner")
    body = device.begin(scope="content:read content:write content:publish")
    approve(server, body["user_code"], "editor1", scopes=["content:read", "content:write"])
    past_interval(server, body["device_code"])
    response = device.poll(body["device_code"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"] and tokens["expires_in"] > 0
    assert tokens["scope"] == "content:read content:write"  # narrowed on the consent screen
    row = device_row(server, body["device_code"])
    assert row.status == "used" and row.connection_id
    conn = connection(server, row.connection_id)
    assert conn.method == "device" and conn.agent_name == "CI runner"
    assert conn.client_id == device.client_id and conn.scopes == "content:read content:write"

    async def principal(rt):  # noqa: ANN001, ANN202
        return await verify_access_token(rt.sessions, tokens["access_token"], resource=server.mcp_url)

    found, _ = server.run(principal)
    assert found.actor.username == "editor1" and found.method == "device"
    listed = httpx.post(
        server.mcp_url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={
            "Authorization": f"Bearer {tokens['access_token']}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
        },
        timeout=30,
    )
    assert listed.status_code == 200, listed.text
    refreshed = httpx.post(
        f"{server.base_url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": device.client_id,
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert audit_events(server, "device.approved", lambda e: e.detail.get("client_id") == device.client_id)
    assert audit_events(server, "connection.created", lambda e: e.connection_id == conn.id)


def test_device_code_is_single_use(server: LiveServer) -> None:
    device = new_device(server)
    body = device.begin()
    approve(server, body["user_code"])
    past_interval(server, body["device_code"])
    assert device.poll(body["device_code"]).status_code == 200
    past_interval(server, body["device_code"])
    again = device.poll(body["device_code"])
    assert again.status_code == 400 and error_of(again) == "invalid_grant"


def test_concurrent_polls_redeem_once(server: LiveServer) -> None:
    device = new_device(server)
    body = device.begin()
    approve(server, body["user_code"])
    past_interval(server, body["device_code"])
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _i: device.poll(body["device_code"]), range(6)))
    assert [r.status_code for r in results].count(200) == 1
    assert {error_of(r) for r in results if r.status_code != 200} <= {"slow_down", "invalid_grant"}


def test_denial_gives_access_denied(server: LiveServer) -> None:
    device = new_device(server)
    body = device.begin()
    with signed_in(server, "editor1") as client:
        done = decide_on(client, enter_code(client, body["user_code"]), "deny")
        assert done.status_code == 200 and "Access denied" in done.text
    past_interval(server, body["device_code"])
    denied = device.poll(body["device_code"])
    assert denied.status_code == 400 and error_of(denied) == "access_denied"
    assert device_row(server, body["device_code"]).status == "denied"
    assert audit_events(server, "device.denied", lambda e: e.detail.get("client_id") == device.client_id)


def test_device_code_is_bound_to_its_client(server: LiveServer) -> None:
    owner, other = new_device(server), new_device(server, name="Other runner")
    body = owner.begin()
    approve(server, body["user_code"])
    stolen = other.poll(body["device_code"])
    assert stolen.status_code == 400 and error_of(stolen) == "invalid_grant"
    past_interval(server, body["device_code"])
    assert owner.poll(body["device_code"]).status_code == 200  # the other client's try burned nothing


def test_unknown_device_code_and_missing_parameter(server: LiveServer) -> None:
    device = new_device(server)
    assert error_of(device.poll("aic_dc_" + "x" * 32)) == "invalid_grant"
    missing = httpx.post(
        f"{server.base_url}/oauth/token",
        data={"grant_type": DEVICE_CODE_GRANT, "client_id": device.client_id},
    )
    assert error_of(missing) == "invalid_request"


def test_code_grant_client_may_not_use_the_device_grant(server: LiveServer) -> None:
    refused = httpx.post(
        f"{server.base_url}/oauth/token",
        data={"grant_type": DEVICE_CODE_GRANT, "device_code": "x", "client_id": new_code_client(server)},
    )
    assert error_of(refused) == "unauthorized_client"


def test_token_request_for_another_resource_is_invalid_target(server: LiveServer) -> None:
    device = new_device(server)
    body = device.begin()
    approve(server, body["user_code"])
    wrong = device.poll(body["device_code"], resource="https://elsewhere.example/mcp")
    assert error_of(wrong) == "invalid_target"
    past_interval(server, body["device_code"])
    assert device.poll(body["device_code"], resource=server.mcp_url).status_code == 200


# --- the verification page ------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["lower", "nodash", "spaces"])
def test_user_code_entry_ignores_case_dashes_and_spaces(server: LiveServer, typed: str) -> None:
    device = new_device(server)
    user_code = device.begin()["user_code"]
    entry = {
        "lower": user_code.lower(),
        "nodash": user_code.replace("-", ""),
        "spaces": " " + user_code.replace("-", " ").lower() + " ",
    }[typed]
    with signed_in(server) as client:
        consent = enter_code(client, entry)
        assert consent.status_code == 200, consent.text
        assert user_code in consent.text and "Approve only a code from a device you hold" in consent.text


def test_malformed_entry_is_refused_without_counting_as_a_guess(server: LiveServer) -> None:
    with signed_in(server, "reader") as client:
        for entry in ("ABCD-EFGH", "BCDF-GHJ", "12345678", "B" * 60):
            response = enter_code(client, entry)
            assert response.status_code == 400 and "A code is 8 letters" in response.text
    assert audit_events(server, "device.code_rejected", wait=False) == []


def test_wrong_code_is_refused_and_audited(server: LiveServer) -> None:
    with signed_in(server, "reader") as client:
        response = enter_code(client, "BBBB-BBBB")
        assert response.status_code == 400 and "not valid or has expired" in response.text
    events = audit_events(server, "device.code_rejected")
    assert len(events) == 1 and events[0].user_id is not None and events[0].ip == "127.0.0.1"


def test_verification_uri_complete_needs_sign_in_then_shows_the_code(server: LiveServer) -> None:
    device = new_device(server)
    body = device.begin()
    complete = urlsplit(body["verification_uri_complete"])
    anonymous = httpx.get(body["verification_uri_complete"], follow_redirects=False)
    assert anonymous.status_code == 303
    location = urlsplit(anonymous.headers["location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == [f"{complete.path}?{complete.query}"]
    with signed_in(server) as client:
        page = client.get(f"{complete.path}?{complete.query}")
        assert page.status_code == 200
        assert f'value="{body["user_code"]}"' in page.text  # pre-filled, still shown
        assert "Continue only if your device shows exactly the same code" in page.text
        assert "wants to connect" not in page.text  # no consent before the person continues
    assert device_row(server, body["device_code"]).status == "pending"


@pytest.mark.parametrize("form", ["code", "decision"])
def test_device_forms_need_the_csrf_token(server: LiveServer, form: str) -> None:
    device = new_device(server)
    body = device.begin()
    with signed_in(server) as client:
        if form == "code":
            response = client.post("/device", data={"user_code": body["user_code"]})
            forged = client.post("/device", data={"user_code": body["user_code"], "csrf": "forged"})
        else:
            consent = enter_code(client, body["user_code"])
            blob = field(REQUEST_FIELD, consent.text)
            response = client.post(
                "/device", data={"request": blob, "action": "authorize", "scope": "content:read"}
            )
            forged = client.post(
                "/device", data={"request": blob, "action": "authorize", "scope": "content:read", "csrf": "x"}
            )
    assert response.status_code == 403 and forged.status_code == 403
    assert device_row(server, body["device_code"]).status == "pending"


def test_decision_form_is_bound_to_its_session_and_untamperable(server: LiveServer) -> None:
    device = new_device(server)
    body = device.begin()
    with signed_in(server) as admin:
        consent = enter_code(admin, body["user_code"])
        blob = field(REQUEST_FIELD, consent.text)
        tampered = admin.post(
            "/device",
            data={
                "csrf": field(CSRF_FIELD, consent.text),
                "request": blob[:-2] + "AA",
                "action": "authorize",
            },
        )
        assert tampered.status_code == 400 and "expired" in tampered.text
    with signed_in(server, "editor1") as other:
        csrf = field(CSRF_FIELD, other.get("/device").text)
        replayed = other.post(
            "/device", data={"csrf": csrf, "request": blob, "action": "authorize", "scope": "content:read"}
        )
        assert replayed.status_code == 303 and replayed.headers["location"] == "/device"
    assert device_row(server, body["device_code"]).status == "pending"


def test_scopes_can_only_be_narrowed(server: LiveServer) -> None:
    device = new_device(server)
    body = device.begin(scope="content:read")
    with signed_in(server) as client:
        consent = enter_code(client, body["user_code"])
        done = decide_on(client, consent, "authorize", ["content:read", "site:admin"])
        assert "Device connected" in done.text
    assert device_row(server, body["device_code"]).granted_scopes == "content:read"


def test_approving_nothing_asks_again(server: LiveServer) -> None:
    device = new_device(server)
    body = device.begin()
    with signed_in(server) as client:
        again = decide_on(client, enter_code(client, body["user_code"]), "authorize", [])
        assert again.status_code == 400 and "Choose at least one" in again.text
    assert device_row(server, body["device_code"]).status == "pending"


def test_a_decided_code_cannot_be_decided_again(server: LiveServer) -> None:
    device = new_device(server)
    body = device.begin()
    with signed_in(server) as client:
        consent = enter_code(client, body["user_code"])
        assert "Device connected" in decide_on(client, consent, "authorize").text
        second = decide_on(client, consent, "deny")
        assert second.status_code == 400 and "no longer valid" in second.text
    assert device_row(server, body["device_code"]).status == "approved"


@pytest.mark.parametrize("step", ["code", "consent"])
def test_device_pages_forbid_framing_and_caching(server: LiveServer, step: str) -> None:
    device = new_device(server)
    with signed_in(server) as client:
        page = client.get("/device") if step == "code" else enter_code(client, device.begin()["user_code"])
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"


# --- registration and metadata ------------------------------------------------------------------


def test_metadata_advertises_the_device_endpoint_and_grant(server: LiveServer) -> None:
    meta = httpx.get(f"{server.base_url}/.well-known/oauth-authorization-server").json()
    assert meta["device_authorization_endpoint"] == f"{server.settings.origin}/oauth/device_authorization"
    assert DEVICE_CODE_GRANT in meta["grant_types_supported"]


def test_dynamic_registration_of_a_device_only_client(server: LiveServer) -> None:
    registered = httpx.post(
        f"{server.base_url}/oauth/register",
        json={
            "client_name": "aiconnector CLI",
            "grant_types": [DEVICE_CODE_GRANT, "refresh_token"],
            "token_endpoint_auth_method": "none",
        },
    )
    assert registered.status_code == 201, registered.text
    body = registered.json()
    assert body["grant_types"] == ["refresh_token", DEVICE_CODE_GRANT]
    assert body["redirect_uris"] == [] and body["response_types"] == []
    assert "client_secret" not in body
    started = httpx.post(
        f"{server.base_url}/oauth/device_authorization", data={"client_id": body["client_id"]}
    )
    assert started.status_code == 200, started.text
    authorize = httpx.get(
        f"{server.base_url}/oauth/authorize",
        params={"client_id": body["client_id"], "response_type": "code"},
        follow_redirects=False,
    )
    assert authorize.status_code == 400  # no redirect URI: the code grant is not its to use


def test_dynamic_registration_with_both_grants_like_vs_code(server: LiveServer) -> None:
    registered = httpx.post(
        f"{server.base_url}/oauth/register",
        json={
            "client_name": "Visual Studio Code",
            "redirect_uris": ["http://127.0.0.1:33418/", "https://vscode.dev/redirect"],
            "grant_types": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT],
            "token_endpoint_auth_method": "none",
        },
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["grant_types"] == ["authorization_code", "refresh_token", DEVICE_CODE_GRANT]
    assert registered.json()["response_types"] == ["code"]


def test_registration_without_the_device_grant_gets_no_device_flow(server: LiveServer) -> None:
    registered = httpx.post(
        f"{server.base_url}/oauth/register", json={"redirect_uris": ["http://127.0.0.1/cb"]}
    ).json()
    assert DEVICE_CODE_GRANT not in registered["grant_types"]
    refused = httpx.post(
        f"{server.base_url}/oauth/device_authorization", data={"client_id": registered["client_id"]}
    )
    assert error_of(refused) == "unauthorized_client"
    no_grant = httpx.post(f"{server.base_url}/oauth/register", json={"grant_types": ["refresh_token"]})
    assert error_of(no_grant) == "invalid_client_metadata"


def test_decision_after_the_code_expired_is_refused(server: LiveServer) -> None:
    device = new_device(server)
    body = device.begin()
    with signed_in(server) as client:
        consent = enter_code(client, body["user_code"])
        set_device(server, body["device_code"], expires_at=utcnow() - timedelta(seconds=1))
        late = decide_on(client, consent, "authorize")
        assert late.status_code == 400 and "no longer valid" in late.text
    assert error_of(device.poll(body["device_code"])) == "expired_token"
