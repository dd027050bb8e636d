"""WordPress REST JSON to the connector's content models, and queries to REST parameters.

Pure functions only (no I/O), so every mapping rule is visible in one place:

* **Raw or rendered.** In ``context=edit`` WordPress returns both the stored (raw) and the
  rendered form of titles, content, excerpts and captions; in ``context=view`` only the
  rendered one. We return raw when we have it: it is what the person wrote and what
  ``update_post`` writes back, so an agent that reads, edits and saves keeps block markup
  (``<!-- wp:paragraph -->``), shortcodes and paragraphs intact. Rendered HTML would be
  written back expanded (wpautop, shortcodes, "Private:" title prefixes). Without edit rights,
  content is the rendered HTML the public sees, and titles, excerpts and captions are its
  plain text.
* **Dates** are ``date_gmt``/``modified_gmt`` (UTC, sent without an offset), made aware.
* **Authors** come from ``_embedded.author``; WordPress's public user object has no login, so
  ``AuthorRef.username`` is the author's ``slug`` (the sanitized login WordPress shows in
  author URLs). When WordPress hides the author from the actor (an unpublished user seen by
  someone without ``list_users``), only the id is known.
* **Cursors** carry the WordPress page number and page size under a tag that fingerprints the
  query's other parameters (``sites/cursor.py`` encoding), so a cursor is refused for any other
  query. Page numbers, not keysets: WordPress only offers page/offset paging."""

from __future__ import annotations

import hashlib
import posixpath
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import orjson

from aiconnector.core.principal import Actor
from aiconnector.core.roles import Cap
from aiconnector.errors import InvalidInput
from aiconnector.sites.base import (
    AuthorRef,
    Comment,
    CommentStatus,
    MediaItem,
    Post,
    PostInput,
    PostPatch,
    PostQuery,
    PostStatus,
    PostSummary,
    Taxonomy,
    Term,
    TermRef,
    UserInfo,
)
from aiconnector.sites.cursor import decode_cursor, encode_cursor
from aiconnector.sites.wordpress_http import plain_text

P = TypeVar("P", bound=PostSummary)

_POST_STATUSES: frozenset[str] = frozenset({"draft", "pending", "publish", "future", "private", "trash"})
_COMMENT_STATUSES: dict[str, CommentStatus] = {
    "approved": "approved",
    "approve": "approved",
    "1": "approved",
    "hold": "hold",
    "unapproved": "hold",
    "0": "hold",
    "spam": "spam",
    "trash": "trash",
}
# The comments collection's ``status`` filter spells "approved" as "approve".
COMMENT_FILTER: dict[CommentStatus, str] = {
    "approved": "approve",
    "hold": "hold",
    "spam": "spam",
    "trash": "trash",
}
# The ``media_type`` families the media collection can filter on.
MEDIA_FAMILIES: frozenset[str] = frozenset({"image", "video", "text", "application", "audio"})
# WordPress REST's names for our post types and orderings.
POST_ENDPOINTS: dict[str, str] = {"post": "wp/v2/posts", "page": "wp/v2/pages"}
TERM_ENDPOINTS: dict[str, str] = {"category": "wp/v2/categories", "post_tag": "wp/v2/tags"}
_ORDERS: dict[str, tuple[str, str]] = {
    "date_desc": ("date", "desc"),
    "date_asc": ("date", "asc"),
    "title_asc": ("title", "asc"),
    "title_desc": ("title", "desc"),
    "modified_desc": ("modified", "desc"),
}

# ``_fields`` lists: WordPress builds only what is asked for. The ``_links`` entries must stay,
# or there is nothing to embed.
_SUMMARY_FIELDS = (
    "id,type,title,slug,generated_slug,status,author,date,date_gmt,modified_gmt,excerpt,link,categories,tags,"
    "_links.author,_links.wp:term,_embedded"
)
SUMMARY_FIELDS = _SUMMARY_FIELDS
POST_FIELDS = _SUMMARY_FIELDS + ",content,parent,featured_media,comment_status,menu_order"
COMMENT_FIELDS = "id,post,parent,author,author_name,content,status,date,date_gmt"
MEDIA_FIELDS = "id,title,slug,mime_type,media_details,source_url,alt_text,caption,author,post,date,date_gmt"
TERM_FIELDS = "id,taxonomy,name,slug,description,parent,count"
USER_FIELDS = "id,username,name,slug,email,roles"


