"""The built-in site: a small WordPress-like CMS stored in the server's own database.

It implements ``SiteBackend`` with WordPress semantics so that agents see the same behaviour
whether the connector fronts this site or a real WordPress: the same roles and capabilities
decide who may read, write, publish and moderate, and invisible objects look exactly like
missing ones (``NotFound``) so ids cannot be probed.

Design rules followed throughout:

* every write runs in one transaction (``_write``); a failure anywhere leaves no partial rows;
* lists use keyset pagination (``cursor.KeysetOrder``), never ``OFFSET``;
* a page of posts is rendered with a fixed number of queries (authors and terms are fetched
  in one batch each), never one query per row;
* datetimes leave this module timezone-aware in UTC, whatever the database returns
  (SQLite hands back naive values)."""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from aiconnector.core.principal import Actor
from aiconnector.core.roles import Cap
from aiconnector.db import models as m
from aiconnector.errors import Conflict, InvalidInput, NotAllowed, NotFound
from aiconnector.sites.base import (
    AuthorRef,
    Comment,
    CommentQuery,
    CommentStatus,
    MediaBytes,
    MediaItem,
    MediaPatch,
    MediaQuery,
    MediaUpload,
    Page,
    Post,
    PostInput,
    PostPatch,
    PostQuery,
    PostSummary,
    SiteInfo,
    Taxonomy,
    Term,
    TermInput,
    TermPatch,
    TermQuery,
    TermRef,
    UserInfo,
    UserQuery,
)
from aiconnector.sites.cursor import KeysetOrder, paginate_rows

DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024

# Statuses that put a post in front of readers (now or at its scheduled date): setting one needs
# the publish capability, exactly as in WordPress.
_PUBLISHING: frozenset[str] = frozenset({"publish", "future", "private"})
# Statuses that count as "published" for the edit/delete_published_* capabilities.
_PUBLISHED: frozenset[str] = frozenset({"publish", "future"})

P = TypeVar("P", bound=PostSummary)

_SLUG_MAX = 190  # leaves room for a "-NN" suffix within the 200-character column


# --- small pure helpers ----------------------------------------------------------------------


def utc(value: datetime) -> datetime:
    """The same instant as an aware UTC datetime; naive values are taken to be UTC already.

    SQLite stores and returns naive datetimes, PostgreSQL aware ones in the session time zone;
    every value crossing this module's boundary goes through here."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def slugify(text: str) -> str:
    """URL slug the way WordPress makes one: ASCII-folded, lower case, words joined by ``-``."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    return slug[:_SLUG_MAX].rstrip("-")


def _matches(text: str, *columns: InstrumentedAttribute[str]) -> ColumnElement[bool]:
    """Case-insensitive substring match on any column, the same on SQLite and PostgreSQL.

    ``lower() LIKE`` is used instead of ``ILIKE`` because SQLite has no ILIKE; wildcards in the
    user's text are escaped so ``50%`` searches for a literal percent sign."""
    needle = text.strip().lower()
    return or_(*(func.lower(c).contains(needle, autoescape=True) for c in columns))


def _deduplicate(ids: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(ids))


def _plural(post_type: str) -> str:
    return "pages" if post_type == "page" else "posts"


def _require(actor: Actor, cap: Cap, what: str) -> None:
    """Raise ``NotAllowed`` naming the role and the refused action unless the actor has ``cap``."""
    if not actor.can(cap):
        raise NotAllowed(f"Your role ({actor.role}) cannot {what}.")


# --- capabilities per post type ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TypeCaps:
    """The capabilities that govern one post type (WordPress maps pages to *_pages caps).

    The role table has no ``edit_others_pages``-style caps, so pages reuse the post caps for
    "others'", "published" and "private" checks on top of the page-specific base cap."""

    edit: Cap
    publish: Cap
    delete: Cap
    edit_others: Cap = Cap.EDIT_OTHERS_POSTS
    edit_published: Cap = Cap.EDIT_PUBLISHED_POSTS
    delete_others: Cap = Cap.DELETE_OTHERS_POSTS
    delete_published: Cap = Cap.DELETE_PUBLISHED_POSTS
    read_private: Cap = Cap.READ_PRIVATE_POSTS


_CAPS: dict[str, _TypeCaps] = {
    "post": _TypeCaps(edit=Cap.EDIT_POSTS, publish=Cap.PUBLISH_POSTS, delete=Cap.DELETE_POSTS),
    "page": _TypeCaps(edit=Cap.EDIT_PAGES, publish=Cap.PUBLISH_PAGES, delete=Cap.DELETE_PAGES),
}


def _has(actor: Actor, *caps: Cap) -> bool:
    return all(actor.can(c) for c in caps)


def _can_read(actor: Actor, post: m.Post) -> bool:
    """WordPress read rules: published for everyone, the rest for those who could edit it."""
    if post.status == "publish":
        return True
    caps = _CAPS[post.type]
    if post.author_id == actor.user_id:
        return _has(actor, caps.edit)
    if post.status == "private":
        return _has(actor, caps.read_private)
    return _has(actor, caps.edit, caps.edit_others)


def _readable_clause(actor: Actor, post_type: str) -> ColumnElement[bool]:
    """SQL twin of ``_can_read`` for one post type, so lists filter in the database."""
    caps = _CAPS[post_type]
    mine = m.Post.author_id == actor.user_id
    allowed: list[ColumnElement[bool]] = [m.Post.status == "publish"]
    if _has(actor, caps.edit):
        allowed.append(mine)
    if _has(actor, caps.read_private):
        allowed.append(and_(~mine, m.Post.status == "private"))
    if _has(actor, caps.edit, caps.edit_others):
        allowed.append(and_(~mine, m.Post.status != "private"))
    return and_(m.Post.type == post_type, or_(*allowed))


