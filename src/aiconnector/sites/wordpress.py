"""The ``SiteBackend`` over a real WordPress (6.1+) through its REST API.

Each call acts as the person behind the connection: ``actor.user_id`` is their WordPress user
id, and their login and Application Password (from ``WordPressCredentials``) go with every
request as HTTP Basic auth, so WordPress itself decides what they may see and do. We never
pre-check a role where WordPress decides; its refusal comes back as ``NotAllowed`` with its
own message (``wordpress_http.map_error`` has the full error mapping). Roles only pick the
cheapest *context*: ``edit`` (raw fields) where WordPress will grant it, else ``view``
(lists of posts and media: editors and administrators; comments: moderators; users:
administrators, and anyone for themself; single items: whoever may edit some of the type,
falling back to ``view`` when WordPress refuses edit context for that item). This relies on
``actor.role`` mirroring the person's WordPress role, as the connector guarantees: an
edit-context list silently leaves out items WordPress would not let the person edit.

HTTP requests per call (the first call of a person also costs one ``users/me`` check of their
credentials, repeated at most every ``cache_seconds``; see ``wordpress_http``):

=================  ===========================================================================
site_info          3 concurrent (``/wp-json/`` index anonymously, published posts and pages
                   counted by ``X-WP-Total``); 0 while cached
list_posts         1: the page with authors and terms embedded (``_embed``), trimmed by
                   ``_fields``. Never one request per post
get_post           1; +1 if the id is not yet known as a post or page and is a page; +1 when
                   an author or contributor reads what they may not edit (edit context refused,
                   read again in view context)
create_post        1 (the response embeds author and terms); +1 concurrent check for each of
                   categories, tags and featured image given (WordPress silently drops unknown
                   ids, so they are looked up first, batched with ``include=``)
update_post        as create_post; +1 (or 2) to learn the type of an id not seen before
publish_post       same as update_post (status only: 1)
delete_post        2: the post as it was (get_post), then DELETE
list_comments,     1 each
get_comment,
create_comment,
moderate_comment
list_media,        1 each (upload: the raw body, with title, alt text, caption and post as
get_media,         query parameters of the same request; delete: ``force=true`` answers with
upload_media,      the item as it was)
update_media,
delete_media
media_bytes        2: the item's metadata (anonymously), then its ``source_url`` (anonymously)
list_terms,        1; 0 while cached
get_term           (+1 to learn the taxonomy of an id not seen before)
create/update/     1 (+1 for the taxonomy of an unseen id); drops the term cache
delete_term
list_users         1 + one ``X-WP-Total`` count per listed user whose post count is not cached,
                   run concurrently (at most 4 at a time); 0 while cached
get_user           2 concurrent (the user, their post count); 0 while cached
=================  ===========================================================================

Caching (``cache_seconds``, 30 s by default, per process): the site index and counts, term
lists and terms, user pages and post counts. Our own writes drop what they make stale: any
post or page write drops site info, terms (their counts), users and post counts; term writes
drop terms. Changes made directly in WordPress show after at most ``cache_seconds``. Cached
terms are shared by everyone (WordPress shows every person the same terms); user answers are
cached per person, because WordPress shows people different users and fields.

Where WordPress and the built-in site differ, WordPress wins and the difference is documented
here rather than papered over:

* Objects WordPress hides are ``NotAllowed`` (its ``rest_forbidden`` answer), not ``NotFound``;
  a comment on a missing post is WordPress's ``NotAllowed`` too. Non-moderators asking for
  held or spam comments get WordPress's answer (an empty list), not a refusal.
* Asking for statuses one may not see (``status=draft`` as a subscriber) is narrowed to the
  readable ones before asking (WordPress itself would refuse the whole list).
* Users without ``list_users`` (everyone but administrators) get ``role="unknown"`` and no
  e-mail for other people, and see only users with published content; ``username`` is the
  login in edit context, else WordPress's public slug for it. Author references always use
  the slug (WordPress never shows logins publicly).
* Posts have no ``parent`` filter and pages no terms in WordPress: as in the built-in site,
  ``parent_id=0`` on posts matches all and other values nothing (same for terms on pages and
  ``parent_id`` on tags). ``media_type`` filters accept only WordPress's five families (image,
  video, text, application, audio); another family matches nothing, and an exact type WordPress
  does not know (it would ignore the filter) returns an empty page.
* ``post_count`` counts published posts (type post), like the built-in site. Drafts have no
  slug in WordPress until published; the slug shown is the one WordPress will give them.
* Cursors are page numbers (``wordpress_map``), bound to the query and its ``limit``: content
  added meanwhile can shift items between pages, which keyset cursors avoid.
* Which file types may be uploaded is WordPress's decision (its allowed MIME types); a refused
  type is ``InvalidInput`` with WordPress's message.
* ``media_bytes`` proxies the file from WordPress (anonymously, like any visitor), so only media
  WordPress shows visitors can be read; media attached to an unpublished post is ``NotFound``
  (WordPress still serves the file itself at its URL). ``MediaItem.url`` is WordPress's own
  ``source_url``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx

from aiconnector.core.principal import Actor
from aiconnector.core.roles import Cap
from aiconnector.errors import InvalidInput, NotAllowed, NotFound
from aiconnector.sites.base import (
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
    Term,
    TermInput,
    TermPatch,
    TermQuery,
    UserInfo,
    UserQuery,
)
from aiconnector.sites.wordpress_http import WordPressCredentials, WordPressHttp
from aiconnector.sites.wordpress_map import (
    COMMENT_FIELDS,
    COMMENT_FILTER,
    MEDIA_FIELDS,
    POST_ENDPOINTS,
    POST_FIELDS,
    SUMMARY_FIELDS,
    TERM_ENDPOINTS,
    TERM_FIELDS,
    USER_FIELDS,
    check_type_fields,
    comment_model,
    embed_for,
    given,
    id_list,
    media_filename,
    media_filter,
    media_model,
    post_body,
    post_list_params,
    post_model,
    readable_statuses,
    search_text,
    term_model,
    upload_filename,
    user_model,
)
from aiconnector.sites.wordpress_rest import ANONYMOUS, IdMemory, WordPressRest, edits_all

__all__ = ["WordPressBackend", "WordPressCredentials"]

DEFAULT_MAX_MEDIA_BYTES = 64 * 1024 * 1024
# Post counts for list_users are fetched concurrently, but never more than this many at once:
# a PHP site serves few requests in parallel.
_COUNT_CONCURRENCY = 4
# Post and page writes change these cached answers (counts, term counts, users' post counts).
_POST_WRITE_STALE = ("site", "terms", "users", "counts")


class WordPressBackend:
    """``SiteBackend`` over the WordPress REST API (see the module docstring)."""

    backend_name = "wordpress"

    def __init__(
        self,
        base_url: str,
        credentials: WordPressCredentials,
        *,
        timeout: float = 15.0,
        cache_seconds: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES,
    ) -> None:
        http = WordPressHttp(
            base_url, credentials, timeout=timeout, verify_seconds=cache_seconds, transport=transport
        )
        self._rest = WordPressRest(http, cache_seconds)
        # What each id is (it never changes), so id-only calls go straight to the right endpoint.
        self._post_types = IdMemory()
        self._taxonomies = IdMemory()
        self._count_slots = asyncio.Semaphore(_COUNT_CONCURRENCY)
        self._max_media_bytes = max_media_bytes

    async def aclose(self) -> None:
        await self._rest.http.aclose()

    # --- site ---------------------------------------------------------------------------------

    async def site_info(self, actor: Actor) -> SiteInfo:
        return await self._rest.cached(("site",), lambda: self._load_site_info(actor))

    async def _load_site_info(self, actor: Actor) -> SiteInfo:
        index, posts, pages = await asyncio.gather(
            self._rest.http.call(ANONYMOUS, "GET", "", params={"_fields": "name,description,home,url"}),
            self._rest.total(actor, POST_ENDPOINTS["post"], {}),
            self._rest.total(actor, POST_ENDPOINTS["page"], {}),
        )
        data = index.data if isinstance(index.data, dict) else {}
        home = str(data.get("home") or data.get("url") or self._rest.http.site).rstrip("/")
        return SiteInfo(
            name=str(data.get("name") or ""),
            description=str(data.get("description") or ""),
            url=home + "/",
            backend=self.backend_name,
            post_count=posts,
            page_count=pages,
        )

    # --- posts --------------------------------------------------------------------------------

    async def list_posts(self, actor: Actor, query: PostQuery) -> Page[PostSummary]:
        statuses = readable_statuses(actor, query)
        if statuses is not None:
            if not statuses:
                return Page[PostSummary](items=[], next_cursor=None)
            query = query.model_copy(update={"status": statuses})
        filters = post_list_params(query)
        if filters is None:
            return Page[PostSummary](items=[], next_cursor=None)
        context = "edit" if edits_all(actor, query.type) else "view"
        extra = {"context": context, "_embed": embed_for(query.type), "_fields": SUMMARY_FIELDS}
        items, cursor = await self._rest.page(
            actor,
            f"posts-{query.type}",
            POST_ENDPOINTS[query.type],
            filters,
            extra,
            query.cursor,
            query.limit,
        )
        for item in items:
            self._post_types.remember(item["id"], query.type)
        return Page[PostSummary](
            items=[post_model(item, actor, PostSummary) for item in items], next_cursor=cursor
        )

    async def get_post(self, actor: Actor, post_id: int) -> Post:
        return post_model(await self._fetch_post(actor, post_id), actor, Post)

    async def _fetch_post(self, actor: Actor, post_id: int) -> dict[str, Any]:
        """The post or page with this id (WordPress has one endpoint per type: try each)."""
        not_found = f"Post {post_id} not found."
        for post_type in self._post_types.candidates(post_id, ("post", "page")):
            params = {"_embed": embed_for(post_type), "_fields": POST_FIELDS}
            path = f"{POST_ENDPOINTS[post_type]}/{post_id}"
            try:
                item = await self._rest.read_item(actor, path, post_type, params, not_found)
            except NotFound:
                continue
            self._post_types.remember(post_id, post_type)
            return item
        raise NotFound(not_found)

    async def _post_type(self, actor: Actor, post_id: int) -> str:
        """Whether the id is a post or a page, asking WordPress (cheaply) if not yet known.

        A refusal on ``/posts/<id>`` still proves it is a post (a page id is 404 there); the
        write that follows gets WordPress's refusal itself."""
        for post_type in self._post_types.candidates(post_id, ("post", "page")):
            try:
                await self._rest.get_json(
                    actor, f"{POST_ENDPOINTS[post_type]}/{post_id}", {"_fields": "id"}, "not found"
                )
            except NotFound:
                continue
            except NotAllowed:
                pass
            self._post_types.remember(post_id, post_type)
            return post_type
        raise NotFound(f"Post {post_id} not found.")

    async def create_post(self, actor: Actor, data: PostInput) -> Post:
        if data.status == "trash":
            raise InvalidInput("A new post cannot be created in the trash.")
        check_type_fields(data.type, data.parent_id, data.category_ids, data.tag_ids)
        await self._check_references(actor, data)
        return await self._write_post(actor, POST_ENDPOINTS[data.type], data.type, post_body(data))

    async def update_post(self, actor: Actor, post_id: int, patch: PostPatch) -> Post:
        if patch.status == "trash":
            raise InvalidInput("Use delete_post to move a post to the trash.")
        post_type = await self._post_type(actor, post_id)
        check_type_fields(post_type, patch.parent_id, patch.category_ids, patch.tag_ids)
        await self._check_references(actor, patch)
        path = f"{POST_ENDPOINTS[post_type]}/{post_id}"
        return await self._write_post(actor, path, post_type, post_body(patch), post_id)

    async def _check_references(self, actor: Actor, fields: PostInput | PostPatch) -> None:
        """Refuse unknown term and featured-media ids, concurrently, before writing.

        WordPress silently drops them (the post is saved without them and the call "succeeds"),
        so an agent would never learn its change did not happen; the built-in site refuses them
        too. A parent is checked by WordPress itself ("Invalid post parent ID")."""
        checks = [
            self._check_term_ids(actor, taxonomy, ids, name)
            for taxonomy, ids, name in (
                ("category", fields.category_ids, "category_ids"),
                ("post_tag", fields.tag_ids, "tag_ids"),
            )
            if ids
        ]
        if fields.featured_media_id:
            checks.append(self._check_featured_media(actor, fields.featured_media_id))
        await asyncio.gather(*checks)

    async def _check_term_ids(self, actor: Actor, taxonomy: str, ids: list[int], name: str) -> None:
        wanted = list(dict.fromkeys(ids))
        params = {"include": id_list(wanted), "per_page": 100, "_fields": "id"}
        reply = await self._rest.http.call(actor, "GET", TERM_ENDPOINTS[taxonomy], params=params)
        found = {item.get("id") for item in reply.data or [] if isinstance(item, dict)}
        kind = "category" if taxonomy == "category" else "tag"
        for term_id in wanted:
            if term_id not in found:
                raise InvalidInput(f"{name}: term {term_id} does not exist or is not a {kind}.")

    async def _check_featured_media(self, actor: Actor, media_id: int) -> None:
        message = f"featured_media_id {media_id} is not an existing image."
        try:
            item = await self._rest.get_json(
                actor, f"wp/v2/media/{media_id}", {"_fields": "id,media_type"}, message
            )
        except NotFound:
            raise InvalidInput(message) from None
        if item.get("media_type") != "image":
            raise InvalidInput(message)

    async def _write_post(
        self, actor: Actor, path: str, post_type: str, body: dict[str, Any], post_id: int | None = None
    ) -> Post:
        """Create or update; the answer embeds author and terms, and stale caches are dropped."""
        item = await self._rest.send(
            actor,
            "POST",
            path,
            fields=POST_FIELDS,
            json=body,
            params={"_embed": embed_for(post_type)},
            not_found=f"Post {post_id} not found.",
        )
        self._rest.cache.drop(*_POST_WRITE_STALE)
        self._post_types.remember(item["id"], post_type)
        return post_model(item, actor, Post)

    async def delete_post(self, actor: Actor, post_id: int, *, force: bool) -> Post:
        """Trash, or delete for good; answers the post as it was (read first, with its embeds)."""
        before = post_model(await self._fetch_post(actor, post_id), actor, Post)
        if before.status == "trash" and not force:
            raise InvalidInput(f"Post {post_id} is already in the trash; use force to delete it permanently.")
        params = {"force": "true"} if force else {}
        await self._rest.send(
            actor,
            "DELETE",
            f"{POST_ENDPOINTS[before.type]}/{post_id}",
            fields="id",
            params=params,
            not_found=f"Post {post_id} not found.",
        )
        self._rest.cache.drop(*_POST_WRITE_STALE)
        if force:
            self._post_types.forget(post_id)
        return before

    # --- comments -----------------------------------------------------------------------------

    @staticmethod
    def _comment_context(actor: Actor) -> str:
        """Edit context (raw content) needs ``moderate_comments`` for lists in WordPress."""
        return "edit" if actor.user_id != 0 and actor.can(Cap.MODERATE_COMMENTS) else "view"

    async def list_comments(self, actor: Actor, query: CommentQuery) -> Page[Comment]:
        filters = given(
            post=query.post_id,
            status=COMMENT_FILTER[query.status] if query.status else None,
            search=search_text(query.search),
            parent=query.parent_id,
        )
        extra = {"context": self._comment_context(actor), "_fields": COMMENT_FIELDS}
        items, cursor = await self._rest.page(
            actor, "comments", "wp/v2/comments", filters, extra, query.cursor, query.limit
        )
        return Page[Comment](items=[comment_model(i) for i in items], next_cursor=cursor)

    async def get_comment(self, actor: Actor, comment_id: int) -> Comment:
        params = {"context": self._comment_context(actor), "_fields": COMMENT_FIELDS}
        item = await self._rest.get_json(
            actor, f"wp/v2/comments/{comment_id}", params, f"Comment {comment_id} not found."
        )
        return comment_model(item)

    async def create_comment(
        self, actor: Actor, post_id: int, content: str, *, parent_id: int | None = None
    ) -> Comment:
        body = given(post=post_id, content=content, parent=parent_id)
        item = await self._rest.send(
            actor,
            "POST",
            "wp/v2/comments",
            fields=COMMENT_FIELDS,
            json=body,
            not_found=f"Post {post_id} not found.",
        )
        return comment_model(item)

    async def set_comment_status(self, actor: Actor, comment_id: int, status: CommentStatus) -> Comment:
        return await self._comment_write(actor, "POST", comment_id, json={"status": status})

    async def delete_comment(self, actor: Actor, comment_id: int) -> Comment:
        return await self._comment_write(actor, "DELETE", comment_id, params={"force": "true"})

    async def _comment_write(self, actor: Actor, method: str, comment_id: int, **kwargs: Any) -> Comment:
        item = await self._rest.send(
            actor,
            method,
            f"wp/v2/comments/{comment_id}",
            fields=COMMENT_FIELDS,
            not_found=f"Comment {comment_id} not found.",
            **kwargs,
        )
        return comment_model(item)

    # --- media --------------------------------------------------------------------------------

    async def list_media(self, actor: Actor, query: MediaQuery) -> Page[MediaItem]:
        type_filter = media_filter(query.mime_type)
        if type_filter is None:
            return Page[MediaItem](items=[], next_cursor=None)
        filters = {
            **type_filter,
            **given(
                search=search_text(query.search),
                author=query.author_id,
            ),
        }
        extra = {"context": "edit" if edits_all(actor, "post") else "view", "_fields": MEDIA_FIELDS}
        items, cursor = await self._rest.page(
            actor, "media", "wp/v2/media", filters, extra, query.cursor, query.limit
        )
        media = [media_model(i) for i in items]
        wanted = type_filter.get("mime_type")
        if wanted is not None and any(m.mime_type != wanted for m in media):
            # WordPress ignores a mime_type it does not allow; no media of that type can exist.
            return Page[MediaItem](items=[], next_cursor=None)
        return Page[MediaItem](items=media, next_cursor=cursor)

    async def get_media(self, actor: Actor, media_id: int) -> MediaItem:
        params = {"_fields": MEDIA_FIELDS}
        item = await self._rest.read_item(
            actor, f"wp/v2/media/{media_id}", "post", params, f"Media {media_id} not found."
        )
        return media_model(item)

    async def create_media(self, actor: Actor, upload: MediaUpload) -> MediaItem:
        """One request: the file is the raw body and the metadata rides in the query string,
        which WordPress reads as the same request's parameters."""
        params = given(
            title=upload.title,
            alt_text=upload.alt_text or None,
            caption=upload.caption or None,
            post=upload.post_id,
            _fields=MEDIA_FIELDS,
        )
        headers = {
            "Content-Type": upload.mime_type,
            "Content-Disposition": f'attachment; filename="{upload_filename(upload.filename)}"',
        }
        reply = await self._rest.http.call(
            actor,
            "POST",
            "wp/v2/media",
            params=params,
            content=upload.data,
            headers=headers,
            not_found=f"Post {upload.post_id} not found.",
        )
        return media_model(reply.data if isinstance(reply.data, dict) else {})

    async def update_media(self, actor: Actor, media_id: int, patch: MediaPatch) -> MediaItem:
        body = given(title=patch.title, alt_text=patch.alt_text, caption=patch.caption, post=patch.post_id)
        return await self._media_write(actor, "POST", media_id, json=body)

    async def delete_media(self, actor: Actor, media_id: int) -> MediaItem:
        """Media has no trash in WordPress: ``force=true`` deletes (without it: 501)."""
        return await self._media_write(actor, "DELETE", media_id, params={"force": "true"})

    async def _media_write(self, actor: Actor, method: str, media_id: int, **kwargs: Any) -> MediaItem:
        item = await self._rest.send(
            actor,
            method,
            f"wp/v2/media/{media_id}",
            fields=MEDIA_FIELDS,
            not_found=f"Media {media_id} not found.",
            **kwargs,
        )
        return media_model(item)

    async def media_bytes(self, key: str) -> MediaBytes:
        """The file, fetched the way a visitor would (see the module docstring). ``key`` is the
        media id: WordPress decides what visitors see, and serves its files at its own URLs."""
        if not (key.isascii() and key.isdigit()):
            raise NotFound("Media not found.")
        media_id = int(key)
        not_found = f"Media {media_id} not found."
        try:
            item = await self._rest.get_json(
                ANONYMOUS,
                f"wp/v2/media/{media_id}",
                {"_fields": "id,slug,mime_type,media_details,source_url"},
                not_found,
            )
        except NotAllowed:
            raise NotFound(not_found) from None
        url = item.get("source_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise NotFound(not_found)
        data = await self._rest.http.download(url, self._max_media_bytes)
        mime = str(item.get("mime_type") or "application/octet-stream")
        return MediaBytes(mime_type=mime, filename=media_filename(item), data=data)

    # --- terms --------------------------------------------------------------------------------

    async def list_terms(self, actor: Actor, query: TermQuery) -> Page[Term]:
        if query.taxonomy == "post_tag" and query.parent_id:
            return Page[Term](items=[], next_cursor=None)  # tags are flat
        filters = given(
            search=search_text(query.search),
            parent=query.parent_id if query.taxonomy == "category" else None,
        )
        filters.update(orderby="name", order="asc")
        key = ("terms", query.taxonomy, tuple(sorted(filters.items())), query.cursor, query.limit)
        return await self._rest.cached(key, lambda: self._load_terms(actor, query, filters))

    async def _load_terms(self, actor: Actor, query: TermQuery, filters: dict[str, Any]) -> Page[Term]:
        items, cursor = await self._rest.page(
            actor,
            f"terms-{query.taxonomy}",
            TERM_ENDPOINTS[query.taxonomy],
            filters,
            {"_fields": TERM_FIELDS},
            query.cursor,
            query.limit,
        )
        terms = [term_model(i) for i in items]
        for term in terms:
            self._taxonomies.remember(term.id, term.taxonomy)
        return Page[Term](items=terms, next_cursor=cursor)

    async def get_term(self, actor: Actor, term_id: int) -> Term:
        return await self._rest.cached(("terms", "id", term_id), lambda: self._load_term(actor, term_id))

    async def _load_term(self, actor: Actor, term_id: int) -> Term:
        for taxonomy in self._taxonomies.candidates(term_id, tuple(TERM_ENDPOINTS)):
            try:
                item = await self._rest.get_json(
                    actor, f"{TERM_ENDPOINTS[taxonomy]}/{term_id}", {"_fields": TERM_FIELDS}, "not found"
                )
            except NotFound:
                continue
            self._taxonomies.remember(term_id, taxonomy)
            return term_model(item)
        raise NotFound(f"Term {term_id} not found.")

    async def create_term(self, actor: Actor, data: TermInput) -> Term:
        body = given(name=data.name, slug=data.slug, description=data.description, parent=data.parent_id)
        return await self._term_write(actor, "POST", TERM_ENDPOINTS[data.taxonomy], json=body)

    async def update_term(self, actor: Actor, term_id: int, patch: TermPatch) -> Term:
        taxonomy = (await self.get_term(actor, term_id)).taxonomy
        body = given(name=patch.name, slug=patch.slug, description=patch.description, parent=patch.parent_id)
        return await self._term_write(actor, "POST", f"{TERM_ENDPOINTS[taxonomy]}/{term_id}", json=body)

    async def delete_term(self, actor: Actor, term_id: int) -> Term:
        """Terms have no trash: ``force=true`` deletes (without it WordPress answers 501)."""
        taxonomy = (await self.get_term(actor, term_id)).taxonomy
        term = await self._term_write(
            actor, "DELETE", f"{TERM_ENDPOINTS[taxonomy]}/{term_id}", params={"force": "true"}
        )
        self._taxonomies.forget(term_id)
        return term

    async def _term_write(self, actor: Actor, method: str, path: str, **kwargs: Any) -> Term:
        try:
            item = await self._rest.send(
                actor, method, path, fields=TERM_FIELDS, not_found="Term not found.", **kwargs
            )
        finally:
            # Even a refused write may follow a change made elsewhere; never serve stale terms after it.
            self._rest.cache.drop("terms")
        term = term_model(item)
        self._taxonomies.remember(term.id, term.taxonomy)
        return term

    # --- users --------------------------------------------------------------------------------

    @staticmethod
    def _sees_users_fully(actor: Actor, user_id: int | None = None) -> bool:
        """Edit context for users (login, e-mail, roles): ``list_users``, or oneself."""
        return actor.user_id != 0 and (actor.can(Cap.LIST_USERS) or actor.user_id == user_id)

    async def list_users(self, actor: Actor, query: UserQuery) -> Page[UserInfo]:
        filters = given(
            search=search_text(query.search),
            roles=query.role,
        )
        filters.update(orderby="slug", order="asc")  # the closest WordPress order to "by username"
        key = ("users", actor.user_id, tuple(sorted(filters.items())), query.cursor, query.limit)
        return await self._rest.cached(key, lambda: self._load_users(actor, query, filters))

    async def _load_users(self, actor: Actor, query: UserQuery, filters: dict[str, Any]) -> Page[UserInfo]:
        extra = {"context": "edit" if self._sees_users_fully(actor) else "view", "_fields": USER_FIELDS}
        items, cursor = await self._rest.page(
            actor, "users", "wp/v2/users", filters, extra, query.cursor, query.limit
        )
        counts = await self._post_counts(actor, [item["id"] for item in items])
        return Page[UserInfo](
            items=[user_model(item, counts[item["id"]]) for item in items], next_cursor=cursor
        )

    async def get_user(self, actor: Actor, user_id: int) -> UserInfo:
        key = ("users", actor.user_id, "id", user_id)
        return await self._rest.cached(key, lambda: self._load_user(actor, user_id))

    async def _load_user(self, actor: Actor, user_id: int) -> UserInfo:
        context = "edit" if self._sees_users_fully(actor, user_id) else "view"
        item, counts = await asyncio.gather(
            self._rest.get_json(
                actor,
                f"wp/v2/users/{user_id}",
                {"context": context, "_fields": USER_FIELDS},
                f"User {user_id} not found.",
            ),
            self._post_counts(actor, [user_id]),
        )
        return user_model(item, counts[user_id])

    async def _post_counts(self, actor: Actor, user_ids: Sequence[int]) -> dict[int, int]:
        """Published posts per user, like the built-in site's ``post_count``.

        WordPress's REST API has no per-user count; ``X-WP-Total`` of ``posts?author=<id>`` is
        exact and costs one small request, so the missing counts are fetched concurrently (at
        most ``_COUNT_CONCURRENCY`` at once) and cached; never one-by-one in sequence."""
        counts: dict[int, int] = {}
        missing: list[int] = []
        for user_id in dict.fromkeys(user_ids):
            cached = self._rest.cache.get(("counts", user_id))
            if cached is None:
                missing.append(user_id)
            else:
                counts[user_id] = cached

        async def count(user_id: int) -> int:
            async with self._count_slots:
                return await self._rest.total(actor, POST_ENDPOINTS["post"], {"author": user_id})

        for user_id, total in zip(missing, await asyncio.gather(*(count(u) for u in missing)), strict=True):
            self._rest.cache.put(("counts", user_id), total)
            counts[user_id] = total
        return counts
