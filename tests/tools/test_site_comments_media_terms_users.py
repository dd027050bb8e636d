"""The remaining tools: site_info, whoami, comments, media, terms and users."""

from __future__ import annotations

import base64
import typing
import uuid

import pytest
from pydantic import ValidationError

from aiconnector.core.roles import Role
from aiconnector.errors import Conflict, InvalidInput, NotAllowed, NotFound
from aiconnector.mcp.tools.users import RoleName
from aiconnector.sites.base import PostInput
from tests.tools.conftest import PNG, PUBLIC_URL, Env

# --- site ---------------------------------------------------------------------------------------


async def test_site_info(env: Env) -> None:
    info = await env.call("site_info", role="subscriber", scopes={"content:read"})
    assert info.name == "Lantern Coffee Roasters"
    assert info.backend == "builtin" and info.post_count > 0 and info.page_count > 0


async def test_whoami(env: Env) -> None:
    me = await env.call("whoami", role="author", scopes={"content:read", "content:write"})
    assert (me.username, me.display_name, me.role) == ("arjun", "Arjun Mehta", "author")
    assert me.user_id == env.actors["author"].user_id
    assert me.connection_id == "conn-author" and me.auth_method == "oauth"
    assert me.scopes == ["content:read", "content:write"]
    assert "publish_posts" in me.capabilities and "moderate_comments" not in me.capabilities
    dumped = me.model_dump_json().lower()
    assert "password" not in dumped and "token" not in dumped and "secret" not in dumped


# --- comments -----------------------------------------------------------------------------------


async def _published_post_id(env: Env) -> int:
    post = await env.site.create_post(
        env.admin, PostInput(title=f"C {uuid.uuid4().hex[:6]}", status="publish")
    )
    return post.id


async def test_comment_queue_needs_moderation_rights(env: Env) -> None:
    held = await env.call("list_comments", {"status": "hold"}, role="editor")
    assert held.items and {c.status for c in held.items} == {"hold"}
    with pytest.raises(NotAllowed, match="moderat"):
        await env.call("list_comments", {"status": "hold"}, role="author")


async def test_reply_goes_live_for_moderators_and_waits_for_others(env: Env) -> None:
    post_id = await _published_post_id(env)
    root = await env.site.create_comment(env.admin, post_id, "Root comment")
    editor_reply = await env.call(
        "reply_to_comment", {"comment_id": root.id, "content": "Thanks!"}, role="editor"
    )
    assert (editor_reply.status, editor_reply.parent_id, editor_reply.post_id) == (
        "approved",
        root.id,
        post_id,
    )
    reader_reply = await env.call(
        "reply_to_comment", {"comment_id": root.id, "content": "Me too"}, role="subscriber"
    )
    assert reader_reply.status == "hold"
    replies = await env.call("list_comments", {"parent_id": root.id}, role="subscriber")
    assert [c.id for c in replies.items] == [editor_reply.id]


async def test_moderate_every_action(env: Env) -> None:
    post_id = await _published_post_id(env)
    comment = await env.site.create_comment(env.admin, post_id, "To moderate")
    for action, status in (("hold", "hold"), ("spam", "spam"), ("trash", "trash"), ("approve", "approved")):
        result = await env.call("moderate_comment", {"id": comment.id, "action": action}, role="editor")
        assert (result.action, result.deleted, result.comment.status) == (action, False, status)
    deleted = await env.call("moderate_comment", {"id": comment.id, "action": "delete"}, role="editor")
    assert deleted.deleted is True and deleted.comment.id == comment.id
    with pytest.raises(NotFound, match=f"Comment {comment.id} not found"):
        await env.call("get_comment", {"id": comment.id})
    with pytest.raises(ValidationError):
        env.registry.get("moderate_comment").input_model.model_validate({"id": 1, "action": "approved"})


# --- media --------------------------------------------------------------------------------------


