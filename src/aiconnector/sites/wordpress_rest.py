"""REST conventions on top of ``WordPressHttp``: pages with cursors, totals, item reads in the
richest context WordPress grants, writes, and the cache for read-mostly answers.

The backend (``wordpress.py``) says *what* to ask WordPress; this layer knows *how* WordPress's
collections, contexts and DELETE answers work, so those rules live in one place."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

from aiconnector.core.principal import Actor
from aiconnector.core.roles import Cap
from aiconnector.errors import NotAllowed
from aiconnector.sites.wordpress_http import WordPressHttp
from aiconnector.sites.wordpress_map import next_cursor, page_number

T = TypeVar("T")

# A public visitor: requests carry no credentials at all.
ANONYMOUS = Actor(user_id=0, username="", role="subscriber")
# Where a cursor points past the last page (content shrank meanwhile), WordPress says so with
# this error instead of an empty list.
_PAGE_BEYOND_END = frozenset({"rest_post_invalid_page_number"})


def edits_all(actor: Actor, post_type: str) -> bool:
    """Whether WordPress lets the actor edit every item of the type, so an edit-context list
    (which silently leaves out what the actor cannot edit) loses nothing."""
    return edits_some(actor, post_type) and actor.can(Cap.EDIT_OTHERS_POSTS)


def edits_some(actor: Actor, post_type: str) -> bool:
    """Whether edit context is worth trying for one item (the actor edits at least their own)."""
    return actor.user_id != 0 and actor.can(Cap.EDIT_PAGES if post_type == "page" else Cap.EDIT_POSTS)


class IdMemory:
    """What kind each id is (post or page, category or tag), learned from WordPress's answers.

    Kinds never change for an id, so there is no expiry; the oldest ids are forgotten beyond
    ``max_ids``."""

    def __init__(self, max_ids: int = 10_000) -> None:
        self._kinds: dict[int, str] = {}
        self._max = max_ids

    def remember(self, key: int, kind: str) -> None:
        self._kinds.pop(key, None)
        self._kinds[key] = kind
        if len(self._kinds) > self._max:
            del self._kinds[next(iter(self._kinds))]

    def forget(self, key: int) -> None:
        self._kinds.pop(key, None)

    def candidates(self, key: int, options: Sequence[str]) -> list[str]:
        """The remembered kind of an id, or every kind to try in turn."""
        known = self._kinds.get(key)
        return [known] if known is not None else list(options)


class TtlCache:
    """Values kept for ``seconds``, grouped so one write can drop everything it makes stale.

    Keys are tuples whose first element names the group (``("terms", ...)``). Bounded: beyond
    ``max_entries`` the oldest entries go first. ``seconds <= 0`` disables caching."""

    def __init__(self, seconds: float, max_entries: int = 2048) -> None:
        self._seconds = seconds
        self._max = max_entries
        self._entries: dict[tuple[Hashable, ...], tuple[float, Any]] = {}

    def get(self, key: tuple[Hashable, ...]) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: tuple[Hashable, ...], value: Any) -> None:
        if self._seconds <= 0:
            return
        if len(self._entries) >= self._max:
            now = time.monotonic()
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            while len(self._entries) >= self._max:
                del self._entries[next(iter(self._entries))]
        self._entries[key] = (time.monotonic() + self._seconds, value)

    def drop(self, *groups: str) -> None:
        """Forget every entry of these groups (after a write that changes them)."""
        self._entries = {k: e for k, e in self._entries.items() if k[0] not in groups}


class WordPressRest:
    """The request shapes every backend method uses (see the module docstring)."""

    def __init__(self, http: WordPressHttp, cache_seconds: float) -> None:
        self.http = http
        self.cache = TtlCache(cache_seconds)

    async def page(
        self,
        actor: Actor,
        kind: str,
        path: str,
        filters: Mapping[str, Any],
        extra: Mapping[str, Any],
        cursor: str | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a collection: ``filters`` define the query (and bind the cursor),
        ``extra`` only shapes the answer (context, fields, embeds)."""
        page = page_number(kind, filters, cursor, limit)
        params = {**filters, **extra, "page": page, "per_page": limit}
        reply = await self.http.call(actor, "GET", path, params=params, tolerate=_PAGE_BEYOND_END)
        if not isinstance(reply.data, list):
            return [], None
        items = [item for item in reply.data if isinstance(item, dict)]
        return items, next_cursor(kind, filters, page, limit, reply.total_pages)

    async def total(self, actor: Actor, path: str, filters: Mapping[str, Any]) -> int:
        """How many items a collection query matches (``X-WP-Total`` of a one-item page)."""
        reply = await self.http.call(actor, "GET", path, params={**filters, "per_page": 1, "_fields": "id"})
        return reply.total if reply.total is not None else len(reply.data or [])

    async def read_item(
        self, actor: Actor, path: str, post_type: str, params: Mapping[str, Any], not_found: str
    ) -> dict[str, Any]:
        """One post, page or media item in the richest context WordPress grants the actor.

        Edit context is refused (403 ``rest_forbidden_context``) for items the actor cannot
        edit; then the item is read again in view context, which WordPress may also refuse."""
        if edits_some(actor, post_type):
            try:
                return await self.get_json(actor, path, {**params, "context": "edit"}, not_found)
            except NotAllowed:
                if edits_all(actor, post_type):
                    raise
        return await self.get_json(actor, path, {**params, "context": "view"}, not_found)

    async def get_json(
        self, actor: Actor, path: str, params: Mapping[str, Any], not_found: str
    ) -> dict[str, Any]:
        reply = await self.http.call(actor, "GET", path, params=params, not_found=not_found)
        return reply.data if isinstance(reply.data, dict) else {}

    async def send(
        self,
        actor: Actor,
        method: str,
        path: str,
        *,
        fields: str,
        not_found: str,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A write; answers the object WordPress returns, trimmed to ``fields``.

        A forced DELETE answers ``{deleted, previous}`` (the object as it was): ``_fields``
        would filter those top-level keys away, so it is not sent and ``previous`` is returned."""
        query = dict(params or {})
        if method != "DELETE":
            query["_fields"] = fields
        reply = await self.http.call(actor, method, path, params=query, json=json, not_found=not_found)
        data: dict[str, Any] = reply.data if isinstance(reply.data, dict) else {}
        previous = data.get("previous")
        return previous if method == "DELETE" and isinstance(previous, dict) else data

    async def cached(self, key: tuple[Any, ...], load: Callable[[], Awaitable[T]]) -> T:
        """The cached value for ``key``, loading (and caching) it on a miss."""
        value = self.cache.get(key)
        if value is None:
            value = await load()
            self.cache.put(key, value)
        return value
