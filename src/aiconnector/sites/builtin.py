"""The built-in site: a small WordPress-like CMS stored in the server's own database.

It implements ``SiteBackend`` with WordPress semantics so that agents see the same behaviour
whether the connector fronts this site or a real WordPress: the same roles and capabilities
decide who may read, write, publish and moderate, and invisible objects look exactly like
missing ones (``NotFound``) so ids cannot be probed.

Design rules followed throughout:

* every write runs in one transaction (``_write``); a failure anywhere leaves no partial rows;
* lists use keyset pagination (``cursor.KeysetOrder``), never ``OFFSET``;
* a page of posts is rendered with one query (posts, authors and terms joined), never one
  query per row;
* reads are Core statements returning rows, built once per query shape and run with bound
  parameters: no ORM entities or identity map, and no SQL construction or cache-key hashing
  per call (together these were most of the CPU cost of a read); writes use the ORM;
* datetimes leave this module timezone-aware in UTC, whatever the database returns
  (SQLite hands back naive values);
* media visibility: a file follows the post it is attached to (``_media_visible``, as in
  WordPress), and its public URL carries a random key (``media.public_token``), never the
  sequential id, so unpublished files cannot be found by counting."""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Row,
    Select,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

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

# Tables for the read statements: Core columns keep those statements free of ORM compilation
# and entity loading.
_POSTS: FromClause = m.Post.__table__
_USERS: FromClause = m.User.__table__
_TERMS: FromClause = m.Term.__table__
_POST_TERMS: FromClause = m.PostTerm.__table__
_MEDIA: FromClause = m.Media.__table__
_OPTIONS: FromClause = m.SiteOption.__table__


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


def _escape_like(text: str) -> str:
    """``text`` with LIKE wildcards escaped by ``/`` (what SQLAlchemy's ``autoescape`` does, but
    done on the value so that statements can take it as a bound parameter)."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _search_pattern(text: str | None) -> str | None:
    """The ``search`` parameter for ``_matches``, or None when there is nothing to search for."""
    if not text or not text.strip():
        return None
    return f"%{_escape_like(text.strip().lower())}%"


def _matches(*columns: ColumnElement[str]) -> ColumnElement[bool]:
    """Case-insensitive substring match of the ``search`` parameter on any column, the same on
    SQLite and PostgreSQL.

    ``lower() LIKE`` is used instead of ``ILIKE`` because SQLite has no ILIKE; wildcards in the
    user's text are escaped (``_search_pattern``) so ``50%`` searches for a literal percent sign."""
    pattern = bindparam("search")
    return or_(*(func.lower(c).like(pattern, escape="/") for c in columns))


# "parent_id" arguments: None does not filter, 0 asks for top-level items, any other id for that
# item's children. The two filtering cases need different SQL, so they are part of query shapes.
_ParentFilter = Literal["top", "child"] | None


def _parent_filter(parent_id: int | None) -> _ParentFilter:
    if parent_id is None:
        return None
    return "child" if parent_id else "top"


