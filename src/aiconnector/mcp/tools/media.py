"""Media library tools: list, inspect, upload (inline base64 or from an https URL), edit, delete.

Uploads arrive either inline, which costs the agent's context but works everywhere, or by
URL, which the server fetches through ``fetch_url`` under SSRF rules. Bytes never go back out
through these tools: ``get_media`` returns the public URL instead."""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from aiconnector.core.roles import Cap
from aiconnector.core.scopes import CONTENT_DELETE, CONTENT_READ, CONTENT_WRITE
from aiconnector.errors import InvalidInput
from aiconnector.mcp.fetch_url import fetch_url
from aiconnector.mcp.registry import Tool, ToolContext, define_tool
from aiconnector.mcp.tools.common import (
    Cursor,
    NonNegativeId,
    PositiveId,
    Reference,
    ToolInput,
    ToolOutput,
    optional_user_id,
    page_limit,
)
from aiconnector.sites.base import MediaItem, MediaPatch, MediaQuery, MediaUpload, Page

MimeType = Annotated[str, Field(max_length=100, pattern=r"^[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+$")]
MediaTitle = Annotated[str, Field(max_length=500)]
AltText = Annotated[str, Field(max_length=1000)]
Caption = Annotated[str, Field(max_length=10_000)]
_DATA_URL = re.compile(r"^data:(?P<mime>[^;,]*)(?:;[^,]*)?;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


class ListMediaInput(ToolInput):
    mime_type: str | None = Field(
        None, min_length=1, max_length=100, description="Exact type (image/png) or a family prefix (image/)"
    )
    search: str | None = Field(
        None, min_length=1, max_length=200, description="Words in title, file name, caption or alt text"
    )
    author: Reference | None = Field(None, description='Uploader\'s user id, username, or "me"')
    limit: int = page_limit(20)
    cursor: Cursor


async def list_media(ctx: ToolContext, args: ListMediaInput) -> Page[MediaItem]:
    query = MediaQuery(
        mime_type=args.mime_type,
        search=args.search,
        author_id=await optional_user_id(ctx, args.author),
        limit=args.limit,
        cursor=args.cursor,
    )
    return await ctx.site.list_media(ctx.principal.actor, query)


class MediaIdInput(ToolInput):
    id: PositiveId = Field(description="Media id")


async def get_media(ctx: ToolContext, args: MediaIdInput) -> MediaItem:
    return await ctx.site.get_media(ctx.principal.actor, args.id)


class UploadMediaInput(ToolInput):
    data_base64: str | None = Field(
        None,
        min_length=1,
        description=(
            "The file's bytes in standard base64 (a "
            "`data:<type>;base64,` URL also works). Give this or `url`."
        ),
    )
    url: str | None = Field(
        None,
        min_length=1,
        max_length=2000,
        description="Public https URL the server downloads the file from. Give this or `data_base64`.",
    )
    filename: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description=(
            "File name with extension (e.g. chart.png). Required "
            "with data_base64; with url, defaults to the URL's."
        ),
    )
    mime_type: MimeType | None = Field(
        None,
        description=(
            "Media type (image/png). Optional: taken from the download's Content-Type or the file name"
        ),
    )
    title: MediaTitle | None = Field(None, description="Title; defaults to the file name without extension")
    alt_text: AltText = Field("", description="Alternative text describing an image for screen readers")
    caption: Caption = Field("", description="Caption shown under the file")
    post_id: PositiveId | None = Field(None, description="Post or page to attach the file to")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.data_base64 is None) == (self.url is None):
            raise ValueError("give exactly one of data_base64 or url")
        if self.data_base64 is not None and self.filename is None:
            raise ValueError("filename is required with data_base64")
        return self


def decode_base64(raw: str, max_bytes: int) -> tuple[bytes, str | None]:
    """Strictly decode base64 (line breaks allowed), returning the bytes and a data-URL type.

    The size is checked before decoding so an oversized payload is refused without
    allocating its decoded copy."""
    declared: str | None = None
    match = _DATA_URL.match(raw)
    if match:
        declared = match["mime"].strip().lower() or None
        raw = raw[match.end() :]
    text = _WHITESPACE.sub("", raw)
    if len(text) // 4 * 3 > max_bytes + 2:
        raise InvalidInput(f"The file is larger than the limit of {max_bytes} bytes.")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            "data_base64 is not valid base64: use the standard alphabet (A-Z a-z 0-9 + /) with = padding."
        ) from None
    if len(data) > max_bytes:
        raise InvalidInput(f"The file is {len(data)} bytes; the limit is {max_bytes} bytes.")
    if not data:
        raise InvalidInput("data_base64 decodes to an empty file.")
    return data, declared


