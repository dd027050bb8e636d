"""Comment tools: read comments, reply to them and moderate them.

Replying sits under the ``comments:moderate`` scope (DESIGN §5: a connection that talks to the
public in the user's name is a moderation power) while the role only needs ``read``, as in
WordPress where any logged-in user may comment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from aiconnector.core.roles import Cap
from aiconnector.core.scopes import COMMENTS_MODERATE, CONTENT_READ
from aiconnector.mcp.registry import Tool, ToolContext, define_tool
from aiconnector.mcp.tools.common import Cursor, NonNegativeId, PositiveId, ToolInput, ToolOutput, page_limit
from aiconnector.sites.base import Comment, CommentQuery, CommentStatus, Page


class ListCommentsInput(ToolInput):
    post_id: PositiveId | None = Field(None, description="Only comments on this post or page")
    status: CommentStatus | None = Field(
        None,
        description=(
            "approved (default), hold (awaiting moderation), spam "
            "or trash; all but approved need moderation rights"
        ),
    )
    search: str | None = Field(
        None, min_length=1, max_length=200, description="Words to find in comment text or author"
    )
    parent_id: NonNegativeId | None = Field(
        None, description="Only replies to this comment; 0 for top-level comments"
    )
    limit: int = page_limit(20)
    cursor: Cursor


async def list_comments(ctx: ToolContext, args: ListCommentsInput) -> Page[Comment]:
    query = CommentQuery.model_validate(args.model_dump())
    return await ctx.site.list_comments(ctx.principal.actor, query)


class CommentIdInput(ToolInput):
    id: PositiveId = Field(description="Comment id")


async def get_comment(ctx: ToolContext, args: CommentIdInput) -> Comment:
    return await ctx.site.get_comment(ctx.principal.actor, args.id)


class ReplyInput(ToolInput):
    comment_id: PositiveId = Field(description="The comment to answer")
    content: str = Field(min_length=1, max_length=20_000, description="Reply text (simple HTML allowed)")


async def reply_to_comment(ctx: ToolContext, args: ReplyInput) -> Comment:
    actor = ctx.principal.actor
    parent = await ctx.site.get_comment(actor, args.comment_id)
    return await ctx.site.create_comment(actor, parent.post_id, args.content, parent_id=parent.id)


ModerationAction = Literal["approve", "hold", "spam", "trash", "delete"]
_STATUS_FOR_ACTION: dict[str, CommentStatus] = {
    "approve": "approved",
    "hold": "hold",
    "spam": "spam",
    "trash": "trash",
}


class ModerateInput(CommentIdInput):
    action: ModerationAction = Field(
        description=(
            "approve (show it), hold (back to the moderation queue), spam, trash (restorable), "
            "or delete (permanently, cannot be undone)"
        )
    )


class ModerationResult(ToolOutput):
    action: ModerationAction
    deleted: bool = Field(description="True when the comment was permanently deleted")
    comment: Comment = Field(description="The comment after the action (before it, for delete)")


async def moderate_comment(ctx: ToolContext, args: ModerateInput) -> ModerationResult:
    actor = ctx.principal.actor
    if args.action == "delete":
        comment = await ctx.site.delete_comment(actor, args.id)
    else:
        comment = await ctx.site.set_comment_status(actor, args.id, _STATUS_FOR_ACTION[args.action])
    return ModerationResult(action=args.action, deleted=args.action == "delete", comment=comment)


TOOLS: tuple[Tool, ...] = (
    define_tool(
        name="list_comments",
        title="List comments",
        description=(
            "List comments, newest first, optionally for one "
            "post, status (the moderation queue is status=hold), "
            "search words or parent comment. Paged: pass `next_cursor` back as `cursor`."
        ),
        scope=CONTENT_READ,
        capability=Cap.READ,
        input_model=ListCommentsInput,
        output_model=Page[Comment],
        handler=list_comments,
        read_only=True,
        idempotent=True,
    ),
    define_tool(
        name="get_comment",
        title="Get a comment",
        description="One comment with its post, parent, author, text and status.",
        scope=CONTENT_READ,
        capability=Cap.READ,
        input_model=CommentIdInput,
        output_model=Comment,
        handler=get_comment,
        read_only=True,
        idempotent=True,
    ),
    define_tool(
        name="reply_to_comment",
        title="Reply to a comment",
        description=(
            "Post a reply to a comment, in the name of the connected user, on the same post. "
            "The reply is public at once when the user may moderate comments, otherwise it awaits moderation."
        ),
        scope=COMMENTS_MODERATE,
        capability=Cap.READ,
        input_model=ReplyInput,
        output_model=Comment,
        handler=reply_to_comment,
    ),
    define_tool(
        name="moderate_comment",
        title="Moderate a comment",
        description=(
            "Approve, hold, mark as spam, trash or permanently delete a comment. Use list_comments with "
            "status=hold to find comments awaiting moderation."
        ),
        scope=COMMENTS_MODERATE,
        capability=Cap.MODERATE_COMMENTS,
        input_model=ModerateInput,
        output_model=ModerationResult,
        handler=moderate_comment,
        destructive=True,
        idempotent=True,
    ),
)
