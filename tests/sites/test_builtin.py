"""The built-in site against a real database (SQLite always, PostgreSQL when configured).

Expected outcomes are written out as tables of WordPress behaviour rather than derived from
the implementation, so a wrong capability mapping fails here instead of agreeing with itself."""

from __future__ import annotations

import base64
import struct
import zlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select

from aiconnector.core.principal import Actor
from aiconnector.db import models as m
from aiconnector.errors import Conflict, InvalidInput, NotAllowed, NotFound
from aiconnector.sites.base import (
    CommentQuery,
    MediaItem,
    MediaPatch,
    MediaQuery,
    MediaUpload,
    PostInput,
    PostPatch,
    PostQuery,
    SiteBackend,
    TermInput,
    TermPatch,
    TermQuery,
    UserQuery,
)
from aiconnector.sites.builtin import BuiltinSite, sanitize_filename, slugify
from aiconnector.sites.cursor import decode_cursor, encode_cursor
from aiconnector.sites.demo import (
    DEMO_CATEGORIES,
    DEMO_IMAGES,
    DEMO_PAGES,
    DEMO_POSTS,
    DEMO_TAGS,
    DEMO_THREADS,
    make_png,
    seed_demo_content,
)
from tests.sites.conftest import PUBLIC_URL, SiteCtx

ROLES = ("admin", "ed", "au", "co", "sub")  # one test user per role
ALL_STATUSES = ["draft", "pending", "publish", "future", "private", "trash"]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = b"%PDF-1.7\n%..."

# Who may read someone else's post in each status (WordPress: edit_others_posts for
# unpublished work, read_private_posts for private).
SEES_OTHERS: dict[str, set[str]] = {
    "publish": set(ROLES),
    "draft": {"admin", "ed"},
    "pending": {"admin", "ed"},
    "future": {"admin", "ed"},
    "private": {"admin", "ed"},
    "trash": {"admin", "ed"},
}


def url_key(item: MediaItem) -> str:
    """The key in a media URL (``/media/<key>/<filename>``): what ``media_bytes`` takes."""
    return item.url.rsplit("/", 2)[-2]


def future(days: int = 3) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


async def post_by_status(ctx: SiteCtx, author: str, status: str) -> int:
    """Create (directly in the database) a post by ``author`` in ``status``; return its id."""
    async with ctx.sessions.begin() as s:
        now = datetime.now(UTC)
        row = m.Post(
            type="post",
            title=f"{status} by {author}",
            slug=f"{status}-by-{author}-{now.timestamp()}",
            status=status,
            author_id=ctx[author].user_id,
            date=future() if status == "future" else now,
            trashed_from="draft" if status == "trash" else None,
        )
        s.add(row)
        await s.flush()
        return row.id


async def demo_post_id(ctx: SiteCtx, slug: str, post_type: str = "post") -> int:
    async with ctx.sessions() as s:
        post_id = await s.scalar(select(m.Post.id).where(m.Post.slug == slug, m.Post.type == post_type))
    assert post_id is not None, slug
    return post_id


async def count(ctx: SiteCtx, model: type[m.Base], *where: object) -> int:
    async with ctx.sessions() as s:
        return await s.scalar(select(func.count()).select_from(model).where(*where))  # type: ignore[arg-type]


async def walk(fetch, limit: int) -> tuple[list[int], int]:  # noqa: ANN001 - any list method
    """Follow cursors to the end; return all ids in order and the number of pages."""
    ids: list[int] = []
    cursor, pages = None, 0
    while True:
        page = await fetch(limit, cursor)
        pages += 1
        ids.extend(item.id for item in page.items)
        assert len(page.items) <= limit
        if page.next_cursor is None:
            return ids, pages
        assert page.items, "a next cursor after an empty page"
        cursor = page.next_cursor


# --- protocol and site -------------------------------------------------------------------------


async def test_implements_protocol(ctx: SiteCtx) -> None:
    assert isinstance(ctx.site, SiteBackend)


async def test_site_info_counts_published_content(ctx: SiteCtx) -> None:
    info = await ctx.site.site_info(ctx["sub"])
    assert info.name == "Lantern Coffee Roasters"
    assert info.description.startswith("Small-batch coffee")
    assert info.backend == "builtin"
    assert info.url == PUBLIC_URL + "/"
    assert info.post_count == sum(p.status == "publish" for p in DEMO_POSTS)
    assert info.page_count == sum(p.status == "publish" for p in DEMO_PAGES)


async def test_site_name_falls_back_to_constructor(ctx: SiteCtx) -> None:
    async with ctx.sessions.begin() as s:
        await s.execute(m.SiteOption.__table__.delete())
    assert (await ctx.site.site_info(ctx["sub"])).name == "Test site"


# --- demo content ------------------------------------------------------------------------------


