"""Post and page tools: list, read, write, publish, delete and export.

Posts and pages share one set of tools (``type`` picks which), like WordPress's editor does.
Role checks on the object (whose post, which status) happen in the site backend; this module
adds the one scope rule the backend cannot know: making content public is ``content:publish``
even when it happens through ``create_post`` or ``update_post``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import Field

from aiconnector.core.roles import Cap
from aiconnector.core.scopes import CONTENT_DELETE, CONTENT_PUBLISH, CONTENT_READ, CONTENT_WRITE
from aiconnector.errors import InvalidInput
from aiconnector.mcp.registry import Tool, ToolContext, define_tool
from aiconnector.mcp.tools.common import (
    Cursor,
    NonNegativeId,
    PositiveId,
    Reference,
    ToolInput,
    ToolOutput,
    optional_term_id,
    optional_user_id,
    page_limit,
    resolve_term_id,
)
from aiconnector.mcp.tools.scope import require_scope
from aiconnector.sites.base import (
    Order,
    Page,
    Post,
    PostInput,
    PostPatch,
    PostQuery,
    PostStatus,
    PostSummary,
    PostType,
)

# Statuses that make content visible beyond its editors; setting them is publishing.
PUBLISHING_STATUSES: frozenset[str] = frozenset({"publish", "future", "private"})
# What create_post/update_post may set; trashing goes through delete_post.
WritableStatus = Literal["draft", "pending", "publish", "future", "private"]

Title = Annotated[str, Field(max_length=500)]
Slug = Annotated[str, Field(min_length=1, max_length=200)]
TermRefs = Annotated[list[Reference], Field(max_length=50)]

_TYPE_DESCRIPTION = "`post` (blog post, the default) or `page` (static page)"


def _summary(post: Post) -> PostSummary:
    """The compact form of a post, for results that need not echo the content back."""
    return PostSummary.model_validate(post.model_dump(include=set(PostSummary.model_fields)))


# --- list_posts / get_post ------------------------------------------------------------------


class ListPostsInput(ToolInput):
    type: PostType = Field("post", description=_TYPE_DESCRIPTION)
    status: list[PostStatus] | None = Field(
        None,
        min_length=1,
        max_length=6,
        description=(
            "Statuses to include (draft, pending, publish, future, private, trash). Default: publish. "
            "Drafts and private content appear only where your role may see them."
        ),
    )
    search: str | None = Field(
        None, min_length=1, max_length=200, description="Words to find in title or content"
    )
    category: Reference | None = Field(None, description="Category id or slug")
    tag: Reference | None = Field(None, description="Tag id or slug")
    author: Reference | None = Field(None, description='Author user id, username, or "me"')
    after: datetime | None = Field(
        None, description="Only content dated after this ISO 8601 time (UTC if no offset)"
    )
    before: datetime | None = Field(
        None, description="Only content dated before this ISO 8601 time (UTC if no offset)"
    )
    parent_id: NonNegativeId | None = Field(
        None, description="Only children of this page; 0 for top-level pages"
    )
    order: Order = Field("date_desc", description="Sort order")
    limit: int = page_limit(10)
    cursor: Cursor


async def list_posts(ctx: ToolContext, args: ListPostsInput) -> Page[PostSummary]:
    query = PostQuery(
        type=args.type,
        status=args.status,
        search=args.search,
        category_id=await optional_term_id(ctx, "category", args.category),
        tag_id=await optional_term_id(ctx, "post_tag", args.tag),
        author_id=await optional_user_id(ctx, args.author),
        after=args.after,
        before=args.before,
        parent_id=args.parent_id,
        order=args.order,
        limit=args.limit,
        cursor=args.cursor,
    )
    return await ctx.site.list_posts(ctx.principal.actor, query)


class PostIdInput(ToolInput):
    id: PositiveId = Field(description="Post or page id")


async def get_post(ctx: ToolContext, args: PostIdInput) -> Post:
    return await ctx.site.get_post(ctx.principal.actor, args.id)


# --- create_post / update_post --------------------------------------------------------------


class _PostFields(ToolInput):
    """Fields create_post and update_post share; None means "not given"."""

    title: Title | None = Field(None, description="Title (plain text)")
    content: str | None = Field(None, max_length=1_000_000, description="Body as HTML")
    excerpt: str | None = Field(None, max_length=10_000, description="Short summary shown in lists")
    slug: Slug | None = Field(
        None,
        description=(
            "URL slug (normalized to lowercase words joined by hyphens); derived from the title if omitted"
        ),
    )
    status: WritableStatus | None = Field(
        None,
        description=(
            "draft (the default for new posts), pending (ready for review), or publish/future/private, which "
            "also need the "
            "content:publish scope and a role that may publish. Prefer publish_post to publish."
        ),
    )
    date: datetime | None = Field(None, description="Publication date, ISO 8601 (UTC if no offset)")
    parent_id: NonNegativeId | None = Field(
        None, description="Parent page id (pages only); 0 removes the parent"
    )
    categories: TermRefs | None = Field(None, description="Category ids or slugs; replaces the current list")
    tags: TermRefs | None = Field(
        None, description="Tag ids or slugs (create missing tags with create_term first)"
    )
    featured_media_id: NonNegativeId | None = Field(
        None, description="Media id of the featured image (an image from list_media); 0 removes it"
    )
    comment_status: Literal["open", "closed"] | None = Field(None, description="Whether comments are allowed")


async def _write_fields(ctx: ToolContext, args: _PostFields) -> dict[str, object]:
    """The given fields, with term references resolved to ids, as backend keyword arguments."""
    fields = args.model_dump(exclude_none=True, exclude={"categories", "tags", "id", "type"})
    if args.categories is not None:
        fields["category_ids"] = [await resolve_term_id(ctx, "category", ref) for ref in args.categories]
    if args.tags is not None:
        fields["tag_ids"] = [await resolve_term_id(ctx, "post_tag", ref) for ref in args.tags]
    return fields


class _TypeField(ToolInput):
    type: PostType = Field("post", description=_TYPE_DESCRIPTION)


# The single-field bases come last so their field is listed first in the schema.
class CreatePostInput(_PostFields, _TypeField):
    title: Title = Field(description="Title (plain text)")


async def create_post(ctx: ToolContext, args: CreatePostInput) -> Post:
    if args.status in PUBLISHING_STATUSES:
        require_scope(ctx, CONTENT_PUBLISH, f"create content with status {args.status!r}")
    fields = await _write_fields(ctx, args)
    # 0 means "none" in updates; on a new post that is simply the default.
    for key in ("parent_id", "featured_media_id"):
        if fields.get(key) == 0:
            del fields[key]
    data = PostInput(type=args.type, **fields)
    return await ctx.site.create_post(ctx.principal.actor, data)


class UpdatePostInput(_PostFields, PostIdInput):
    pass


async def _check_publishing_change(ctx: ToolContext, args: UpdatePostInput) -> None:
    """Require content:publish for updates that publish, unpublish or reschedule (DESIGN §5).

    Setting a public status is publishing. On content that is already public, changing the
    status (back to draft or pending) unpublishes it and changing the date reschedules it: a
    future date takes it off the site, a past one publishes a scheduled post at once."""
    if ctx.principal.has_scope(CONTENT_PUBLISH) or (args.status is None and args.date is None):
        return
    if args.status in PUBLISHING_STATUSES:
        require_scope(ctx, CONTENT_PUBLISH, f"set status {args.status!r}")
    current = await ctx.site.get_post(ctx.principal.actor, args.id)
    if current.status in PUBLISHING_STATUSES:
        change = "unpublish" if args.status is not None else "change the date of"
        require_scope(ctx, CONTENT_PUBLISH, f"{change} {current.status} {current.type} {args.id}")


async def update_post(ctx: ToolContext, args: UpdatePostInput) -> Post:
    await _check_publishing_change(ctx, args)
    patch = PostPatch(**await _write_fields(ctx, args))
    return await ctx.site.update_post(ctx.principal.actor, args.id, patch)


# --- publish_post ---------------------------------------------------------------------------


class PublishPostInput(PostIdInput):
    action: Literal["publish", "unpublish"] = Field(
        "publish", description="publish (or schedule, with a future `date`), or unpublish back to draft"
    )
    date: datetime | None = Field(
        None,
        description=(
            "With publish: a future ISO 8601 time schedules the post (status future); a past one backdates "
            "it; omitted publishes now. UTC if no offset. Not allowed with unpublish."
        ),
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def publish_post(ctx: ToolContext, args: PublishPostInput) -> PostSummary:
    if args.action == "unpublish":
        if args.date is not None:
            raise InvalidInput("`date` only applies to action publish; leave it out to unpublish.")
        patch = PostPatch(status="draft")
    elif args.date is not None and _aware(args.date) > datetime.now(UTC):
        patch = PostPatch(status="future", date=_aware(args.date))
    else:
        patch = PostPatch(status="publish", date=_aware(args.date) if args.date is not None else None)
    return _summary(await ctx.site.update_post(ctx.principal.actor, args.id, patch))


# --- delete_post ----------------------------------------------------------------------------


class DeletePostInput(PostIdInput):
    permanent: bool = Field(
        False,
        description=(
            "false (default): move to the trash, restorable; true: delete for good, with its comments"
        ),
    )


class DeletedPost(ToolOutput):
    permanent: bool = Field(description="True when deleted for good, false when moved to the trash")
    post: PostSummary = Field(description="The post as it was before deletion")


async def delete_post(ctx: ToolContext, args: DeletePostInput) -> DeletedPost:
    post = await ctx.site.delete_post(ctx.principal.actor, args.id, force=args.permanent)
    return DeletedPost(permanent=args.permanent, post=_summary(post))


# --- export_posts ---------------------------------------------------------------------------


class ExportPostsInput(ToolInput):
    type: PostType = Field("post", description=_TYPE_DESCRIPTION)
    page_size: int = Field(
        5, ge=1, le=100, description="Posts fetched per step; progress is reported after each"
    )
    delay_ms: int = Field(
        0, ge=0, le=2000, description="Pause between steps in milliseconds (for throttling)"
    )


class ExportedPost(ToolOutput):
    id: int
    title: str
    status: PostStatus
    modified: datetime


class ExportSummary(ToolOutput):
    count: int = Field(description="Number of posts exported")
    posts: list[ExportedPost]


# Every status but trash; the backend drops what the actor may not see (other people's drafts).
_EXPORT_STATUSES: list[PostStatus] = ["publish", "future", "private", "draft", "pending"]


async def _count_posts(ctx: ToolContext, query: PostQuery) -> int:
    """Count what the export will visit, in the biggest pages the backend allows."""
    total, cursor = 0, None
    while True:
        page = await ctx.site.list_posts(
            ctx.principal.actor, query.model_copy(update={"limit": 100, "cursor": cursor})
        )
        total += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return total


async def export_posts(ctx: ToolContext, args: ExportPostsInput) -> ExportSummary:
    query = PostQuery(type=args.type, status=_EXPORT_STATUSES, order="date_asc", limit=args.page_size)
    total = await _count_posts(ctx, query)
    exported: list[ExportedPost] = []
    await ctx.report_progress(0, total, f"Exporting {total} {args.type}s")
    cursor: str | None = None
    while True:
        page = await ctx.site.list_posts(ctx.principal.actor, query.model_copy(update={"cursor": cursor}))
        exported.extend(
            ExportedPost(id=p.id, title=p.title, status=p.status, modified=p.modified) for p in page.items
        )
        cursor = page.next_cursor
        # Content may change while exporting; never report more done than total.
        total = max(total, len(exported))
        await ctx.report_progress(len(exported), total, f"Exported {len(exported)} of {total}")
        if cursor is None:
            break
        if args.delay_ms:
            await asyncio.sleep(args.delay_ms / 1000)
    return ExportSummary(count=len(exported), posts=exported)


TOOLS: tuple[Tool, ...] = (
    define_tool(
        name="list_posts",
        title="List posts or pages",
        description=(
            "List posts (or pages with type=page) as compact "
            "summaries without the body, newest first by default. "
            "Filter by status, search words, category, tag, author, date range or parent page. "
            "Results are paged: pass `next_cursor` back as `cursor` with the same filters for more. "
            "Use get_post for the full content."
        ),
        scope=CONTENT_READ,
        capability=Cap.READ,
        input_model=ListPostsInput,
        output_model=Page[PostSummary],
        handler=list_posts,
        read_only=True,
        idempotent=True,
    ),
    define_tool(
        name="get_post",
        title="Get a post or page",
        description="One post or page with its full HTML content, terms, author and status.",
        scope=CONTENT_READ,
        capability=Cap.READ,
        input_model=PostIdInput,
        output_model=Post,
        handler=get_post,
        read_only=True,
        idempotent=True,
    ),
    define_tool(
        name="create_post",
        title="Create a post or page",
        description=(
            "Create a post or page, as a draft unless `status` "
            "says otherwise. Categories and tags may be given "
            "by id or slug and must exist. To publish, create a draft and then call publish_post (publishing "
            "needs the content:publish scope). Returns the new post."
        ),
        scope=CONTENT_WRITE,
        capability=Cap.EDIT_POSTS,
        input_model=CreatePostInput,
        output_model=Post,
        handler=create_post,
    ),
    define_tool(
        name="update_post",
        title="Update a post or page",
        description=(
            "Change fields of an existing post or page; fields left out stay as they are, `categories` "
            "and `tags` replace the current lists. Setting a public status (publish, future, private), or "
            "changing the status or date of public content, needs the content:publish scope. "
            "Returns the updated post."
        ),
        scope=CONTENT_WRITE,
        capability=Cap.EDIT_POSTS,
        input_model=UpdatePostInput,
        output_model=Post,
        handler=update_post,
        idempotent=True,
    ),
    define_tool(
        name="publish_post",
        title="Publish, schedule or unpublish",
        description=(
            "Publish a post or page now, schedule it with a future `date`, or unpublish it back to draft "
            "(action=unpublish; also cancels a schedule)."
        ),
        scope=CONTENT_PUBLISH,
        capability=Cap.PUBLISH_POSTS,
        input_model=PublishPostInput,
        output_model=PostSummary,
        handler=publish_post,
        idempotent=True,
    ),
    define_tool(
        name="delete_post",
        title="Trash or delete a post or page",
        description=(
            "Move a post or page to the trash (default; it can "
            "be restored by setting a status with update_post) "
            "or, with permanent=true, delete it and its comments for good."
        ),
        scope=CONTENT_DELETE,
        capability=Cap.DELETE_POSTS,
        input_model=DeletePostInput,
        output_model=DeletedPost,
        handler=delete_post,
        destructive=True,
        idempotent=True,
    ),
    define_tool(
        name="export_posts",
        title="Export all posts",
        description=(
            "Walk through every post (or page) you may see, in "
            "every status but trash, oldest first, and return "
            "id, title, status and modification time of each. Long-running on big sites: it reports progress "
            "after each step of `page_size` posts and can be cancelled."
        ),
        scope=CONTENT_READ,
        capability=Cap.READ,
        input_model=ExportPostsInput,
        output_model=ExportSummary,
        handler=export_posts,
        read_only=True,
        idempotent=True,
    ),
)
