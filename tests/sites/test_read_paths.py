"""The built-in site's read paths stay cheap: one statement per call, built once per query shape.

Behaviour of the reads is covered in ``test_builtin.py``; these tests pin the properties that
keep them fast, so a refactoring that quietly brings back per-call SQL construction or extra
round trips fails here rather than only in a benchmark."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event

from aiconnector.sites import builtin
from aiconnector.sites.base import MediaQuery, PostQuery, TermQuery, UserQuery
from tests.sites.conftest import SiteCtx


async def _selects(ctx: SiteCtx, call: Callable[[], Awaitable[Any]]) -> list[str]:
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        statements.append(statement)

    event.listen(ctx.engine.sync_engine, "before_cursor_execute", record)
    try:
        await call()
    finally:
        event.remove(ctx.engine.sync_engine, "before_cursor_execute", record)
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")]


async def test_each_read_is_one_statement(ctx: SiteCtx) -> None:
    site, ed = ctx.site, ctx["ed"]
    first = await site.list_posts(ed, PostQuery(limit=3))
    post = first.items[0]
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "get_post": lambda: site.get_post(ed, post.id),
        "list_posts": lambda: site.list_posts(ed, PostQuery(limit=3, cursor=first.next_cursor)),
        "search": lambda: site.list_posts(ed, PostQuery(search="the", limit=10)),
        "get_user": lambda: site.get_user(ed, post.author.id),
        "list_users": lambda: site.list_users(ed, UserQuery()),
        "list_terms": lambda: site.list_terms(ed, TermQuery()),
        "list_media": lambda: site.list_media(ed, MediaQuery(mime_type="image/")),
        "site_info": lambda: site.site_info(ed),
    }
    for name, call in calls.items():
        assert len(await _selects(ctx, call)) == 1, name


async def test_post_list_statements_are_reused_per_shape(ctx: SiteCtx) -> None:
    ed, au, au2 = ctx["ed"], ctx["au"], ctx["au2"]
    query = PostQuery(search="coffee", limit=5)
    stmt, params = builtin._post_list_query(au, query)
    same_rights, other_params = builtin._post_list_query(au2, query)
    assert stmt is same_rights, "actors with the same rights share the statement"
    assert params["actor_id"] != other_params["actor_id"]
    assert builtin._post_list_query(ed, query)[0] is not stmt, "an editor's visibility is different SQL"
    assert builtin._post_list_query(au, PostQuery(search="tea", limit=7))[0] is stmt