def embed_for(post_type: str) -> str:
    """What to embed with posts: authors, and terms where the type has them (pages have none)."""
    return "author,wp:term" if post_type == "post" else "author"


# --- small value helpers ------------------------------------------------------------------------


def gmt(value: Any, fallback: Any = None) -> datetime:
    """An aware UTC datetime from WordPress's offset-less GMT field (or ``fallback``'s)."""
    raw = value or fallback
    if not isinstance(raw, str) or not raw:
        return datetime.fromtimestamp(0, UTC)
    parsed = datetime.fromisoformat(raw)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def wp_date(value: datetime) -> str:
    """A datetime as WordPress wants it in ``date_gmt``/``after``/``before``: ISO 8601, UTC."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def _raw_or_rendered(field: Any, *, plain: bool) -> str:
    """``raw`` when WordPress sent it (edit context), else ``rendered`` (as text if ``plain``)."""
    if isinstance(field, str):
        return field
    if not isinstance(field, dict):
        return ""
    if isinstance(field.get("raw"), str):
        return cast(str, field["raw"])
    rendered = str(field.get("rendered") or "")
    return plain_text(rendered) if plain else rendered


def _id_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def search_text(text: str | None) -> str | None:
    """The ``search`` parameter, or None when there is nothing to search for."""
    return text.strip() if text and text.strip() else None


def id_list(ids: Sequence[int]) -> str:
    """A comma-separated list: PHP keeps only the last of repeated ``name=`` parameters."""
    return ",".join(str(i) for i in ids)


# --- posts --------------------------------------------------------------------------------------


def _author(item: Mapping[str, Any], actor: Actor) -> AuthorRef:
    author_id = int(item.get("author") or 0)
    embedded = (item.get("_embedded") or {}).get("author") or []
    for user in embedded:
        if isinstance(user, dict) and user.get("id") == author_id:
            name = str(user.get("name") or user.get("slug") or "")
            return AuthorRef(id=author_id, username=str(user.get("slug") or ""), display_name=name)
    if author_id == actor.user_id and actor.username:
        return AuthorRef(id=author_id, username=actor.username, display_name=actor.username)
    # WordPress hides users without published content from people who cannot list users.
    return AuthorRef(id=author_id, username="", display_name="")


def _terms(item: Mapping[str, Any], field: str, taxonomy: str) -> list[TermRef]:
    """The post's terms of one taxonomy, in the order of its id list, named from ``wp:term``."""
    known: dict[int, TermRef] = {}
    for group in (item.get("_embedded") or {}).get("wp:term") or []:
        for term in group if isinstance(group, list) else []:
            if (
                isinstance(term, dict)
                and term.get("taxonomy") == taxonomy
                and isinstance(term.get("id"), int)
            ):
                known[term["id"]] = TermRef(id=term["id"], name=str(term["name"]), slug=str(term["slug"]))
    ids = [i for i in item.get(field) or [] if isinstance(i, int)]
    # An id WordPress did not embed keeps its place with an empty name rather than vanishing.
    return [known.get(i) or TermRef(id=i, name="", slug="") for i in ids]


def _status(value: Any) -> PostStatus:
    """WordPress statuses map 1:1; internal ones (auto-draft) read as draft."""
    return cast(PostStatus, value) if value in _POST_STATUSES else "draft"


def post_model(item: Mapping[str, Any], actor: Actor, model: type[P]) -> P:
    """``model`` (``PostSummary`` or ``Post``) from a post or page object with embeds."""
    post_type = "page" if item.get("type") == "page" else "post"
    fields: dict[str, Any] = {
        "id": item["id"],
        "type": post_type,
        "title": _raw_or_rendered(item.get("title"), plain=True),
        # Unpublished posts have no slug yet; edit context shows the one publishing will give.
        "slug": str(item.get("slug") or item.get("generated_slug") or ""),
        "status": _status(item.get("status")),
        "author": _author(item, actor),
        "date": gmt(item.get("date_gmt"), item.get("date")),
        "modified": gmt(item.get("modified_gmt"), item.get("date_gmt")),
        "excerpt": _raw_or_rendered(item.get("excerpt"), plain=True),
        "url": str(item.get("link") or ""),
        "categories": _terms(item, "categories", "category"),
        "tags": _terms(item, "tags", "post_tag"),
    }
    if model is Post:
        fields.update(
            content=_raw_or_rendered(item.get("content"), plain=False),
            parent_id=_id_or_none(item.get("parent")),
            featured_media_id=_id_or_none(item.get("featured_media")),
            comment_status="open" if item.get("comment_status") == "open" else "closed",
            menu_order=int(item.get("menu_order") or 0),
        )
    return model(**fields)


