"""The WordPress backend against a real WordPress 6.1 (the session's ``wordpress`` fixture).

Every outcome asserted here is WordPress's own: who may publish, edit, moderate and upload is
decided by WordPress from the person's Application Password, and these tests check that its
answers arrive as the connector's errors with WordPress's messages. Tests make their own
content with unique names, because the site is shared by the whole session. The outage test
stops the web server and comes last."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from aiconnector.core.principal import Actor
from aiconnector.errors import Conflict, InvalidInput, NotAllowed, NotFound, SiteUnavailable
from aiconnector.sites.base import (
    CommentQuery,
    CommentStatus,
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
from aiconnector.sites.demo import make_png
from aiconnector.sites.wordpress import WordPressBackend
from tests.wordpress.instance import WordPressInstance, WordPressUser

SIGN_IN_AGAIN = "Sign in to AI Connector again"
PNG = make_png(3, 2, lambda x, y: (40 * x, 90 * y, 200))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Keyring:
    """Test ``WordPressCredentials``: WordPress user id -> (login, Application Password)."""

    def __init__(self, users: list[WordPressUser]) -> None:
        self.by_id = {user.id: user for user in users}
        self.asked: list[int] = []

    async def credentials_for(self, actor: Actor) -> tuple[str, str]:
        self.asked.append(actor.user_id)
        user = self.by_id.get(actor.user_id)
        if user is None:
            raise NotAllowed(f"{actor.username} has no WordPress application password.")
        return user.username, user.app_password


class CountingTransport(httpx.AsyncBaseTransport):
    """Passes requests to a real transport and records them, to count what a call costs."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Site:
    backend: WordPressBackend
    transport: CountingTransport
    keyring: Keyring
    wordpress: WordPressInstance
    made_users: list[WordPressUser] = field(default_factory=list)

    def actor(self, role: str) -> Actor:
        return as_actor(self.wordpress.users[role])

    def add_user(self, role: str) -> tuple[WordPressUser, Actor]:
        """A fresh WordPress user of ``role`` the backend can act as (deleted after the test)."""
        user = self.wordpress.create_user(unique(role[:4]), role, "a-strong-password-123")
        self.keyring.by_id[user.id] = user
        self.made_users.append(user)
        return user, as_actor(user)

    def requests_during(self) -> RequestCounter:
        return RequestCounter(self.transport)


class RequestCounter:
    def __init__(self, transport: CountingTransport) -> None:
        self.transport = transport
        self.start = len(transport.requests)

    @property
    def count(self) -> int:
        return len(self.transport.requests) - self.start

    @property
    def paths(self) -> list[str]:
        return [r.url.path for r in self.transport.requests[self.start :]]


def as_actor(user: WordPressUser) -> Actor:
    return Actor(user_id=user.id, username=user.username, role=user.role)


ANONYMOUS = Actor(user_id=0, username="", role="subscriber")


@pytest.fixture
async def site(wordpress: WordPressInstance) -> AsyncIterator[Site]:
    transport = CountingTransport()
    keyring = Keyring(list(wordpress.users.values()))
    # Nothing cached (answers, confirmed credentials) expires during a test, so request counts
    # are exact however slow the machine is.
    backend = WordPressBackend(wordpress.url, keyring, timeout=10, cache_seconds=600, transport=transport)
    made = Site(backend, transport, keyring, wordpress)
    try:
        yield made
    finally:
        await backend.aclose()
        for user in made.made_users:
            with contextlib.suppress(RuntimeError):  # the test may have deleted it already
                wordpress.delete_user(user.id)


def test_backend_implements_the_protocol(site: Site) -> None:
    assert isinstance(site.backend, SiteBackend)


# --- posts and pages ------------------------------------------------------------------------


