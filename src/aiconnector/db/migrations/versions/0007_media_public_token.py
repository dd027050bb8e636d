"""media get an unguessable public token; their URLs become /media/<token>/<filename>

Every existing file gets a token, and post content that links a file by its old sequential
URL (``/media/<id>/<filename>``, exactly as the site generated it) is rewritten to the new
one, so published pages keep their images. Old URLs stop working: counting ids no longer
finds files.

Revision ID: 0007
Revises: 0006
"""

import re
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_OLD_URL = re.compile(r"/media/(\d+)/([A-Za-z0-9._-]+)")


def upgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.add_column(sa.Column("public_token", sa.String(length=32), nullable=True))
    conn = op.get_bind()
    media = sa.table("media", sa.column("id", sa.Integer), sa.column("filename"), sa.column("public_token"))
    tokens: dict[tuple[str, str], str] = {}
    for media_id, filename in conn.execute(sa.select(media.c.id, media.c.filename)).all():
        token = secrets.token_urlsafe(16)
        conn.execute(media.update().where(media.c.id == media_id).values(public_token=token))
        tokens[(str(media_id), filename)] = token
    if tokens:
        _rewrite_links(conn, tokens)
    with op.batch_alter_table("media") as batch:
        batch.alter_column("public_token", existing_type=sa.String(length=32), nullable=False)
        batch.create_unique_constraint(batch.f("uq_media_public_token"), ["public_token"])


def _rewrite_links(conn: sa.Connection, tokens: dict[tuple[str, str], str]) -> None:
    """``/media/<id>/<filename>`` -> ``/media/<token>/<filename>`` in post content, only where
    both the id and the file name are those of an existing file."""
    posts = sa.table("posts", sa.column("id", sa.Integer), sa.column("content"))

    def new_url(match: re.Match[str]) -> str:
        token = tokens.get((match.group(1), match.group(2)))
        return match.group(0) if token is None else f"/media/{token}/{match.group(2)}"

    linked = sa.select(posts.c.id, posts.c.content).where(posts.c.content.like("%/media/%"))
    for post_id, content in conn.execute(linked).all():
        rewritten = _OLD_URL.sub(new_url, content)
        if rewritten != content:
            conn.execute(posts.update().where(posts.c.id == post_id).values(content=rewritten))


def downgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.drop_constraint(batch.f("uq_media_public_token"), type_="unique")
        batch.drop_column("public_token")
