"""WordPress-like roles and capabilities (DESIGN §5): what the person may do.

The split follows WordPress core: contributors write drafts only, authors publish their own
posts and upload files, editors act on everyone's content and moderate comments,
administrators also manage users and settings."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache


class Role(StrEnum):
    ADMINISTRATOR = "administrator"
    EDITOR = "editor"
    AUTHOR = "author"
    CONTRIBUTOR = "contributor"
    SUBSCRIBER = "subscriber"


class Cap(StrEnum):
    READ = "read"
    EDIT_POSTS = "edit_posts"
    EDIT_OTHERS_POSTS = "edit_others_posts"
    EDIT_PUBLISHED_POSTS = "edit_published_posts"
    PUBLISH_POSTS = "publish_posts"
    DELETE_POSTS = "delete_posts"
    DELETE_OTHERS_POSTS = "delete_others_posts"
    DELETE_PUBLISHED_POSTS = "delete_published_posts"
    READ_PRIVATE_POSTS = "read_private_posts"
    EDIT_PAGES = "edit_pages"
    PUBLISH_PAGES = "publish_pages"
    DELETE_PAGES = "delete_pages"
    MODERATE_COMMENTS = "moderate_comments"
    MANAGE_CATEGORIES = "manage_categories"
    UPLOAD_FILES = "upload_files"
    LIST_USERS = "list_users"
    EDIT_USERS = "edit_users"
    MANAGE_OPTIONS = "manage_options"


_SUBSCRIBER = frozenset({Cap.READ})
_CONTRIBUTOR = _SUBSCRIBER | {Cap.EDIT_POSTS, Cap.DELETE_POSTS}
_AUTHOR = _CONTRIBUTOR | {
    Cap.EDIT_PUBLISHED_POSTS,
    Cap.PUBLISH_POSTS,
    Cap.DELETE_PUBLISHED_POSTS,
    Cap.UPLOAD_FILES,
}
_EDITOR = _AUTHOR | {
    Cap.EDIT_OTHERS_POSTS,
    Cap.DELETE_OTHERS_POSTS,
    Cap.READ_PRIVATE_POSTS,
    Cap.EDIT_PAGES,
    Cap.PUBLISH_PAGES,
    Cap.DELETE_PAGES,
    Cap.MODERATE_COMMENTS,
    Cap.MANAGE_CATEGORIES,
}
_ADMINISTRATOR = frozenset(Cap)

CAPABILITIES: dict[Role, frozenset[Cap]] = {
    Role.SUBSCRIBER: _SUBSCRIBER,
    Role.CONTRIBUTOR: _CONTRIBUTOR,
    Role.AUTHOR: _AUTHOR,
    Role.EDITOR: _EDITOR,
    Role.ADMINISTRATOR: _ADMINISTRATOR,
}


def has_cap(role: str, cap: Cap) -> bool:
    try:
        return cap in CAPABILITIES[Role(role)]
    except ValueError:
        return False


@lru_cache(maxsize=16)
def capabilities_of(role: str) -> tuple[str, ...]:
    """Capability names of a role, in vocabulary order (cached: asked on every ``whoami``)."""
    return tuple(cap.value for cap in Cap if has_cap(role, cap))
