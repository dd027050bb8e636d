"""Profile → Application Passwords (/admin/profile): create, list, revoke and rotate the
signed-in person's own passwords.

A new password exists in plain only on the page view right after the POST that made it
(create or rotate: 303, then the password handed over by ``reveal_once``), together with
ready-to-paste ways to use it; a reload shows only its hint, and never makes another one.
Revoking and rotating check ``may_manage`` on the password's owner, so a hand-made POST for
someone else's id is refused the same way as an unknown id."""

from __future__ import annotations

from datetime import datetime

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.app_passwords import (
    AppPasswordRecord,
    create_app_password,
    get_app_password,
    list_app_passwords,
    rotate_app_password,
)
from aiconnector.core.clients import aware
from aiconnector.core.connections import revoke_connection
from aiconnector.errors import InvalidInput, NotFound
from aiconnector.web.admin import reveal_once
from aiconnector.web.admin.access import AdminUser, render_admin
from aiconnector.web.admin.scope_form import chosen_scopes, form_text, scope_options
from aiconnector.web.admin.snippets import Value, basic_credentials, details_text, mcp_remote_with_password
from aiconnector.web.admin.timefmt import time_tag
from aiconnector.web.pages import error_page, see_other
from aiconnector.web.state import WebState

PROFILE = "/admin/profile"
NOTICES = {
    "revoked": "The application password was revoked; clients using it are refused from now on.",
    "rotated": "The password was rotated: the old password no longer works.",
}
GONE = (
    "That password was shown only once and cannot be shown again. If you did not copy it, "
    "rotate it to get a new one."
)


async def _page(
    state: WebState,
    user: AdminUser,
    *,
    status_code: int = 200,
    created: AppPasswordRecord | None = None,
    password: str | None = None,
    error: str | None = None,
    notice: str | None = None,
    form_name: str = "",
) -> Response:
    """The page; after a create or rotate, ``created`` and the plain ``password`` (this once)."""
    values = _usage(state, user, password) if created and password else []
    response = render_admin(
        "admin/profile.html",
        state,
        user,
        active="profile",
        passwords=await list_app_passwords(state.sessions, user.username),
        scope_options=scope_options(user.role),
        when=_when,
        created=created if values else None,
        created_values=values,
        created_details=details_text(f"Application password “{created.name}”", values) if created else "",
        error=error,
        notice=notice,
        form_name=form_name,
    )
    response.status_code = status_code
    return response


def _when(value: datetime | None) -> Markup:
    """A listing time: relative on screen, exact on hover (SQLite returns naive UTC)."""
    return time_tag(aware(value) if value else None, relative_text=True)


def _usage(state: WebState, user: AdminUser, password: str) -> list[Value]:
    """The new password and ready-made ways to send it (HTTP Basic, username:password)."""
    mcp_url = state.settings.mcp_url
    return [
        Value("new-password", "Password", password, "Shown only this once: copy it now."),
        Value("username", "Username", user.username),
        Value(
            "authorization-header",
            "Authorization header",
            f"Basic {basic_credentials(user.username, password)}",
        ),
        Value("mcp-remote-command", "mcp-remote", mcp_remote_with_password(mcp_url, user.username, password)),
        Value("connector-url", "Connector URL", mcp_url),
    ]


async def profile_get(request: Request, state: WebState, user: AdminUser) -> Response:
    notice = NOTICES.get(request.query_params.get("done", ""))
    wanted = request.query_params.get("created")
    handed = await reveal_once.take(request, state, user.id)
    if wanted is None:
        response = await _page(state, user, notice=notice)
    elif handed is not None and str(handed[0]) == wanted and (record := await _mine(state, user, handed[0])):
        response = await _page(state, user, created=record, password=handed[1], notice=notice)
    else:  # a reload, a bookmark or another browser: the password is gone for good
        response = await _page(state, user, notice=GONE)
    if request.cookies.get(reveal_once.COOKIE):
        reveal_once.clear(response, state)
    return response


async def _show_once(
    state: WebState, user: AdminUser, record: AppPasswordRecord, password: str, done: str = ""
) -> Response:
    """303 to the page that shows the new password once (so a reload cannot post again)."""
    query = f"created={record.id}" + (f"&done={done}" if done else "")
    response = see_other(f"{PROFILE}?{query}")
    await reveal_once.hand_over(response, state, user.id, record.id, password)
    return response


async def profile_post(request: Request, state: WebState, user: AdminUser) -> Response:
    """Create a password: a name, and optionally fewer scopes than the role allows."""
    form = await request.form()
    name = form_text(form, "name")
    if not name:
        return await _page(
            state, user, status_code=400, error="Enter a name, e.g. the agent that will use it."
        )
    try:
        password, record = await create_app_password(
            state.sessions,
            user.username,
            name=name,
            scopes=chosen_scopes(form, user.role) or None,
            audit=state.audit,
        )
    except InvalidInput as exc:
        return await _page(state, user, status_code=400, error=exc.message, form_name=name)
    return await _show_once(state, user, record, password)


async def _owned(request: Request, state: WebState, user: AdminUser) -> AppPasswordRecord | None:
    """The password named in the path, if it exists and this person may manage it."""
    return await _mine(state, user, request.path_params["password_id"])


async def _mine(state: WebState, user: AdminUser, password_id: int) -> AppPasswordRecord | None:
    try:
        record = await get_app_password(state.sessions, password_id)
    except NotFound:
        return None
    return record if user.may_manage(record.user_id) else None


def _missing(state: WebState) -> Response:
    return error_page(state.site_host, "Not found", "There is no such application password.", status_code=404)


async def back_to_profile(request: Request, state: WebState) -> Response:
    """GET on an action URL (a bookmark, a reload): nothing to do there, show the list."""
    return see_other(PROFILE)


async def revoke_post(request: Request, state: WebState, user: AdminUser) -> Response:
    record = await _owned(request, state, user)
    if record is None:
        return _missing(state)
    await revoke_connection(
        state.sessions,
        record.connection_id,
        audit=state.audit,
        bus=state.bus,
        revoked_by=user.id,
        reason="revoked on the profile page",
    )
    return see_other(f"{PROFILE}?done=revoked")


async def rotate_post(request: Request, state: WebState, user: AdminUser) -> Response:
    """A new password with the same name and scopes; the old one is revoked."""
    record = await _owned(request, state, user)
    if record is None:
        return _missing(state)
    try:
        password, new = await rotate_app_password(
            state.sessions, record.id, audit=state.audit, bus=state.bus, rotated_by=user.id
        )
    except InvalidInput as exc:
        return await _page(state, user, status_code=400, error=exc.message)
    return await _show_once(state, user, new, password, done="rotated")
