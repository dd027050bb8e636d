"""Orientation tools: what site this is and who the agent acts as.

Agents call these first; ``whoami`` in particular tells an agent which scopes and role it has,
so it can avoid calling tools that would be refused."""

from __future__ import annotations

from pydantic import Field

from aiconnector.core.roles import Cap, capabilities_of
from aiconnector.core.scopes import CONTENT_READ, format_scopes
from aiconnector.mcp.registry import Tool, ToolContext, define_tool
from aiconnector.mcp.tools.common import ToolInput, ToolOutput
from aiconnector.sites.base import SiteInfo


class NoInput(ToolInput):
    """No arguments."""


async def site_info(ctx: ToolContext, args: NoInput) -> SiteInfo:
    return await ctx.site.site_info(ctx.principal.actor)


class WhoAmI(ToolOutput):
    user_id: int
    username: str
    display_name: str
    role: str = Field(description="administrator, editor, author, contributor or subscriber")
    connection_id: str = Field(description="The connection this agent uses; the user can revoke it")
    auth_method: str = Field(description="oauth, device or application_password")
    agent_name: str
    scopes: list[str] = Field(description="Scopes granted to this connection")
    capabilities: list[str] = Field(description="What the user's role allows (WordPress capability names)")


async def whoami(ctx: ToolContext, args: NoInput) -> WhoAmI:
    """Answered from the authenticated principal alone: no site round trip, so agents can
    call it as often as they like."""
    principal = ctx.principal
    actor = principal.actor
    return WhoAmI(
        user_id=actor.user_id,
        username=actor.username,
        display_name=principal.display_name or actor.username,
        role=actor.role,
        connection_id=principal.connection_id,
        auth_method=principal.method,
        agent_name=principal.agent_name,
        scopes=format_scopes(principal.scopes).split(),
        capabilities=list(capabilities_of(actor.role)),
    )


TOOLS: tuple[Tool, ...] = (
    define_tool(
        name="site_info",
        title="Site information",
        description=(
            "Name, tagline, public URL, backend kind and post/page counts of the site. "
            "Call it first to orient yourself."
        ),
        scope=CONTENT_READ,
        capability=Cap.READ,
        input_model=NoInput,
        output_model=SiteInfo,
        handler=site_info,
        read_only=True,
        idempotent=True,
    ),
    define_tool(
        name="whoami",
        title="Who am I",
        description=(
            "The user this connection acts for (id, username, display name, role), the connection id, "
            "how it authenticated, and the scopes and role capabilities it has. Use it to learn which "
            "actions will be allowed before trying them. Contains no secrets."
        ),
        scope=CONTENT_READ,
        capability=Cap.READ,
        input_model=NoInput,
        output_model=WhoAmI,
        handler=whoami,
        read_only=True,
        idempotent=True,
    ),
)
