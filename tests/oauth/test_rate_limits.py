"""Failed client authentication is limited per address (never per client) and registrations
per address; this module has its own server (and database) with low limits."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from aiconnector.core.clients import create_pre_registered_client
from aiconnector.core.code_grant import s256
from aiconnector.core.scopes import DEFAULT_SCOPES
from aiconnector.core.tokens import create_authorization_code
from aiconnector.runtime import open_runtime
from tests.oauth.conftest import REDIRECT, AuthServer, new_verifier, run_auth_server
from tests.support import DatabaseUnderTest, run_sync

LIMIT = 3


@pytest.fixture(scope="module")
def limited(database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with run_auth_server(
        database,
        tmp_path_factory.mktemp("limits"),
        auth_failures_per_minute=LIMIT,
        registrations_per_minute=LIMIT,
    ) as server:
        yield server


def fresh_window() -> None:
    """Counters use fixed one-minute windows; start where a rollover cannot split the test."""
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)


def confidential_client(server: AuthServer) -> tuple[str, str]:
    async def work() -> tuple[str, str]:
        async with open_runtime(server.settings, apply_migrations=False) as rt:
            new = await create_pre_registered_client(rt.sessions, name="svc", confidential=True)
            assert new.secret is not None
            return new.record.client_id, new.secret

    return run_sync(work())


def test_failed_client_authentication_is_rate_limited(limited: AuthServer) -> None:
    client_id, secret = confidential_client(limited)
    fresh_window()
    url = f"{limited.base_url}/oauth/introspect"
    statuses = [
        httpx.post(url, data={"token": "x", "client_id": client_id, "client_secret": "wrong"}).status_code
        for _ in range(LIMIT + 1)
    ]
    assert statuses == [401] * LIMIT + [429]
    # Locked out: even the right secret is not checked until the window passes.
    locked = httpx.post(url, data={"token": "x", "client_id": client_id, "client_secret": secret})
    assert locked.status_code == 429 and locked.json()["error"] == "temporarily_unavailable"
    assert int(locked.headers["retry-after"]) >= 1


def test_registrations_are_rate_limited_per_address(limited: AuthServer) -> None:
    url = f"{limited.base_url}/oauth/register"
    fresh_window()
    statuses = [
        httpx.post(url, json={"redirect_uris": ["http://127.0.0.1/cb"]}).status_code for _ in range(LIMIT + 1)
    ]
    assert statuses == [201] * LIMIT + [429]


def from_address(address: str) -> httpx.Client:
    """An HTTP client whose requests leave from ``address`` (any 127.0.0.0/8 address reaches
    the server on 127.0.0.1): to the server, another machine."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def public_client_with_codes(server: AuthServer, count: int) -> tuple[str, list[tuple[str, str]]]:
    """A public client and ``count`` authorization codes for it, each with its PKCE verifier."""

    async def work() -> tuple[str, list[tuple[str, str]]]:
        async with open_runtime(server.settings, apply_migrations=False) as rt:
            new = await create_pre_registered_client(rt.sessions, name="app", redirect_uris=[REDIRECT])
            codes = []
            for _ in range(count):
                verifier = new_verifier()
                code = await create_authorization_code(
                    rt.sessions, client=new.record, user_id=1, redirect_uri=REDIRECT,
                    code_challenge=s256(verifier), scopes=DEFAULT_SCOPES,
                    resource=server.settings.mcp_url, agent_name="app",
                )  # fmt: skip
                codes.append((code, verifier))
            return new.record.client_id, codes

    return run_sync(work())


def test_nobody_can_lock_a_public_client_out_of_the_token_endpoint(limited: AuthServer) -> None:
    """A public client has no secret to guess, and its id is public: bad requests naming it
    from one address lock out that address, never the client's real users elsewhere."""
    client_id, [(first, first_verifier), (second, second_verifier)] = public_client_with_codes(limited, 2)
    token_url, revoke_url = limited.token_url, f"{limited.base_url}/oauth/revoke"

    def redeem(http: httpx.Client, code: str, verifier: str) -> httpx.Response:
        return http.post(token_url, data={
            "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": REDIRECT, "client_id": client_id,
        })  # fmt: skip

    with from_address("127.0.0.2") as attacker, from_address("127.0.0.3") as user:
        tokens = redeem(user, first, first_verifier)
        assert tokens.status_code == 200, tokens.text
        fresh_window()
        bad = {
            "grant_type": "refresh_token",
            "refresh_token": "x",
            "client_id": client_id,
            "client_secret": "x",
        }
        statuses = [attacker.post(token_url, data=bad).status_code for _ in range(LIMIT * 3)]
        assert statuses[0] == 401 and statuses[-1] == 429, statuses  # the attacker's address is limited

        refreshed = user.post(token_url, data={
            "grant_type": "refresh_token", "refresh_token": tokens.json()["refresh_token"],
            "client_id": client_id,
        })  # fmt: skip
        assert refreshed.status_code == 200, refreshed.text
        assert redeem(user, second, second_verifier).status_code == 200
        revoked = user.post(
            revoke_url, data={"token": refreshed.json()["refresh_token"], "client_id": client_id}
        )
        assert revoked.status_code == 200, revoked.text


def test_wrong_secrets_from_one_address_do_not_lock_out_a_confidential_client(limited: AuthServer) -> None:
    """A 186-bit client secret cannot be guessed at any rate: counting failures per client
    would only let anyone deny the real client service."""
    client_id, secret = confidential_client(limited)
    url = f"{limited.base_url}/oauth/introspect"
    with from_address("127.0.0.4") as attacker, from_address("127.0.0.5") as service:
        fresh_window()
        wrong = {"token": "x", "client_id": client_id, "client_secret": "wrong"}
        statuses = [attacker.post(url, data=wrong).status_code for _ in range(LIMIT * 3)]
        assert statuses[0] == 401 and statuses[-1] == 429, statuses
        answer = service.post(url, data={"token": "x", "client_id": client_id, "client_secret": secret})
        assert answer.status_code == 200 and answer.json() == {"active": False}
