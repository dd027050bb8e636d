"""The refresh_token grant: rotation, narrowing, the grace window for concurrent refreshes and
theft detection when a rotated token comes back later."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from aiconnector.core.connections import get_connection
from aiconnector.core.tokens import verify_access_token
from aiconnector.db.models import AuditEvent, OAuthToken, utcnow
from aiconnector.security import sha256_hex
from tests.oauth.conftest import Flow


async def connection_of(flow: Flow, access_token: str) -> str:
    verified = await verify_access_token(
        flow.rt.sessions, access_token, resource=flow.server.settings.mcp_url
    )
    assert verified is not None
    return verified[0].connection_id


async def live_refresh_tokens(flow: Flow, connection_id: str) -> list[OAuthToken]:
    async with flow.rt.sessions() as s:
        return list(
            (
                await s.scalars(
                    select(OAuthToken).where(
                        OAuthToken.connection_id == connection_id,
                        OAuthToken.kind == "refresh",
                        OAuthToken.rotated_at.is_(None),
                        OAuthToken.revoked_at.is_(None),
                    )
                )
            ).all()
        )


async def age_rotation(flow: Flow, refresh_token: str, seconds: int) -> None:
    async with flow.rt.sessions.begin() as s:
        await s.execute(
            update(OAuthToken)
            .where(OAuthToken.token_hash == sha256_hex(refresh_token))
            .values(rotated_at=utcnow() - timedelta(seconds=seconds))
        )


async def test_refresh_rotates(flow: Flow) -> None:
    first = await flow.tokens()
    response = await flow.refresh(first["refresh_token"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert (
        second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    )
    conn = await connection_of(flow, second["access_token"])
    assert conn == await connection_of(flow, first["access_token"])  # same connection
    heads = await live_refresh_tokens(flow, conn)
    assert [h.token_hash for h in heads] == [sha256_hex(second["refresh_token"])]
    third = await flow.refresh(second["refresh_token"])
    assert third.status_code == 200


async def test_refresh_may_narrow_but_never_widen(flow: Flow) -> None:
    first = await flow.tokens(scopes=frozenset({"content:read", "content:write"}))
    narrowed = await flow.refresh(first["refresh_token"], scope="content:read")
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "content:read"
    # The refresh token keeps the full grant (RFC 6749 §6): the next refresh may ask for it again.
    again = await flow.refresh(narrowed.json()["refresh_token"], scope="content:read content:write")
    assert again.status_code == 200 and again.json()["scope"] == "content:read content:write"
    wider = await flow.refresh(again.json()["refresh_token"], scope="content:read site:admin")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    unknown = await flow.refresh(again.json()["refresh_token"], scope="offline_access")
    assert unknown.json()["error"] == "invalid_scope"
    # The failed attempts did not consume the token.
    assert (await flow.refresh(again.json()["refresh_token"])).status_code == 200


async def test_reuse_after_grace_revokes_the_connection(flow: Flow) -> None:
    first = await flow.tokens()
    second = (await flow.refresh(first["refresh_token"])).json()
    conn = await connection_of(flow, second["access_token"])
    await age_rotation(flow, first["refresh_token"], flow.server.settings.refresh_token_grace_seconds + 1)
    reused = await flow.refresh(first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    record = await get_connection(flow.rt.sessions, conn)
    assert record.revoked_at is not None and record.revoke_reason == "refresh token reused after rotation"
    # Everything of the connection is dead, including the legitimate successor.
    assert (await flow.refresh(second["refresh_token"])).json()["error"] == "invalid_grant"
    settings = flow.server.settings
    assert (
        await verify_access_token(flow.rt.sessions, second["access_token"], resource=settings.mcp_url) is None
    )
    async with flow.rt.sessions() as s:
        event = await s.scalar(
            select(AuditEvent).where(
                AuditEvent.event == "security.refresh_token_reuse", AuditEvent.connection_id == conn
            )
        )
    assert event is not None and event.outcome == "failure"


async def test_reuse_within_grace_continues_the_same_chain(flow: Flow) -> None:
    first = await flow.tokens()
    second = (await flow.refresh(first["refresh_token"])).json()
    retry = await flow.refresh(first["refresh_token"])  # e.g. the first response was lost
    assert retry.status_code == 200, retry.text
    third = retry.json()
    conn = await connection_of(flow, second["access_token"])
    assert await connection_of(flow, third["access_token"]) == conn
    # One chain: the retry's token is now the head; the one it displaced is rotated (in grace).
    heads = await live_refresh_tokens(flow, conn)
    assert [h.token_hash for h in heads] == [sha256_hex(third["refresh_token"])]
    assert (await get_connection(flow.rt.sessions, conn)).revoked_at is None
    assert (await flow.refresh(third["refresh_token"])).status_code == 200


async def test_twenty_concurrent_refreshes_keep_one_chain(flow: Flow) -> None:
    """One use rotates, one more within the grace window takes its unused successor's place;
    the other 18 are refused without revoking anything, and the chain stays one line."""
    first = await flow.tokens()
    conn = await connection_of(flow, first["access_token"])
    responses = await asyncio.gather(*(flow.refresh(first["refresh_token"]) for _ in range(20)))
    assert sorted(r.status_code for r in responses) == [200] * 2 + [400] * 18, [r.text for r in responses]
    assert {r.json()["error"] for r in responses if r.status_code == 400} == {"invalid_grant"}
    bodies = [r.json() for r in responses if r.status_code == 200]
    assert len({b["refresh_token"] for b in bodies}) == 2
    for body in bodies:
        assert await connection_of(flow, body["access_token"]) == conn
    heads = await live_refresh_tokens(flow, conn)
    assert len(heads) == 1
    head = next(b for b in bodies if sha256_hex(b["refresh_token"]) == heads[0].token_hash)
    # The chain is a single line: every refresh token of the connection but the head was
    # replaced by exactly one successor, and no token is anyone else's successor twice.
    async with flow.rt.sessions() as s:
        chain = (
            await s.scalars(
                select(OAuthToken).where(OAuthToken.connection_id == conn, OAuthToken.kind == "refresh")
            )
        ).all()
    successors = [t.replaced_by_id for t in chain if t.replaced_by_id is not None]
    assert len(chain) == 3 and len(successors) == 2 and len(set(successors)) == 2
    assert (await flow.refresh(head["refresh_token"])).status_code == 200
    assert (await get_connection(flow.rt.sessions, conn)).revoked_at is None


async def test_refresh_token_is_bound_to_client_and_resource(flow: Flow, confidential_flow: Flow) -> None:
    tokens = await flow.tokens()
    stolen = await confidential_flow.refresh(tokens["refresh_token"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    other = await flow.refresh(tokens["refresh_token"], resource="https://other.example/mcp")
    assert other.json()["error"] == "invalid_target"
    assert (
        await flow.refresh(tokens["refresh_token"], resource=flow.server.settings.mcp_url)
    ).status_code == 200


async def test_access_token_is_not_a_refresh_token(flow: Flow) -> None:
    tokens = await flow.tokens()
    response = await flow.refresh(tokens["access_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert (await flow.refresh("aic_rt_unknown")).json()["error"] == "invalid_grant"


async def test_expired_refresh_token_is_refused(flow: Flow) -> None:
    tokens = await flow.tokens()
    async with flow.rt.sessions.begin() as s:
        await s.execute(
            update(OAuthToken)
            .where(OAuthToken.token_hash == sha256_hex(tokens["refresh_token"]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert (await flow.refresh(tokens["refresh_token"])).json()["error"] == "invalid_grant"


async def test_revoked_connection_cannot_refresh(flow: Flow) -> None:
    from aiconnector.core.connections import revoke_connection

    tokens = await flow.tokens()
    await revoke_connection(
        flow.rt.sessions, await connection_of(flow, tokens["access_token"]), audit=flow.rt.audit
    )
    assert (await flow.refresh(tokens["refresh_token"])).json()["error"] == "invalid_grant"
