"""State that must hold across instances: one refresh-token chain however concurrent
refreshes are spread, and failure counters that limit an address on every instance."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from aiconnector.core.clients import ClientRecord
from aiconnector.core.connections import get_connection
from aiconnector.db.models import AuditEvent, OAuthToken
from aiconnector.runtime import Runtime
from aiconnector.security import sha256_hex
from tests.integration.test_auth import call
from tests.multi.conftest import FAILURE_LIMIT, Instance, Pair
from tests.oauth.conftest import AuthServer, Flow, make_client
from tests.oauth.test_refresh import connection_of, live_refresh_tokens

REFRESHES = 50


def flow_on(instance: Instance, rt: Runtime, http: httpx.AsyncClient, client: ClientRecord) -> Flow:
    """The client's token endpoint calls, aimed at one instance."""
    return Flow(AuthServer(instance.live.base_url, instance.live.settings), rt, http, client)


async def test_concurrent_refreshes_across_instances_keep_one_chain(
    pair: Pair, rt: Runtime, http: httpx.AsyncClient
) -> None:
    client = (await make_client(rt, name="two-instance client")).record
    on_a, on_b = (flow_on(instance, rt, http, client) for instance in (pair.a, pair.b))
    first = await on_a.tokens()
    conn = await connection_of(on_a, first["access_token"])

    flows = [on_a, on_b] * (REFRESHES // 2)
    responses = await asyncio.gather(*(f.refresh(first["refresh_token"]) for f in flows))
    # One use rotates the token, one more is its grace retry; the rest are refused
    # (docs/security.md, "Why one grace retry, not a stream"), wherever they landed.
    assert sorted(r.status_code for r in responses) == [200] * 2 + [400] * (REFRESHES - 2), [
        r.text for r in responses if r.status_code not in (200, 400)
    ]
    assert {r.json()["error"] for r in responses if r.status_code == 400} == {"invalid_grant"}
    responses = [r for r in responses if r.status_code == 200]
    # Exactly one live refresh token: one chain, no fork, and no reuse revocation.
    [head] = await live_refresh_tokens(on_a, conn)
    assert head.token_hash in {sha256_hex(r.json()["refresh_token"]) for r in responses}
    async with rt.sessions() as s:
        chain = (
            await s.scalars(
                select(OAuthToken).where(OAuthToken.connection_id == conn, OAuthToken.kind == "refresh")
            )
        ).all()
        reuse_events = await s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.event == "security.refresh_token_reuse", AuditEvent.connection_id == conn)
        )
    successors = [t.replaced_by_id for t in chain if t.replaced_by_id is not None]
    assert len(chain) == 3 and len(set(successors)) == 2
    assert reuse_events == 0
    assert (await get_connection(rt.sessions, conn)).revoked_at is None
    head_token = next(r.json() for r in responses if sha256_hex(r.json()["refresh_token"]) == head.token_hash)
    assert (await on_b.refresh(head_token["refresh_token"])).status_code == 200


def test_failed_app_password_attempts_are_limited_on_every_instance(pair: Pair) -> None:
    good = pair.a.live.app_password(name="lockout")
    wrong = pair.a.live.basic_header("admin", "aic_ap_" + "x" * 32)
    instances = [pair.a, pair.b] * FAILURE_LIMIT
    statuses = [call(i.live, wrong, "whoami").status_code for i in instances[:FAILURE_LIMIT]]
    assert statuses == [401] * FAILURE_LIMIT  # split between A and B
    for instance in (pair.a, pair.b):
        assert call(instance.live, wrong, "whoami").status_code == 429
        # The limit is on failures only: a right application password is never refused.
        right = call(instance.live, instance.live.basic_header("admin", good), "whoami")
        assert right.status_code == 200, "the limit holds on both instances, but not for the right password"
