"""Migration 0006 relabels clients that non-administrators registered on the Add Connection
page before it: they were stored as the site owner's (``pre_registered``/``device``) and are
now ``user_registered``, with who registered them and an expiry. On each database."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from aiconnector.db import migrate
from aiconnector.db.engine import create_engine
from tests.support import DatabaseUnderTest

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _upgrade_to(connection: Connection, revision: str) -> None:
    cfg = migrate.alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _seed_at_0005(connection: Connection) -> None:
    users = sa.table(
        "users", sa.column("id"), sa.column("username"), sa.column("email"), sa.column("display_name"),
        sa.column("role"), sa.column("created_at"),
    )  # fmt: skip
    connection.execute(
        users.insert(),
        [
            {
                "id": 1,
                "username": "boss",
                "email": "",
                "display_name": "",
                "role": "administrator",
                "created_at": NOW,
            },
            {
                "id": 2,
                "username": "sub",
                "email": "",
                "display_name": "",
                "role": "subscriber",
                "created_at": NOW,
            },
        ],
    )
    clients = sa.table(
        "oauth_clients", sa.column("client_id"), sa.column("kind"), sa.column("name"),
        sa.column("redirect_uris", sa.JSON), sa.column("grant_types", sa.JSON),
        sa.column("token_endpoint_auth_method"), sa.column("document", sa.JSON), sa.column("created_at"),
    )  # fmt: skip
    rows = [
        ("app_sub", "pre_registered", 2),
        ("app_sub_device", "device", 2),
        ("app_boss", "pre_registered", 1),
    ]
    for client_id, kind, _ in rows:
        connection.execute(
            clients.insert().values(
                client_id=client_id,
                kind=kind,
                name=client_id,
                redirect_uris=[],
                grant_types=[],
                token_endpoint_auth_method="none",
                document={},
                created_at=NOW,
            )  # fmt: skip
        )
    connection.execute(clients.insert().values(
        client_id="app_cli", kind="pre_registered", name="cli", redirect_uris=[], grant_types=[],
        token_endpoint_auth_method="none", document={}, created_at=NOW,
    ))  # fmt: skip
    events = sa.table(
        "audit_events", sa.column("at"), sa.column("event"), sa.column("outcome"), sa.column("user_id"),
        sa.column("detail", sa.JSON),
    )  # fmt: skip
    for client_id, kind, user_id in rows:
        connection.execute(events.insert().values(
            at=NOW, event="client.registered", outcome="success", user_id=user_id,
            detail={"client_id": client_id, "kind": kind, "via": "admin"},
        ))  # fmt: skip
    connection.execute(events.insert().values(
        at=NOW, event="client.registered", outcome="success", user_id=None, detail={"client_id": "app_cli"},
    ))  # fmt: skip


async def test_clients_registered_by_non_administrators_are_relabelled(database: DatabaseUnderTest) -> None:
    engine = create_engine(database.url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "0005")
            await conn.run_sync(_seed_at_0005)
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text(
                        "SELECT client_id, kind, registered_by, expires_at FROM oauth_clients"
                        " ORDER BY client_id"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    found = {r[0]: (r[1], r[2], r[3] is not None) for r in rows}
    assert found == {
        "app_boss": ("pre_registered", None, False),
        "app_cli": ("pre_registered", None, False),
        "app_sub": ("user_registered", 2, True),
        "app_sub_device": ("user_registered", 2, True),
    }
