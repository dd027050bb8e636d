"""Migration 0007 gives existing media their random URL key and rewrites the links that post
content already holds, so published pages keep their images after the upgrade."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command

from aiconnector.db import migrate
from aiconnector.db.engine import create_engine
from tests.support import DatabaseUnderTest

BEFORE = "0006"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def upgrade_to(engine: sa.ext.asyncio.AsyncEngine, revision: str) -> None:
    def run(connection: sa.Connection) -> None:
        cfg = migrate.alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def test_existing_media_get_tokens_and_their_links_follow(database: DatabaseUnderTest) -> None:
    engine = create_engine(database.url)
    try:
        await upgrade_to(engine, BEFORE)
        content = (
            '<img src="http://127.0.0.1:8000/media/1/photo.png"> <a href="/media/2/notes.txt">notes</a> '
            '<img src="/media/1/other-name.png"> <img src="/media/99/photo.png">'
        )
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO users (id, username, email, display_name, role, created_at) "
                    "VALUES (1, 'u', '', '', 'administrator', :now)"
                ),
                {"now": NOW},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO posts (id, type, title, slug, content, excerpt, status, author_id, "
                    "comment_status, menu_order, created_at, date, modified_at) VALUES "
                    "(1, 'post', 't', 't', :content, '', 'publish', 1, 'open', 0, :now, :now, :now)"
                ),
                {"content": content, "now": NOW},
            )
            for media_id, filename in ((1, "photo.png"), (2, "notes.txt")):
                await conn.execute(
                    sa.text(
                        "INSERT INTO media (id, title, filename, mime_type, size, alt_text, caption, "
                        "author_id, post_id, created_at) "
                        "VALUES (:id, '', :filename, 'image/png', 1, '', '', 1, 1, :now)"
                    ),
                    {"id": media_id, "filename": filename, "now": NOW},
                )
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            tokens = dict((await conn.execute(sa.text("SELECT id, public_token FROM media"))).all())
            rewritten = (await conn.execute(sa.text("SELECT content FROM posts WHERE id = 1"))).scalar_one()
        assert len(set(tokens.values())) == 2 and all(len(t) >= 22 for t in tokens.values())
        assert rewritten == (
            f'<img src="http://127.0.0.1:8000/media/{tokens[1]}/photo.png"> '
            f'<a href="/media/{tokens[2]}/notes.txt">notes</a> '
            '<img src="/media/1/other-name.png"> <img src="/media/99/photo.png">'
        ), "only links naming an existing file by id and name are rewritten"
    finally:
        await engine.dispose()
