"""The refresh grace window allows one retry, and reuse detection is one transaction (security
review, issue 12 finding 12), on both databases.

* A rotated refresh token works once more within the grace window (a lost response, two
  processes sharing a file), and only while its successor is unused; after that it is refused
  without revoking anything. It was accepted any number of times, so whoever copied it could
  mint pairs for the whole window.
* Reuse after the window is found, the connection revoked and both audit events
  (``security.refresh_token_reuse``, ``connection.revoked``) written in one transaction: when
  the revoke cannot be written, nothing is — there is never a security event claiming a revoke
  that did not happen."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from aiconnector.core.connections import get_connection
from aiconnector.core.refresh import refresh_token_grant
from aiconnector.db.models import AuditEvent
from aiconnector.errors import OAuthError
from aiconnector.security import sha256_hex
from tests.oauth.conftest import Flow
from tests.oauth.test_refresh import age_rotation, connection_of, live_refresh_tokens

REUSE = "security.refresh_token_reuse"


async def test_a_rotated_token_works_once_more_within_the_grace_window(flow: Flow) -> None:
    first = await flow.tokens()
    second = await flow.refresh(first["refresh_token"])
    retry = await flow.refresh(first["refresh_token"])  # the first answer was lost
    assert second.status_code == 200 and retry.status_code == 200, retry.text
    conn = await connection_of(flow, retry.json()["access_token"])
    for _ in range(3):  # a copy of the token is not a source of further pairs
        again = await flow.refresh(first["refresh_token"])
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text
    # Refused, not treated as theft: the connection and the retry's chain live on.
    assert (await get_connection(flow.rt.sessions, conn)).revoked_at is None
    heads = await live_refresh_tokens(flow, conn)
    assert [h.token_hash for h in heads] == [sha256_hex(retry.json()["refresh_token"])]
    assert (await flow.refresh(retry.json()["refresh_token"])).status_code == 200


def _failing_revoke_trigger(dialect: str, connection_id: str) -> tuple[list[str], list[str]]:
    """SQL that makes revoking this one connection fail, and SQL that removes it again."""
    if dialect == "sqlite":
        return (
            [
                "CREATE TRIGGER aic_test_fail_revoke BEFORE UPDATE OF revoked_at ON connections "
                f"WHEN NEW.id = '{connection_id}' AND NEW.revoked_at IS NOT NULL "
                "BEGIN SELECT RAISE(ABORT, 'injected revoke failure'); END"
            ],
            ["DROP TRIGGER aic_test_fail_revoke"],
        )
    return (
        [
            "CREATE OR REPLACE FUNCTION aic_test_fail_revoke() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'injected revoke failure'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER aic_test_fail_revoke BEFORE UPDATE ON connections FOR EACH ROW "
            f"WHEN (NEW.id = '{connection_id}' AND NEW.revoked_at IS NOT NULL) "
            "EXECUTE FUNCTION aic_test_fail_revoke()",
        ],
        ["DROP TRIGGER aic_test_fail_revoke ON connections", "DROP FUNCTION aic_test_fail_revoke()"],
    )


async def _run(flow: Flow, statements: list[str]) -> None:
    async with flow.rt.sessions.begin() as session:
        for statement in statements:
            await session.execute(text(statement))


async def _events(flow: Flow, conn: str) -> list[str]:
    async with flow.rt.sessions() as session:
        return sorted(
            (
                await session.scalars(
                    select(AuditEvent.event).where(
                        AuditEvent.connection_id == conn, AuditEvent.event.in_([REUSE, "connection.revoked"])
                    )
                )
            ).all()
        )


async def test_reuse_detection_revoke_and_audit_commit_together(flow: Flow) -> None:
    first = await flow.tokens()
    second = (await flow.refresh(first["refresh_token"])).json()
    conn = await connection_of(flow, second["access_token"])
    settings = flow.server.settings
    await age_rotation(flow, first["refresh_token"], settings.refresh_token_grace_seconds + 1)
    dialect = flow.rt.engine.dialect.name
    install, remove = _failing_revoke_trigger(dialect, conn)
    await _run(flow, install)
    try:
        try:
            await refresh_token_grant(
                flow.rt.sessions,
                refresh_token=first["refresh_token"],
                client=flow.client,
                scope=None,
                resource=None,
                settings=settings,
                audit=flow.rt.audit,
                bus=flow.rt.bus,
            )
        except DBAPIError as exc:
            assert "injected revoke failure" in str(exc)
        else:
            raise AssertionError("the injected failure did not stop the revoke")
    finally:
        await _run(flow, remove)
    # The revoke failed, so nothing of the detection was committed either.
    assert await _events(flow, conn) == []
    assert (await get_connection(flow.rt.sessions, conn)).revoked_at is None

    reused = await flow.refresh(first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert await _events(flow, conn) == ["connection.revoked", REUSE]
    record = await get_connection(flow.rt.sessions, conn)
    assert record.revoked_at is not None and record.revoke_reason == "refresh token reused after rotation"
    if dialect == "postgresql":  # one transaction wrote the revoke and both events
        async with flow.rt.sessions() as session:
            writers = set(
                (
                    await session.scalars(
                        text(
                            "SELECT xmin::text FROM connections WHERE id = :c UNION ALL "
                            "SELECT xmin::text FROM audit_events WHERE connection_id = :c "
                            "AND event IN ('connection.revoked', :reuse)"
                        ),
                        {"c": conn, "reuse": REUSE},
                    )
                ).all()
            )
        assert len(writers) == 1, writers
    try:
        await refresh_token_grant(
            flow.rt.sessions,
            refresh_token=second["refresh_token"],
            client=flow.client,
            scope=None,
            resource=None,
            settings=settings,
            audit=flow.rt.audit,
            bus=flow.rt.bus,
        )
    except OAuthError as exc:
        assert exc.error == "invalid_grant"  # the whole chain ended with the connection
    else:
        raise AssertionError("the legitimate successor still refreshed after the reuse")
