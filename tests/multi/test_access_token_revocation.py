"""An access token revoked through RFC 7009 on instance A is refused by instance B on its next
request (security review, issue 12 finding 3), though B holds it in its credential cache:
heard over NOTIFY, or, when B's listener was down at the time, found by the resync after it
reconnects. Polling is off in these instances (see conftest), so passing proves the path.

B is asked repeatedly for at most a few seconds — the bus delivers in milliseconds; the bound
only keeps a broken build from hanging — and the test asserts that a 401 comes, not how fast."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from aiconnector.core import pg_notify
from aiconnector.core.clients import ClientRecord, create_pre_registered_client
from aiconnector.core.code_grant import s256
from aiconnector.core.tokens import create_authorization_code
from aiconnector.runtime import Runtime
from tests.multi.conftest import Instance, Pair, listener_pids, pg_execute, wait_for_listener
from tests.multi.test_revocation_bus import whoami_status
from tests.oauth.conftest import REDIRECT, new_verifier


async def tokens_from(
    instance: Instance, rt: Runtime, http: httpx.AsyncClient, name: str
) -> tuple[ClientRecord, dict[str, Any]]:
    """A pre-registered public client and a connection's tokens, redeemed at ``instance``."""
    client = (await create_pre_registered_client(rt.sessions, name=name, redirect_uris=[REDIRECT])).record
    verifier = new_verifier()
    code = await create_authorization_code(
        rt.sessions,
        client=client,
        user_id=1,
        redirect_uri=REDIRECT,
        code_challenge=s256(verifier),
        scopes=frozenset({"content:read"}),
        resource=instance.live.settings.mcp_url,
        agent_name=name,
    )
    response = await http.post(
        f"{instance.live.base_url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": client.client_id,
        },
    )
    assert response.status_code == 200, response.text
    return client, response.json()


async def revoke_at(instance: Instance, http: httpx.AsyncClient, client: ClientRecord, token: str) -> None:
    response = await http.post(
        f"{instance.live.base_url}/oauth/revoke", data={"token": token, "client_id": client.client_id}
    )
    assert response.status_code == 200, response.text


async def refused_within(
    http: httpx.AsyncClient, instance: Instance, headers: dict[str, str], seconds: float
) -> bool:
    """Whether the instance answers 401 at some point in the next ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while (status := await whoami_status(http, instance, headers)) == 200:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    assert status == 401
    return True


async def test_an_access_token_revoked_on_a_is_refused_by_b(
    pair: Pair, rt: Runtime, http: httpx.AsyncClient
) -> None:
    await wait_for_listener(pair, pair.b)
    client, tokens = await tokens_from(pair.a, rt, http, "revoked on A")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert await whoami_status(http, pair.b, headers) == 200  # now in B's credential cache
    await revoke_at(pair.a, http, client, tokens["access_token"])
    assert await refused_within(http, pair.b, headers, 2.0), "B still accepts the revoked access token"
    assert await whoami_status(http, pair.a, headers) == 401


async def test_an_access_token_revoked_during_bs_listener_outage_is_refused_after_reconnect(
    pair: Pair, rt: Runtime, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hold the reconnect back long enough that the revoke below surely lands in the outage.
    monkeypatch.setattr(pg_notify, "RECONNECT_FIRST_DELAY", 0.5)
    old_pid = await wait_for_listener(pair, pair.b)
    client, tokens = await tokens_from(pair.a, rt, http, "revoked in an outage")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert await whoami_status(http, pair.b, headers) == 200

    [killed] = await pg_execute(pair, "SELECT pg_terminate_backend($1) AS killed", old_pid)
    assert killed["killed"]
    await revoke_at(pair.a, http, client, tokens["access_token"])
    assert await listener_pids(pair, pair.b) == [], "the revoke was meant to land during the outage"

    await wait_for_listener(pair, pair.b, other_than=old_pid)
    # Nobody NOTIFYs again and polling is off: only the reconnect's resync can drop the token.
    assert await refused_within(http, pair.b, headers, 5.0), "B still accepts the revoked access token"