def _parent_conditions(column: ColumnElement[Any], kind: _ParentFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions for a ``_parent_filter`` (the id is bound as ``parent_id``)."""
    if kind is None:
        return []
    return [column == bindparam("parent_id") if kind == "child" else column.is_(None)]


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


def _can_read(actor: Actor, post: m.Post | Row[Any]) -> bool:
    """WordPress read rules: published for everyone, the rest for those who could edit it."""
    if post.status == "publish":
        return True
    caps = _CAPS[post.type]
    if post.author_id == actor.user_id:
        return _has(actor, caps.edit)
    if post.status == "private":
        return _has(actor, caps.read_private)
    return _has(actor, caps.edit, caps.edit_others)


@dataclass(frozen=True, slots=True)
class _ReadRights:
    """What an actor may read of one post type beyond published posts, as ``_can_read`` decides.

    Only these flags (not the actor) shape the SQL of ``_readable_clause``, so statements are
    cached per flags and the actor's id is a bound parameter (``actor_id``)."""

    own: bool
    others_private: bool
    others_unpublished: bool

    @classmethod
    def of(cls, actor: Actor, post_type: str) -> _ReadRights:
        caps = _CAPS[post_type]
        return cls(
            own=_has(actor, caps.edit),
            others_private=_has(actor, caps.read_private),
            others_unpublished=_has(actor, caps.edit, caps.edit_others),
        )


def _readable_clause(post_type: str, rights: _ReadRights) -> ColumnElement[bool]:
    """SQL twin of ``_can_read`` for one post type, so lists filter in the database."""
    posts = _POSTS.c
    mine = posts.author_id == bindparam("actor_id")
    allowed: list[ColumnElement[bool]] = [posts.status == "publish"]
    if rights.own:
        allowed.append(mine)
    if rights.others_private:
        allowed.append(and_(~mine, posts.status == "private"))
    if rights.others_unpublished:
        allowed.append(and_(~mine, posts.status != "private"))
    return and_(posts.type == post_type, or_(*allowed))


def _readable_any_type(actor: Actor) -> ColumnElement[bool]:
    return or_(*(_readable_clause(t, _ReadRights.of(actor, t)) for t in _CAPS))


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

_P = _POSTS.c
_POST_ORDERS: dict[str, KeysetOrder] = {
    "date_desc": KeysetOrder("date_desc", (_P.date, _P.id), (datetime, int), True),
    "date_asc": KeysetOrder("date_asc", (_P.date, _P.id), (datetime, int), False),
    "title_asc": KeysetOrder("title_asc", (_P.title, _P.id), (str, int), False),
    "title_desc": KeysetOrder("title_desc", (_P.title, _P.id), (str, int), True),
    "modified_desc": KeysetOrder("modified_desc", (_P.modified_at, _P.id), (datetime, int), True),
}
_COMMENTS = m.Comment.__table__.c
_COMMENT_ORDER = KeysetOrder("comments", (_COMMENTS.created_at, _COMMENTS.id), (datetime, int), True)
_MEDIA_ORDER = KeysetOrder("media", (_MEDIA.c.created_at, _MEDIA.c.id), (datetime, int), True)
_TERM_ORDER = KeysetOrder("terms", (_TERMS.c.name, _TERMS.c.id), (str, int), False)
_USER_ORDER = KeysetOrder("users", (_USERS.c.username, _USERS.c.id), (str, int), False)


def _paged(stmt: Select[Any], order: KeysetOrder, after_cursor: bool) -> Select[Any]:
    """Apply ordering, the cursor's start point (if any) and a bound ``limit``."""
    if after_cursor:
        stmt = stmt.where(order.after_clause())
    return stmt.order_by(*order.order_by()).limit(bindparam("limit"))


def _page_params(order: KeysetOrder, cursor: str | None, limit: int) -> dict[str, Any]:
    """Parameters for ``_paged``: the cursor's key and ``limit + 1`` (to detect a next page)."""
    params: dict[str, Any] = {"limit": limit + 1}
    if cursor:
        params.update(order.cursor_params(cursor))
    return params


# --- read statements ---------------------------------------------------------------------------
#
# Built once (module constants) or once per query shape (``lru_cache`` on the flags that change
# the SQL); every value is a bound parameter. A reused statement object also keeps its cache key,
# so SQLAlchemy finds the compiled SQL without hashing a fresh expression tree.

_SUMMARY_COLUMNS: tuple[ColumnElement[Any], ...] = (
    _P.id,
    _P.type,
    _P.title,
    _P.slug,
    _P.status,
    _P.author_id,
    _P.date,
    _P.modified_at,
    _P.excerpt,
)
_DETAIL_COLUMNS = (
    *_SUMMARY_COLUMNS,
    _P.content,
    _P.parent_id,
    _P.featured_media_id,
    _P.comment_status,
    _P.menu_order,
)


def _with_author_and_terms(source: FromClause, columns: Iterable[ColumnElement[Any]]) -> Select[Any]:
    """``columns`` of ``source`` (the posts table or a page of it) with the author, one row per term.

    Everything a post model needs comes back from one statement: repeating a few columns per
    term costs far less than the round trips of separate author and term queries."""
    return (
        select(
            *columns,
            _USERS.c.username.label("author_username"),
            _USERS.c.display_name.label("author_display_name"),
            _TERMS.c.taxonomy.label("term_taxonomy"),
            _TERMS.c.id.label("term_id"),
            _TERMS.c.name.label("term_name"),
            _TERMS.c.slug.label("term_slug"),
        )
        .select_from(source)
        .join(_USERS, _USERS.c.id == source.c.author_id)
        .outerjoin(_POST_TERMS, _POST_TERMS.c.post_id == source.c.id)
        .outerjoin(_TERMS, _TERMS.c.id == _POST_TERMS.c.term_id)
    )


_TERM_ROW_ORDER = (_TERMS.c.name, _TERMS.c.id)

_POST_BY_ID = (
    _with_author_and_terms(_POSTS, _DETAIL_COLUMNS)
    .where(_P.id == bindparam("post_id"))
    .order_by(*_TERM_ROW_ORDER)
)


@dataclass(frozen=True, slots=True)
class _PostListShape:
    """Everything that changes the SQL of a post list (not the values bound into it).

    ``filters`` names the optional filters in use, each bound as a parameter of that name."""

    post_type: str
    rights: _ReadRights
    order: str
    filters: frozenset[str]
    parent: _ParentFilter
    after_cursor: bool


@lru_cache(maxsize=256)
def _post_list_statement(shape: _PostListShape) -> Select[Any]:
    """A page of posts (``limit`` of them, in a subquery) joined with authors and terms."""
    order = _POST_ORDERS[shape.order]
    conds = [
        _P.status.in_(bindparam("statuses", expanding=True)),
        _readable_clause(shape.post_type, shape.rights),
    ]
    if "search" in shape.filters:
        conds.append(_matches(_P.title, _P.content, _P.excerpt))
    for term_param in ("category_id", "tag_id"):
        if term_param in shape.filters:
            tagged = select(_POST_TERMS.c.post_id).where(_POST_TERMS.c.term_id == bindparam(term_param))
            conds.append(_P.id.in_(tagged))
    if "author_id" in shape.filters:
        conds.append(_P.author_id == bindparam("author_id"))
    if "date_after" in shape.filters:
        conds.append(_P.date > bindparam("date_after"))
    if "date_before" in shape.filters:
        conds.append(_P.date < bindparam("date_before"))
    conds.extend(_parent_conditions(_P.parent_id, shape.parent))
    page = _paged(select(*_SUMMARY_COLUMNS).where(*conds), order, shape.after_cursor).subquery("page")
    return _with_author_and_terms(page, page.c).order_by(*order.order_by(page), *_TERM_ROW_ORDER)


def _post_list_query(actor: Actor, q: PostQuery) -> tuple[Select[Any], dict[str, Any]]:
    """The cached statement for ``q``'s shape and the parameters to run it with.

    Visibility always applies (``statuses`` only narrows what ``_readable_clause`` allows)."""
    optional: dict[str, Any] = {
        "search": _search_pattern(q.search),
        "category_id": q.category_id,
        "tag_id": q.tag_id,
        "author_id": q.author_id,
        "date_after": utc(q.after) if q.after is not None else None,
        "date_before": utc(q.before) if q.before is not None else None,
    }
    params = {name: value for name, value in optional.items() if value is not None}
    parent = _parent_filter(q.parent_id)
    if parent == "child":
        params["parent_id"] = q.parent_id
    shape = _PostListShape(
        post_type=q.type,
        rights=_ReadRights.of(actor, q.type),
        order=q.order,
        filters=frozenset(params),
        parent=parent,
        after_cursor=bool(q.cursor),
    )
    order = _POST_ORDERS[q.order]
    params.update(
        _page_params(order, q.cursor, q.limit), statuses=q.status or ["publish"], actor_id=actor.user_id
    )
    return _post_list_statement(shape), params


def _group_post_rows(rows: Iterable[Row[Any]]) -> list[tuple[Row[Any], dict[str, list[TermRef]]]]:
    """One entry per post, in row order, from ``_with_author_and_terms`` rows (one per term)."""
    posts: dict[int, tuple[Row[Any], dict[str, list[TermRef]]]] = {}
    for row in rows:
        entry = posts.get(row.id)
        if entry is None:
            entry = posts[row.id] = (row, defaultdict(list))
        if row.term_id is not None:
            entry[1][row.term_taxonomy].append(
                TermRef(id=row.term_id, name=row.term_name, slug=row.term_slug)
            )
    return list(posts.values())


_SITE_INFO = select(
    *(
        select(_OPTIONS.c.value).where(_OPTIONS.c.name == name).scalar_subquery().label(name)
        for name in ("blogname", "blogdescription")
    ),
    *(
        select(func.count())
        .select_from(_POSTS)
        .where(_P.type == post_type, _P.status == "publish")
        .scalar_subquery()
        .label(f"{post_type}_count")
        for post_type in ("post", "page")
    ),
)

_MEDIA_COLUMNS = tuple(_MEDIA.c)
# What an actor may read of each post type, in ``_CAPS`` order: decides which attached media
# they see (``_media_visible``).
_MediaRights = tuple[_ReadRights, ...]
# A visitor's: published posts only.
_PUBLIC_RIGHTS: _MediaRights = tuple(
    _ReadRights(own=False, others_private=False, others_unpublished=False) for _ in _CAPS
)


def _media_rights(actor: Actor) -> _MediaRights:
    return tuple(_ReadRights.of(actor, t) for t in _CAPS)


def _media_visible(rights: _MediaRights) -> ColumnElement[bool]:
    """Media visibility follows the post a file is attached to (as in WordPress): unattached
    files are visible to every reader, attached ones to those who may read the post."""
    readable_parent = (
        select(_P.id)
        .where(
            _P.id == _MEDIA.c.post_id,
            or_(*(_readable_clause(t, r) for t, r in zip(_CAPS, rights, strict=True))),
        )
        .exists()
    )
    return or_(_MEDIA.c.post_id.is_(None), readable_parent)


@lru_cache(maxsize=8)
def _media_by_id(rights: _MediaRights) -> Select[Any]:
    return select(*_MEDIA_COLUMNS).where(_MEDIA.c.id == bindparam("media_id"), _media_visible(rights))


_PUBLIC_MEDIA_FILE = (
    select(_MEDIA.c.mime_type, _MEDIA.c.filename, m.MediaBlob.__table__.c.data)
    .join(m.MediaBlob.__table__, m.MediaBlob.__table__.c.media_id == _MEDIA.c.id)
    .where(_MEDIA.c.public_token == bindparam("token"), _media_visible(_PUBLIC_RIGHTS))
)


@lru_cache(maxsize=64)
def _media_list_statement(
    mime: Literal["exact", "prefix"] | None, filters: frozenset[str], after_cursor: bool, rights: _MediaRights
) -> Select[Any]:
    stmt = select(*_MEDIA_COLUMNS).where(_media_visible(rights))
    if mime == "prefix":
        stmt = stmt.where(_MEDIA.c.mime_type.like(bindparam("mime_type"), escape="/"))
    elif mime == "exact":
        stmt = stmt.where(_MEDIA.c.mime_type == bindparam("mime_type"))
    if "search" in filters:
        stmt = stmt.where(_matches(_MEDIA.c.title, _MEDIA.c.filename, _MEDIA.c.caption, _MEDIA.c.alt_text))
    if "author_id" in filters:
        stmt = stmt.where(_MEDIA.c.author_id == bindparam("author_id"))
    return _paged(stmt, _MEDIA_ORDER, after_cursor)


# Counts as correlated subqueries: one index lookup per listed row instead of aggregating the
# whole table on every call.
_TERM_POST_COUNT = (
    select(func.count())
    .select_from(_POST_TERMS)
    .where(_POST_TERMS.c.term_id == _TERMS.c.id)
    .correlate(_TERMS)
    .scalar_subquery()
)
_TERM_SELECT = select(
    _TERMS.c.id,
    _TERMS.c.taxonomy,
    _TERMS.c.name,
    _TERMS.c.slug,
    _TERMS.c.description,
    _TERMS.c.parent_id,
    _TERM_POST_COUNT.label("post_count"),  # not "count": that is a tuple method on rows
)
_TERM_BY_ID = _TERM_SELECT.where(_TERMS.c.id == bindparam("term_id"))


@lru_cache(maxsize=16)
def _term_list_statement(search: bool, parent: _ParentFilter, after_cursor: bool) -> Select[Any]:
    stmt = _TERM_SELECT.where(_TERMS.c.taxonomy == bindparam("taxonomy"))
    if search:
        stmt = stmt.where(_matches(_TERMS.c.name, _TERMS.c.slug))
    return _paged(stmt.where(*_parent_conditions(_TERMS.c.parent_id, parent)), _TERM_ORDER, after_cursor)


def _term_model(row: Row[Any] | m.Term, count: int) -> Term:
    return Term(
        id=row.id,
        taxonomy=row.taxonomy,  # type: ignore[arg-type]
        name=row.name,
        slug=row.slug,
        description=row.description,
        parent_id=row.parent_id,
        count=count,
    )


_AUTHOR_POST_COUNT = (
    select(func.count())
    .select_from(_POSTS)
    .where(_P.author_id == _USERS.c.id, _P.type == "post", _P.status == "publish")
    .correlate(_USERS)
    .scalar_subquery()
)


@lru_cache(maxsize=2)
def _user_select(full: bool) -> Select[Any]:
    """Users with their published post counts; without ``full``, only public authors.

    WordPress's REST API shows people without ``list_users`` only the users who have
    published content, and never their e-mail address (``_user_model`` drops it)."""
    stmt = select(
        _USERS.c.id,
        _USERS.c.username,
        _USERS.c.display_name,
        _USERS.c.email,
        _USERS.c.role,
        _AUTHOR_POST_COUNT.label("post_count"),
    )
    if not full:
        published = select(_P.id).where(_P.author_id == _USERS.c.id, _P.status == "publish")
        stmt = stmt.where(published.exists())
    return stmt


@lru_cache(maxsize=2)
def _user_by_id(full: bool) -> Select[Any]:
    return _user_select(full).where(_USERS.c.id == bindparam("user_id"))


@lru_cache(maxsize=16)
def _user_list_statement(full: bool, filters: frozenset[str], after_cursor: bool) -> Select[Any]:
    stmt = _user_select(full)
    if "role" in filters:
        stmt = stmt.where(_USERS.c.role == bindparam("role"))
    if "search" in filters:
        # E-mail addresses are searchable only by those who may see them.
        columns = (_USERS.c.username, _USERS.c.display_name) + ((_USERS.c.email,) if full else ())
        stmt = stmt.where(_matches(*columns))
    return _paged(stmt, _USER_ORDER, after_cursor)


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
        bind = sessions.kw.get("bind")
        self._engine = bind if isinstance(bind, AsyncEngine) else None
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

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one read call.

        Reads are Core statements, so they skip the ORM session (and its per-call setup) when
        the session factory is bound to an engine; otherwise they borrow a session's connection."""
        if self._engine is not None:
            async with self._engine.connect() as conn:
                yield conn
        else:
            async with self._sessions() as s:
                yield await s.connection()

    async def _fetch(self, stmt: Select[Any], params: dict[str, Any]) -> Sequence[Row[Any]]:
        """All rows of one read statement, on a connection of its own."""
        async with self._read() as conn:
            return (await conn.execute(stmt, params)).all()

    def post_url(self, post_id: int, post_type: str) -> str:
        key = "page_id" if post_type == "page" else "p"
        return f"{self._public_url}/?{key}={post_id}"

    def media_url(self, token: str, filename: str) -> str:
        """``/media/<token>/<filename>``: the token, not the sequential id, finds the file."""
        return f"{self._public_url}/media/{token}/{filename}"

    # --- site ----------------------------------------------------------------------------------

    async def site_info(self, actor: Actor) -> SiteInfo:
        (row,) = await self._fetch(_SITE_INFO, {})
        return SiteInfo(
            name=row.blogname or self._site_name,
            description=row.blogdescription or "",
            url=self._public_url + "/",
            backend=self.backend_name,
            post_count=row.post_count,
            page_count=row.page_count,
        )

    # --- posts: reading ------------------------------------------------------------------------

    async def list_posts(self, actor: Actor, query: PostQuery) -> Page[PostSummary]:
        stmt, params = _post_list_query(actor, query)
        posts = _group_post_rows(await self._fetch(stmt, params))
        page, next_cursor = paginate_rows(posts, query.limit, _POST_ORDERS[query.order], obj=lambda p: p[0])
        items = [self._post_model(row, terms, PostSummary) for row, terms in page]
        return Page[PostSummary](items=items, next_cursor=next_cursor)

    async def get_post(self, actor: Actor, post_id: int) -> Post:
        posts = _group_post_rows(await self._fetch(_POST_BY_ID, {"post_id": post_id}))
        if not posts or not _can_read(actor, posts[0][0]):
            raise NotFound(f"Post {post_id} not found.")
        return self._post_model(*posts[0], Post)

    async def _readable_post(self, s: AsyncSession, actor: Actor, post_id: int) -> m.Post:
        """The post, or ``NotFound`` when it is missing or the actor may not see it."""
        row = await s.get(m.Post, post_id)
        if row is None or not _can_read(actor, row):
            raise NotFound(f"Post {post_id} not found.")
        return row

    async def _render_post(self, s: AsyncSession, post_id: int) -> Post:
        """The post as the write's transaction sees it (callers flush their changes first)."""
        ((row, terms),) = _group_post_rows((await s.execute(_POST_BY_ID, {"post_id": post_id})).all())
        return self._post_model(row, terms, Post)

    def _post_model(self, row: Row[Any], terms: dict[str, list[TermRef]], model: type[P]) -> P:
        """``model`` from a ``_with_author_and_terms`` row (detail columns needed for ``Post``)."""
        fields: dict[str, Any] = {
            "id": row.id,
            "type": row.type,
            "title": row.title,
            "slug": row.slug,
            "status": row.status,
            "author": AuthorRef(
                id=row.author_id,
                username=row.author_username,
                display_name=row.author_display_name or row.author_username,
            ),
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
            return await self._render_post(s, row.id)

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
            return await self._render_post(s, row.id)

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
            before = await self._render_post(s, row.id)
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
        params = _page_params(_COMMENT_ORDER, query.cursor, query.limit)
        params.update(actor_id=actor.user_id, parent_id=query.parent_id)
        stmt = (
            select(m.Comment)
            .join(m.Post, m.Post.id == m.Comment.post_id)
            .where(m.Comment.status == status, _readable_any_type(actor))
            .where(*_parent_conditions(m.Comment.parent_id, _parent_filter(query.parent_id)))
        )
        if query.post_id is not None:
            stmt = stmt.where(m.Comment.post_id == query.post_id)
        if (search := _search_pattern(query.search)) is not None:
            stmt = stmt.where(_matches(m.Comment.content, m.Comment.author_name))
            params["search"] = search
        async with self._sessions() as s:
            if query.post_id is not None:
                await self._readable_post(s, actor, query.post_id)
            rows = (await s.scalars(_paged(stmt, _COMMENT_ORDER, bool(query.cursor)), params)).all()
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

    def _media_model(self, row: m.Media | Row[Any]) -> MediaItem:
        return MediaItem(
            id=row.id,
            title=row.title,
            filename=row.filename,
            mime_type=row.mime_type,
            size=row.size,
            alt_text=row.alt_text,
            caption=row.caption,
            url=self.media_url(row.public_token, row.filename),
            author_id=row.author_id,
            post_id=row.post_id,
            date=utc(row.created_at),
        )

    async def list_media(self, actor: Actor, query: MediaQuery) -> Page[MediaItem]:
        _require(actor, Cap.READ, "view media")
        optional = {"search": _search_pattern(query.search), "author_id": query.author_id}
        params = {name: value for name, value in optional.items() if value is not None}
        mime_filter: Literal["exact", "prefix"] | None = None
        if query.mime_type:
            mime = query.mime_type.strip().lower()
            if "/" not in mime or mime.endswith("/"):
                mime_filter, params["mime_type"] = "prefix", _escape_like(mime.rstrip("/") + "/") + "%"
            else:
                mime_filter, params["mime_type"] = "exact", mime
        stmt = _media_list_statement(mime_filter, frozenset(params), bool(query.cursor), _media_rights(actor))
        params |= _page_params(_MEDIA_ORDER, query.cursor, query.limit)
        rows = await self._fetch(stmt, params | {"actor_id": actor.user_id})
        page, next_cursor = paginate_rows(rows, query.limit, _MEDIA_ORDER)
        return Page[MediaItem](items=[self._media_model(r) for r in page], next_cursor=next_cursor)

    async def get_media(self, actor: Actor, media_id: int) -> MediaItem:
        _require(actor, Cap.READ, "view media")
        stmt = _media_by_id(_media_rights(actor))
        rows = await self._fetch(stmt, {"media_id": media_id, "actor_id": actor.user_id})
        if not rows:
            raise NotFound(f"Media {media_id} not found.")
        return self._media_model(rows[0])

    async def _load_media(self, s: AsyncSession, actor: Actor, media_id: int) -> m.Media:
        """The file, or ``NotFound`` when it is missing or attached to a post the actor may
        not read (``_media_visible``)."""
        row = await s.get(m.Media, media_id)
        if row is not None and row.post_id is not None:
            parent = await s.get(m.Post, row.post_id)
            if parent is not None and not _can_read(actor, parent):
                row = None
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
            row = await self._load_media(s, actor, media_id)
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
            row = await self._load_media(s, actor, media_id)
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

    async def media_bytes(self, key: str) -> MediaBytes:
        """The file behind ``/media/<key>/…``: ``key`` is the file's random token (never its
        id), and only files a visitor may see are served: unattached ones (whoever has the
        unguessable URL was given it) and those attached to published posts."""
        rows = await self._fetch(_PUBLIC_MEDIA_FILE, {"token": key})
        if not rows:
            raise NotFound("Media not found.")
        row = rows[0]
        return MediaBytes(mime_type=row.mime_type, filename=row.filename, data=row.data)

    # --- terms ---------------------------------------------------------------------------------

    async def list_terms(self, actor: Actor, query: TermQuery) -> Page[Term]:
        search = _search_pattern(query.search)
        parent = _parent_filter(query.parent_id)
        stmt = _term_list_statement(search is not None, parent, bool(query.cursor))
        params = _page_params(_TERM_ORDER, query.cursor, query.limit)
        params.update(taxonomy=query.taxonomy, search=search, parent_id=query.parent_id)
        rows = await self._fetch(stmt, params)
        page, next_cursor = paginate_rows(rows, query.limit, _TERM_ORDER)
        return Page[Term](items=[_term_model(r, r.post_count) for r in page], next_cursor=next_cursor)

    async def get_term(self, actor: Actor, term_id: int) -> Term:
        async with self._read() as conn:
            return await self._render_term(conn, term_id)

    async def _render_term(self, db: AsyncConnection | AsyncSession, term_id: int) -> Term:
        row = (await db.execute(_TERM_BY_ID, {"term_id": term_id})).first()
        if row is None:
            raise NotFound(f"Term {term_id} not found.")
        return _term_model(row, row.post_count)

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
        optional = {"role": query.role, "search": _search_pattern(query.search)}
        params = {name: value for name, value in optional.items() if value is not None}
        stmt = _user_list_statement(full, frozenset(params), bool(query.cursor))
        rows = await self._fetch(stmt, params | _page_params(_USER_ORDER, query.cursor, query.limit))
        page, next_cursor = paginate_rows(rows, query.limit, _USER_ORDER)
        return Page[UserInfo](
            items=[self._user_model(actor, r, r.post_count) for r in page], next_cursor=next_cursor
        )

    async def get_user(self, actor: Actor, user_id: int) -> UserInfo:
        full = actor.can(Cap.LIST_USERS) or user_id == actor.user_id
        rows = await self._fetch(_user_by_id(full), {"user_id": user_id})
        if not rows:
            raise NotFound(f"User {user_id} not found.")
        return self._user_model(actor, rows[0], rows[0].post_count)

    @staticmethod
    def _user_model(actor: Actor, row: Row[Any], post_count: int) -> UserInfo:
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
