"""Posts and pages as MCP resources (``aiconnector://posts/{id}``, ``aiconnector://pages/{id}``).

Resources give clients that browse rather than call tools (attachment pickers, @-mentions)
read access to published content. They go through the site backend like tools do, so role
checks and the visibility of drafts stay the backend's business."""

from __future__ import annotations

import html
import re
from typing import Any

from aiconnector.core.principal import Principal
from aiconnector.errors import ConnectorError, NotAllowed, NotFound
from aiconnector.mcp.eras import Protocol
from aiconnector.mcp.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, JsonRpcError
from aiconnector.mcp.pagination import decode_cursor, encode_cursor
from aiconnector.sites.base import Post, PostQuery, PostSummary, PostType, SiteBackend

URI_SCHEME = "aiconnector://"
_KIND_TO_TYPE: dict[str, PostType] = {"posts": "post", "pages": "page"}
_TYPE_TO_KIND: dict[str, str] = {v: k for k, v in _KIND_TO_TYPE.items()}
_URI = re.compile(r"aiconnector://(posts|pages)/([1-9][0-9]{0,17})")
_PAGE_SIZE = 50
_CURSOR_KIND = "resources"
MIME_TYPE = "text/html"

TEMPLATES: tuple[dict[str, str], ...] = (
    {
        "uriTemplate": URI_SCHEME + "posts/{id}",
        "name": "post",
        "title": "Post",
        "description": "A post of the site by numeric id, as HTML with a short metadata header.",
        "mimeType": MIME_TYPE,
    },
    {
        "uriTemplate": URI_SCHEME + "pages/{id}",
        "name": "page",
        "title": "Page",
        "description": "A page of the site by numeric id, as HTML with a short metadata header.",
        "mimeType": MIME_TYPE,
    },
)


def post_uri(post_type: str, post_id: int) -> str:
    return f"{URI_SCHEME}{_TYPE_TO_KIND[post_type]}/{post_id}"


def _resource(post: PostSummary, protocol: Protocol) -> dict[str, Any]:
    item: dict[str, Any] = {"uri": post_uri(post.type, post.id), "mimeType": MIME_TYPE}
    if protocol.structured:  # `title` exists from 2025-06-18; before that `name` is displayed
        item["name"] = post.slug or f"{post.type}-{post.id}"
        item["title"] = post.title
    else:
        item["name"] = post.title or post.slug or f"{post.type}-{post.id}"
    if post.excerpt:
        item["description"] = post.excerpt[:300]
    return item


def templates(protocol: Protocol) -> list[dict[str, str]]:
    if protocol.structured:
        return list(TEMPLATES)
    return [{k: v for k, v in t.items() if k != "title"} for t in TEMPLATES]


async def list_resources(
    site: SiteBackend, principal: Principal, protocol: Protocol, cursor: str | None
) -> dict[str, Any]:
    """Recent published posts, then pages. The cursor carries which list we are in and the
    backend's own cursor for it. The caller has checked the ``content:read`` scope."""
    post_type: str = "post"
    site_cursor: str | None = None
    if cursor is not None:
        position = decode_cursor(_CURSOR_KIND, cursor)
        if (
            type(position) is not list
            or len(position) != 2
            or position[0] not in _TYPE_TO_KIND
            or not (position[1] is None or type(position[1]) is str)
        ):
            raise JsonRpcError(INVALID_PARAMS, "Invalid cursor")
        post_type, site_cursor = position
    query = PostQuery(type=post_type, status=["publish"], limit=_PAGE_SIZE, cursor=site_cursor)  # type: ignore[arg-type]
    try:
        page = await site.list_posts(principal.actor, query)
    except ConnectorError as exc:
        raise _site_error(exc) from None
    result: dict[str, Any] = {"resources": [_resource(p, protocol) for p in page.items]}
    if page.next_cursor is not None:
        result["nextCursor"] = encode_cursor(_CURSOR_KIND, [post_type, page.next_cursor])
    elif post_type == "post":
        result["nextCursor"] = encode_cursor(_CURSOR_KIND, ["page", None])
    return result


def _site_error(exc: ConnectorError) -> JsonRpcError:
    if isinstance(exc, NotAllowed):
        return JsonRpcError(INVALID_PARAMS, exc.message)
    return JsonRpcError(INTERNAL_ERROR, exc.message)


def _not_found(uri: str, protocol: Protocol) -> JsonRpcError:
    return JsonRpcError(protocol.resource_not_found_code, f"Resource not found: {uri}", {"uri": uri})


def _render(post: Post) -> str:
    """HTML with a one-line header so an agent reading the resource knows what it is."""
    facts = [
        f"{post.type} #{post.id}",
        post.status,
        f"by {html.escape(post.author.display_name)}",
        post.date.isoformat(),
        f'<a href="{html.escape(post.url)}">{html.escape(post.url)}</a>',
    ]
    return f"<h1>{html.escape(post.title)}</h1>\n<p>{' · '.join(facts)}</p>\n{post.content}"


async def read_resource(
    site: SiteBackend, principal: Principal, protocol: Protocol, uri: str
) -> dict[str, Any]:
    """One post or page; the caller has checked the ``content:read`` scope."""
    match = _URI.fullmatch(uri)
    if match is None:
        raise _not_found(uri, protocol)
    post_type = _KIND_TO_TYPE[match.group(1)]
    try:
        post = await site.get_post(principal.actor, int(match.group(2)))
    except NotFound:
        raise _not_found(uri, protocol) from None
    except ConnectorError as exc:
        raise _site_error(exc) from None
    if post.type != post_type:
        raise _not_found(uri, protocol)
    return {"contents": [{"uri": uri, "mimeType": MIME_TYPE, "text": _render(post)}]}