def _pick_mime(filename: str, *candidates: str | None) -> str:
    """The first explicit type, else a guess from the file name (generic octet-stream is no answer)."""
    for candidate in candidates:
        if candidate and candidate != "application/octet-stream":
            return candidate
    guessed, _ = mimetypes.guess_type(filename)
    if guessed:
        return guessed
    raise InvalidInput(f"Cannot tell the type of {filename!r}; give mime_type (for example image/png).")


async def upload_media(ctx: ToolContext, args: UploadMediaInput) -> MediaItem:
    limit = ctx.settings.max_upload_bytes
    if args.data_base64 is not None:
        data, declared = decode_base64(args.data_base64, limit)
        filename = args.filename or "upload"
        mime = _pick_mime(filename, args.mime_type, declared)
    else:
        assert args.url is not None  # guaranteed by the model validator
        fetched = await fetch_url(args.url, ctx.settings)
        data = fetched.data
        filename = args.filename or fetched.filename or "download"
        mime = _pick_mime(filename, args.mime_type, fetched.content_type)
    upload = MediaUpload(
        filename=filename,
        mime_type=mime,
        data=data,
        title=args.title,
        alt_text=args.alt_text,
        caption=args.caption,
        post_id=args.post_id,
    )
    return await ctx.site.create_media(ctx.principal.actor, upload)


class UpdateMediaInput(MediaIdInput):
    title: MediaTitle | None = Field(None, description="New title")
    alt_text: AltText | None = Field(None, description="New alternative text")
    caption: Caption | None = Field(None, description="New caption")
    post_id: NonNegativeId | None = Field(None, description="Attach to this post or page; 0 detaches")


async def update_media(ctx: ToolContext, args: UpdateMediaInput) -> MediaItem:
    patch = MediaPatch.model_validate(args.model_dump(exclude={"id"}))
    return await ctx.site.update_media(ctx.principal.actor, args.id, patch)


class DeletedMedia(ToolOutput):
    deleted: Literal[True] = True
    media: MediaItem = Field(description="The media item as it was before deletion")


async def delete_media(ctx: ToolContext, args: MediaIdInput) -> DeletedMedia:
    return DeletedMedia(media=await ctx.site.delete_media(ctx.principal.actor, args.id))


TOOLS: tuple[Tool, ...] = (
    define_tool(
        name="list_media",
        title="List media",
        description=(
            "List files in the media library, newest first, with title, type, size, alt text and public "
            "URL. Filter by type (image/ for all images), search words or uploader. "
            "Paged: pass `next_cursor` back as `cursor`."
        ),
        scope=CONTENT_READ,
        capability=Cap.READ,
        input_model=ListMediaInput,
        output_model=Page[MediaItem],
        handler=list_media,
        read_only=True,
        idempotent=True,
    ),
    define_tool(
        name="get_media",
        title="Get a media item",
        description="Metadata of one media file, including the public URL it is served at (not the bytes).",
        scope=CONTENT_READ,
        capability=Cap.READ,
        input_model=MediaIdInput,
        output_model=MediaItem,
        handler=get_media,
        read_only=True,
        idempotent=True,
    ),
    define_tool(
        name="upload_media",
        title="Upload a media file",
        description=(
            "Add a file (images, PDF, plain text, CSV, audio, video) to the media library, either inline as "
            "`data_base64` with a `filename`, or by `url`: a public https address the server downloads "
            "(private and local addresses are refused). Optionally "
            "attach it to a post and set title, alt text "
            "and caption. Use the returned id as featured_media_id, or its URL in post content."
        ),
        scope=CONTENT_WRITE,
        capability=Cap.UPLOAD_FILES,
        input_model=UploadMediaInput,
        output_model=MediaItem,
        handler=upload_media,
        open_world=True,
    ),
    define_tool(
        name="update_media",
        title="Update a media item",
        description="Change the title, alt text or caption of a media file, or attach it to another post.",
        scope=CONTENT_WRITE,
        capability=Cap.UPLOAD_FILES,
        input_model=UpdateMediaInput,
        output_model=MediaItem,
        handler=update_media,
        idempotent=True,
    ),
    define_tool(
        name="delete_media",
        title="Delete a media item",
        description=(
            "Permanently delete a media file (there is no trash for media). Posts using it as featured "
            "image lose it; links to its URL in post content break."
        ),
        scope=CONTENT_DELETE,
        capability=Cap.UPLOAD_FILES,
        input_model=MediaIdInput,
        output_model=DeletedMedia,
        handler=delete_media,
        destructive=True,
        idempotent=True,
    ),
)
