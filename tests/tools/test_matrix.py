"""Role x scope matrix over every tool.

The expected outcomes are written out by hand from WordPress's rules (not derived from the
tool declarations, which would make the test tautological):

* ``ok``     - listed to the role and the call succeeds;
* ``denied`` - listed (the role has the capability in general) but the site refuses this
               object with ``NotAllowed`` (e.g. an author editing someone else's post);
* ``hidden`` - not listed to the role at all; calling the handler anyway is still refused by
               the site (``NotAllowed``, or ``NotFound`` when the object is invisible to it),
               so the backend does not rely on the transport's filtering.

Each case builds its own target objects (owned by the administrator unless noted), so cases
are independent of one another and of their order."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from aiconnector.core.roles import Cap
from aiconnector.core.scopes import ALL_SCOPES
from aiconnector.errors import NotAllowed, NotFound
from aiconnector.sites.base import MediaUpload, PostInput, TermInput
from tests.tools.conftest import PNG, ROLES, Env, Factory

A, E, AU, C, S = ROLES


async def _published_post(env: Env) -> int:
    post = await env.site.create_post(
        env.admin,
        PostInput(title=f"Matrix {uuid.uuid4().hex[:8]}", content="<p>Matrix body</p>", status="publish"),
    )
    return post.id


async def _approved_comment(env: Env) -> int:
    comment = await env.site.create_comment(env.admin, await _published_post(env), "A comment to act on")
    assert comment.status == "approved"
    return comment.id


async def _admin_media(env: Env) -> int:
    upload = MediaUpload(filename="matrix.png", mime_type="image/png", data=PNG)
    return (await env.site.create_media(env.admin, upload)).id


async def _admin_tag(env: Env) -> int:
    return (
        await env.site.create_term(env.admin, TermInput(taxonomy="post_tag", name=uuid.uuid4().hex[:10]))
    ).id


async def _editor_user(env: Env) -> int:
    return env.actors["editor"].user_id


def _static(args: dict[str, Any]) -> Any:
    async def make(env: Env, role: str) -> dict[str, Any]:
        return dict(args)

    return make


def _with_id(factory: Factory, key: str = "id", **extra: Any) -> Any:
    async def make(env: Env, role: str) -> dict[str, Any]:
        return {key: await factory(env), **extra}

    return make


async def _fetch_args(env: Env, role: str) -> dict[str, Any]:
    return {"id": f"post:{await _published_post(env)}"}


async def _term_args(env: Env, role: str) -> dict[str, Any]:
    # Term names are unique per taxonomy, so each case makes its own.
    return {"taxonomy": "post_tag", "name": f"matrix {role} {uuid.uuid4().hex[:6]}"}


async def _own_draft_args(env: Env, role: str) -> dict[str, Any]:
    """The caller's own draft when the role can write, else the administrator's."""
    owner = env.actors[role] if env.actors[role].can(Cap.EDIT_POSTS) else env.admin
    post = await env.site.create_post(owner, PostInput(title=f"Draft {uuid.uuid4().hex[:8]}"))
    return {"id": post.id}


# tool -> (args factory, outcomes for administrator, editor, author, contributor, subscriber)
MATRIX: dict[str, tuple[Any, tuple[str, str, str, str, str]]] = {
    "site_info": (_static({}), ("ok", "ok", "ok", "ok", "ok")),
    "whoami": (_static({}), ("ok", "ok", "ok", "ok", "ok")),
    "search": (_static({"query": "coffee"}), ("ok", "ok", "ok", "ok", "ok")),
    "fetch": (_fetch_args, ("ok", "ok", "ok", "ok", "ok")),
    "list_posts": (_static({}), ("ok", "ok", "ok", "ok", "ok")),
    "get_post": (_with_id(_published_post), ("ok", "ok", "ok", "ok", "ok")),
    # Everyone who writes may create drafts; subscribers write nothing.
    "create_post": (_static({"title": "New draft"}), ("ok", "ok", "ok", "ok", "hidden")),
    # Someone else's published post: needs edit_others_posts + edit_published_posts.
    "update_post": (_with_id(_published_post, title="Edited"), ("ok", "ok", "denied", "denied", "hidden")),
    # Own draft: authors publish their own posts; contributors never publish.
    "publish_post": (_own_draft_args, ("ok", "ok", "ok", "hidden", "hidden")),
    # Someone else's published post: needs delete_others_posts.
    "delete_post": (_with_id(_published_post), ("ok", "ok", "denied", "denied", "hidden")),
    "export_posts": (_static({"page_size": 50}), ("ok", "ok", "ok", "ok", "ok")),
    "list_comments": (_static({}), ("ok", "ok", "ok", "ok", "ok")),
    "get_comment": (_with_id(_approved_comment), ("ok", "ok", "ok", "ok", "ok")),
    # Any logged-in user may comment in WordPress (the scope is what guards this tool).
    "reply_to_comment": (_with_id(_approved_comment, key="comment_id", content="Thanks!"), ("ok",) * 5),
    "moderate_comment": (
        _with_id(_approved_comment, action="hold"),
        ("ok", "ok", "hidden", "hidden", "hidden"),
    ),
    "list_media": (_static({}), ("ok", "ok", "ok", "ok", "ok")),
    "get_media": (_with_id(_admin_media), ("ok", "ok", "ok", "ok", "ok")),
    # upload_files: authors and up.
    "upload_media": (
        _static({"data_base64": base64.b64encode(PNG).decode(), "filename": "up.png"}),
        ("ok", "ok", "ok", "hidden", "hidden"),
    ),
    # Someone else's media: needs edit_others_posts / delete_others_posts.
    "update_media": (_with_id(_admin_media, alt_text="New alt"), ("ok", "ok", "denied", "hidden", "hidden")),
    "delete_media": (_with_id(_admin_media), ("ok", "ok", "denied", "hidden", "hidden")),
    "list_terms": (_static({}), ("ok", "ok", "ok", "ok", "ok")),
    # manage_categories covers both taxonomies: editors and administrators.
    "create_term": (_term_args, ("ok", "ok", "hidden", "hidden", "hidden")),
    "update_term": (_with_id(_admin_tag, description="d"), ("ok", "ok", "hidden", "hidden", "hidden")),
    "delete_term": (_with_id(_admin_tag), ("ok", "ok", "hidden", "hidden", "hidden")),
    # Everyone may look up users with published content (WordPress's public author list).
    "list_users": (_static({}), ("ok", "ok", "ok", "ok", "ok")),
    "get_user": (_with_id(_editor_user, key="user"), ("ok", "ok", "ok", "ok", "ok")),
}

CASES = [(tool, role, outcomes[i]) for tool, (_, outcomes) in MATRIX.items() for i, role in enumerate(ROLES)]


def test_matrix_covers_every_tool(env: Env) -> None:
    assert sorted(MATRIX) == sorted(t.name for t in env.registry)


@pytest.mark.parametrize(("tool_name", "role", "expected"), CASES, ids=[f"{t}-{r}" for t, r, _ in CASES])
async def test_role_matrix(env: Env, tool_name: str, role: str, expected: str) -> None:
    args = await MATRIX[tool_name][0](env, role)
    visible = {t.name for t in env.registry.visible_to(env.principal(role))}
    assert (tool_name in visible) == (expected != "hidden"), f"{tool_name} visibility for {role}"

    if expected == "ok":
        await env.call(tool_name, args, role=role)
    elif expected == "denied":
        with pytest.raises(NotAllowed):
            await env.call(tool_name, args, role=role)
    else:
        with pytest.raises((NotAllowed, NotFound)):
            await env.call(tool_name, args, role=role)


@pytest.mark.parametrize("tool_name", list(MATRIX))
def test_scope_gates_visibility(env: Env, tool_name: str) -> None:
    """With every scope but the tool's own, even an administrator does not see the tool;
    with only its scope, they do."""
    tool = env.registry.get(tool_name)
    assert tool is not None
    without = set(ALL_SCOPES) - {tool.scope}
    assert tool_name not in {t.name for t in env.registry.visible_to(env.principal("administrator", without))}
    assert tool_name in {
        t.name for t in env.registry.visible_to(env.principal("administrator", {tool.scope}))
    }


def test_default_scope_is_read_only(env: Env) -> None:
    """A connection with just content:read (the default grant) sees only read-only tools."""
    tools = env.registry.visible_to(env.principal("administrator", {"content:read"}))
    assert tools
    assert all(t.read_only for t in tools)