def _readable_any_type(actor: Actor) -> ColumnElement[bool]:
    return or_(*(_readable_clause(actor, t) for t in _CAPS))


def _effective_status(post: m.Post) -> str:
    """The status that decides "published" caps: a trashed post keeps its pre-trash rank."""
    return (post.trashed_from or post.status) if post.status == "trash" else post.status


def _check_change(actor: Actor, post: m.Post, action: Literal["edit", "delete"]) -> None:
    """Apply WordPress's map_meta_cap for edit_post / delete_post to one post."""
    caps = _CAPS[post.type]
    plural = _plural(post.type)
    own = post.author_id == actor.user_id
    base, others, published = (
        (caps.edit, caps.edit_others, caps.edit_published)
        if action == "edit"
        else (caps.delete, caps.delete_others, caps.delete_published)
    )
    needed: list[tuple[Cap, str]] = [(base, f"{action} {plural}")]
    if not own:
        needed.append((others, f"{action} other users' {plural}"))
        if post.status == "private":
            needed.append((caps.read_private, f"{action} other users' private {plural}"))
    if _effective_status(post) in _PUBLISHED:
        needed.append((published, f"{action} published {plural}"))
    for cap, what in needed:
        _require(actor, cap, what)


def _check_publish(actor: Actor, post_type: str, status: str) -> None:
    if status in _PUBLISHING and not actor.can(_CAPS[post_type].publish):
        raise NotAllowed(
            f"Your role ({actor.role}) cannot publish {_plural(post_type)}; save as draft or pending instead."
        )


def _schedule(status: str, date: datetime, now: datetime, *, status_given: bool) -> str:
    """Reconcile status and date the WordPress way.

    ``publish`` with a future date is scheduled (``future``). ``future`` needs a future date
    when asked for explicitly; a scheduled post whose date is moved into the past is published."""
    if status == "publish" and date > now:
        return "future"
    if status == "future" and date <= now:
        if status_given:
            raise InvalidInput("Status 'future' needs a date in the future; use 'publish' for past dates.")
        return "publish"
    return status


# --- media validation --------------------------------------------------------------------------

# Types a browser will not execute when served from the site's origin (no HTML, SVG or scripts),
# with the file extensions each may carry; the first one is appended when a name has none.
_ALLOWED_MEDIA: dict[str, tuple[str, ...]] = {
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg"),
    "image/gif": ("gif",),
    "image/webp": ("webp",),
    "application/pdf": ("pdf",),
    "text/plain": ("txt",),
    "text/csv": ("csv",),
    "audio/mpeg": ("mp3",),
    "audio/ogg": ("ogg", "oga"),
    "audio/wav": ("wav",),
    "video/mp4": ("mp4", "m4v"),
    "video/webm": ("webm",),
}


def _webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


# Formats whose first bytes are checked so a file cannot claim a type it is not.
_MAGIC: dict[str, Any] = {
    "image/png": lambda d: d.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": lambda d: d.startswith(b"\xff\xd8\xff"),
    "image/gif": lambda d: d[:6] in (b"GIF87a", b"GIF89a"),
    "image/webp": _webp,
    "application/pdf": lambda d: d.startswith(b"%PDF-"),
}


