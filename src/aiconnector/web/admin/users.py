"""``/admin/users`` (administrators only): the site's users, their roles and connections, and a
form to add a user.

A new user is audited (``user.created``) with the administrator who made them and from where,
so "who gave this person access" always has an answer. Per-agent permissions are a later
add-on; the role is the whole of a user's permissions for now."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlencode

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.roles import Role
from aiconnector.core.users import create_user, list_users, refuse_local_users
from aiconnector.db.models import Connection
from aiconnector.errors import Conflict, InvalidInput
from aiconnector.web.admin.access import AdminUser, render_admin
from aiconnector.web.admin.admin_routes_misc import time_html
from aiconnector.web.pages import see_other
from aiconnector.web.request_meta import audit_context
from aiconnector.web.state import WebState

DEFAULT_ROLE = Role.SUBSCRIBER  # least access: an administrator raises it on purpose


async def connection_counts(state: WebState) -> tuple[Counter[int], Counter[int]]:
    """(active, all) connections per user id, in one grouped query rather than one per user."""
    stmt = select(
        Connection.user_id, Connection.revoked_at.is_(None).label("active"), func.count(Connection.id)
    ).group_by(Connection.user_id, Connection.revoked_at.is_(None))
    active: Counter[int] = Counter()
    total: Counter[int] = Counter()
    async with state.sessions() as session:
        for user_id, is_active, count in (await session.execute(stmt)).all():
            total[user_id] += count
            if is_active:
                active[user_id] += count
    return active, total


async def _users_page(
    state: WebState,
    user: AdminUser,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    created: str | None = None,
    status_code: int = 200,
) -> Response:
    users = await list_users(state.sessions)
    active, total = await connection_counts(state)
    response = render_admin(
        "admin/users.html",
        state,
        user,
        active="users",
        users=users,
        active_connections=active,
        all_connections=total,
        roles=[r.value for r in Role],
        form=form or {"username": "", "email": "", "role": DEFAULT_ROLE.value},
        error=error,
        created=created if created in {u.username for u in users} else None,
        when=time_html,
        wordpress_url=state.settings.wp_url if state.settings.site == "wordpress" else None,
    )
    response.status_code = status_code
    return response


async def users_page(request: Request, state: WebState, user: AdminUser) -> Response:
    return await _users_page(state, user, created=request.query_params.get("created"))


async def create_user_post(request: Request, state: WebState, user: AdminUser) -> Response:
    """Create the user, then 303 back to the list (a reload never posts the password twice)."""
    form = await request.form()

    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    values = {"username": text("username"), "email": text("email"), "role": text("role")}
    raw_password = form.get("password")
    password = raw_password if isinstance(raw_password, str) else ""
    try:
        refuse_local_users(state.settings.site)
        if not password:
            raise InvalidInput("Choose a password of at least 8 characters.")
        created = await create_user(
            state.sessions,
            values["username"],
            role=values["role"],
            email=values["email"],
            password=password,
            context=audit_context(request, user),
        )
    except (InvalidInput, Conflict) as exc:
        return await _users_page(state, user, form=values, error=exc.message, status_code=400)
    return see_other("/admin/users?" + urlencode({"created": created.username}))
