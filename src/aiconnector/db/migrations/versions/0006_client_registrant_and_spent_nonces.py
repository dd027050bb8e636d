"""clients remember who registered them; consent forms are single use

``oauth_clients.registered_by`` names the person who registered a client on the Add Connection
page. Only an administrator's client is the site owner's ("pre-registered"); anyone else's is
``user_registered``: labelled with their name on the consent screen and removed when unused,
like a dynamic client. Clients that non-administrators registered before this revision (found
through their ``client.registered`` audit events, ``via: admin``) are relabelled so.

``spent_nonces`` holds the nonces of consent forms already posted, until the form would have
expired anyway, so one consent page cannot mint a second code.

Revision ID: 0006
Revises: 0005
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Settings.dynamic_client_ttl_seconds's default: relabelled clients get the time a new one gets.
_UNUSED_CLIENT_TTL = timedelta(days=7)


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(sa.Column("registered_by", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_oauth_clients_registered_by_users"),
            "users",
            ["registered_by"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_table(
        "spent_nonces",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_spent_nonces")),
    )
    with op.batch_alter_table("spent_nonces") as batch:
        batch.create_index(batch.f("ix_spent_nonces_expires_at"), ["expires_at"], unique=False)
    _relabel_clients_of_non_administrators()


def _relabel_clients_of_non_administrators() -> None:
    conn = op.get_bind()
    events = sa.table(
        "audit_events", sa.column("event"), sa.column("user_id", sa.Integer), sa.column("detail", sa.JSON)
    )
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("role"))
    clients = sa.table(
        "oauth_clients",
        sa.column("client_id"),
        sa.column("kind"),
        sa.column("registered_by", sa.Integer),
        sa.column("expires_at", sa.DateTime(timezone=True)),
    )
    rows = conn.execute(
        sa.select(events.c.user_id, events.c.detail, users.c.role)
        .join(users, users.c.id == events.c.user_id)
        .where(events.c.event == "client.registered")
    ).all()
    expires = datetime.now(UTC) + _UNUSED_CLIENT_TTL
    for user_id, detail, role in rows:
        if not isinstance(detail, dict) or detail.get("via") != "admin" or role == "administrator":
            continue
        conn.execute(
            clients.update()
            .where(
                clients.c.client_id == detail.get("client_id"),
                clients.c.kind.in_(("pre_registered", "device")),
            )
            .values(kind="user_registered", registered_by=user_id, expires_at=expires)
        )


def downgrade() -> None:
    conn = op.get_bind()
    clients = sa.table(
        "oauth_clients", sa.column("client_id"), sa.column("kind"), sa.column("grant_types", sa.JSON)
    )
    for client_id, grants in conn.execute(
        sa.select(clients.c.client_id, clients.c.grant_types).where(clients.c.kind == "user_registered")
    ).all():
        kind = "pre_registered" if "authorization_code" in (grants or ()) else "device"
        conn.execute(clients.update().where(clients.c.client_id == client_id).values(kind=kind))
    with op.batch_alter_table("spent_nonces") as batch:
        batch.drop_index(batch.f("ix_spent_nonces_expires_at"))
    op.drop_table("spent_nonces")
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_constraint(op.f("fk_oauth_clients_registered_by_users"), type_="foreignkey")
        batch.drop_column("registered_by")