_EDIT_CAP = {"post": Cap.EDIT_POSTS, "page": Cap.EDIT_PAGES}


def readable_statuses(actor: Actor, query: PostQuery) -> list[str] | None:
    """The asked statuses narrowed to what the person may list (None: none asked).

    WordPress refuses a whole list ("Status is forbidden") when one asked status is not
    readable; the built-in site narrows instead, and tools such as ``export_posts`` ask for
    every status, so we narrow the same way: published for everyone, private with
    ``read_private_posts``, the rest with the type's edit capability. WordPress still filters
    the result by what each item allows."""
    if not query.status:
        return None
    may_edit = actor.can(_EDIT_CAP[query.type])
    return [
        status
        for status in dict.fromkeys(query.status)
        if status == "publish" or may_edit or (status == "private" and actor.can(Cap.READ_PRIVATE_POSTS))
    ]


def post_list_params(query: PostQuery) -> dict[str, Any] | None:
    """REST parameters for ``query`` (without paging), or None when nothing can match.

    WordPress has no ``parent`` filter for posts nor terms on pages; there, as in the built-in
    site, ``parent_id=0`` matches everything and any other filter value matches nothing."""
    if query.type == "post" and query.parent_id:
        return None
    if query.type == "page" and (query.category_id or query.tag_id):
        return None
    orderby, order = _ORDERS[query.order]
    optional: dict[str, Any] = {
        "status": ",".join(dict.fromkeys(query.status)) if query.status else None,
        "search": search_text(query.search),
        "categories": query.category_id,
        "tags": query.tag_id,
        "author": query.author_id,
        "after": wp_date(query.after) if query.after else None,
        "before": wp_date(query.before) if query.before else None,
        "parent": query.parent_id if query.type == "page" else None,
    }
    params = {name: value for name, value in optional.items() if value is not None}
    params.update(orderby=orderby, order=order)
    return params


def check_type_fields(
    post_type: str, parent_id: int | None, category_ids: list[int] | None, tag_ids: list[int] | None
) -> None:
    """WordPress silently ignores a parent on posts and terms on pages; refuse them as the
    built-in site does, rather than report success for a change that did not happen."""
    if post_type == "post" and parent_id:
        raise InvalidInput("Only pages can have a parent; posts are not hierarchical.")
    if post_type == "page" and (category_ids or tag_ids):
        raise InvalidInput("Pages have no categories or tags.")


def post_body(fields: PostInput | PostPatch) -> dict[str, Any]:
    """The REST body for the given (non-None) fields, under WordPress's field names."""
    body: dict[str, Any] = {
        name: getattr(fields, name)
        for name in ("title", "content", "excerpt", "slug", "status", "comment_status")
        if getattr(fields, name) is not None
    }
    renamed = {
        "parent_id": "parent",
        "featured_media_id": "featured_media",
        "category_ids": "categories",
        "tag_ids": "tags",
    }
    body.update(
        {wp: getattr(fields, ours) for ours, wp in renamed.items() if getattr(fields, ours) is not None}
    )
    if fields.date is not None:
        body["date_gmt"] = wp_date(fields.date)
    return body


def given(**values: Any) -> dict[str, Any]:
    """Only the values that are not None."""
    return {name: value for name, value in values.items() if value is not None}


# --- comments, media, terms, users --------------------------------------------------------------


def comment_model(item: Mapping[str, Any]) -> Comment:
    return Comment(
        id=item["id"],
        post_id=int(item.get("post") or 0),
        parent_id=_id_or_none(item.get("parent")),
        author_name=str(item.get("author_name") or ""),
        author_user_id=_id_or_none(item.get("author")),
        content=_raw_or_rendered(item.get("content"), plain=False),
        status=_COMMENT_STATUSES.get(str(item.get("status")), "hold"),
        date=gmt(item.get("date_gmt"), item.get("date")),
    )


