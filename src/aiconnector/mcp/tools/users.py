"""User directory tools (``users:read``).

The role capability is only ``read``: like WordPress's REST API, the backend shows people
without ``list_users`` just the users who have published content, without e-mail addresses,
so an author can still find a co-author's id."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from aiconnector.core.roles import Cap
from aiconnector.core.scopes import USERS_READ
from aiconnector.mcp.registry import Tool, ToolContext, define_tool
from aiconnector.mcp.tools.common import Cursor, Reference, ToolInput, page_limit, resolve_user_id
from aiconnector.sites.base import Page, UserInfo, UserQuery

# The values of core.roles.Role (a test keeps them in step).
RoleName = Literal["administrator", "editor", "author", "contributor", "subscriber"]


class ListUsersInput(ToolInput):
    role: RoleName | None = Field(
        None, description="Only users with this role (needs the list_users capability)"
    )
    search: str | None = Field(
        None, min_length=1, max_length=200, description="Words in username or display name"
    )
    limit: int = page_limit(20)
    cursor: Cursor


async def list_users(ctx: ToolContext, args: ListUsersInput) -> Page[UserInfo]:
    return await ctx.site.list_users(ctx.principal.actor, UserQuery.model_validate(args.model_dump()))


class GetUserInput(ToolInput):
    user: Reference = Field(description='User id, username, or "me"')


async def get_user(ctx: ToolContext, args: GetUserInput) -> UserInfo:
    actor = ctx.principal.actor
    return await ctx.site.get_user(actor, await resolve_user_id(ctx, args.user))


TOOLS: tuple[Tool, ...] = (
    define_tool(
        name="list_users",
        title="List users",
        description=(
            "List the site's users with role and published post count, by username. Administrators see "
            "everyone with e-mail addresses; other roles see only users who have published content. "
            "Paged: pass `next_cursor` back as `cursor`."
        ),
        scope=USERS_READ,
        capability=Cap.READ,
        input_model=ListUsersInput,
        output_model=Page[UserInfo],
        handler=list_users,
        read_only=True,
        idempotent=True,
    ),
    define_tool(
        name="get_user",
        title="Get a user",
        description="One user's profile (id, username, display name, role, post count) by id or username.",
        scope=USERS_READ,
        capability=Cap.READ,
        input_model=GetUserInput,
        output_model=UserInfo,
        handler=get_user,
        read_only=True,
        idempotent=True,
    ),
)