async def test_editor_writes_publishes_trashes_and_deletes_a_post(site: Site) -> None:
    b, editor = site.backend, site.actor("editor")
    category = await b.create_term(editor, TermInput(taxonomy="category", name=unique("Cat")))
    tag = await b.create_term(editor, TermInput(taxonomy="post_tag", name=unique("Tag")))
    blocks = "<!-- wp:paragraph -->\n<p>Draft body</p>\n<!-- /wp:paragraph -->"

    post = await b.create_post(
        editor,
        PostInput(title="Editor's draft", content=blocks, category_ids=[category.id], tag_ids=[tag.id]),
    )
    assert (post.type, post.status, post.author.id) == ("post", "draft", editor.user_id)
    assert post.author.username == "editor"
    assert post.content == blocks  # raw: block markup survives a read
    assert [c.id for c in post.categories] == [category.id]
    assert [(t.id, t.name) for t in post.tags] == [(tag.id, tag.name)]
    assert post.slug == "editors-draft"  # the slug WordPress will give it

    fetched = await b.get_post(editor, post.id)
    assert fetched == post

    updated = await b.update_post(editor, post.id, PostPatch(title="Edited title", excerpt="Short"))
    assert (updated.title, updated.excerpt, updated.content) == ("Edited title", "Short", blocks)

    published = await b.update_post(editor, post.id, PostPatch(status="publish"))
    assert published.status == "publish"
    assert published.url.startswith(site.wordpress.url)
    listed = await b.list_posts(editor, PostQuery(search="Edited title"))
    assert post.id in [p.id for p in listed.items]

    trashed = await b.delete_post(editor, post.id, force=False)
    assert trashed.status == "publish"  # the post as it was
    assert (await b.get_post(editor, post.id)).status == "trash"
    with pytest.raises(InvalidInput, match="already in the trash"):
        await b.delete_post(editor, post.id, force=False)

    deleted = await b.delete_post(editor, post.id, force=True)
    assert (deleted.id, deleted.status) == (post.id, "trash")
    with pytest.raises(NotFound, match=f"Post {post.id} not found"):
        await b.get_post(editor, post.id)


async def test_pages_have_parents_and_reject_terms(site: Site) -> None:
    b, editor = site.backend, site.actor("editor")
    parent = await b.create_post(editor, PostInput(type="page", title=unique("Parent"), status="publish"))
    child = await b.create_post(
        editor, PostInput(type="page", title=unique("Child"), status="publish", parent_id=parent.id)
    )
    assert (child.type, child.parent_id) == ("page", parent.id)

    children = await b.list_posts(editor, PostQuery(type="page", parent_id=parent.id))
    assert [p.id for p in children.items] == [child.id]
    top = await b.list_posts(editor, PostQuery(type="page", parent_id=0, search=parent.title))
    assert [p.id for p in top.items] == [parent.id]

    # A fresh backend does not know the id is a page: get_post still finds it.
    fresh = WordPressBackend(site.wordpress.url, site.keyring)
    try:
        assert (await fresh.get_post(editor, child.id)).type == "page"
        moved = await fresh.update_post(editor, child.id, PostPatch(parent_id=0))
        assert moved.parent_id is None
    finally:
        await fresh.aclose()

    with pytest.raises(InvalidInput, match="Pages have no categories"):
        await b.update_post(editor, child.id, PostPatch(category_ids=[1]))
    post = await b.create_post(editor, PostInput(title=unique("Flat")))
    with pytest.raises(InvalidInput, match="Only pages can have a parent"):
        await b.update_post(editor, post.id, PostPatch(parent_id=parent.id))
    assert (await b.list_posts(editor, PostQuery(parent_id=parent.id))).items == []

    for page_id in (child.id, parent.id):
        gone = await b.delete_post(editor, page_id, force=True)
        assert gone.type == "page"
    await b.delete_post(editor, post.id, force=True)


