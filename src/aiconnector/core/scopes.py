"""The scope vocabulary (DESIGN §5): what a connection may do, independent of who the user is."""

from __future__ import annotations

from collections.abc import Iterable

CONTENT_READ = "content:read"
CONTENT_WRITE = "content:write"
CONTENT_PUBLISH = "content:publish"
CONTENT_DELETE = "content:delete"
COMMENTS_MODERATE = "comments:moderate"
USERS_READ = "users:read"
SITE_ADMIN = "site:admin"

SCOPE_DESCRIPTIONS: dict[str, str] = {
    CONTENT_READ: "Read posts, pages, comments, media, categories, tags and site info",
    CONTENT_WRITE: "Create and edit drafts, terms and media uploads",
    CONTENT_PUBLISH: "Publish, schedule and unpublish content",
    CONTENT_DELETE: "Trash and delete content and media",
    COMMENTS_MODERATE: "Approve, hold, spam, reply to and delete comments",
    USERS_READ: "List users and their roles",
    SITE_ADMIN: "Site settings and user management",
}
ALL_SCOPES: tuple[str, ...] = tuple(SCOPE_DESCRIPTIONS)
DEFAULT_SCOPES: frozenset[str] = frozenset({CONTENT_READ})


class UnknownScope(ValueError):
    pass


def parse_scopes(
    value: str | Iterable[str] | None, *, default: frozenset[str] = DEFAULT_SCOPES
) -> frozenset[str]:
    """Parse a space-separated scope string (or an iterable of scopes); reject unknown ones."""
    if value is None:
        return default
    items = value.split() if isinstance(value, str) else [s for part in value for s in part.split()]
    if not items:
        return default
    unknown = sorted(set(items) - set(ALL_SCOPES))
    if unknown:
        raise UnknownScope(f"unknown scope(s): {', '.join(unknown)}; known: {' '.join(ALL_SCOPES)}")
    return frozenset(items)


def format_scopes(scopes: Iterable[str]) -> str:
    """Canonical order (vocabulary order), space-separated, for storage and display."""
    wanted = set(scopes)
    return " ".join(s for s in ALL_SCOPES if s in wanted)
