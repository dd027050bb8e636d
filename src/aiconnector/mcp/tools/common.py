"""Pieces shared by the tool modules: the strict input base, pagination fields and the
resolution of human-friendly references (slugs, usernames, "me") to the ids backends take.

Agents often know a category by its slug or an author by username rather than by id; resolving
here keeps every tool's parameters friendly without every backend learning the lookups."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from aiconnector.errors import InvalidInput, NotAllowed, NotFound
from aiconnector.mcp.registry import ToolContext
from aiconnector.sites.base import Taxonomy, TermQuery, UserQuery
from aiconnector.storable import PROBLEM, first_unstorable


class ToolInput(BaseModel):
    """Base of every tool's arguments: unknown arguments are an error, not silently dropped,
    so a misspelt parameter is reported to the agent instead of being ignored.

    No argument may carry text the database cannot store (NUL, unpaired surrogates): caught
    here, every tool reports it as invalid input naming the argument (an ``isError`` result,
    as the 2025-11-25 specification wants for input validation), instead of a database
    exception on PostgreSQL deep inside the tool."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:  # noqa: ANN401 - any argument, before its own validation
        where = first_unstorable(value)
        if where is not None:
            inside = f" (at {where})" if where else ""
            raise PydanticCustomError(
                "unstorable_text", "{problem}{inside}", {"problem": PROBLEM, "inside": inside}
            )
        return value


class ToolOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")


Cursor = Annotated[
    str | None,
    Field(
        default=None,
        max_length=1024,
        description=(
            "`next_cursor` from the previous page; pass the same filters again. Omit for the first page."
        ),
    ),
]

PositiveId = Annotated[int, Field(ge=1)]
# Where 0 means "none" (clear a parent, list top-level items), as in WordPress.
NonNegativeId = Annotated[int, Field(ge=0)]

# An id (12, "12") or a slug/username; the description says which.
Reference = int | Annotated[str, Field(min_length=1, max_length=200)]


def page_limit(default: int, maximum: int = 100) -> Any:
    """Field for a list's page size (keeps limits consistent across list tools)."""
    return Field(default, ge=1, le=maximum, description=f"Items per page (1-{maximum}, default {default})")


def _as_id(ref: int | str) -> int | None:
    if isinstance(ref, int):
        return ref
    text = ref.strip()
    return int(text) if text.isdigit() else None


# Lookups page through at most this many items before giving up, so a slug typo on a huge
# site costs a bounded number of backend calls.
_MAX_LOOKUP_PAGES = 20


async def optional_term_id(ctx: ToolContext, taxonomy: Taxonomy, ref: int | str | None) -> int | None:
    """``resolve_term_id`` for an optional filter: None stays None."""
    return None if ref is None else await resolve_term_id(ctx, taxonomy, ref)


async def optional_user_id(ctx: ToolContext, ref: int | str | None) -> int | None:
    """``resolve_user_id`` for an optional filter: None stays None."""
    return None if ref is None else await resolve_user_id(ctx, ref)


async def resolve_term_id(ctx: ToolContext, taxonomy: Taxonomy, ref: int | str) -> int:
    """Turn a term id or slug into the term id, or raise ``InvalidInput`` naming the slug."""
    term_id = _as_id(ref)
    if term_id is not None:
        return term_id
    slug = str(ref).strip().lower()
    cursor: str | None = None
    for _ in range(_MAX_LOOKUP_PAGES):
        page = await ctx.site.list_terms(
            ctx.principal.actor, TermQuery(taxonomy=taxonomy, search=slug, limit=100, cursor=cursor)
        )
        for term in page.items:
            if term.slug == slug:
                return term.id
        cursor = page.next_cursor
        if cursor is None:
            break
    kind = "category" if taxonomy == "category" else "tag"
    raise InvalidInput(f"No {kind} with slug {slug!r}; use list_terms to see the existing ones.")


async def resolve_user_id(ctx: ToolContext, ref: int | str) -> int:
    """Turn a user id, username or "me" into a user id."""
    user_id = _as_id(ref)
    if user_id is not None:
        return user_id
    username = str(ref).strip()
    if username.lower() == "me":
        return ctx.principal.actor.user_id
    if username == ctx.principal.actor.username:
        return ctx.principal.actor.user_id
    try:
        page = await ctx.site.list_users(ctx.principal.actor, UserQuery(search=username, limit=100))
    except (NotAllowed, NotFound):
        page = None
    if page is not None:
        for user in page.items:
            if user.username.casefold() == username.casefold():
                return user.id
    raise InvalidInput(f"No user named {username!r} that you can see; pass a numeric user id instead.")