async def test_contributor_is_refused_publishing_by_wordpress(site: Site) -> None:
    b, contributor = site.backend, site.actor("contributor")
    with pytest.raises(NotAllowed, match="^Sorry, you are not allowed to publish posts"):
        await b.create_post(contributor, PostInput(title="Straight out", status="publish"))

    draft = await b.create_post(contributor, PostInput(title=unique("Contributor draft")))
    pending = await b.create_post(contributor, PostInput(title=unique("For review"), status="pending"))
    assert (draft.status, pending.status) == ("draft", "pending")
    assert (await b.update_post(contributor, draft.id, PostPatch(status="pending"))).status == "pending"
    with pytest.raises(NotAllowed, match="not allowed to publish"):
        await b.update_post(contributor, draft.id, PostPatch(status="publish"))

    # Their own unpublished work is theirs to list and read (edit context works for it).
    mine = await b.list_posts(
        contributor, PostQuery(status=["draft", "pending"], author_id=contributor.user_id, limit=100)
    )
    assert {draft.id, pending.id} <= {p.id for p in mine.items}
    assert (await b.get_post(contributor, draft.id)).title == draft.title

    editor = site.actor("editor")
    approved = await b.update_post(editor, pending.id, PostPatch(status="publish"))
    assert (approved.status, approved.author.id) == ("publish", contributor.user_id)
    for post in (draft, pending):
        await b.delete_post(editor, post.id, force=True)


async def test_author_cannot_edit_someone_elses_post(site: Site) -> None:
    b = site.backend
    _, author = site.add_user("author")
    _, other_author = site.add_user("author")
    own = await b.create_post(author, PostInput(title=unique("Mine"), status="publish"))
    theirs = await b.create_post(other_author, PostInput(title=unique("Theirs"), status="publish"))

    assert (await b.update_post(author, own.id, PostPatch(title="Still mine"))).title == "Still mine"
    with pytest.raises(NotAllowed, match="^Sorry, you are not allowed to edit this post"):
        await b.update_post(author, theirs.id, PostPatch(title="Hijacked"))
    with pytest.raises(NotAllowed, match="not allowed to delete this post"):
        await b.delete_post(author, theirs.id, force=False)

    # Reading someone else's published post falls back to view context: rendered content.
    read = await b.get_post(author, theirs.id)
    assert (read.id, read.title, read.author.id) == (theirs.id, theirs.title, other_author.user_id)

    editor = site.actor("editor")
    for post in (own, theirs):
        await b.delete_post(editor, post.id, force=True)


async def test_subscriber_cannot_create_and_sees_rendered_content(site: Site) -> None:
    b, subscriber, editor = site.backend, site.actor("subscriber"), site.actor("editor")
    with pytest.raises(NotAllowed, match="^Sorry, you are not allowed to create posts"):
        await b.create_post(subscriber, PostInput(title="Nope"))
    # Statuses they may not list are narrowed away, as on the built-in site (WordPress itself
    # would refuse the whole request with "Status is forbidden").
    assert (await b.list_posts(subscriber, PostQuery(status=["draft"]))).items == []
    mixed = await b.list_posts(subscriber, PostQuery(status=["draft", "publish"], limit=5))
    assert mixed.items and {p.status for p in mixed.items} == {"publish"}

    post = await b.create_post(
        editor, PostInput(title="Tom's post", content="Line one\n\nLine two", status="publish")
    )
    assert post.content == "Line one\n\nLine two"
    seen = await b.get_post(subscriber, post.id)
    assert seen.content == "<p>Line one</p>\n<p>Line two</p>\n"  # what visitors see
    assert seen.title == "Tom\u2019s post"  # plain text of the rendered title
    visitor = await b.get_post(ANONYMOUS, post.id)
    assert visitor.content == seen.content
    await b.delete_post(editor, post.id, force=True)


