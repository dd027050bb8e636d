"""Post tools: filters, pagination, the publish-scope rule, ownership, scheduling and export."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from aiconnector.errors import InsufficientScope, InvalidInput, NotAllowed, NotFound
from tests.tools.conftest import Env

WRITE = {"content:read", "content:write"}
WRITE_PUBLISH = WRITE | {"content:publish"}


def _title() -> str:
    return f"Post {uuid.uuid4().hex[:8]}"


# --- list_posts -------------------------------------------------------------------------------


async def test_list_posts_filters_by_slug_username_and_me(env: Env) -> None:
    by_slug = await env.call("list_posts", {"category": "guides", "limit": 100})
    assert by_slug.items
    assert all(any(c.slug == "guides" for c in p.categories) for p in by_slug.items)

    guides = next(t for t in (await env.call("list_terms", {"limit": 100})).items if t.slug == "guides")
    by_id = await env.call("list_posts", {"category": str(guides.id), "limit": 100})
    assert [p.id for p in by_id.items] == [p.id for p in by_slug.items]

    tagged = await env.call("list_posts", {"tag": "espresso", "limit": 100})
    assert tagged.items and all(any(t.slug == "espresso" for t in p.tags) for p in tagged.items)

    arjun = await env.call("list_posts", {"author": "arjun", "limit": 100})
    assert arjun.items and {p.author.username for p in arjun.items} == {"arjun"}

    mine = await env.call("list_posts", {"author": "me", "status": ["draft"], "limit": 100}, role="author")
    assert mine.items and {p.author.username for p in mine.items} == {"arjun"}


async def test_list_posts_unknown_slug_is_a_helpful_error(env: Env) -> None:
    with pytest.raises(InvalidInput, match="No category with slug 'no-such-thing'"):
        await env.call("list_posts", {"category": "no-such-thing"})


async def test_list_posts_pages_through_everything_once(env: Env) -> None:
    everything = await env.call("list_posts", {"limit": 100})
    seen: list[int] = []
    cursor = None
    while True:
        page = await env.call("list_posts", {"limit": 3, "cursor": cursor})
        assert len(page.items) <= 3
        seen += [p.id for p in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [p.id for p in everything.items]
    assert len(seen) == len(set(seen)) > 3


async def test_list_posts_summaries_have_no_content(env: Env) -> None:
    page = await env.call("list_posts", {"limit": 1})
    assert "content" not in page.items[0].model_dump()


async def test_list_posts_dates_and_pages(env: Env) -> None:
    now = datetime.now(UTC)
    recent = await env.call("list_posts", {"after": (now - timedelta(days=30)).isoformat(), "limit": 100})
    assert all(p.date > now - timedelta(days=30) for p in recent.items)
    pages = await env.call("list_posts", {"type": "page", "parent_id": 0, "limit": 100})
    assert pages.items and all(p.type == "page" for p in pages.items)


def test_unknown_arguments_are_rejected(env: Env) -> None:
    tool = env.registry.get("list_posts")
    assert tool is not None
    with pytest.raises(ValidationError):
        tool.input_model.model_validate({"categroy": "guides"})
    with pytest.raises(ValidationError):
        tool.input_model.model_validate({"limit": 1000})


# --- get/create/update and the content:publish rule ------------------------------------------


async def test_create_then_get_returns_full_content(env: Env) -> None:
    created = await env.call(
        "create_post",
        {
            "title": _title(),
            "content": "<p>Hello <b>world</b></p>",
            "categories": ["guides"],
            "tags": ["espresso"],
        },
        role="author",
        scopes=WRITE,
    )
    assert created.status == "draft"
    assert [c.slug for c in created.categories] == ["guides"]
    got = await env.call("get_post", {"id": created.id}, role="author")
    assert got.content == "<p>Hello <b>world</b></p>"


@pytest.mark.parametrize("status", ["publish", "future", "private"])
async def test_create_with_public_status_needs_publish_scope(env: Env, status: str) -> None:
    args = {"title": _title(), "status": status}
    if status == "future":
        args["date"] = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    with pytest.raises(InsufficientScope) as info:
        await env.call("create_post", args, role="editor", scopes=WRITE)
    assert info.value.needed == "content:publish"
    assert "content:publish" in info.value.message
    created = await env.call("create_post", args, role="editor", scopes=WRITE_PUBLISH)
    assert created.status == status


async def test_update_status_publish_and_unpublish_need_publish_scope(env: Env) -> None:
    draft = await env.call("create_post", {"title": _title()}, role="author", scopes=WRITE)
    # Draft -> pending is not publishing.
    pending = await env.call(
        "update_post", {"id": draft.id, "status": "pending"}, role="author", scopes=WRITE
    )
    assert pending.status == "pending"
    with pytest.raises(InsufficientScope):
        await env.call("update_post", {"id": draft.id, "status": "publish"}, role="author", scopes=WRITE)
    published = await env.call(
        "update_post", {"id": draft.id, "status": "publish"}, role="author", scopes=WRITE_PUBLISH
    )
    assert published.status == "publish"
    # Editing a published post's text is writing; taking it back to draft is unpublishing.
    edited = await env.call("update_post", {"id": draft.id, "title": "Renamed"}, role="author", scopes=WRITE)
    assert edited.title == "Renamed"
    with pytest.raises(InsufficientScope):
        await env.call("update_post", {"id": draft.id, "status": "draft"}, role="author", scopes=WRITE)
    # Moving a public post's date to the future would take it off the site: that is scheduling.
    later = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    with pytest.raises(InsufficientScope, match="change the date"):
        await env.call("update_post", {"id": draft.id, "date": later}, role="author", scopes=WRITE)
    # A draft's date is just a field.
    other = await env.call("create_post", {"title": _title()}, role="author", scopes=WRITE)
    redated = await env.call("update_post", {"id": other.id, "date": later}, role="author", scopes=WRITE)
    assert redated.status == "draft"


async def test_contributor_writes_drafts_but_cannot_publish(env: Env) -> None:
    draft = await env.call("create_post", {"title": _title()}, role="contributor", scopes=WRITE)
    updated = await env.call("update_post", {"id": draft.id, "content": "<p>more</p>"}, role="contributor")
    assert updated.content == "<p>more</p>"
    with pytest.raises(NotAllowed, match="contributor"):
        await env.call("create_post", {"title": _title(), "status": "publish"}, role="contributor")
    with pytest.raises(NotAllowed):
        await env.call("publish_post", {"id": draft.id}, role="contributor")
    deleted = await env.call("delete_post", {"id": draft.id}, role="contributor")
    assert deleted.permanent is False and deleted.post.id == draft.id


async def test_author_owns_their_posts_only(env: Env) -> None:
    own = await env.call("create_post", {"title": _title()}, role="author")
    published = await env.call("publish_post", {"id": own.id}, role="author")
    assert published.status == "publish"
    other = await env.call("create_post", {"title": _title(), "status": "publish"}, role="editor")
    with pytest.raises(NotAllowed):
        await env.call("update_post", {"id": other.id, "title": "Mine now"}, role="author")
    trashed = await env.call("delete_post", {"id": own.id}, role="author")
    assert trashed.post.status == "publish" and not trashed.permanent


async def test_term_references_resolve_in_writes(env: Env) -> None:
    with pytest.raises(InvalidInput, match="tag"):
        await env.call("create_post", {"title": _title(), "tags": ["not-a-tag"]})


# --- publish_post ---------------------------------------------------------------------------


async def test_publish_schedule_and_unpublish(env: Env) -> None:
    draft = await env.call("create_post", {"title": _title()}, role="editor")
    when = datetime.now(UTC) + timedelta(days=2)
    scheduled = await env.call("publish_post", {"id": draft.id, "date": when.isoformat()}, role="editor")
    assert scheduled.status == "future"
    assert abs((scheduled.date - when).total_seconds()) < 1
    unscheduled = await env.call("publish_post", {"id": draft.id, "action": "unpublish"}, role="editor")
    assert unscheduled.status == "draft"
    now_published = await env.call("publish_post", {"id": draft.id}, role="editor")
    assert now_published.status == "publish"
    back = await env.call("publish_post", {"id": draft.id, "action": "unpublish"}, role="editor")
    assert back.status == "draft"


async def test_publish_rejects_date_with_unpublish(env: Env) -> None:
    draft = await env.call("create_post", {"title": _title()})
    with pytest.raises(InvalidInput, match="date"):
        await env.call(
            "publish_post", {"id": draft.id, "action": "unpublish", "date": "2030-01-01T00:00:00Z"}
        )


# --- delete_post ----------------------------------------------------------------------------


async def test_delete_trash_then_permanent(env: Env) -> None:
    post = await env.call("create_post", {"title": _title()})
    trashed = await env.call("delete_post", {"id": post.id})
    assert trashed.permanent is False
    assert (await env.call("get_post", {"id": post.id})).status == "trash"
    gone = await env.call("delete_post", {"id": post.id, "permanent": True})
    assert gone.permanent is True
    with pytest.raises(NotFound, match=f"Post {post.id} not found"):
        await env.call("get_post", {"id": post.id})


# --- export_posts ---------------------------------------------------------------------------


async def test_export_reports_progress_and_counts_what_the_actor_sees(env: Env) -> None:
    reports: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None = None, message: str | None = None) -> None:
        reports.append((done, total, message))

    admin_export = await env.call("export_posts", {"page_size": 5}, progress=progress)
    assert admin_export.count == len(admin_export.posts) > 5
    assert reports[0][0] == 0 and reports[-1][0] == admin_export.count == reports[-1][1]
    done = [r[0] for r in reports]
    assert done == sorted(done) and len(reports) >= admin_export.count // 5 + 1
    statuses = {p.status for p in admin_export.posts}
    assert {"publish", "draft", "future", "private"} <= statuses and "trash" not in statuses

    reader_export = await env.call("export_posts", {"page_size": 50}, role="subscriber")
    assert {p.status for p in reader_export.posts} == {"publish"}
    assert reader_export.count < admin_export.count


async def test_export_can_be_cancelled_in_flight(env: Env) -> None:
    reports: list[float] = []
    first = asyncio.Event()

    async def progress(done: float, total: float | None = None, message: str | None = None) -> None:
        reports.append(done)
        if done > 0:
            first.set()

    task = asyncio.create_task(env.call("export_posts", {"page_size": 1, "delay_ms": 500}, progress=progress))
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reports[-1] <= 2  # stopped long before the ~30 posts were done