def media_filename(item: Mapping[str, Any]) -> str:
    details = item.get("media_details") or {}
    path = details.get("file") if isinstance(details, dict) else None
    if not isinstance(path, str) or not path:
        path = urlsplit(str(item.get("source_url") or "")).path
    return posixpath.basename(path) or str(item.get("slug") or item["id"])


def media_model(item: Mapping[str, Any]) -> MediaItem:
    details = item.get("media_details")
    size = details.get("filesize") if isinstance(details, dict) else None
    return MediaItem(
        id=item["id"],
        title=_raw_or_rendered(item.get("title"), plain=True),
        filename=media_filename(item),
        mime_type=str(item.get("mime_type") or "application/octet-stream"),
        size=size if isinstance(size, int) else 0,
        alt_text=str(item.get("alt_text") or ""),
        caption=_raw_or_rendered(item.get("caption"), plain=True),
        url=str(item.get("source_url") or ""),
        author_id=int(item.get("author") or 0),
        post_id=_id_or_none(item.get("post")),
        date=gmt(item.get("date_gmt"), item.get("date")),
    )


def media_filter(mime_type: str | None) -> dict[str, str] | None:
    """``media_type`` (a family such as ``image/``) or ``mime_type`` (exact) parameters.

    None when no WordPress media can match: WordPress files media only under its five families."""
    if not mime_type or not mime_type.strip():
        return {}
    mime = mime_type.strip().lower()
    family, slash, subtype = mime.partition("/")
    if slash and subtype:
        return {"mime_type": mime}
    return {"media_type": family} if family in MEDIA_FAMILIES else None


def term_model(item: Mapping[str, Any]) -> Term:
    taxonomy: Taxonomy = "post_tag" if item.get("taxonomy") == "post_tag" else "category"
    return Term(
        id=item["id"],
        taxonomy=taxonomy,
        name=plain_text(str(item.get("name") or "")),
        slug=str(item.get("slug") or ""),
        description=str(item.get("description") or ""),
        parent_id=_id_or_none(item.get("parent")),
        count=int(item.get("count") or 0),
    )


def _role(roles: Any) -> str:
    """The first of the user's roles; "unknown" when WordPress does not show them (only people
    who may list users see roles), "" for a user with no role on the site."""
    if not isinstance(roles, list):
        return "unknown"
    return str(roles[0]) if roles else ""


def user_model(item: Mapping[str, Any], post_count: int) -> UserInfo:
    """A user; login, e-mail and role exist only in edit context (see the backend docstring)."""
    email = item.get("email")
    return UserInfo(
        id=item["id"],
        username=str(item.get("username") or item.get("slug") or ""),
        display_name=str(item.get("name") or item.get("slug") or ""),
        email=email if isinstance(email, str) and email else None,
        role=_role(item.get("roles")),
        post_count=post_count,
    )


# --- cursors ------------------------------------------------------------------------------------


def _cursor_tag(kind: str, params: Mapping[str, Any]) -> str:
    """Names the list and fingerprints its parameters, so a cursor fits only its own query."""
    digest = hashlib.sha256(orjson.dumps(dict(params), option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"wp-{kind}-{digest[:16]}"


def page_number(kind: str, params: Mapping[str, Any], cursor: str | None, limit: int) -> int:
    """The WordPress page a cursor points at (1 without one); InvalidInput for a foreign cursor."""
    if not cursor:
        return 1
    page, per_page = decode_cursor(cursor, _cursor_tag(kind, params), (int, int))
    if per_page != limit:
        raise InvalidInput(f"This cursor was made for limit={per_page}; pass the same limit to continue.")
    if not isinstance(page, int) or page < 2:
        raise InvalidInput("invalid cursor")
    return page


def next_cursor(
    kind: str, params: Mapping[str, Any], page: int, limit: int, total_pages: int | None
) -> str | None:
    """The cursor of the page after ``page``, or None when WordPress says it was the last."""
    if total_pages is None or page >= total_pages:
        return None
    return encode_cursor(_cursor_tag(kind, params), [page + 1, limit])


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def upload_filename(filename: str) -> str:
    """A file name safe in a ``Content-Disposition`` header: no path, ASCII ``[A-Za-z0-9._-]``.

    WordPress sanitizes names itself; this only keeps the header well-formed."""
    base = posixpath.basename(filename.replace("\\", "/"))
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    clean = _SAFE_NAME.sub("-", base).strip(".-") or "upload"
    return clean[:200]
