"""The site backend protocol and the content shapes every backend returns.

Tools talk only to this protocol, so a WordPress backend gets every tool for free. Each
method receives the ``Actor`` and enforces the role's capabilities for the object at hand
(the built-in site in code, WordPress by itself), raising ``NotAllowed`` with a message that
says why, ``NotFound`` when the object does not exist *or is invisible to the actor*, and
``InvalidInput`` for values the site refuses. Scopes are not checked here: they belong to the
connection and are checked before the tool runs.

The models double as tool output schemas, so field descriptions are written for agents."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from aiconnector.core.principal import Actor

PostType = Literal["post", "page"]
PostStatus = Literal["draft", "pending", "publish", "future", "private", "trash"]
CommentStatus = Literal["approved", "hold", "spam", "trash"]
Taxonomy = Literal["category", "post_tag"]
Order = Literal["date_desc", "date_asc", "title_asc", "title_desc", "modified_desc"]

T = TypeVar("T")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(Model, Generic[T]):
    """One page of a list. ``next_cursor`` is opaque; pass it back to get the next page."""

    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page"
    )


class TermRef(Model):
    id: int
    name: str
    slug: str


class AuthorRef(Model):
    id: int
    username: str
    display_name: str


class PostSummary(Model):
    id: int
    type: PostType
    title: str
    slug: str
    status: PostStatus
    author: AuthorRef
    date: datetime = Field(description="Publication date (scheduled date for `future`)")
    modified: datetime
    excerpt: str
    url: str = Field(description="Public URL of the post or page")
    categories: list[TermRef] = []
    tags: list[TermRef] = []


class Post(PostSummary):
    content: str = Field(description="HTML content")
    parent_id: int | None = None
    featured_media_id: int | None = None
    comment_status: Literal["open", "closed"] = "open"
    menu_order: int = 0


class PostQuery(Model):
    type: PostType = "post"
    status: list[PostStatus] | None = Field(
        None, description="Default: publish (plus what the actor may see when asked)"
    )
    search: str | None = None
    category_id: int | None = None
    tag_id: int | None = None
    author_id: int | None = None
    after: datetime | None = None
    before: datetime | None = None
    parent_id: int | None = None
    order: Order = "date_desc"
    limit: int = Field(10, ge=1, le=100)
    cursor: str | None = None


class PostInput(Model):
    type: PostType = "post"
    title: str
    content: str = ""
    excerpt: str = ""
    slug: str | None = None
    status: PostStatus = "draft"
    date: datetime | None = None
    parent_id: int | None = None
    category_ids: list[int] | None = None
    tag_ids: list[int] | None = None
    featured_media_id: int | None = None
    comment_status: Literal["open", "closed"] | None = None


class PostPatch(Model):
    """Fields left out (None) are not changed."""

    title: str | None = None
    content: str | None = None
    excerpt: str | None = None
    slug: str | None = None
    status: PostStatus | None = None
    date: datetime | None = None
    parent_id: int | None = None
    category_ids: list[int] | None = None
    tag_ids: list[int] | None = None
    featured_media_id: int | None = None
    comment_status: Literal["open", "closed"] | None = None


class Comment(Model):
    id: int
    post_id: int
    parent_id: int | None
    author_name: str
    author_user_id: int | None
    content: str
    status: CommentStatus
    date: datetime


class CommentQuery(Model):
    post_id: int | None = None
    status: CommentStatus | None = Field(
        None, description="Default: approved (all statuses need moderation rights)"
    )
    search: str | None = None
    parent_id: int | None = None
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = None


class MediaItem(Model):
    id: int
    title: str
    filename: str
    mime_type: str
    size: int = Field(description="Size in bytes")
    alt_text: str
    caption: str
    url: str = Field(description="URL the file is served at")
    author_id: int
    post_id: int | None
    date: datetime


class MediaQuery(Model):
    mime_type: str | None = Field(None, description="Exact type (image/png) or a prefix (image/)")
    search: str | None = None
    author_id: int | None = None
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = None


class MediaUpload(Model):
    filename: str
    mime_type: str
    data: bytes
    title: str | None = None
    alt_text: str = ""
    caption: str = ""
    post_id: int | None = None


class MediaPatch(Model):
    title: str | None = None
    alt_text: str | None = None
    caption: str | None = None
    post_id: int | None = None


class MediaBytes(Model):
    mime_type: str
    filename: str
    data: bytes


class Term(Model):
    id: int
    taxonomy: Taxonomy
    name: str
    slug: str
    description: str
    parent_id: int | None
    count: int = Field(description="Number of posts using the term")


class TermQuery(Model):
    taxonomy: Taxonomy = "category"
    search: str | None = None
    parent_id: int | None = None
    limit: int = Field(50, ge=1, le=100)
    cursor: str | None = None


class TermInput(Model):
    taxonomy: Taxonomy
    name: str
    slug: str | None = None
    description: str = ""
    parent_id: int | None = None


class TermPatch(Model):
    name: str | None = None
    slug: str | None = None
    description: str | None = None
    parent_id: int | None = None


class UserInfo(Model):
    id: int
    username: str
    display_name: str
    email: str | None = Field(None, description="Shown only to users allowed to list users")
    role: str
    post_count: int


class UserQuery(Model):
    role: str | None = None
    search: str | None = None
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = None


class SiteInfo(Model):
    name: str
    description: str
    url: str
    backend: str
    post_count: int
    page_count: int


@runtime_checkable
class SiteBackend(Protocol):
    """What every content backend provides. All methods are async and role-checked."""

    async def site_info(self, actor: Actor) -> SiteInfo: ...

    async def list_posts(self, actor: Actor, query: PostQuery) -> Page[PostSummary]: ...
    async def get_post(self, actor: Actor, post_id: int) -> Post: ...
    async def create_post(self, actor: Actor, data: PostInput) -> Post: ...
    async def update_post(self, actor: Actor, post_id: int, patch: PostPatch) -> Post: ...
    async def delete_post(self, actor: Actor, post_id: int, *, force: bool) -> Post:
        """Trash (force=False) or delete permanently; returns the post as it was."""
        ...

    async def list_comments(self, actor: Actor, query: CommentQuery) -> Page[Comment]: ...
    async def get_comment(self, actor: Actor, comment_id: int) -> Comment: ...
    async def create_comment(
        self, actor: Actor, post_id: int, content: str, *, parent_id: int | None = None
    ) -> Comment: ...
    async def set_comment_status(self, actor: Actor, comment_id: int, status: CommentStatus) -> Comment: ...
    async def delete_comment(self, actor: Actor, comment_id: int) -> Comment: ...

    async def list_media(self, actor: Actor, query: MediaQuery) -> Page[MediaItem]: ...
    async def get_media(self, actor: Actor, media_id: int) -> MediaItem: ...
    async def create_media(self, actor: Actor, upload: MediaUpload) -> MediaItem: ...
    async def update_media(self, actor: Actor, media_id: int, patch: MediaPatch) -> MediaItem: ...
    async def delete_media(self, actor: Actor, media_id: int) -> MediaItem: ...
    async def media_bytes(self, key: str) -> MediaBytes:
        """The file for the public media URL ``/media/<key>/<filename>`` (no actor: only what a
        visitor may see). ``key`` is whatever the backend put in ``MediaItem.url``'s path: the
        built-in site's random token, WordPress's media id."""
        ...

    async def list_terms(self, actor: Actor, query: TermQuery) -> Page[Term]: ...
    async def get_term(self, actor: Actor, term_id: int) -> Term: ...
    async def create_term(self, actor: Actor, data: TermInput) -> Term: ...
    async def update_term(self, actor: Actor, term_id: int, patch: TermPatch) -> Term: ...
    async def delete_term(self, actor: Actor, term_id: int) -> Term: ...

    async def list_users(self, actor: Actor, query: UserQuery) -> Page[UserInfo]: ...
    async def get_user(self, actor: Actor, user_id: int) -> UserInfo: ...
