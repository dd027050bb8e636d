"""Category and tag tools.

Both taxonomies are managed with ``manage_categories`` (editors and administrators), as in
WordPress, where tags map their management capabilities onto it too; assigning existing terms
to a post is part of editing the post (``create_post``/``update_post``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from aiconnector.core.roles import Cap
from aiconnector.core.scopes import CONTENT_DELETE, CONTENT_READ, CONTENT_WRITE
from aiconnector.mcp.registry import Tool, ToolContext, define_tool
from aiconnector.mcp.tools.common import (
    Cursor,
    NonNegativeId,
    PositiveId,
    ToolInput,
    ToolOutput,
    page_limit,
)
from aiconnector.sites.base import Page, Taxonomy, Term, TermInput, TermPatch, TermQuery

_TAXONOMY = "`category` (hierarchical) or `post_tag` (tags)"
TermName = Annotated[str, Field(min_length=1, max_length=200)]
TermSlug = Annotated[str, Field(min_length=1, max_length=200)]
TermDescription = Annotated[str, Field(max_length=10_000)]


class ListTermsInput(ToolInput):
    taxonomy: Taxonomy = Field("category", description=_TAXONOMY)
    search: str | None = Field(None, min_length=1, max_length=200, description="Words in the name or slug")
    parent_id: NonNegativeId | None = Field(
        None, description="Only children of this category; 0 for top-level ones"
    )
    limit: int = page_limit(50)
    cursor: Cursor


async def list_terms(ctx: ToolContext, args: ListTermsInput) -> Page[Term]:
    return await ctx.site.list_terms(ctx.principal.actor, TermQuery.model_validate(args.model_dump()))


class CreateTermInput(ToolInput):
    taxonomy: Taxonomy = Field(description=_TAXONOMY)
    name: TermName = Field(description="Display name")
    slug: TermSlug | None = Field(
        None,
        description=(
            "URL slug (normalized to lowercase words joined by hyphens); derived from the name if omitted"
        ),
    )
    description: TermDescription = Field("", description="Optional description")
    parent_id: PositiveId | None = Field(None, description="Parent category id (categories only)")


async def create_term(ctx: ToolContext, args: CreateTermInput) -> Term:
    return await ctx.site.create_term(ctx.principal.actor, TermInput.model_validate(args.model_dump()))


class TermIdInput(ToolInput):
    id: PositiveId = Field(description="Term id")


class UpdateTermInput(TermIdInput):
    name: TermName | None = Field(None, description="New display name")
    slug: TermSlug | None = Field(None, description="New URL slug")
    description: TermDescription | None = Field(None, description="New description")
    parent_id: NonNegativeId | None = Field(None, description="New parent category id; 0 makes it top-level")


async def update_term(ctx: ToolContext, args: UpdateTermInput) -> Term:
    patch = TermPatch.model_validate(args.model_dump(exclude={"id"}))
    return await ctx.site.update_term(ctx.principal.actor, args.id, patch)


class DeletedTerm(ToolOutput):
    deleted: Literal[True] = True
    term: Term = Field(description="The term as it was before deletion")


async def delete_term(ctx: ToolContext, args: TermIdInput) -> DeletedTerm:
    return DeletedTerm(term=await ctx.site.delete_term(ctx.principal.actor, args.id))


TOOLS: tuple[Tool, ...] = (
    define_tool(
        name="list_terms",
        title="List categories or tags",
        description=(
            "List categories (default) or tags (taxonomy=post_tag) "
            "by name, with slug, parent and post count. "
            "Use the ids or slugs in list_posts filters and in create_post/update_post. "
            "Paged: pass `next_cursor` back as `cursor`."
        ),
        scope=CONTENT_READ,
        capability=Cap.READ,
        input_model=ListTermsInput,
        output_model=Page[Term],
        handler=list_terms,
        read_only=True,
        idempotent=True,
    ),
    define_tool(
        name="create_term",
        title="Create a category or tag",
        description=(
            "Create a category or tag. Fails with a conflict if the slug is already used in that taxonomy."
        ),
        scope=CONTENT_WRITE,
        capability=Cap.MANAGE_CATEGORIES,
        input_model=CreateTermInput,
        output_model=Term,
        handler=create_term,
    ),
    define_tool(
        name="update_term",
        title="Update a category or tag",
        description="Rename a category or tag, change its slug, description or (categories) parent.",
        scope=CONTENT_WRITE,
        capability=Cap.MANAGE_CATEGORIES,
        input_model=UpdateTermInput,
        output_model=Term,
        handler=update_term,
        idempotent=True,
    ),
    define_tool(
        name="delete_term",
        title="Delete a category or tag",
        description=(
            "Permanently delete a category or tag. Posts keep existing without it; child categories move up "
            "to its parent."
        ),
        scope=CONTENT_DELETE,
        capability=Cap.MANAGE_CATEGORIES,
        input_model=TermIdInput,
        output_model=DeletedTerm,
        handler=delete_term,
        destructive=True,
        idempotent=True,
    ),
)