async def test_upload_base64_and_get_media(env: Env) -> None:
    data = base64.b64encode(PNG).decode()
    wrapped = "\n".join(data[i : i + 20] for i in range(0, len(data), 20))  # MIME-style line breaks
    item = await env.call(
        "upload_media",
        {"data_base64": wrapped, "filename": "Chart.png", "alt_text": "A chart", "title": "Chart"},
        role="author",
    )
    assert (item.mime_type, item.size, item.alt_text) == ("image/png", len(PNG), "A chart")
    got = await env.call("get_media", {"id": item.id}, role="subscriber")
    assert got.url.startswith(PUBLIC_URL) and got.url.endswith(".png")
    assert "data" not in got.model_dump()

    via_data_url = await env.call(
        "upload_media", {"data_base64": f"data:image/png;base64,{data}", "filename": "noext"}, role="author"
    )
    assert via_data_url.mime_type == "image/png" and via_data_url.filename.endswith(".png")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not base64!", "not valid base64"),
        ("QUJD-_==", "not valid base64"),  # URL-safe alphabet is not standard base64
        ("QUJ", "not valid base64"),  # bad padding
        (base64.b64encode(b"\x00" * (64 * 1024 + 1)).decode(), "limit"),
    ],
)
async def test_upload_rejects_bad_base64_and_oversize(env: Env, payload: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        await env.call("upload_media", {"data_base64": payload, "filename": "x.png"})


def test_upload_needs_exactly_one_source(env: Env) -> None:
    model = env.registry.get("upload_media").input_model
    with pytest.raises(ValidationError, match="exactly one"):
        model.model_validate({"filename": "x.png"})
    with pytest.raises(ValidationError, match="exactly one"):
        model.model_validate({"filename": "x.png", "data_base64": "QUJD", "url": "https://example.com/x.png"})
    with pytest.raises(ValidationError, match="filename"):
        model.model_validate({"data_base64": "QUJD"})


async def test_upload_type_must_be_known(env: Env) -> None:
    with pytest.raises(InvalidInput, match="mime_type"):
        await env.call("upload_media", {"data_base64": "QUJD", "filename": "blob"})


async def test_update_and_delete_media(env: Env) -> None:
    mine = await env.call(
        "upload_media", {"data_base64": base64.b64encode(PNG).decode(), "filename": "a.png"}, role="author"
    )
    updated = await env.call("update_media", {"id": mine.id, "caption": "New caption"}, role="author")
    assert updated.caption == "New caption" and updated.alt_text == mine.alt_text
    images = await env.call("list_media", {"mime_type": "image/", "author": "me"}, role="author")
    assert mine.id in {m.id for m in images.items}
    deleted = await env.call("delete_media", {"id": mine.id}, role="author")
    assert deleted.deleted and deleted.media.id == mine.id
    with pytest.raises(NotFound):
        await env.call("get_media", {"id": mine.id})


# --- terms --------------------------------------------------------------------------------------


async def test_term_lifecycle(env: Env) -> None:
    name = f"Roasting {uuid.uuid4().hex[:6]}"
    created = await env.call("create_term", {"taxonomy": "category", "name": name, "parent_id": None})
    assert created.taxonomy == "category" and created.count == 0
    with pytest.raises(Conflict):
        await env.call("create_term", {"taxonomy": "category", "name": name})
    tags = await env.call("list_terms", {"taxonomy": "post_tag", "search": "espresso"})
    assert [t.slug for t in tags.items] == ["espresso"]
    updated = await env.call("update_term", {"id": created.id, "description": "All about roasting"})
    assert updated.description == "All about roasting" and updated.name == name
    post = await env.call("create_post", {"title": "Tagged", "categories": [created.slug]})
    assert [c.id for c in post.categories] == [created.id]
    deleted = await env.call("delete_term", {"id": created.id})
    assert deleted.deleted and deleted.term.count == 1
    assert (await env.call("get_post", {"id": post.id})).categories == []


# --- users --------------------------------------------------------------------------------------


def test_role_literal_matches_roles() -> None:
    assert set(typing.get_args(RoleName)) == {r.value for r in Role}


async def test_admin_sees_everyone_with_email(env: Env) -> None:
    users = await env.call("list_users", {"limit": 100}, scopes={"users:read"})
    assert {"admin", "emma", "arjun", "lena", "carlos", "sam"} <= {u.username for u in users.items}
    assert all(u.email for u in users.items)
    editors = await env.call("list_users", {"role": "editor"})
    assert {u.username for u in editors.items} == {"emma"}


async def test_others_see_only_published_authors_without_email(env: Env) -> None:
    users = await env.call("list_users", {"limit": 100}, role="author")
    names = {u.username for u in users.items}
    assert "emma" in names and "sam" not in names  # subscribers publish nothing
    assert all(u.email is None for u in users.items if u.username != "arjun")
    with pytest.raises(NotAllowed):
        await env.call("list_users", {"role": "editor"}, role="author")


async def test_get_user_by_id_username_and_me(env: Env) -> None:
    by_name = await env.call("get_user", {"user": "emma"})
    by_id = await env.call("get_user", {"user": by_name.id})
    assert by_id == by_name and by_name.role == "editor"
    me = await env.call("get_user", {"user": "me"}, role="subscriber")
    assert me.username == "sam" and me.email  # one's own e-mail is visible
    with pytest.raises(InvalidInput, match="No user named"):
        await env.call("get_user", {"user": "nobody-here"})
