"""``search`` and ``fetch`` in exactly the shape ChatGPT's connectors and deep research expect.

ChatGPT looks these two tools up by name: ``search(query)`` returns ``{"results": [{"id",
"title", "url"}]}`` and ``fetch(id)`` returns ``{"id", "title", "text", "url", "metadata"}``,
each also sent as exactly one text content item holding that JSON (``render_text``). Ids are
``post:12`` / ``page:3`` so one namespace covers both types; ``url`` is the public permalink,
which ChatGPT cites; ``text`` is the content as plain text, since the model reads it rather
than renders it."""

from __future__ import annotations

import re
from datetime import datetime
from html.parser import HTMLParser

from pydantic import BaseModel, Field

from aiconnector.core.roles import Cap
from aiconnector.core.scopes import CONTENT_READ
from aiconnector.errors import NotFound
from aiconnector.mcp.registry import Tool, ToolContext, define_tool
from aiconnector.mcp.tools.common import ToolInput, ToolOutput
from aiconnector.sites.base import PostQuery, PostSummary, PostType

SEARCH_LIMIT = 10
_ID = re.compile(r"^(?:(?P<type>post|page):)?(?P<id>[1-9][0-9]{0,17})$")


def _json_text(out: BaseModel) -> str:
    """The one text content item ChatGPT reads: the result's JSON, nothing else."""
    return out.model_dump_json()


def content_id(post_type: str, post_id: int) -> str:
    return f"{post_type}:{post_id}"


# --- HTML to text -----------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "figcaption", "figure"),
        *("footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p"),
        *("pre", "section", "table", "tbody", "thead", "tfoot", "tr", "ul"),
    }
)
_SKIP_TAGS = frozenset({"script", "style", "template", "noscript"})


class _TextExtractor(HTMLParser):
    """Collects text, breaking lines at block elements and ``<br>`` and dropping scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag != "li" else "\n- ")
        elif tag in ("td", "th"):
            self.parts.append("\t")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS and tag != "li":  # the next item's "- " or the list's end breaks the line
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment: paragraphs separated by blank lines, spaces collapsed."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- search -----------------------------------------------------------------------------------


class SearchInput(ToolInput):
    query: str = Field(min_length=1, max_length=500, description="Words to look for in titles and content")


class SearchResult(ToolOutput):
    id: str = Field(description="Pass to fetch, e.g. post:12 or page:3")
    title: str
    url: str = Field(description="Public URL, for citation")


class SearchResults(ToolOutput):
    results: list[SearchResult]


async def search(ctx: ToolContext, args: SearchInput) -> SearchResults:
    found: list[PostSummary] = []
    for post_type in ("post", "page"):
        page = await ctx.site.list_posts(
            ctx.principal.actor, PostQuery(type=post_type, search=args.query, limit=SEARCH_LIMIT)
        )
        found.extend(page.items)
    found.sort(key=lambda p: p.date, reverse=True)
    return SearchResults(
        results=[
            SearchResult(id=content_id(p.type, p.id), title=p.title, url=p.url) for p in found[:SEARCH_LIMIT]
        ]
    )


# --- fetch ------------------------------------------------------------------------------------


class FetchInput(ToolInput):
    id: str = Field(min_length=1, max_length=40, description="An id from search, e.g. post:12 or page:3")


class FetchMetadata(ToolOutput):
    type: PostType
    status: str
    author: str
    date: datetime
    modified: datetime
    categories: list[str] = []
    tags: list[str] = []


class FetchResult(ToolOutput):
    id: str
    title: str
    text: str = Field(description="Full content as plain text")
    url: str = Field(description="Public URL, for citation")
    metadata: FetchMetadata


async def fetch(ctx: ToolContext, args: FetchInput) -> FetchResult:
    match = _ID.match(args.id.strip())
    if match is None:
        raise NotFound(f"No document with id {args.id!r}; ids look like post:12 or page:3 (from search).")
    post = await ctx.site.get_post(ctx.principal.actor, int(match["id"]))
    wanted = match["type"]
    if wanted is not None and post.type != wanted:
        # Same number, other type: report the id asked for as missing rather than a different document.
        raise NotFound(f"No document with id {args.id!r}.")
    return FetchResult(
        id=content_id(post.type, post.id),
        title=post.title,
        text=html_to_text(post.content),
        url=post.url,
        metadata=FetchMetadata(
            type=post.type,
            status=post.status,
            author=post.author.display_name,
            date=post.date,
            modified=post.modified,
            categories=[t.name for t in post.categories],
            tags=[t.name for t in post.tags],
        ),
    )


TOOLS: tuple[Tool, ...] = (
    define_tool(
        name="search",
        title="Search the site",
        description=(
            "Search published posts and pages for words; returns up to 10 results with an id, title and URL. "
            "Use fetch with a result's id to read it."
        ),
        scope=CONTENT_READ,
        capability=Cap.READ,
        input_model=SearchInput,
        output_model=SearchResults,
        handler=search,
        read_only=True,
        idempotent=True,
        render_text=_json_text,
    ),
    define_tool(
        name="fetch",
        title="Fetch a document",
        description=(
            "The full text of a post or page found by search (id like post:12 or page:3), with its URL "
            "for citation and metadata (type, status, author, dates, categories, tags)."
        ),
        scope=CONTENT_READ,
        capability=Cap.READ,
        input_model=FetchInput,
        output_model=FetchResult,
        handler=fetch,
        read_only=True,
        idempotent=True,
        render_text=_json_text,
    ),
)
