"""Who may see an admin page, checked on the server for every request.

Administrators see and manage everything; other users see and manage only their own
connections and application passwords. Views call ``require_user`` first and then ask
``may_manage`` about each object they touch, so the rule lives in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.roles import Role
from aiconnector.core.web_sessions import WebSessionRecord
from aiconnector.web.csrf import session_csrf_ok, session_csrf_token
from aiconnector.web.login import login_url
from aiconnector.web.pages import error_page, render, see_other
from aiconnector.web.sessions_http import current_session
from aiconnector.web.state import WebState


@dataclass(frozen=True, slots=True)
class AdminUser:
    """The signed-in person as templates and views see them."""

    id: int
    username: str
    role: str
    session: WebSessionRecord

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMINISTRATOR

    @property
    def csrf(self) -> str:
        return session_csrf_token(self.session)

    def may_manage(self, owner_user_id: int) -> bool:
        """May this person see and change an object (connection, password) owned by that user?"""
        return self.is_admin or owner_user_id == self.id


AdminView = Callable[[Request, WebState, AdminUser], Awaitable[Response]]


def admin_page(
    view: AdminView, *, admin_only: bool = False
) -> Callable[[Request, WebState], Awaitable[Response]]:
    """Wrap a view: not signed in → sign-in page and back; signed in but not allowed → 403;
    POST without the session's CSRF token → 403. The view receives the ``AdminUser``."""

    async def endpoint(request: Request, state: WebState) -> Response:
        session = await current_session(request, state.sessions)
        if session is None:
            return see_other(
                login_url(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
            )
        user = AdminUser(session.user.id, session.user.username, session.user.role, session)
        if admin_only and not user.is_admin:
            return error_page(
                state.site_host, "Not allowed", "This page is for administrators.", status_code=403
            )
        if request.method == "POST":
            form = await request.form()
            submitted = form.get("csrf")
            if not session_csrf_ok(session, submitted if isinstance(submitted, str) else None):
                return error_page(
                    state.site_host,
                    "Form expired",
                    "The form's security token did not match. Reload the page and try again.",
                    status_code=403,
                )
        return await view(request, state, user)

    return endpoint


def render_admin(template: str, state: WebState, user: AdminUser, *, active: str, **context: Any) -> Response:
    """Render an admin page with the context every admin template needs (see admin/base.html).
    Scripts may come only from this site (``/static``), never inline."""
    return render(
        template,
        site_host=state.site_host,
        user=user,
        csrf=user.csrf,
        active=active,
        headers={"Content-Security-Policy": ADMIN_CSP},
        **context,
    )


ADMIN_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