def parse_png(data: bytes) -> tuple[int, int, bytes]:
    """Validate a PNG's signature, chunk CRCs and pixel data size; return width, height, pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, _ in chunks][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour) == (8, 2)
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(pixels) == height * (1 + 3 * width)
    return width, height, pixels


async def test_demo_content_shape(ctx: SiteCtx) -> None:
    assert len(DEMO_POSTS) >= 24 and len(DEMO_PAGES) >= 4 and len(DEMO_IMAGES) >= 4
    assert await count(ctx, m.Post, m.Post.type == "post") == len(DEMO_POSTS)
    assert await count(ctx, m.Post, m.Post.type == "page") == len(DEMO_PAGES)
    async with ctx.sessions() as s:
        statuses = set((await s.scalars(select(m.Post.status).where(m.Post.type == "post"))).all())
        comment_statuses = set((await s.scalars(select(m.Comment.status))).all())
        replies = await s.scalar(select(func.count()).where(m.Comment.parent_id.is_not(None)))
        featured = await s.scalar(select(func.count()).where(m.Post.featured_media_id.is_not(None)))
        child_pages = await s.scalar(
            select(func.count()).where(m.Post.type == "page", m.Post.parent_id.is_not(None))
        )
        nested = await s.scalar(select(func.count()).where(m.Term.parent_id.is_not(None)))
        authors = set(
            (await s.scalars(select(m.User.username).join(m.Post, m.Post.author_id == m.User.id))).all()
        )
        roles = dict((await s.execute(select(m.User.username, m.User.role))).all())
    assert statuses == {"publish", "draft", "pending", "future", "private"}
    assert comment_statuses == {"approved", "hold", "spam", "trash"}
    assert await count(ctx, m.Comment) == sum(len(t.comments) for t in DEMO_THREADS)
    assert replies >= 5 and featured >= 4 and child_pages >= 1 and nested >= 2
    assert {"emma", "arjun", "lena", "carlos", "admin"} <= authors
    assert {k: roles[k] for k in ("emma", "arjun", "lena", "carlos", "sam")} == {
        "emma": "editor",
        "arjun": "author",
        "lena": "author",
        "carlos": "contributor",
        "sam": "subscriber",
    }
    assert await count(ctx, m.Term, m.Term.taxonomy == "category") == len(DEMO_CATEGORIES)
    assert await count(ctx, m.Term, m.Term.taxonomy == "post_tag") == len(DEMO_TAGS) >= 10


async def test_demo_future_posts_are_in_the_future(ctx: SiteCtx) -> None:
    posts = await ctx.site.list_posts(ctx["admin"], PostQuery(status=["future"], limit=50))
    assert posts.items and all(p.date > datetime.now(UTC) for p in posts.items)
    published = await ctx.site.list_posts(ctx["admin"], PostQuery(limit=50))
    assert all(p.date < datetime.now(UTC) for p in published.items)


async def test_demo_images_are_valid_pngs(ctx: SiteCtx) -> None:
    media = await ctx.site.list_media(ctx["sub"], MediaQuery(mime_type="image/png", limit=50))
    assert len(media.items) == len(DEMO_IMAGES)
    for item in media.items:
        file = await ctx.site.media_bytes(url_key(item))
        width, height, pixels = parse_png(file.data)
        assert (width, height) == (320, 180)
        assert len(set(pixels)) > 20, "an image that is not a single flat colour"
        assert item.size == len(file.data)
        assert item.url == f"{PUBLIC_URL}/media/{url_key(item)}/{item.filename}"
        assert len(url_key(item)) >= 22, "the URL's key is random (128 bits), not the id"


def test_make_png_roundtrip() -> None:
    data = make_png(3, 2, lambda x, y: (x * 10, y * 20, 255))
    width, height, pixels = parse_png(data)
    assert (width, height) == (3, 2)
    assert pixels[:10] == bytes([0, 0, 0, 255, 10, 0, 255, 20, 0, 255])


async def test_seed_is_idempotent(ctx: SiteCtx) -> None:
    before = await count(ctx, m.Post)
    assert await seed_demo_content(ctx.sessions, admin_user_id=ctx["admin"].user_id) is False
    assert await count(ctx, m.Post) == before


async def test_seed_reuses_existing_usernames_and_is_deterministic(sessions) -> None:  # noqa: ANN001
    async with sessions.begin() as s:
        s.add_all([m.User(username="root", role="administrator"), m.User(username="emma", role="author")])
    async with sessions() as s:
        root = await s.scalar(select(m.User.id).where(m.User.username == "root"))
    assert await seed_demo_content(sessions, admin_user_id=root)
    async with sessions() as s:
        assert await s.scalar(select(func.count()).where(m.User.username == "emma")) == 1
        titles = (await s.scalars(select(m.Post.title).order_by(m.Post.id))).all()
    assert list(titles) == [p.title for p in DEMO_POSTS] + [p.title for p in DEMO_PAGES]


# --- post visibility ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", ALL_STATUSES)
@pytest.mark.parametrize("reader", ROLES)
async def test_visibility_of_others_posts(ctx: SiteCtx, reader: str, status: str) -> None:
    post_id = await post_by_status(ctx, "au2", status)
    expected = reader in SEES_OTHERS[status]
    if expected:
        assert (await ctx.site.get_post(ctx[reader], post_id)).status == status
    else:
        with pytest.raises(NotFound):
            await ctx.site.get_post(ctx[reader], post_id)
    listed = await ctx.site.list_posts(
        ctx[reader], PostQuery(status=ALL_STATUSES, author_id=ctx["au2"].user_id)
    )
    assert (post_id in [p.id for p in listed.items]) is expected


@pytest.mark.parametrize("status", ALL_STATUSES)
@pytest.mark.parametrize("author", ["co", "au"])
async def test_authors_see_their_own_posts_in_every_status(ctx: SiteCtx, author: str, status: str) -> None:
    post_id = await post_by_status(ctx, author, status)
    assert (await ctx.site.get_post(ctx[author], post_id)).id == post_id


async def test_list_defaults_to_published_and_filters_requested_statuses(ctx: SiteCtx) -> None:
    site = ctx.site
    default = await site.list_posts(ctx["ed"], PostQuery(limit=100))
    assert {p.status for p in default.items} == {"publish"}
    carlos = ctx["carlos"]
    drafts = await site.list_posts(carlos, PostQuery(status=["draft", "pending"], limit=100))
    assert drafts.items, "carlos has a draft and a pending post"
    assert {p.author.username for p in drafts.items} == {"carlos"}
    everyone = await site.list_posts(ctx["ed"], PostQuery(status=["draft", "pending"], limit=100))
    assert {p.author.username for p in everyone.items} > {"carlos"}
    assert (await site.list_posts(ctx["sub"], PostQuery(status=["draft", "private"]))).items == []


# --- creating posts ----------------------------------------------------------------------------

CREATE_ALLOWED: dict[str, set[str]] = {
    "draft": {"admin", "ed", "au", "co"},
    "pending": {"admin", "ed", "au", "co"},
    "publish": {"admin", "ed", "au"},
    "future": {"admin", "ed", "au"},
    "private": {"admin", "ed", "au"},
}


@pytest.mark.parametrize("status", list(CREATE_ALLOWED))
@pytest.mark.parametrize("role", ROLES)
async def test_create_post_role_matrix(ctx: SiteCtx, role: str, status: str) -> None:
    data = PostInput(title=f"Hello {role}", status=status, date=future() if status == "future" else None)  # type: ignore[arg-type]
    if role in CREATE_ALLOWED[status]:
        post = await ctx.site.create_post(ctx[role], data)
        assert (post.status, post.author.username) == (status, role)
        assert post.url == f"{PUBLIC_URL}/?p={post.id}"
    else:
        with pytest.raises(NotAllowed) as err:
            await ctx.site.create_post(ctx[role], data)
        if role == "co":
            assert (
                "Your role (contributor) cannot publish posts; save as draft or pending" in err.value.message
            )


@pytest.mark.parametrize("role", ROLES)
async def test_pages_need_editor(ctx: SiteCtx, role: str) -> None:
    data = PostInput(type="page", title="Shipping", status="publish")
    if role in ("admin", "ed"):
        page = await ctx.site.create_post(ctx[role], data)
        assert page.type == "page" and page.url == f"{PUBLIC_URL}/?page_id={page.id}"
        assert page.comment_status == "closed"
    else:
        with pytest.raises(NotAllowed, match="cannot create pages"):
            await ctx.site.create_post(ctx[role], data)


async def test_publish_with_future_date_is_scheduled(ctx: SiteCtx) -> None:
    post = await ctx.site.create_post(ctx["au"], PostInput(title="Later", status="publish", date=future()))
    assert post.status == "future"
    with pytest.raises(InvalidInput, match="future"):
        await ctx.site.create_post(
            ctx["au"], PostInput(title="Past", status="future", date=datetime.now(UTC) - timedelta(days=1))
        )


async def test_contributor_cannot_schedule_via_publish_date(ctx: SiteCtx) -> None:
    with pytest.raises(NotAllowed):
        await ctx.site.create_post(ctx["co"], PostInput(title="Sneaky", status="publish", date=future()))


async def test_naive_dates_are_utc_and_results_are_aware(ctx: SiteCtx) -> None:
    naive = datetime(2024, 3, 1, 12, 30)
    post = await ctx.site.create_post(ctx["au"], PostInput(title="Naive", status="publish", date=naive))
    again = await ctx.site.get_post(ctx["au"], post.id)
    assert again.date == naive.replace(tzinfo=UTC)
    assert again.date.tzinfo is not None and again.date.utcoffset() == timedelta(0)
    assert again.modified.tzinfo is not None
    plus_two = datetime(2024, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    other = await ctx.site.create_post(ctx["au"], PostInput(title="Offset", status="publish", date=plus_two))
    assert other.date == naive.replace(tzinfo=UTC) and other.date.utcoffset() == timedelta(0)


async def test_slugs_are_generated_and_unique_per_type(ctx: SiteCtx) -> None:
    site, au = ctx.site, ctx["au"]
    slugs = [(await site.create_post(au, PostInput(title="Crème Brûlée Latte!"))).slug for _ in range(3)]
    assert slugs == ["creme-brulee-latte", "creme-brulee-latte-2", "creme-brulee-latte-3"]
    page = await site.create_post(ctx["ed"], PostInput(type="page", title="Crème Brûlée Latte"))
    assert page.slug == "creme-brulee-latte"
    custom = await site.create_post(au, PostInput(title="x", slug="Creme brulee latte"))
    assert custom.slug == "creme-brulee-latte-4"
    assert (await site.create_post(au, PostInput(title="!!!"))).slug == "untitled"


async def test_create_with_terms_and_featured_media(ctx: SiteCtx) -> None:
    cats = await ctx.site.list_terms(ctx["au"], TermQuery(taxonomy="category", search="engineering"))
    tags = await ctx.site.list_terms(ctx["au"], TermQuery(taxonomy="post_tag", search="espresso"))
    image = (await ctx.site.list_media(ctx["au"], MediaQuery(limit=1))).items[0]
    post = await ctx.site.create_post(
        ctx["au"],
        PostInput(
            title="Tagged",
            status="publish",
            category_ids=[cats.items[0].id, cats.items[0].id],
            tag_ids=[tags.items[0].id],
            featured_media_id=image.id,
        ),
    )
    assert [c.slug for c in post.categories] == ["engineering"]
    assert [t.slug for t in post.tags] == ["espresso"]
    assert post.featured_media_id == image.id


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("category_ids", [999], "category_ids: term 999"),
        ("tag_ids", [999], "tag_ids: term 999"),
        ("featured_media_id", 999, "featured_media_id 999"),
        ("parent_id", 1, "Only pages can have a parent"),
    ],
)
async def test_create_rejects_bad_references(ctx: SiteCtx, field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        await ctx.site.create_post(ctx["au"], PostInput(title="Bad", **{field: value}))  # type: ignore[arg-type]


async def test_create_rejects_category_id_given_as_tag(ctx: SiteCtx) -> None:
    category = (await ctx.site.list_terms(ctx["au"], TermQuery(taxonomy="category"))).items[0]
    with pytest.raises(InvalidInput, match=f"tag_ids: term {category.id} .* not a tag"):
        await ctx.site.create_post(ctx["au"], PostInput(title="Bad", tag_ids=[category.id]))


async def test_failed_create_leaves_no_rows(ctx: SiteCtx) -> None:
    """A good category followed by a bad tag: the transaction rolls back as a whole."""
    posts, links = await count(ctx, m.Post), await count(ctx, m.PostTerm)
    category = (await ctx.site.list_terms(ctx["au"], TermQuery(taxonomy="category"))).items[0]
    with pytest.raises(InvalidInput, match="tag_ids: term 4242"):
        await ctx.site.create_post(
            ctx["au"], PostInput(title="Rolled back", category_ids=[category.id], tag_ids=[4242])
        )
    assert (await count(ctx, m.Post), await count(ctx, m.PostTerm)) == (posts, links)
    assert await count(ctx, m.Post, m.Post.title == "Rolled back") == 0


async def test_page_parent_validation(ctx: SiteCtx) -> None:
    ed, site = ctx["ed"], ctx.site
    about = await demo_post_id(ctx, "about-us", "page")
    child = await site.create_post(ed, PostInput(type="page", title="Team", parent_id=about))
    assert child.parent_id == about
    with pytest.raises(InvalidInput, match="not an existing page"):
        await site.create_post(
            ed,
            PostInput(
                type="page", title="Orphan", parent_id=await demo_post_id(ctx, "cold-brew-season-is-here")
            ),
        )
    with pytest.raises(InvalidInput, match="own ancestor"):
        await site.update_post(ed, about, PostPatch(parent_id=child.id))
    with pytest.raises(InvalidInput, match="no categories"):
        await site.create_post(ed, PostInput(type="page", title="Tagged page", tag_ids=[1]))


# --- updating posts ----------------------------------------------------------------------------

# (editor role, author of the post, status of the post) -> may edit?
EDIT_CASES = [
    ("au", "au", "publish", True),
    ("au", "au", "draft", True),
    ("au", "au2", "publish", False),
    ("au", "au2", "draft", False),
    ("co", "co", "draft", True),
    ("co", "co", "pending", True),
    ("co", "co", "publish", False),  # contributors cannot touch published work, even their own
    ("ed", "au", "publish", True),
    ("ed", "au", "private", True),
    ("sub", "au", "publish", False),
]


@pytest.mark.parametrize(("editor", "owner", "status", "allowed"), EDIT_CASES)
async def test_edit_role_matrix(ctx: SiteCtx, editor: str, owner: str, status: str, allowed: bool) -> None:
    post_id = await post_by_status(ctx, owner, status)
    patch = PostPatch(title="Edited")
    if allowed:
        post = await ctx.site.update_post(ctx[editor], post_id, patch)
        assert post.title == "Edited"
    else:
        with pytest.raises((NotAllowed, NotFound)):
            await ctx.site.update_post(ctx[editor], post_id, patch)
        assert (await ctx.site.get_post(ctx["admin"], post_id)).title != "Edited"


async def test_update_changes_fields_terms_and_modified(ctx: SiteCtx) -> None:
    site, au = ctx.site, ctx["au"]
    tags = (await site.list_terms(au, TermQuery(taxonomy="post_tag", limit=3))).items
    post = await site.create_post(au, PostInput(title="First", tag_ids=[tags[0].id, tags[1].id]))
    updated = await site.update_post(
        au, post.id, PostPatch(title="Second", content="<p>new</p>", tag_ids=[tags[2].id], slug="second-take")
    )
    assert (updated.title, updated.content, updated.slug) == ("Second", "<p>new</p>", "second-take")
    assert [t.id for t in updated.tags] == [tags[2].id]
    assert updated.modified >= post.modified
    untouched = await site.update_post(au, post.id, PostPatch(excerpt="x"))
    assert [t.id for t in untouched.tags] == [tags[2].id], "tags left out of a patch are kept"
    cleared = await site.update_post(au, post.id, PostPatch(tag_ids=[]))
    assert cleared.tags == []


async def test_status_changes_need_publish_rights(ctx: SiteCtx) -> None:
    site = ctx.site
    draft = await site.create_post(ctx["co"], PostInput(title="Mine", status="draft"))
    assert (await site.update_post(ctx["co"], draft.id, PostPatch(status="pending"))).status == "pending"
    for status in ("publish", "private", "future"):
        with pytest.raises(NotAllowed, match="cannot publish"):
            await site.update_post(ctx["co"], draft.id, PostPatch(status=status, date=future()))  # type: ignore[arg-type]
    published = await site.update_post(ctx["ed"], draft.id, PostPatch(status="publish"))
    assert published.status == "publish" and published.date <= datetime.now(UTC)
    with pytest.raises(NotAllowed, match="edit published posts"):
        await site.update_post(ctx["co"], draft.id, PostPatch(title="Too late"))
    with pytest.raises(InvalidInput, match="delete_post"):
        await site.update_post(ctx["ed"], draft.id, PostPatch(status="trash"))


async def test_rescheduling(ctx: SiteCtx) -> None:
    site, au = ctx.site, ctx["au"]
    post = await site.create_post(au, PostInput(title="Soon", status="future", date=future()))
    moved = await site.update_post(au, post.id, PostPatch(date=datetime.now(UTC) - timedelta(hours=1)))
    assert moved.status == "publish"
    again = await site.update_post(au, post.id, PostPatch(date=future(5)))
    assert again.status == "future"


async def test_missing_post_is_not_found(ctx: SiteCtx) -> None:
    with pytest.raises(NotFound):
        await ctx.site.get_post(ctx["admin"], 99999)
    with pytest.raises(NotFound):
        await ctx.site.update_post(ctx["admin"], 99999, PostPatch(title="x"))
    with pytest.raises(NotFound):
        await ctx.site.delete_post(ctx["admin"], 99999, force=True)


# --- deleting posts ----------------------------------------------------------------------------

DELETE_CASES = [
    ("au", "au", "publish", True),
    ("au", "au2", "publish", False),
    ("co", "co", "draft", True),
    ("co", "co", "publish", False),
    ("ed", "au", "publish", True),
    ("ed", "au", "draft", True),
    ("sub", "au", "publish", False),
]


@pytest.mark.parametrize(("deleter", "owner", "status", "allowed"), DELETE_CASES)
async def test_delete_role_matrix(ctx: SiteCtx, deleter: str, owner: str, status: str, allowed: bool) -> None:
    post_id = await post_by_status(ctx, owner, status)
    if allowed:
        before = await ctx.site.delete_post(ctx[deleter], post_id, force=False)
        assert before.status == status, "returns the post as it was"
        async with ctx.sessions() as s:
            row = await s.get(m.Post, post_id)
        assert row is not None and (row.status, row.trashed_from) == ("trash", status)
    else:
        with pytest.raises((NotAllowed, NotFound)):
            await ctx.site.delete_post(ctx[deleter], post_id, force=False)
        assert (await ctx.site.get_post(ctx["admin"], post_id)).status == status


async def test_trash_hides_then_restores(ctx: SiteCtx) -> None:
    site = ctx.site
    post = await site.create_post(ctx["au"], PostInput(title="Oops", status="publish"))
    await site.delete_post(ctx["au"], post.id, force=False)
    with pytest.raises(NotFound):
        await site.get_post(ctx["sub"], post.id)
    with pytest.raises(InvalidInput, match="already in the trash"):
        await site.delete_post(ctx["au"], post.id, force=False)
    restored = await site.update_post(ctx["au"], post.id, PostPatch(status="publish"))
    assert restored.status == "publish"
    assert (await site.get_post(ctx["sub"], post.id)).id == post.id


async def test_force_delete_removes_everything_attached(ctx: SiteCtx) -> None:
    site = ctx.site
    post_id = await demo_post_id(ctx, "dialing-in-espresso-without-losing-your-mind")
    assert await count(ctx, m.Comment, m.Comment.post_id == post_id) > 0
    media_id = (await site.get_post(ctx["ed"], post_id)).featured_media_id
    before = await site.delete_post(ctx["ed"], post_id, force=True)
    assert before.id == post_id and before.categories
    assert await count(ctx, m.Post, m.Post.id == post_id) == 0
    assert await count(ctx, m.Comment, m.Comment.post_id == post_id) == 0
    assert await count(ctx, m.PostTerm, m.PostTerm.post_id == post_id) == 0
    media = await site.get_media(ctx["ed"], media_id)  # the file survives, detached
    assert media.post_id is None


async def test_force_delete_page_reparents_children(ctx: SiteCtx) -> None:
    privacy = await demo_post_id(ctx, "privacy-policy", "page")
    cookies = await demo_post_id(ctx, "cookie-policy", "page")
    await ctx.site.delete_post(ctx["admin"], privacy, force=True)
    assert (await ctx.site.get_post(ctx["sub"], cookies)).parent_id is None


# --- listing, filtering, ordering, pagination ----------------------------------------------------


def sort_key(order: str):  # noqa: ANN201
    return {
        "date_desc": (lambda p: (p.date, p.id), True),
        "date_asc": (lambda p: (p.date, p.id), False),
        "title_asc": (lambda p: (p.title, p.id), False),
        "title_desc": (lambda p: (p.title, p.id), True),
        "modified_desc": (lambda p: (p.modified, p.id), True),
    }[order]


@pytest.mark.parametrize("order", ["date_desc", "date_asc", "title_asc", "title_desc", "modified_desc"])
async def test_keyset_pagination_visits_every_post_once(ctx: SiteCtx, order: str) -> None:
    # Ties on the sort key must be broken by id, not lost or repeated across page boundaries.
    same_date = datetime(2024, 1, 1, tzinfo=UTC)
    for _ in range(4):
        await ctx.site.create_post(ctx["ed"], PostInput(title="Tie", status="publish", date=same_date))
    everything = await ctx.site.list_posts(ctx["ed"], PostQuery(order=order, limit=100))  # type: ignore[arg-type]
    key, reverse = sort_key(order)
    if order.startswith("title"):
        # Collations differ between databases; compare only what every collation agrees on.
        assert [p.id for p in everything.items if p.title == "Tie"] == sorted(
            (p.id for p in everything.items if p.title == "Tie"), reverse=reverse
        )
    else:
        assert [p.id for p in everything.items] == [
            p.id for p in sorted(everything.items, key=key, reverse=reverse)
        ]

    async def fetch(limit: int, cursor: str | None):  # noqa: ANN202
        return await ctx.site.list_posts(ctx["ed"], PostQuery(order=order, limit=limit, cursor=cursor))  # type: ignore[arg-type]

    for limit in (1, 3, 7):
        ids, pages = await walk(fetch, limit)
        assert ids == [p.id for p in everything.items]
        assert pages == -(-len(ids) // limit)  # ceil: a full last page carries no cursor
        assert len(set(ids)) == len(ids)


async def test_last_page_has_no_cursor(ctx: SiteCtx) -> None:
    total = (await ctx.site.site_info(ctx["sub"])).post_count
    page = await ctx.site.list_posts(ctx["sub"], PostQuery(limit=total))
    assert len(page.items) == total and page.next_cursor is None


async def test_pagination_is_stable_when_rows_are_inserted(ctx: SiteCtx) -> None:
    first = await ctx.site.list_posts(ctx["sub"], PostQuery(limit=5))
    await ctx.site.create_post(ctx["au"], PostInput(title="Newest", status="publish"))
    second = await ctx.site.list_posts(ctx["sub"], PostQuery(limit=5, cursor=first.next_cursor))
    assert not {p.id for p in first.items} & {p.id for p in second.items}
    assert second.items[0].date <= first.items[-1].date


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "=",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b'["date_desc", ["2024-01-01T00:00:00+00:00"]]').decode(),
        base64.urlsafe_b64encode(b'["date_desc", ["2024-01-01T00:00:00", 3]]').decode(),
        base64.urlsafe_b64encode(b'["date_desc", ["yesterday", 3]]').decode(),
        base64.urlsafe_b64encode(b'["date_desc", ["2024-01-01T00:00:00+00:00", "3"]]').decode(),
        base64.urlsafe_b64encode(b'["date_desc", ["2024-01-01T00:00:00+00:00", true]]').decode(),
        base64.urlsafe_b64encode(b'["title_asc", ["Tie", 3]]').decode(),  # another ordering's cursor
        "A" * 5000,
    ],
)
async def test_tampered_cursors_are_rejected(ctx: SiteCtx, cursor: str) -> None:
    with pytest.raises(InvalidInput, match="invalid cursor"):
        await ctx.site.list_posts(ctx["sub"], PostQuery(cursor=cursor))


async def test_cursor_from_one_list_is_refused_by_another(ctx: SiteCtx) -> None:
    posts = await ctx.site.list_posts(ctx["sub"], PostQuery(limit=2))
    with pytest.raises(InvalidInput, match="invalid cursor"):
        await ctx.site.list_comments(ctx["sub"], CommentQuery(cursor=posts.next_cursor))


async def test_a_cursor_carrying_nul_is_invalid_not_a_database_error(ctx: SiteCtx) -> None:
    """A forged title_asc cursor whose title holds NUL: PostgreSQL would fail on the query."""
    cursor = base64.urlsafe_b64encode(b'["title_asc", ["a\\u0000b", 3]]').decode().rstrip("=")
    with pytest.raises(InvalidInput, match="invalid cursor"):
        await ctx.site.list_posts(ctx["sub"], PostQuery(order="title_asc", cursor=cursor))


def test_cursor_roundtrip_normalizes_to_utc() -> None:
    plus_two = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    cursor = encode_cursor("t", [plus_two, "x", 5])
    assert "=" not in cursor
    when, text, ident = decode_cursor(cursor, "t", (datetime, str, int))
    assert when == plus_two and when.utcoffset() == timedelta(0) and (text, ident) == ("x", 5)


async def test_search_is_case_insensitive_and_escapes_wildcards(ctx: SiteCtx) -> None:
    site, au = ctx.site, ctx["au"]
    hits = await site.list_posts(au, PostQuery(search="AEROPRESS"))
    assert [p.title for p in hits.items] == ["The AeroPress recipe our baristas actually use"]
    in_content = await site.list_posts(au, PostQuery(search="raspberry pi"))
    assert [p.title for p in in_content.items] == ["Our roaster now logs every batch"]
    await site.create_post(au, PostInput(title="Discount 100% off", status="publish"))
    percent = await site.list_posts(au, PostQuery(search="100%"))
    assert [p.title for p in percent.items] == ["Discount 100% off"]
    assert (await site.list_posts(au, PostQuery(search="_"))).items == []


async def test_filters(ctx: SiteCtx) -> None:
    site, sub = ctx.site, ctx["sub"]
    terms = {t.slug: t for t in (await site.list_terms(sub, TermQuery(taxonomy="category", limit=100))).items}
    tags = {t.slug: t for t in (await site.list_terms(sub, TermQuery(taxonomy="post_tag", limit=100))).items}
    sourcing = await site.list_posts(sub, PostQuery(category_id=terms["sourcing"].id, limit=100))
    expected = [p.title for p in DEMO_POSTS if "sourcing" in p.categories and p.status == "publish"]
    assert sorted(p.title for p in sourcing.items) == sorted(expected)
    espresso = await site.list_posts(sub, PostQuery(tag_id=tags["espresso"].id, limit=100))
    assert all("espresso" in [t.slug for t in p.tags] for p in espresso.items) and espresso.items
    arjun = await site.list_posts(sub, PostQuery(author_id=ctx["arjun"].user_id, limit=100))
    assert {p.author.username for p in arjun.items} == {"arjun"}
    assert len(arjun.items) == sum(p.author == "arjun" and p.status == "publish" for p in DEMO_POSTS)
    middle = sorted((await site.list_posts(sub, PostQuery(limit=100))).items, key=lambda p: p.date)[5]
    after = await site.list_posts(sub, PostQuery(after=middle.date, limit=100))
    before = await site.list_posts(sub, PostQuery(before=middle.date, limit=100))
    assert all(p.date > middle.date for p in after.items) and all(p.date < middle.date for p in before.items)
    assert len(after.items) + len(before.items) == sum(p.status == "publish" for p in DEMO_POSTS) - 1
    privacy = await demo_post_id(ctx, "privacy-policy", "page")
    children = await site.list_posts(sub, PostQuery(type="page", parent_id=privacy))
    assert [p.title for p in children.items] == ["Cookie Policy"]
    top = await site.list_posts(sub, PostQuery(type="page", parent_id=0, limit=100))
    assert "Cookie Policy" not in [p.title for p in top.items] and len(top.items) == 3


async def test_list_does_not_query_per_row(ctx: SiteCtx) -> None:
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        statements.append(statement)

    event.listen(ctx.engine.sync_engine, "before_cursor_execute", record)
    try:
        page = await ctx.site.list_posts(ctx["ed"], PostQuery(limit=100, status=ALL_STATUSES))
    finally:
        event.remove(ctx.engine.sync_engine, "before_cursor_execute", record)
    assert len(page.items) >= 24
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) <= 3
    assert all(p.author.username for p in page.items)


# --- comments ----------------------------------------------------------------------------------


async def test_comment_listing_defaults_to_approved(ctx: SiteCtx) -> None:
    page = await ctx.site.list_comments(ctx["sub"], CommentQuery(limit=100))
    assert page.items and {c.status for c in page.items} == {"approved"}
    assert len(page.items) == sum(c.status == "approved" for t in DEMO_THREADS for c in t.comments)
    assert all(c.date.tzinfo is not None for c in page.items)


@pytest.mark.parametrize("status", ["hold", "spam", "trash"])
@pytest.mark.parametrize("role", ROLES)
async def test_moderation_queues_need_moderate_comments(ctx: SiteCtx, role: str, status: str) -> None:
    query = CommentQuery(status=status, limit=100)  # type: ignore[arg-type]
    if role in ("admin", "ed"):
        page = await ctx.site.list_comments(ctx[role], query)
        assert page.items and {c.status for c in page.items} == {status}
    else:
        with pytest.raises(NotAllowed, match="moderators"):
            await ctx.site.list_comments(ctx[role], query)


async def test_comment_threads(ctx: SiteCtx) -> None:
    post_id = await demo_post_id(ctx, "dialing-in-espresso-without-losing-your-mind")
    page = await ctx.site.list_comments(ctx["sub"], CommentQuery(post_id=post_id, limit=100))
    by_id = {c.id: c for c in page.items}
    top = [c for c in page.items if c.parent_id is None]
    assert len(top) == 2
    reply = next(c for c in page.items if c.content.startswith("Glad it helped"))
    assert by_id[reply.parent_id].content.startswith("The sour/bitter")
    assert reply.author_user_id == ctx["arjun"].user_id
    nested = next(c for c in page.items if c.content.startswith("Sweet spot"))
    assert nested.parent_id == reply.id
    replies = await ctx.site.list_comments(ctx["sub"], CommentQuery(parent_id=reply.id))
    assert [c.id for c in replies.items] == [nested.id]
    roots = await ctx.site.list_comments(ctx["sub"], CommentQuery(post_id=post_id, parent_id=0))
    assert {c.id for c in roots.items} == {c.id for c in top}


async def test_comment_pagination(ctx: SiteCtx) -> None:
    async def fetch(limit: int, cursor: str | None):  # noqa: ANN202
        return await ctx.site.list_comments(ctx["ed"], CommentQuery(limit=limit, cursor=cursor))

    everything = (await fetch(100, None)).items
    ids, _ = await walk(fetch, 2)
    assert ids == [c.id for c in everything] and len(set(ids)) == len(ids)


async def test_create_comment_status_depends_on_role(ctx: SiteCtx) -> None:
    post_id = await demo_post_id(ctx, "cold-brew-season-is-here")
    held = await ctx.site.create_comment(ctx["sub"], post_id, "Lovely!")
    assert (held.status, held.author_user_id, held.author_name) == ("hold", ctx["sub"].user_id, "Sub")
    approved = await ctx.site.create_comment(ctx["ed"], post_id, "Thanks!", parent_id=held.id)
    assert (approved.status, approved.parent_id) == ("approved", held.id)
    assert (await ctx.site.get_comment(ctx["sub"], held.id)).id == held.id, "writers see their own"
    with pytest.raises(NotFound):
        await ctx.site.get_comment(ctx["au"], held.id)


async def test_create_comment_validation(ctx: SiteCtx) -> None:
    site = ctx.site
    espresso = await demo_post_id(ctx, "dialing-in-espresso-without-losing-your-mind")
    cold = await demo_post_id(ctx, "cold-brew-season-is-here")
    other = (await site.list_comments(ctx["sub"], CommentQuery(post_id=cold))).items[0]
    with pytest.raises(InvalidInput, match="not a comment on post"):
        await site.create_comment(ctx["sub"], espresso, "Reply", parent_id=other.id)
    with pytest.raises(InvalidInput, match="content"):
        await site.create_comment(ctx["sub"], espresso, "   ")
    draft = await post_by_status(ctx, "au2", "draft")
    with pytest.raises(NotFound):
        await site.create_comment(ctx["sub"], draft, "Peek")
    with pytest.raises(InvalidInput, match="not published"):
        await site.create_comment(ctx["ed"], draft, "Early note")
    await site.update_post(ctx["ed"], cold, PostPatch(comment_status="closed"))
    with pytest.raises(NotAllowed, match="closed"):
        await site.create_comment(ctx["sub"], cold, "Hello?")
    assert (await site.create_comment(ctx["ed"], cold, "Moderators may")).status == "approved"


async def test_comments_on_invisible_posts_are_hidden(ctx: SiteCtx) -> None:
    post_id = await demo_post_id(ctx, "cold-brew-season-is-here")
    comment = (await ctx.site.list_comments(ctx["sub"], CommentQuery(post_id=post_id))).items[0]
    await ctx.site.update_post(ctx["ed"], post_id, PostPatch(status="draft"))
    with pytest.raises(NotFound):
        await ctx.site.get_comment(ctx["sub"], comment.id)
    everything = await ctx.site.list_comments(ctx["sub"], CommentQuery(limit=100))
    assert comment.id not in [c.id for c in everything.items]
    with pytest.raises(NotFound):
        await ctx.site.list_comments(ctx["sub"], CommentQuery(post_id=post_id))


@pytest.mark.parametrize("role", ROLES)
async def test_moderation_role_matrix(ctx: SiteCtx, role: str) -> None:
    comment = (await ctx.site.list_comments(ctx["ed"], CommentQuery(limit=1))).items[0]
    if role in ("admin", "ed"):
        assert (await ctx.site.set_comment_status(ctx[role], comment.id, "spam")).status == "spam"
    else:
        with pytest.raises(NotAllowed, match="moderate comments"):
            await ctx.site.set_comment_status(ctx[role], comment.id, "spam")
        with pytest.raises(NotAllowed, match="delete comments"):
            await ctx.site.delete_comment(ctx[role], comment.id)


async def test_delete_comment_reparents_replies(ctx: SiteCtx) -> None:
    post_id = await demo_post_id(ctx, "dialing-in-espresso-without-losing-your-mind")
    thread = (await ctx.site.list_comments(ctx["ed"], CommentQuery(post_id=post_id, limit=100))).items
    middle = next(c for c in thread if c.content.startswith("Glad it helped"))
    child = next(c for c in thread if c.parent_id == middle.id)
    deleted = await ctx.site.delete_comment(ctx["ed"], middle.id)
    assert deleted.id == middle.id
    assert (await ctx.site.get_comment(ctx["ed"], child.id)).parent_id == middle.parent_id
    with pytest.raises(NotFound):
        await ctx.site.get_comment(ctx["ed"], middle.id)


# --- media -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
async def test_upload_needs_upload_files(ctx: SiteCtx, role: str) -> None:
    upload = MediaUpload(filename="photo.png", mime_type="image/png", data=PNG)
    if role in ("admin", "ed", "au"):
        item = await ctx.site.create_media(ctx[role], upload)
        assert (item.size, item.author_id, item.title) == (len(PNG), ctx[role].user_id, "photo")
        assert (await ctx.site.media_bytes(url_key(item))).data == PNG
    else:
        with pytest.raises(NotAllowed, match="upload files"):
            await ctx.site.create_media(ctx[role], upload)


@pytest.mark.parametrize(
    ("filename", "mime", "data", "message"),
    [
        ("x.svg", "image/svg+xml", b"<svg/>", "not allowed"),
        ("x.html", "text/html", b"<script>", "not allowed"),
        ("x.png", "image/png", b"<html>", "not a valid image/png"),
        ("x.jpg", "image/jpeg", PNG, "not a valid image/jpeg"),
        ("x.pdf", "application/pdf", b"%PDX", "not a valid application/pdf"),
        ("x.html", "text/plain", b"hi", "expected extension .txt"),
        ("x.png", "image/png", b"", "empty"),
    ],
)
async def test_upload_validation(ctx: SiteCtx, filename: str, mime: str, data: bytes, message: str) -> None:
    before = await count(ctx, m.Media)
    with pytest.raises(InvalidInput, match=message):
        await ctx.site.create_media(ctx["au"], MediaUpload(filename=filename, mime_type=mime, data=data))
    assert await count(ctx, m.Media) == before


async def test_upload_size_limit(ctx: SiteCtx) -> None:
    site = BuiltinSite(ctx.sessions, public_url=PUBLIC_URL, max_upload_bytes=100)
    with pytest.raises(InvalidInput, match="limit is 100 bytes"):
        await site.create_media(
            ctx["au"], MediaUpload(filename="a.txt", mime_type="text/plain", data=b"x" * 101)
        )


@pytest.mark.parametrize(
    ("given", "mime", "expected"),
    [
        ("../../etc/passwd.png", "image/png", "passwd.png"),
        ("C:\\Users\\me\\Summer photo (1).JPG", "image/jpeg", "Summer-photo-1.jpg"),
        ("notes", "text/plain", "notes.txt"),
        (".hidden.pdf", "application/pdf", "hidden.pdf"),
        ("café menü.pdf", "application/pdf", "cafe-menu.pdf"),
        ("???.png", "image/png", "file.png"),
    ],
)
def test_sanitize_filename(given: str, mime: str, expected: str) -> None:
    assert sanitize_filename(given, mime) == expected


async def test_media_update_and_delete_rights(ctx: SiteCtx) -> None:
    site = ctx.site
    mine = await site.create_media(
        ctx["au"], MediaUpload(filename="doc.pdf", mime_type="application/pdf", data=PDF)
    )
    assert (await site.update_media(ctx["au"], mine.id, MediaPatch(alt_text="A doc"))).alt_text == "A doc"
    with pytest.raises(NotAllowed, match="other users' media"):
        await site.update_media(ctx["au2"], mine.id, MediaPatch(title="Mine now"))
    with pytest.raises(NotAllowed, match="other users' media"):
        await site.delete_media(ctx["au2"], mine.id)
    with pytest.raises(NotAllowed):
        await site.update_media(ctx["co"], mine.id, MediaPatch(title="x"))
    assert (await site.update_media(ctx["ed"], mine.id, MediaPatch(caption="Edited"))).caption == "Edited"
    deleted = await site.delete_media(ctx["au"], mine.id)
    assert deleted.caption == "Edited"
    with pytest.raises(NotFound):
        await site.media_bytes(url_key(mine))
    assert await count(ctx, m.MediaBlob, m.MediaBlob.media_id == mine.id) == 0


async def test_media_follows_the_visibility_of_its_post(ctx: SiteCtx) -> None:
    """A file attached to a contributor's draft is seen by those who may read the draft (its
    author, editors), by nobody else through the site, and by no visitor until the draft is
    published; its public URL carries a random key, and the sequential id finds nothing."""
    site = ctx.site
    draft = await site.create_post(ctx["co"], PostInput(title="Co's draft", status="draft"))
    upload = MediaUpload(filename="secret-plan.png", mime_type="image/png", data=PNG, post_id=draft.id)
    item = await site.create_media(ctx["admin"], upload)
    for reader in ("co", "ed", "admin"):
        assert (await site.get_media(ctx[reader], item.id)).post_id == draft.id, reader
        assert item.id in [i.id for i in (await site.list_media(ctx[reader], MediaQuery(limit=100))).items]
    for outsider in ("au", "au2", "sub"):
        with pytest.raises(NotFound):
            await site.get_media(ctx[outsider], item.id)
        listed = await site.list_media(ctx[outsider], MediaQuery(search="secret-plan", limit=100))
        assert listed.items == [], outsider
    with pytest.raises(NotFound):  # invisible is missing, for changes too
        await site.update_media(ctx["au"], item.id, MediaPatch(title="mine"))
    with pytest.raises(NotFound):
        await site.media_bytes(url_key(item))  # unpublished: no visitor gets it, key or not
    with pytest.raises(NotFound):
        await site.media_bytes(str(item.id))  # the old, sequential URL

    await site.update_post(ctx["ed"], draft.id, PostPatch(status="publish"))
    assert (await site.media_bytes(url_key(item))).data == PNG
    assert (await site.get_media(ctx["au"], item.id)).id == item.id
    with pytest.raises(NotFound):
        await site.media_bytes(str(item.id))


async def test_unattached_media_is_public_only_by_its_unguessable_url(ctx: SiteCtx) -> None:
    item = await ctx.site.create_media(
        ctx["au"], MediaUpload(filename="a.png", mime_type="image/png", data=PNG)
    )
    assert item.post_id is None
    assert (await ctx.site.get_media(ctx["sub"], item.id)).id == item.id  # as in WordPress
    assert (await ctx.site.media_bytes(url_key(item))).data == PNG
    with pytest.raises(NotFound):
        await ctx.site.media_bytes(str(item.id))
    other = await ctx.site.create_media(
        ctx["au"], MediaUpload(filename="a.png", mime_type="image/png", data=PNG)
    )
    assert url_key(other) != url_key(item) and len(url_key(other)) >= 22


async def test_deleting_featured_media_clears_posts(ctx: SiteCtx) -> None:
    post_id = await demo_post_id(ctx, "cold-brew-season-is-here")
    media_id = (await ctx.site.get_post(ctx["sub"], post_id)).featured_media_id
    assert media_id is not None
    await ctx.site.delete_media(ctx["admin"], media_id)
    assert (await ctx.site.get_post(ctx["sub"], post_id)).featured_media_id is None


async def test_media_attach_rules(ctx: SiteCtx) -> None:
    others = await demo_post_id(ctx, "cold-brew-season-is-here")  # by arjun
    with pytest.raises(NotAllowed, match="other users' posts"):
        await ctx.site.create_media(
            ctx["au"], MediaUpload(filename="a.png", mime_type="image/png", data=PNG, post_id=others)
        )
    with pytest.raises(InvalidInput, match="post_id 9999"):
        await ctx.site.create_media(
            ctx["au"], MediaUpload(filename="a.png", mime_type="image/png", data=PNG, post_id=9999)
        )


async def test_media_listing_filters_and_pages(ctx: SiteCtx) -> None:
    site = ctx.site
    await site.create_media(
        ctx["au"], MediaUpload(filename="menu.pdf", mime_type="application/pdf", data=PDF)
    )
    assert len((await site.list_media(ctx["sub"], MediaQuery(mime_type="image/", limit=100))).items) == len(
        DEMO_IMAGES
    )
    assert len((await site.list_media(ctx["sub"], MediaQuery(mime_type="image", limit=100))).items) == len(
        DEMO_IMAGES
    )
    pdfs = await site.list_media(ctx["sub"], MediaQuery(mime_type="application/pdf"))
    assert [i.filename for i in pdfs.items] == ["menu.pdf"]
    assert [i.title for i in (await site.list_media(ctx["sub"], MediaQuery(search="COLD"))).items] == [
        "Cold brew"
    ]

    async def fetch(limit: int, cursor: str | None):  # noqa: ANN202
        return await site.list_media(ctx["sub"], MediaQuery(limit=limit, cursor=cursor))

    ids, pages = await walk(fetch, 2)
    assert len(ids) == len(set(ids)) == len(DEMO_IMAGES) + 1 and pages == 3


# --- terms -------------------------------------------------------------------------------------


async def test_term_counts_match_the_database(ctx: SiteCtx) -> None:
    async with ctx.sessions() as s:
        expected = dict(
            (await s.execute(select(m.PostTerm.term_id, func.count()).group_by(m.PostTerm.term_id))).all()
        )
    for taxonomy in ("category", "post_tag"):
        terms = await ctx.site.list_terms(ctx["sub"], TermQuery(taxonomy=taxonomy, limit=100))  # type: ignore[arg-type]
        assert terms.items
        for term in terms.items:
            assert term.count == expected.get(term.id, 0)
            assert term.taxonomy == taxonomy
        assert [t.name for t in terms.items] == sorted(t.name for t in terms.items)


async def test_term_hierarchy_and_pagination(ctx: SiteCtx) -> None:
    site, sub = ctx.site, ctx["sub"]
    news = (await site.list_terms(sub, TermQuery(search="news"))).items
    assert [t.slug for t in news] == ["news"]
    children = await site.list_terms(sub, TermQuery(parent_id=news[0].id))
    assert [t.slug for t in children.items] == ["product-updates"]
    roots = await site.list_terms(sub, TermQuery(parent_id=0))
    assert len(roots.items) == sum(c.parent is None for c in DEMO_CATEGORIES)

    async def fetch(limit: int, cursor: str | None):  # noqa: ANN202
        return await site.list_terms(sub, TermQuery(taxonomy="post_tag", limit=limit, cursor=cursor))

    ids, pages = await walk(fetch, 3)
    assert len(ids) == len(set(ids)) == len(DEMO_TAGS) and pages == 4


@pytest.mark.parametrize("role", ROLES)
async def test_managing_terms_needs_manage_categories(ctx: SiteCtx, role: str) -> None:
    data = TermInput(taxonomy="post_tag", name="Latte art")
    if role in ("admin", "ed"):
        term = await ctx.site.create_term(ctx[role], data)
        assert (term.slug, term.count, term.parent_id) == ("latte-art", 0, None)
    else:
        with pytest.raises(NotAllowed, match="manage categories"):
            await ctx.site.create_term(ctx[role], data)
        tag = (await ctx.site.list_terms(ctx[role], TermQuery(taxonomy="post_tag"))).items[0]
        with pytest.raises(NotAllowed):
            await ctx.site.update_term(ctx[role], tag.id, TermPatch(name="x"))
        with pytest.raises(NotAllowed):
            await ctx.site.delete_term(ctx[role], tag.id)


async def test_term_validation(ctx: SiteCtx) -> None:
    site, ed = ctx.site, ctx["ed"]
    with pytest.raises(Conflict, match="slug 'espresso'"):
        await site.create_term(ed, TermInput(taxonomy="post_tag", name="ESPRESSO"))
    same_slug_other_taxonomy = await site.create_term(ed, TermInput(taxonomy="category", name="Espresso"))
    assert same_slug_other_taxonomy.slug == "espresso"
    with pytest.raises(InvalidInput, match="only categories"):
        await site.create_term(ed, TermInput(taxonomy="post_tag", name="Child tag", parent_id=1))
    with pytest.raises(InvalidInput, match="not an existing category"):
        await site.create_term(ed, TermInput(taxonomy="category", name="Lost", parent_id=9999))
    with pytest.raises(InvalidInput, match="name"):
        await site.create_term(ed, TermInput(taxonomy="category", name="  "))
    tag = (await site.list_terms(ed, TermQuery(taxonomy="post_tag", search="decaf"))).items[0]
    with pytest.raises(Conflict):
        await site.update_term(ed, tag.id, TermPatch(slug="espresso"))
    renamed = await site.update_term(ed, tag.id, TermPatch(name="Decaffeinated", slug="decaffeinated"))
    assert (renamed.name, renamed.slug, renamed.count) == ("Decaffeinated", "decaffeinated", tag.count)


async def test_category_cycles_are_refused(ctx: SiteCtx) -> None:
    site, ed = ctx.site, ctx["ed"]
    a = await site.create_term(ed, TermInput(taxonomy="category", name="A"))
    b = await site.create_term(ed, TermInput(taxonomy="category", name="B", parent_id=a.id))
    c = await site.create_term(ed, TermInput(taxonomy="category", name="C", parent_id=b.id))
    for parent in (a.id, c.id):
        with pytest.raises(InvalidInput, match="own ancestor"):
            await site.update_term(ed, a.id, TermPatch(parent_id=parent))
    moved = await site.update_term(ed, c.id, TermPatch(parent_id=0))
    assert moved.parent_id is None


async def test_delete_category_reparents_children_and_unlinks_posts(ctx: SiteCtx) -> None:
    site, ed = ctx.site, ctx["ed"]
    news = (await site.list_terms(ed, TermQuery(search="news"))).items[0]
    updates = (await site.list_terms(ed, TermQuery(parent_id=news.id))).items[0]
    grandchild = await site.create_term(
        ed, TermInput(taxonomy="category", name="Roast dates", parent_id=updates.id)
    )
    deleted = await site.delete_term(ed, updates.id)
    assert deleted.count == updates.count > 0
    assert (await site.get_term(ed, grandchild.id)).parent_id == news.id
    assert await count(ctx, m.PostTerm, m.PostTerm.term_id == updates.id) == 0
    with pytest.raises(NotFound):
        await site.get_term(ed, updates.id)


# --- users -------------------------------------------------------------------------------------


async def test_admin_lists_every_user_with_email(ctx: SiteCtx) -> None:
    async def fetch(limit: int, cursor: str | None):  # noqa: ANN202
        return await ctx.site.list_users(ctx["admin"], UserQuery(limit=limit, cursor=cursor))

    ids, _ = await walk(fetch, 4)
    assert len(ids) == len(set(ids)) == await count(ctx, m.User)
    page = await ctx.site.list_users(ctx["admin"], UserQuery(limit=100))
    assert all(u.email for u in page.items if u.username != "root")
    editors = await ctx.site.list_users(ctx["admin"], UserQuery(role="editor"))
    assert {u.username for u in editors.items} == {"ed", "emma"}
    by_email = await ctx.site.list_users(ctx["admin"], UserQuery(search="LANTERN.example"))
    assert {u.username for u in by_email.items} == {"emma", "arjun", "lena", "carlos", "sam"}


@pytest.mark.parametrize("role", ["ed", "au", "co", "sub"])
async def test_others_see_only_published_authors_without_email(ctx: SiteCtx, role: str) -> None:
    page = await ctx.site.list_users(ctx[role], UserQuery(limit=100))
    names = {u.username for u in page.items}
    assert names == {"emma", "arjun", "lena", "admin"}  # admin authored the published pages
    assert all(u.email is None for u in page.items)
    with pytest.raises(NotAllowed):
        await ctx.site.list_users(ctx[role], UserQuery(role="editor"))
    with pytest.raises(NotFound):
        await ctx.site.get_user(ctx[role], ctx["carlos"].user_id)
    me = await ctx.site.get_user(ctx[role], ctx[role].user_id)
    assert me.email == f"{ctx[role].username}@test.example"


async def test_post_count_is_published_posts(ctx: SiteCtx) -> None:
    page = await ctx.site.list_users(ctx["admin"], UserQuery(limit=100))
    counts = {u.username: u.post_count for u in page.items}
    for name in ("emma", "arjun", "lena", "carlos"):
        assert counts[name] == sum(p.author == name and p.status == "publish" for p in DEMO_POSTS)
    assert counts["sam"] == 0


# --- helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "slug"),
    [("Hello, World!", "hello-world"), ("  Ünïcödé  ", "unicode"), ("a" * 300, "a" * 190), ("---", "")],
)
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug


async def test_actor_without_user_row_cannot_comment(ctx: SiteCtx) -> None:
    ghost = Actor(user_id=424242, username="ghost", role="editor")
    post_id = await demo_post_id(ctx, "cold-brew-season-is-here")
    with pytest.raises(NotFound):
        await ctx.site.create_comment(ghost, post_id, "Boo")