def _safe_name_part(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", folded)
    return re.sub(r"-{2,}", "-", clean).strip(".-_")


def sanitize_filename(filename: str, mime_type: str) -> str:
    """A safe file name: no directories, only ``[A-Za-z0-9._-]``, an extension matching the type."""
    base = posixpath.basename(filename.replace("\\", "/"))
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem, ext = _safe_name_part(stem)[:120] or "file", _safe_name_part(ext).lower()
    allowed = _ALLOWED_MEDIA[mime_type]
    if ext and ext not in allowed:
        raise InvalidInput(
            f"File name {filename!r} does not match type {mime_type}; expected extension "
            + " or ".join(f".{e}" for e in allowed)
        )
    return f"{stem}.{ext or allowed[0]}"


def _validate_upload(upload: MediaUpload, max_bytes: int) -> str:
    """Check type, size and content of an upload; return the sanitized file name."""
    mime = upload.mime_type.strip().lower()
    if mime not in _ALLOWED_MEDIA:
        allowed = ", ".join(sorted(_ALLOWED_MEDIA))
        raise InvalidInput(f"File type {upload.mime_type!r} is not allowed; allowed types: {allowed}")
    if not upload.data:
        raise InvalidInput("The file is empty.")
    if len(upload.data) > max_bytes:
        raise InvalidInput(f"The file is {len(upload.data)} bytes; the limit is {max_bytes} bytes.")
    check = _MAGIC.get(mime)
    if check is not None and not check(upload.data):
        raise InvalidInput(f"The file content is not a valid {mime} file.")
    return sanitize_filename(upload.filename, mime)


# --- orderings ---------------------------------------------------------------------------------

_POST_ORDERS: dict[str, KeysetOrder] = {
    "date_desc": KeysetOrder("date_desc", (m.Post.date, m.Post.id), (datetime, int), True),
    "date_asc": KeysetOrder("date_asc", (m.Post.date, m.Post.id), (datetime, int), False),
    "title_asc": KeysetOrder("title_asc", (m.Post.title, m.Post.id), (str, int), False),
    "title_desc": KeysetOrder("title_desc", (m.Post.title, m.Post.id), (str, int), True),
    "modified_desc": KeysetOrder("modified_desc", (m.Post.modified_at, m.Post.id), (datetime, int), True),
}
_COMMENT_ORDER = KeysetOrder("comments", (m.Comment.created_at, m.Comment.id), (datetime, int), True)
_MEDIA_ORDER = KeysetOrder("media", (m.Media.created_at, m.Media.id), (datetime, int), True)
_TERM_ORDER = KeysetOrder("terms", (m.Term.name, m.Term.id), (str, int), False)
_USER_ORDER = KeysetOrder("users", (m.User.username, m.User.id), (str, int), False)


def _page_query(stmt: Select[Any], order: KeysetOrder, cursor: str | None, limit: int) -> Select[Any]:
    """Apply ordering, the cursor's start point and ``limit + 1`` (to detect a next page)."""
    if cursor:
        stmt = stmt.where(order.after(cursor))
    return stmt.order_by(*order.order_by()).limit(limit + 1)


# --- row → model conversions -------------------------------------------------------------------


def _comment_model(row: m.Comment) -> Comment:
    return Comment(
        id=row.id,
        post_id=row.post_id,
        parent_id=row.parent_id,
        author_name=row.author_name,
        author_user_id=row.user_id,
        content=row.content,
        status=row.status,  # type: ignore[arg-type]
        date=utc(row.created_at),
    )


def _term_model(row: m.Term, count: int) -> Term:
    return Term(
        id=row.id,
        taxonomy=row.taxonomy,  # type: ignore[arg-type]
        name=row.name,
        slug=row.slug,
        description=row.description,
        parent_id=row.parent_id,
        count=count,
    )


def _post_count_subquery() -> Any:
    """Published posts per author, as one aggregate to join against (never a query per user)."""
    return (
        select(m.Post.author_id, func.count().label("n"))
        .where(m.Post.type == "post", m.Post.status == "publish")
        .group_by(m.Post.author_id)
        .subquery()
    )


def _term_count_subquery() -> Any:
    """Posts (any status) per term, as one aggregate to join against."""
    return select(m.PostTerm.term_id, func.count().label("n")).group_by(m.PostTerm.term_id).subquery()


class BuiltinSite:
    """``SiteBackend`` over the server's own database (see the module docstring for the rules)."""

    backend_name = "builtin"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        public_url: str,
        site_name: str = "AI Connector Demo",
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    ) -> None:
        self._sessions = sessions
        self._public_url = public_url.rstrip("/")
        self._site_name = site_name
        self._max_upload_bytes = max_upload_bytes

    # --- plumbing ------------------------------------------------------------------------------

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        """One transaction for one write; unique-key races surface as ``Conflict``, not 500s."""
        try:
            async with self._sessions.begin() as session:
                yield session
        except IntegrityError:
            raise Conflict(
                "The change conflicts with existing content (a duplicate slug or an item removed "
                "meanwhile); nothing was saved."
            ) from None

    def post_url(self, post_id: int, post_type: str) -> str:
        key = "page_id" if post_type == "page" else "p"
        return f"{self._public_url}/?{key}={post_id}"

    def media_url(self, media_id: int, filename: str) -> str:
        return f"{self._public_url}/media/{media_id}/{filename}"

    # --- site ----------------------------------------------------------------------------------

    async def site_info(self, actor: Actor) -> SiteInfo:
        async with self._sessions() as s:
            options = dict(
                (
                    await s.execute(
                        select(m.SiteOption.name, m.SiteOption.value).where(
                            m.SiteOption.name.in_(("blogname", "blogdescription"))
                        )
                    )
                ).all()
            )
            counts = dict(
                (
                    await s.execute(
                        select(m.Post.type, func.count())
                        .where(m.Post.status == "publish")
                        .group_by(m.Post.type)
                    )
                ).all()
            )
        return SiteInfo(
            name=options.get("blogname") or self._site_name,
            description=options.get("blogdescription", ""),
            url=self._public_url + "/",
            backend=self.backend_name,
            post_count=counts.get("post", 0),
            page_count=counts.get("page", 0),
        )

    # --- posts: reading ------------------------------------------------------------------------

    async def list_posts(self, actor: Actor, query: PostQuery) -> Page[PostSummary]:
        order = _POST_ORDERS[query.order]
        stmt = select(m.Post).where(*self._post_filters(actor, query))
        async with self._sessions() as s:
            rows = (await s.scalars(_page_query(stmt, order, query.cursor, query.limit))).all()
            page, next_cursor = paginate_rows(rows, query.limit, order)
            items = await self._render_posts(s, page, PostSummary)
        return Page[PostSummary](items=items, next_cursor=next_cursor)

    def _post_filters(self, actor: Actor, q: PostQuery) -> list[ColumnElement[bool]]:
        """WHERE conditions for a post query; visibility always applies, whatever was asked."""
        conds = [m.Post.status.in_(q.status or ["publish"]), _readable_clause(actor, q.type)]
        if q.search and q.search.strip():
            conds.append(_matches(q.search, m.Post.title, m.Post.content, m.Post.excerpt))
        for term_id in (q.category_id, q.tag_id):
            if term_id is not None:
                conds.append(m.Post.id.in_(select(m.PostTerm.post_id).where(m.PostTerm.term_id == term_id)))
        if q.author_id is not None:
            conds.append(m.Post.author_id == q.author_id)
        if q.after is not None:
            conds.append(m.Post.date > utc(q.after))
        if q.before is not None:
            conds.append(m.Post.date < utc(q.before))
        if q.parent_id is not None:
            # 0 asks for top-level pages, any other id for that page's children.
            conds.append(m.Post.parent_id == q.parent_id if q.parent_id else m.Post.parent_id.is_(None))
        return conds

    async def get_post(self, actor: Actor, post_id: int) -> Post:
        async with self._sessions() as s:
            row = await self._readable_post(s, actor, post_id)
            return await self._render_post(s, row)

    async def _readable_post(self, s: AsyncSession, actor: Actor, post_id: int) -> m.Post:
        """The post, or ``NotFound`` when it is missing or the actor may not see it."""
        row = await s.get(m.Post, post_id)
        if row is None or not _can_read(actor, row):
            raise NotFound(f"Post {post_id} not found.")
        return row

    async def _render_post(self, s: AsyncSession, row: m.Post) -> Post:
        return (await self._render_posts(s, [row], Post))[0]

    async def _render_posts(self, s: AsyncSession, rows: Sequence[m.Post], model: type[P]) -> list[P]:
        """Models for a page of posts with two batch queries (authors, terms), whatever its size."""
        if not rows:
            return []
        authors = await self._author_refs(s, {r.author_id for r in rows})
        terms = await self._term_refs(s, [r.id for r in rows])
        return [self._post_model(r, authors[r.author_id], terms[r.id], model) for r in rows]

    def _post_model(
        self, row: m.Post, author: AuthorRef, terms: dict[str, list[TermRef]], model: type[P]
    ) -> P:
        fields: dict[str, Any] = {
            "id": row.id,
            "type": row.type,
            "title": row.title,
            "slug": row.slug,
            "status": row.status,
            "author": author,
            "date": utc(row.date),
            "modified": utc(row.modified_at),
            "excerpt": row.excerpt,
            "url": self.post_url(row.id, row.type),
            "categories": terms.get("category", []),
            "tags": terms.get("post_tag", []),
        }
        if model is Post:
            fields.update(
                content=row.content,
                parent_id=row.parent_id,
                featured_media_id=row.featured_media_id,
                comment_status=row.comment_status,
                menu_order=row.menu_order,
            )
        return model(**fields)

    async def _author_refs(self, s: AsyncSession, ids: set[int]) -> dict[int, AuthorRef]:
        rows = await s.execute(
            select(m.User.id, m.User.username, m.User.display_name).where(m.User.id.in_(ids))
        )
        return {
            uid: AuthorRef(id=uid, username=username, display_name=display or username)
            for uid, username, display in rows
        }

    async def _term_refs(self, s: AsyncSession, post_ids: list[int]) -> dict[int, dict[str, list[TermRef]]]:
        rows = await s.execute(
            select(m.PostTerm.post_id, m.Term.taxonomy, m.Term.id, m.Term.name, m.Term.slug)
            .join(m.Term, m.Term.id == m.PostTerm.term_id)
            .where(m.PostTerm.post_id.in_(post_ids))
            .order_by(m.Term.name, m.Term.id)
        )
        result: dict[int, dict[str, list[TermRef]]] = defaultdict(lambda: defaultdict(list))
        for post_id, taxonomy, term_id, name, slug in rows:
            result[post_id][taxonomy].append(TermRef(id=term_id, name=name, slug=slug))
        return result

    # --- posts: writing ------------------------------------------------------------------------

    async def create_post(self, actor: Actor, data: PostInput) -> Post:
        caps = _CAPS[data.type]
        _require(actor, caps.edit, f"create {_plural(data.type)}")
        if data.status == "trash":
            raise InvalidInput("A new post cannot be created in the trash.")
        now = _now()
        date = utc(data.date) if data.date else now
        status = _schedule(data.status, date, now, status_given=True)
        _check_publish(actor, data.type, status)
        self._check_type_fields(data.type, data.parent_id, data.category_ids, data.tag_ids)
        async with self._write() as s:
            await self._check_references(s, data.type, None, data.parent_id, data.featured_media_id)
            row = m.Post(
                type=data.type,
                title=data.title.strip(),
                content=data.content,
                excerpt=data.excerpt,
                slug=await self._unique_post_slug(s, data.type, data.slug or data.title, None),
                status=status,
                author_id=actor.user_id,
                parent_id=data.parent_id,
                featured_media_id=data.featured_media_id,
                comment_status=data.comment_status or ("closed" if data.type == "page" else "open"),
                created_at=now,
                date=date,
                modified_at=now,
            )
            s.add(row)
            await s.flush()
            await self._assign_terms(s, row.id, data.category_ids, data.tag_ids)
            return await self._render_post(s, row)

    async def update_post(self, actor: Actor, post_id: int, patch: PostPatch) -> Post:
        if patch.status == "trash":
            raise InvalidInput("Use delete_post to move a post to the trash.")
        async with self._write() as s:
            row = await self._readable_post(s, actor, post_id)
            _check_change(actor, row, "edit")
            self._check_type_fields(row.type, patch.parent_id, patch.category_ids, patch.tag_ids)
            await self._check_references(s, row.type, row.id, patch.parent_id, patch.featured_media_id)
            now = _now()
            self._apply_status_and_date(actor, row, patch, now)
            await self._apply_post_fields(s, row, patch)
            row.modified_at = now
            await s.flush()
            await self._assign_terms(s, row.id, patch.category_ids, patch.tag_ids)
            return await self._render_post(s, row)

    def _apply_status_and_date(self, actor: Actor, row: m.Post, patch: PostPatch, now: datetime) -> None:
        """Status transitions with their capability checks, scheduling and untrash bookkeeping."""
        if patch.status is None and patch.date is None:
            return
        status: str = patch.status or row.status
        date = utc(patch.date) if patch.date else utc(row.date)
        if patch.date is None and status == "publish" and row.status in ("draft", "pending"):
            # Publishing a draft publishes it now, as WordPress does for undated drafts.
            date = now
        if status != "trash":
            status = _schedule(status, date, now, status_given=patch.status is not None)
        if status != row.status:
            _check_publish(actor, row.type, status)
        if row.status == "trash" and status != "trash":
            row.trashed_from = None
        row.status, row.date = status, date

    async def _apply_post_fields(self, s: AsyncSession, row: m.Post, patch: PostPatch) -> None:
        """Copy the plain fields of a patch; ``0`` clears parent and featured media."""
        if patch.title is not None:
            row.title = patch.title.strip()
        if patch.content is not None:
            row.content = patch.content
        if patch.excerpt is not None:
            row.excerpt = patch.excerpt
        if patch.slug is not None:
            row.slug = await self._unique_post_slug(s, row.type, patch.slug or row.title, row.id)
        if patch.parent_id is not None:
            row.parent_id = patch.parent_id or None
        if patch.featured_media_id is not None:
            row.featured_media_id = patch.featured_media_id or None
        if patch.comment_status is not None:
            row.comment_status = patch.comment_status

    async def delete_post(self, actor: Actor, post_id: int, *, force: bool) -> Post:
        async with self._write() as s:
            row = await self._readable_post(s, actor, post_id)
            _check_change(actor, row, "delete")
            before = await self._render_post(s, row)
            if force:
                await self._purge_post(s, row)
            elif row.status == "trash":
                raise InvalidInput(
                    f"Post {post_id} is already in the trash; use force to delete it permanently."
                )
            else:
                row.trashed_from, row.status, row.modified_at = row.status, "trash", _now()
            return before

    async def _purge_post(self, s: AsyncSession, row: m.Post) -> None:
        """Delete a post and what hangs off it explicitly (not relying on SQLite's FK pragma)."""
        await s.execute(update(m.Post).where(m.Post.parent_id == row.id).values(parent_id=row.parent_id))
        await s.execute(update(m.Media).where(m.Media.post_id == row.id).values(post_id=None))
        await s.execute(delete(m.PostTerm).where(m.PostTerm.post_id == row.id))
        await s.execute(update(m.Comment).where(m.Comment.post_id == row.id).values(parent_id=None))
        await s.execute(delete(m.Comment).where(m.Comment.post_id == row.id))
        await s.delete(row)
        await s.flush()

    @staticmethod
    def _check_type_fields(
        post_type: str, parent_id: int | None, category_ids: list[int] | None, tag_ids: list[int] | None
    ) -> None:
        """Posts are flat and taxonomized; pages are hierarchical and not (as in WordPress)."""
        if post_type == "post" and parent_id:
            raise InvalidInput("Only pages can have a parent; posts are not hierarchical.")
        if post_type == "page" and (category_ids or tag_ids):
            raise InvalidInput("Pages have no categories or tags.")

    async def _check_references(
        self,
        s: AsyncSession,
        post_type: str,
        post_id: int | None,
        parent_id: int | None,
        featured_media_id: int | None,
    ) -> None:
        """Parent and featured media must exist (``InvalidInput`` names the bad id)."""
        if parent_id:
            parent = await s.get(m.Post, parent_id)
            if parent is None or parent.type != post_type:
                raise InvalidInput(f"parent_id {parent_id} is not an existing {post_type}.")
            if post_id is not None and await self._is_descendant(s, parent_id, post_id):
                raise InvalidInput(f"parent_id {parent_id} would make the page its own ancestor.")
        if featured_media_id:
            media = await s.get(m.Media, featured_media_id)
            if media is None or not media.mime_type.startswith("image/"):
                raise InvalidInput(f"featured_media_id {featured_media_id} is not an existing image.")

    async def _is_descendant(self, s: AsyncSession, node_id: int, ancestor_id: int) -> bool:
        """True if ``node_id`` is ``ancestor_id`` or below it (one query: pages are few)."""
        parents = dict(
            (await s.execute(select(m.Post.id, m.Post.parent_id).where(m.Post.type == "page"))).all()
        )
        return _reaches(parents, node_id, ancestor_id)

    async def _unique_post_slug(
        self, s: AsyncSession, post_type: str, wanted: str, own_id: int | None
    ) -> str:
        """``wanted`` slugified, with ``-2``, ``-3``... appended while taken by another post of the type."""
        base = slugify(wanted) or "untitled"
        stmt = select(m.Post.slug).where(
            m.Post.type == post_type,
            or_(m.Post.slug == base, m.Post.slug.startswith(f"{base}-", autoescape=True)),
        )
        if own_id is not None:
            stmt = stmt.where(m.Post.id != own_id)
        taken = set((await s.scalars(stmt)).all())
        slug, n = base, 2
        while slug in taken:
            slug, n = f"{base}-{n}", n + 1
        return slug

    async def _assign_terms(
        self, s: AsyncSession, post_id: int, category_ids: list[int] | None, tag_ids: list[int] | None
    ) -> None:
        """Replace the post's terms of each taxonomy given (None leaves that taxonomy alone)."""
        for taxonomy, ids, field in (
            ("category", category_ids, "category_ids"),
            ("post_tag", tag_ids, "tag_ids"),
        ):
            if ids is None:
                continue
            wanted = _deduplicate(ids)
            await self._check_term_ids(s, taxonomy, wanted, field)
            await s.execute(
                delete(m.PostTerm).where(
                    m.PostTerm.post_id == post_id,
                    m.PostTerm.term_id.in_(select(m.Term.id).where(m.Term.taxonomy == taxonomy)),
                )
            )
            s.add_all(m.PostTerm(post_id=post_id, term_id=t) for t in wanted)
        await s.flush()

    async def _check_term_ids(self, s: AsyncSession, taxonomy: str, ids: list[int], field: str) -> None:
        if not ids:
            return
        found = set(
            (await s.scalars(select(m.Term.id).where(m.Term.id.in_(ids), m.Term.taxonomy == taxonomy))).all()
        )
        for term_id in ids:
            if term_id not in found:
                kind = "category" if taxonomy == "category" else "tag"
                raise InvalidInput(f"{field}: term {term_id} does not exist or is not a {kind}.")

    # --- comments ------------------------------------------------------------------------------

    async def list_comments(self, actor: Actor, query: CommentQuery) -> Page[Comment]:
        status: CommentStatus = query.status or "approved"
        if status != "approved":
            _require(actor, Cap.MODERATE_COMMENTS, f"see {status} comments; only moderators (editors) can")
        stmt = (
            select(m.Comment)
            .join(m.Post, m.Post.id == m.Comment.post_id)
            .where(m.Comment.status == status, _readable_any_type(actor))
        )
        if query.post_id is not None:
            stmt = stmt.where(m.Comment.post_id == query.post_id)
        if query.parent_id is not None:
            stmt = stmt.where(
                m.Comment.parent_id == query.parent_id if query.parent_id else m.Comment.parent_id.is_(None)
            )
        if query.search and query.search.strip():
            stmt = stmt.where(_matches(query.search, m.Comment.content, m.Comment.author_name))
        async with self._sessions() as s:
            if query.post_id is not None:
                await self._readable_post(s, actor, query.post_id)
            rows = (await s.scalars(_page_query(stmt, _COMMENT_ORDER, query.cursor, query.limit))).all()
        page, next_cursor = paginate_rows(rows, query.limit, _COMMENT_ORDER)
        return Page[Comment](items=[_comment_model(r) for r in page], next_cursor=next_cursor)

    async def get_comment(self, actor: Actor, comment_id: int) -> Comment:
        async with self._sessions() as s:
            return _comment_model(await self._readable_comment(s, actor, comment_id))

    async def _readable_comment(self, s: AsyncSession, actor: Actor, comment_id: int) -> m.Comment:
        """Approved comments on readable posts for all; others for moderators and their writer."""
        row = await s.get(m.Comment, comment_id)
        if row is not None:
            post = await s.get(m.Post, row.post_id)
            visible = (
                row.status == "approved" or actor.can(Cap.MODERATE_COMMENTS) or row.user_id == actor.user_id
            )
            if post is not None and visible and _can_read(actor, post):
                return row
        raise NotFound(f"Comment {comment_id} not found.")

    async def create_comment(
        self, actor: Actor, post_id: int, content: str, *, parent_id: int | None = None
    ) -> Comment:
        _require(actor, Cap.READ, "comment")
        if not content.strip():
            raise InvalidInput("A comment needs some content.")
        moderator = actor.can(Cap.MODERATE_COMMENTS)
        async with self._write() as s:
            post = await self._readable_post(s, actor, post_id)
            if post.status not in ("publish", "private"):
                raise InvalidInput(
                    f"Post {post_id} is not published; comments are only possible on published posts."
                )
            if post.comment_status != "open" and not moderator:
                raise NotAllowed(f"Comments are closed on post {post_id}.")
            if parent_id is not None:
                parent = await s.get(m.Comment, parent_id)
                if parent is None or parent.post_id != post_id:
                    raise InvalidInput(f"parent_id {parent_id} is not a comment on post {post_id}.")
            user = await s.get(m.User, actor.user_id)
            if user is None:
                raise NotFound(f"User {actor.user_id} not found.")
            row = m.Comment(
                post_id=post_id,
                parent_id=parent_id,
                user_id=user.id,
                author_name=user.display_name or user.username,
                author_email=user.email,
                content=content,
                # Moderators' replies go live at once; everyone else's wait for moderation.
                status="approved" if moderator else "hold",
                created_at=_now(),
            )
            s.add(row)
            await s.flush()
            return _comment_model(row)

    async def set_comment_status(self, actor: Actor, comment_id: int, status: CommentStatus) -> Comment:
        async with self._write() as s:
            row = await self._moderated_comment(s, actor, comment_id, "moderate comments")
            row.status = status
            await s.flush()
            return _comment_model(row)

    async def delete_comment(self, actor: Actor, comment_id: int) -> Comment:
        """Delete permanently; replies move up to the deleted comment's parent (as in WordPress)."""
        async with self._write() as s:
            row = await self._moderated_comment(s, actor, comment_id, "delete comments")
            before = _comment_model(row)
            await s.execute(
                update(m.Comment).where(m.Comment.parent_id == row.id).values(parent_id=row.parent_id)
            )
            await s.delete(row)
            await s.flush()
            return before

    async def _moderated_comment(
        self, s: AsyncSession, actor: Actor, comment_id: int, what: str
    ) -> m.Comment:
        row = await self._readable_comment(s, actor, comment_id)
        _require(actor, Cap.MODERATE_COMMENTS, what)
        return row

    # --- media ---------------------------------------------------------------------------------

    def _media_model(self, row: m.Media) -> MediaItem:
        return MediaItem(
            id=row.id,
            title=row.title,
            filename=row.filename,
            mime_type=row.mime_type,
            size=row.size,
            alt_text=row.alt_text,
            caption=row.caption,
            url=self.media_url(row.id, row.filename),
            author_id=row.author_id,
            post_id=row.post_id,
            date=utc(row.created_at),
        )

    async def list_media(self, actor: Actor, query: MediaQuery) -> Page[MediaItem]:
        _require(actor, Cap.READ, "view media")
        stmt = select(m.Media)
        if query.mime_type:
            mime = query.mime_type.strip().lower()
            if "/" not in mime or mime.endswith("/"):
                stmt = stmt.where(m.Media.mime_type.startswith(mime.rstrip("/") + "/", autoescape=True))
            else:
                stmt = stmt.where(m.Media.mime_type == mime)
        if query.search and query.search.strip():
            stmt = stmt.where(
                _matches(query.search, m.Media.title, m.Media.filename, m.Media.caption, m.Media.alt_text)
            )
        if query.author_id is not None:
            stmt = stmt.where(m.Media.author_id == query.author_id)
        async with self._sessions() as s:
            rows = (await s.scalars(_page_query(stmt, _MEDIA_ORDER, query.cursor, query.limit))).all()
        page, next_cursor = paginate_rows(rows, query.limit, _MEDIA_ORDER)
        return Page[MediaItem](items=[self._media_model(r) for r in page], next_cursor=next_cursor)

    async def get_media(self, actor: Actor, media_id: int) -> MediaItem:
        _require(actor, Cap.READ, "view media")
        async with self._sessions() as s:
            return self._media_model(await self._load_media(s, media_id))

    async def _load_media(self, s: AsyncSession, media_id: int) -> m.Media:
        row = await s.get(m.Media, media_id)
        if row is None:
            raise NotFound(f"Media {media_id} not found.")
        return row

    async def create_media(self, actor: Actor, upload: MediaUpload) -> MediaItem:
        _require(actor, Cap.UPLOAD_FILES, "upload files")
        filename = _validate_upload(upload, self._max_upload_bytes)
        async with self._write() as s:
            if upload.post_id is not None:
                await self._check_attachable(s, actor, upload.post_id)
            row = m.Media(
                title=(upload.title or filename.rsplit(".", 1)[0]).strip(),
                filename=filename,
                mime_type=upload.mime_type.strip().lower(),
                size=len(upload.data),
                alt_text=upload.alt_text,
                caption=upload.caption,
                author_id=actor.user_id,
                post_id=upload.post_id,
                created_at=_now(),
            )
            s.add(row)
            await s.flush()
            s.add(m.MediaBlob(media_id=row.id, data=upload.data))
            await s.flush()
            return self._media_model(row)

    async def _check_attachable(self, s: AsyncSession, actor: Actor, post_id: int) -> None:
        """Attaching a file to a post is editing that post, so the same rules apply."""
        post = await s.get(m.Post, post_id)
        if post is None or not _can_read(actor, post):
            raise InvalidInput(f"post_id {post_id} is not an existing post.")
        _check_change(actor, post, "edit")

    async def update_media(self, actor: Actor, media_id: int, patch: MediaPatch) -> MediaItem:
        async with self._write() as s:
            row = await self._load_media(s, media_id)
            self._check_media_change(actor, row, "edit")
            if patch.post_id is not None and patch.post_id:
                await self._check_attachable(s, actor, patch.post_id)
            for field in ("title", "alt_text", "caption"):
                value = getattr(patch, field)
                if value is not None:
                    setattr(row, field, value)
            if patch.post_id is not None:
                row.post_id = patch.post_id or None
            await s.flush()
            return self._media_model(row)

    async def delete_media(self, actor: Actor, media_id: int) -> MediaItem:
        async with self._write() as s:
            row = await self._load_media(s, media_id)
            self._check_media_change(actor, row, "delete")
            before = self._media_model(row)
            await s.execute(
                update(m.Post).where(m.Post.featured_media_id == media_id).values(featured_media_id=None)
            )
            await s.execute(delete(m.MediaBlob).where(m.MediaBlob.media_id == media_id))
            await s.delete(row)
            await s.flush()
            return before

    @staticmethod
    def _check_media_change(actor: Actor, row: m.Media, action: Literal["edit", "delete"]) -> None:
        _require(actor, Cap.UPLOAD_FILES, f"{action} media")
        if row.author_id != actor.user_id:
            others = Cap.EDIT_OTHERS_POSTS if action == "edit" else Cap.DELETE_OTHERS_POSTS
            _require(actor, others, f"{action} other users' media")

    async def media_bytes(self, media_id: int) -> MediaBytes:
        async with self._sessions() as s:
            row = (
                await s.execute(
                    select(m.Media.mime_type, m.Media.filename, m.MediaBlob.data)
                    .join(m.MediaBlob, m.MediaBlob.media_id == m.Media.id)
                    .where(m.Media.id == media_id)
                )
            ).first()
        if row is None:
            raise NotFound(f"Media {media_id} not found.")
        return MediaBytes(mime_type=row.mime_type, filename=row.filename, data=row.data)

    # --- terms ---------------------------------------------------------------------------------

    @staticmethod
    def _term_select() -> Select[Any]:
        counts = _term_count_subquery()
        return select(m.Term, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.term_id == m.Term.id)

    async def list_terms(self, actor: Actor, query: TermQuery) -> Page[Term]:
        stmt = self._term_select().where(m.Term.taxonomy == query.taxonomy)
        if query.search and query.search.strip():
            stmt = stmt.where(_matches(query.search, m.Term.name, m.Term.slug))
        if query.parent_id is not None:
            stmt = stmt.where(
                m.Term.parent_id == query.parent_id if query.parent_id else m.Term.parent_id.is_(None)
            )
        async with self._sessions() as s:
            rows = (await s.execute(_page_query(stmt, _TERM_ORDER, query.cursor, query.limit))).all()
        page, next_cursor = paginate_rows(rows, query.limit, _TERM_ORDER, obj=lambda r: r[0])
        return Page[Term](items=[_term_model(t, n) for t, n in page], next_cursor=next_cursor)

    async def get_term(self, actor: Actor, term_id: int) -> Term:
        async with self._sessions() as s:
            return await self._render_term(s, term_id)

    async def _render_term(self, s: AsyncSession, term_id: int) -> Term:
        row = (await s.execute(self._term_select().where(m.Term.id == term_id))).first()
        if row is None:
            raise NotFound(f"Term {term_id} not found.")
        return _term_model(row[0], row[1])

    async def create_term(self, actor: Actor, data: TermInput) -> Term:
        _require(actor, Cap.MANAGE_CATEGORIES, "manage categories and tags")
        name = _term_name(data.name)
        async with self._write() as s:
            slug = await self._free_term_slug(s, data.taxonomy, data.slug or name, None)
            await self._check_term_parent(s, data.taxonomy, None, data.parent_id)
            row = m.Term(
                taxonomy=data.taxonomy,
                name=name,
                slug=slug,
                description=data.description,
                parent_id=data.parent_id or None,
            )
            s.add(row)
            await s.flush()
            return _term_model(row, 0)

    async def update_term(self, actor: Actor, term_id: int, patch: TermPatch) -> Term:
        _require(actor, Cap.MANAGE_CATEGORIES, "manage categories and tags")
        async with self._write() as s:
            row = await s.get(m.Term, term_id)
            if row is None:
                raise NotFound(f"Term {term_id} not found.")
            if patch.name is not None:
                row.name = _term_name(patch.name)
            if patch.slug is not None:
                row.slug = await self._free_term_slug(s, row.taxonomy, patch.slug or row.name, row.id)
            if patch.description is not None:
                row.description = patch.description
            if patch.parent_id is not None:
                await self._check_term_parent(s, row.taxonomy, row.id, patch.parent_id)
                row.parent_id = patch.parent_id or None
            await s.flush()
            return await self._render_term(s, term_id)

    async def delete_term(self, actor: Actor, term_id: int) -> Term:
        """Delete a term; its children move up to its parent and posts simply lose it."""
        _require(actor, Cap.MANAGE_CATEGORIES, "manage categories and tags")
        async with self._write() as s:
            before = await self._render_term(s, term_id)
            await s.execute(
                update(m.Term).where(m.Term.parent_id == term_id).values(parent_id=before.parent_id)
            )
            await s.execute(delete(m.PostTerm).where(m.PostTerm.term_id == term_id))
            await s.execute(delete(m.Term).where(m.Term.id == term_id))
            return before

    async def _free_term_slug(self, s: AsyncSession, taxonomy: str, wanted: str, own_id: int | None) -> str:
        """The slugified ``wanted``; ``Conflict`` if another term of the taxonomy has it."""
        slug = slugify(wanted)
        if not slug:
            raise InvalidInput(f"Cannot make a slug from {wanted!r}; give one with letters or digits.")
        stmt = select(m.Term.id).where(m.Term.taxonomy == taxonomy, m.Term.slug == slug)
        if own_id is not None:
            stmt = stmt.where(m.Term.id != own_id)
        existing = await s.scalar(stmt)
        if existing is not None:
            raise Conflict(
                f"A {_taxonomy_label(taxonomy)} with slug {slug!r} already exists (id {existing})."
            )
        return slug

    async def _check_term_parent(
        self, s: AsyncSession, taxonomy: str, term_id: int | None, parent_id: int | None
    ) -> None:
        """Only categories nest; the parent must be a category and not the term or below it."""
        if not parent_id:
            return
        if taxonomy != "category":
            raise InvalidInput("Tags cannot have a parent; only categories are hierarchical.")
        parents = dict(
            (await s.execute(select(m.Term.id, m.Term.parent_id).where(m.Term.taxonomy == "category"))).all()
        )
        if parent_id not in parents:
            raise InvalidInput(f"parent_id {parent_id} is not an existing category.")
        if term_id is not None and _reaches(parents, parent_id, term_id):
            raise InvalidInput(f"parent_id {parent_id} would make the category its own ancestor.")

    # --- users ---------------------------------------------------------------------------------

    async def list_users(self, actor: Actor, query: UserQuery) -> Page[UserInfo]:
        full = actor.can(Cap.LIST_USERS)
        if query.role is not None and not full:
            _require(actor, Cap.LIST_USERS, "filter users by role")
        stmt = self._user_select(full)
        if query.role is not None:
            stmt = stmt.where(m.User.role == query.role)
        if query.search and query.search.strip():
            columns = (m.User.username, m.User.display_name) + ((m.User.email,) if full else ())
            stmt = stmt.where(_matches(query.search, *columns))
        async with self._sessions() as s:
            rows = (await s.execute(_page_query(stmt, _USER_ORDER, query.cursor, query.limit))).all()
        page, next_cursor = paginate_rows(rows, query.limit, _USER_ORDER, obj=lambda r: r[0])
        return Page[UserInfo](items=[self._user_model(actor, u, n) for u, n in page], next_cursor=next_cursor)

    async def get_user(self, actor: Actor, user_id: int) -> UserInfo:
        full = actor.can(Cap.LIST_USERS) or user_id == actor.user_id
        async with self._sessions() as s:
            row = (await s.execute(self._user_select(full).where(m.User.id == user_id))).first()
        if row is None:
            raise NotFound(f"User {user_id} not found.")
        return self._user_model(actor, row[0], row[1])

    @staticmethod
    def _user_select(full: bool) -> Select[Any]:
        """Users with their published post counts; without ``full``, only public authors.

        WordPress's REST API shows people without ``list_users`` only the users who have
        published content, and never their e-mail address."""
        counts = _post_count_subquery()
        stmt = select(m.User, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.author_id == m.User.id)
        if not full:
            published = select(m.Post.id).where(m.Post.author_id == m.User.id, m.Post.status == "publish")
            stmt = stmt.where(published.exists())
        return stmt

    @staticmethod
    def _user_model(actor: Actor, row: m.User, post_count: int) -> UserInfo:
        show_email = actor.can(Cap.LIST_USERS) or row.id == actor.user_id
        return UserInfo(
            id=row.id,
            username=row.username,
            display_name=row.display_name or row.username,
            email=row.email if show_email else None,
            role=row.role,
            post_count=post_count,
        )


def _term_name(name: str) -> str:
    clean = name.strip()
    if not clean:
        raise InvalidInput("A term needs a name.")
    return clean


def _taxonomy_label(taxonomy: Taxonomy | str) -> str:
    return "category" if taxonomy == "category" else "tag"


def _reaches(parents: dict[int, int | None], start: int, target: int) -> bool:
    """Whether walking up ``parents`` from ``start`` (inclusive) meets ``target``.

    Bounded by the number of nodes, so corrupt data with an existing cycle cannot loop forever."""
    node: int | None = start
    for _ in range(len(parents) + 1):
        if node is None:
            return False
        if node == target:
            return True
        node = parents.get(node)
    return True


__all__ = ["BuiltinSite", "sanitize_filename", "slugify", "utc"]
