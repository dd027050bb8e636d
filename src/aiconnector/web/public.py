"""The built-in site's public face: home page, single posts and pages, and media files.

Post content is HTML written by people and agents, so every page is served with a strict
Content-Security-Policy that allows no scripts: stored markup cannot run code in a visitor's
browser. Media files get ``nosniff`` and a sandbox CSP so an uploaded file is never run as a page."""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from aiconnector.core.principal import Actor
from aiconnector.errors import ConnectorError, NotFound
from aiconnector.sites.base import PostQuery, SiteBackend

# Anonymous visitors read as a subscriber-less actor: only published content is visible.
VISITOR = Actor(user_id=0, username="", role="subscriber")
PAGE_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'none'"
MEDIA_CSP = "default-src 'none'; sandbox"


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        "<style>body{font:17px/1.6 system-ui,sans-serif;max-width:44rem;margin:2rem auto;"
        "padding:0 1rem;color:#222}"
        "a{color:#0b5cad}img{max-width:100%}.meta{color:#666;font-size:.9rem}</style>"
        f"<body>{body}</body></html>"
    )
    return HTMLResponse(
        html, status_code, headers={"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff"}
    )


def make_public_views(site: SiteBackend):  # noqa: ANN201 - returns two Starlette endpoints
    async def home(request: Request) -> Response:
        for param in ("p", "page_id"):
            raw = request.query_params.get(param)
            if raw is not None:
                return await single(raw)
        info = await site.site_info(VISITOR)
        posts = await site.list_posts(VISITOR, PostQuery(limit=20))
        items = "".join(
            f'<li><a href="{escape(p.url)}">{escape(p.title)}</a> '
            f"<span class=meta>{p.date:%Y-%m-%d} · {escape(p.author.display_name)}</span></li>"
            for p in posts.items
        )
        return _page(
            info.name, f"<h1>{escape(info.name)}</h1><p>{escape(info.description)}</p><ul>{items}</ul>"
        )

    async def single(raw_id: str) -> Response:
        try:
            post = await site.get_post(VISITOR, int(raw_id))
        except (ValueError, NotFound):
            return _page("Not found", "<h1>Not found</h1>", 404)
        meta = f"<p class=meta>{post.date:%Y-%m-%d} · {escape(post.author.display_name)}</p>"
        return _page(
            post.title, f"<p><a href='/'>← Home</a></p><h1>{escape(post.title)}</h1>{meta}{post.content}"
        )

    async def media(request: Request) -> Response:
        try:
            blob = await site.media_bytes(request.path_params["key"])
        except ConnectorError:
            return Response("Not found", status_code=404, media_type="text/plain")
        return Response(
            blob.data,
            media_type=blob.mime_type,
            headers={
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": MEDIA_CSP,
                "Cache-Control": "public, max-age=3600",
            },
        )

    return home, media