async def test_anonymous_visitor_sends_no_credentials(site: Site) -> None:
    b, editor = site.backend, site.actor("editor")
    draft = await b.create_post(editor, PostInput(title=unique("Hidden draft")))
    site.keyring.asked.clear()
    counter = site.requests_during()

    page = await b.list_posts(ANONYMOUS, PostQuery(limit=5))
    assert all(p.status == "publish" for p in page.items)
    with pytest.raises(NotAllowed):
        await b.get_post(ANONYMOUS, draft.id)
    assert site.keyring.asked == []
    assert all("authorization" not in r.headers for r in site.transport.requests[counter.start :])
    await b.delete_post(editor, draft.id, force=True)


async def test_credentials_of_another_wordpress_user_are_refused(site: Site) -> None:
    """The connector's id and the credentials must name the same WordPress user."""
    contributor = site.wordpress.users["contributor"]
    impostor = Actor(user_id=contributor.id, username="contributor", role="editor")
    site.keyring.by_id = {**site.keyring.by_id, contributor.id: site.wordpress.users["editor"]}
    with pytest.raises(NotAllowed, match=f"belongs to WordPress user {site.wordpress.users['editor'].id}"):
        await site.backend.list_posts(impostor, PostQuery())


async def test_person_without_credentials_is_refused_with_the_providers_message(site: Site) -> None:
    stranger = Actor(user_id=987654, username="stranger", role="editor")
    with pytest.raises(NotAllowed, match="stranger has no WordPress application password"):
        await site.backend.list_posts(stranger, PostQuery())


# --- lists: pagination, search, filters -----------------------------------------------------


async def test_cursors_page_through_and_belong_to_their_query(site: Site) -> None:
    b, editor = site.backend, site.actor("editor")
    token = unique("pagetoken")
    made = [await b.create_post(editor, PostInput(title=f"{token} {i}", status="publish")) for i in range(5)]
    query = PostQuery(search=token, limit=2, order="title_asc")

    seen: list[int] = []
    pages = 0
    cursor: str | None = None
    while True:
        page = await b.list_posts(editor, query.model_copy(update={"cursor": cursor}))
        pages += 1
        seen.extend(p.id for p in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert seen == [p.id for p in made]  # title order "token 0" .. "token 4"

    second = (await b.list_posts(editor, query)).next_cursor
    assert second is not None
    with pytest.raises(InvalidInput, match="invalid cursor"):
        await b.list_posts(editor, PostQuery(search="something else", limit=2, cursor=second))
    with pytest.raises(InvalidInput, match="invalid cursor"):
        await b.list_posts(editor, PostQuery(type="page", search=token, limit=2, cursor=second))
    with pytest.raises(InvalidInput, match="limit=2"):
        await b.list_posts(editor, query.model_copy(update={"limit": 3, "cursor": second}))
    with pytest.raises(InvalidInput, match="invalid cursor"):
        await b.list_posts(editor, query.model_copy(update={"cursor": "not-a-cursor"}))
    # Content shrinking under a cursor: WordPress refuses a page past the end; that is an
    # empty last page, not an error.
    for post in made[1:]:
        await b.delete_post(editor, post.id, force=True)
    beyond = await b.list_posts(editor, query.model_copy(update={"cursor": second}))
    assert (beyond.items, beyond.next_cursor) == ([], None)
    await b.delete_post(editor, made[0].id, force=True)


async def test_search_and_filters_reach_wordpress(site: Site) -> None:
    b, editor = site.backend, site.actor("editor")
    _, author = site.add_user("author")
    token = unique("filt")
    category = await b.create_term(editor, TermInput(taxonomy="category", name=unique("FCat")))
    tag = await b.create_term(editor, TermInput(taxonomy="post_tag", name=unique("FTag")))
    old = await b.create_post(
        editor,
        PostInput(
            title=f"{token} old",
            status="publish",
            date=datetime(2020, 5, 1, tzinfo=UTC),
            category_ids=[category.id],
        ),
    )
    new = await b.create_post(author, PostInput(title=f"{token} new", status="publish", tag_ids=[tag.id]))
    draft = await b.create_post(editor, PostInput(title=f"{token} draft"))

    async def ids(**kw: Any) -> list[int]:
        page = await b.list_posts(editor, PostQuery(search=token, limit=50, **kw))
        return [p.id for p in page.items]

    assert await ids() == [new.id, old.id]  # default: published only, newest first
    assert await ids(order="date_asc") == [old.id, new.id]
    assert set(await ids(status=["publish", "draft"])) == {old.id, new.id, draft.id}
    assert await ids(status=["draft"]) == [draft.id]
    assert await ids(category_id=category.id) == [old.id]
    assert await ids(tag_id=tag.id) == [new.id]
    assert await ids(author_id=author.user_id) == [new.id]
    assert await ids(before=datetime(2021, 1, 1, tzinfo=UTC)) == [old.id]
    assert await ids(after=datetime.now(UTC) - timedelta(days=1)) == [new.id]
    assert await ids(type="page") == []
    assert (await b.list_posts(editor, PostQuery(search=unique("nothing")))).items == []

    with_category = (await b.list_posts(editor, PostQuery(category_id=category.id))).items[0]
    assert [(c.id, c.name, c.slug) for c in with_category.categories] == [
        (category.id, category.name, category.slug)
    ]
    for post in (old, new, draft):
        await b.delete_post(editor, post.id, force=True)


# --- comments -------------------------------------------------------------------------------


async def test_comments_are_created_and_moderated(site: Site) -> None:
    b, editor = site.backend, site.actor("editor")
    post = await b.create_post(editor, PostInput(title=unique("Discussed"), status="publish"))
    _, commenter = site.add_user("contributor")

    waiting = await b.create_comment(commenter, post.id, "A first comment from a contributor")
    assert (waiting.status, waiting.author_user_id, waiting.post_id) == ("hold", commenter.user_id, post.id)
    queue = await b.list_comments(editor, CommentQuery(post_id=post.id, status="hold"))
    assert [c.id for c in queue.items] == [waiting.id]
    assert (await b.list_comments(editor, CommentQuery(post_id=post.id))).items == []

    with pytest.raises(NotAllowed, match="^Sorry, you are not allowed to edit this comment"):
        await b.set_comment_status(commenter, waiting.id, "approved")
    with pytest.raises(NotAllowed):
        await b.delete_comment(commenter, waiting.id)

    statuses: list[CommentStatus] = ["approved", "spam", "trash", "hold", "approved"]
    for status in statuses:
        changed = await b.set_comment_status(editor, waiting.id, status)
        assert changed.status == status
        assert (await b.get_comment(editor, waiting.id)).status == status
    public = await b.list_comments(site.actor("subscriber"), CommentQuery(post_id=post.id))
    assert [(c.id, c.content) for c in public.items] == [
        (waiting.id, "<p>A first comment from a contributor</p>\n")
    ]

    reply = await b.create_comment(editor, post.id, "Thanks!", parent_id=waiting.id)
    assert (reply.parent_id, reply.status, reply.content) == (waiting.id, "approved", "Thanks!")
    replies = await b.list_comments(editor, CommentQuery(post_id=post.id, parent_id=waiting.id))
    assert [c.id for c in replies.items] == [reply.id]

    deleted = await b.delete_comment(editor, reply.id)
    assert deleted.id == reply.id
    with pytest.raises(NotFound, match=f"Comment {reply.id} not found"):
        await b.get_comment(editor, reply.id)
    with pytest.raises(NotAllowed, match="without a post"):
        await b.create_comment(editor, 99_999_999, "Nowhere")
    await b.delete_post(editor, post.id, force=True)


# --- media ----------------------------------------------------------------------------------


async def test_media_round_trip(site: Site) -> None:
    b, editor = site.backend, site.actor("editor")
    post = await b.create_post(editor, PostInput(title=unique("Illustrated")))
    name = unique("chart")
    item = await b.create_media(
        editor,
        MediaUpload(
            filename=f"{name}.png",
            mime_type="image/png",
            data=PNG,
            title="A chart",
            alt_text="Bars going up",
            caption="Sales",
            post_id=post.id,
        ),
    )
    assert (item.title, item.alt_text, item.caption, item.post_id) == (
        "A chart",
        "Bars going up",
        "Sales",
        post.id,
    )
    assert (item.mime_type, item.size, item.author_id) == ("image/png", len(PNG), editor.user_id)
    assert item.filename == f"{name}.png" and item.url.endswith(item.filename)

    assert await b.get_media(editor, item.id) == item
    with pytest.raises(NotFound):  # WordPress hides media of unpublished posts from visitors
        await b.media_bytes(str(item.id))

    title = f"{name} renamed"  # WordPress searches media titles, not file names
    changed = await b.update_media(editor, item.id, MediaPatch(title=title, alt_text="Alt", post_id=0))
    assert (changed.title, changed.alt_text, changed.caption, changed.post_id) == (
        title,
        "Alt",
        "Sales",
        None,
    )
    blob = await b.media_bytes(str(item.id))  # unattached now, so public
    assert (blob.data, blob.mime_type, blob.filename) == (PNG, "image/png", item.filename)

    images = await b.list_media(editor, MediaQuery(mime_type="image/", search=name))
    assert [m.id for m in images.items] == [item.id]
    assert [
        m.id for m in (await b.list_media(editor, MediaQuery(mime_type="image/png", search=name))).items
    ] == [item.id]
    assert (await b.list_media(editor, MediaQuery(mime_type="video/", search=name))).items == []
    assert (await b.list_media(editor, MediaQuery(mime_type="font/", search=name))).items == []

    gone = await b.delete_media(editor, item.id)
    assert (gone.id, gone.title) == (item.id, title)
    with pytest.raises(NotFound, match=f"Media {item.id} not found"):
        await b.get_media(editor, item.id)
    with pytest.raises(NotFound):
        await b.media_bytes(str(item.id))
    await b.delete_post(editor, post.id, force=True)


async def test_media_refusals_come_from_wordpress(site: Site) -> None:
    b = site.backend
    with pytest.raises(InvalidInput, match="not allowed to upload this file type"):
        await b.create_media(
            site.actor("editor"),
            MediaUpload(filename="tool.exe", mime_type="application/x-msdownload", data=b"MZ\x90\x00"),
        )
    with pytest.raises(NotAllowed, match="not allowed to create posts as this user"):
        await b.create_media(
            site.actor("contributor"), MediaUpload(filename="a.png", mime_type="image/png", data=PNG)
        )


# --- terms ----------------------------------------------------------------------------------


async def test_terms_crud(site: Site) -> None:
    b, editor = site.backend, site.actor("editor")
    name = unique("Topic")
    parent = await b.create_term(editor, TermInput(taxonomy="category", name=name, description="Top"))
    child = await b.create_term(
        editor, TermInput(taxonomy="category", name=f"{name} child", slug=f"{name}-kid", parent_id=parent.id)
    )
    assert (parent.taxonomy, parent.name, parent.description, parent.count) == ("category", name, "Top", 0)
    assert (child.parent_id, child.slug) == (parent.id, f"{name}-kid".lower())

    under = await b.list_terms(editor, TermQuery(taxonomy="category", parent_id=parent.id))
    assert [t.id for t in under.items] == [child.id]
    found = await b.list_terms(editor, TermQuery(search=name))
    assert [t.id for t in found.items] == [parent.id, child.id]  # by name

    with pytest.raises(Conflict, match="already exists"):
        await b.create_term(editor, TermInput(taxonomy="category", name=name))
    with pytest.raises(NotAllowed, match="not allowed to create terms"):
        await b.create_term(site.actor("author"), TermInput(taxonomy="category", name=unique("No")))

    renamed = await b.update_term(editor, child.id, TermPatch(name=f"{name} renamed", parent_id=0))
    assert (renamed.name, renamed.parent_id) == (f"{name} renamed", None)
    assert await b.get_term(editor, child.id) == renamed

    tag = await b.create_term(editor, TermInput(taxonomy="post_tag", name=unique("tag")))
    assert (await b.get_term(editor, tag.id)).taxonomy == "post_tag"
    assert (await b.list_terms(editor, TermQuery(taxonomy="post_tag", parent_id=parent.id))).items == []
    with pytest.raises(InvalidInput, match="not hierarchical"):
        await b.create_term(editor, TermInput(taxonomy="post_tag", name=unique("t"), parent_id=parent.id))

    for term in (tag, child, parent):
        deleted = await b.delete_term(editor, term.id)
        assert deleted.id == term.id
        with pytest.raises(NotFound, match=f"Term {term.id} not found"):
            await b.get_term(editor, term.id)


# --- users ----------------------------------------------------------------------------------


async def test_users_show_email_and_role_only_to_those_who_may_list_users(site: Site) -> None:
    b, admin, editor = site.backend, site.actor("administrator"), site.actor("editor")
    user, author = site.add_user("author")
    for i in range(2):
        await b.create_post(author, PostInput(title=f"{user.username} {i}", status="publish"))
    await b.create_post(author, PostInput(title=f"{user.username} draft"))

    full = await b.list_users(admin, UserQuery(search=user.username))
    assert [(u.id, u.username, u.email, u.role, u.post_count) for u in full.items] == [
        (user.id, user.username, user.email, "author", 2)
    ]
    assert await b.get_user(admin, user.id) == full.items[0]
    authors = await b.list_users(admin, UserQuery(role="author", limit=100))
    assert user.id in {u.id for u in authors.items} and {u.role for u in authors.items} == {"author"}

    seen = await b.get_user(editor, user.id)  # editors lack list_users in WordPress
    assert (seen.id, seen.email, seen.role, seen.post_count) == (user.id, None, "unknown", 2)
    listed = await b.list_users(editor, UserQuery(search=user.username))
    assert [(u.id, u.email) for u in listed.items] == [(user.id, None)]
    with pytest.raises(NotAllowed, match="not allowed to filter users by role"):
        await b.list_users(editor, UserQuery(role="author"))

    me = await b.get_user(editor, editor.user_id)
    assert (me.username, me.email, me.role) == ("editor", site.wordpress.users["editor"].email, "editor")
    with pytest.raises(NotFound, match="User 99999999 not found"):
        await b.get_user(admin, 99_999_999)


# --- errors, caching, request counts --------------------------------------------------------


async def test_wordpress_errors_are_mapped(site: Site) -> None:
    b, editor = site.backend, site.actor("editor")
    with pytest.raises(InvalidInput, match="^Invalid post parent ID"):
        await b.create_post(editor, PostInput(type="page", title="Orphan", parent_id=99_999_999))
    # WordPress would save these silently without the bad ids; the backend refuses them first.
    with pytest.raises(InvalidInput, match="category_ids: term 99999999 does not exist"):
        await b.create_post(editor, PostInput(title="Bad", category_ids=[1, 99_999_999]))
    with pytest.raises(InvalidInput, match="featured_media_id 99999999 is not an existing image"):
        await b.create_post(editor, PostInput(title="Bad", featured_media_id=99_999_999))
    with pytest.raises(NotFound, match="Post 99999999 not found"):
        await b.get_post(editor, 99_999_999)
    with pytest.raises(NotFound):
        await b.update_post(editor, 99_999_999, PostPatch(title="x"))
    with pytest.raises(NotFound):
        await b.delete_term(editor, 99_999_999)


async def test_read_mostly_data_is_cached_and_dropped_by_our_writes(site: Site) -> None:
    b, editor = site.backend, site.actor("editor")
    info = await b.site_info(editor)
    assert (info.backend, info.url) == ("wordpress", site.wordpress.url + "/")
    assert info.name
    prefix = unique("Fresh")
    query = TermQuery(search=prefix)
    assert (await b.list_terms(editor, query)).items == []

    counter = site.requests_during()
    assert await b.site_info(editor) == info
    assert (await b.list_terms(editor, query)).items == []
    assert counter.count == 0

    created = await b.create_term(editor, TermInput(taxonomy="category", name=f"{prefix} term"))
    counter = site.requests_during()
    assert [t.id for t in (await b.list_terms(editor, query)).items] == [created.id]
    assert counter.count == 1

    post = await b.create_post(editor, PostInput(title=unique("Counted"), status="publish"))
    counter = site.requests_during()
    assert (await b.site_info(editor)).post_count == info.post_count + 1
    assert counter.count == 3
    await b.delete_post(editor, post.id, force=True)
    await b.delete_term(editor, created.id)


async def test_a_page_of_posts_costs_one_request(site: Site) -> None:
    b, editor = site.backend, site.actor("editor")
    token = unique("cost")
    authors = [site.add_user("author")[1] for _ in range(2)]
    tags = [
        await b.create_term(editor, TermInput(taxonomy="post_tag", name=unique("ctag"))) for _ in range(3)
    ]
    made = [
        await b.create_post(
            authors[i % 2], PostInput(title=f"{token} {i}", status="publish", tag_ids=[tags[i % 3].id])
        )
        for i in range(10)
    ]
    expected = {p.id: (p.author.id, p.tags[0].id) for p in made}

    for actor in (editor, authors[0]):  # edit context, view context
        await b.list_posts(actor, PostQuery(limit=1))  # their credentials are confirmed by now
        counter = site.requests_during()
        page = await b.list_posts(actor, PostQuery(search=token, limit=10))
        assert counter.paths == ["/wp-json/wp/v2/posts"]
        assert {p.id: (p.author.id, p.tags[0].id) for p in page.items} == expected
        assert {p.author.username for p in page.items} == {a.username for a in authors}
        assert all(p.tags[0].name.startswith("ctag") for p in page.items)
    for post in made:
        await b.delete_post(editor, post.id, force=True)


async def test_deleted_wordpress_user_must_sign_in_again(site: Site) -> None:
    b = site.backend
    user, editor = site.add_user("editor")
    post = await b.create_post(editor, PostInput(title=unique("Before removal")))
    site.wordpress.delete_user(user.id)

    with pytest.raises(NotAllowed, match=SIGN_IN_AGAIN) as refused:
        await b.create_post(editor, PostInput(title="After removal"))
    assert "no longer accepts" in refused.value.message
    # WordPress serves a dead password's reads as anonymous; a fresh check catches that too.
    fresh = WordPressBackend(site.wordpress.url, site.keyring)
    try:
        with pytest.raises(NotAllowed, match=SIGN_IN_AGAIN):
            await fresh.list_posts(editor, PostQuery())
    finally:
        await fresh.aclose()
    # WordPress handed the removed person's content to the admin (the fixture's reassign).
    editor_actor = site.actor("editor")
    assert (await b.get_post(editor_actor, post.id)).author.id == site.wordpress.admin.id
    await b.delete_post(editor_actor, post.id, force=True)


# Keep last: stops the web server of the shared WordPress (and starts it again).
async def test_wordpress_outage_is_site_unavailable(site: Site) -> None:
    b, editor = site.backend, site.actor("editor")
    site.wordpress.stop_web()
    try:
        for call in (
            lambda: b.site_info(editor),
            lambda: b.list_posts(editor, PostQuery()),
            lambda: b.get_post(editor, 1),
        ):
            with pytest.raises(SiteUnavailable, match=f"^WordPress at {site.wordpress.url} is unreachable"):
                await call()
    finally:
        site.wordpress.start_web()
    assert (await b.site_info(editor)).backend == "wordpress"
    await b.list_posts(editor, PostQuery(limit=1))
    assert "uncategorized" in {t.slug for t in (await b.list_terms(editor, TermQuery(limit=100))).items}
