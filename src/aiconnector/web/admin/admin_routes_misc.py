"""Routes of the audit log, users and clients admin pages, and the small helpers they share.

Times are rendered as ``<time datetime="…UTC ISO…">`` with a readable UTC fallback text, so the
page is correct without script and ``/static/admin-time.js`` can rewrite them into the viewer's
own zone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aiconnector.web.admin.access import AdminUser, AdminView, admin_page
from aiconnector.web.pages import error_page
from aiconnector.web.state import WebState

if TYPE_CHECKING:
    from aiconnector.web.routes import StateSource

View = Callable[[Request, WebState], Awaitable[Response]]


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def time_html(value: datetime | None, *, empty: str = "never") -> Markup:
    """A ``<time>`` element for templates; ``empty`` (escaped) when there is no time."""
    if value is None:
        return Markup('<span class="muted">{}</span>').format(empty)
    utc = as_utc(value)
    return Markup('<time datetime="{}">{}</time>').format(
        utc.isoformat(timespec="seconds").replace("+00:00", "Z"), utc.strftime("%Y-%m-%d %H:%M UTC")
    )


async def _get_only(_request: Request, state: WebState, _user: AdminUser) -> Response:
    """POST to a read-only page: answered after the sign-in and CSRF checks, like any other."""
    return error_page(state.site_host, "Not allowed", "This page has nothing to submit.", status_code=405)


def _page(view: AdminView, name: str, *, admin_only: bool = False) -> View:
    """``admin_page`` with a route name of its own (``_route`` names routes after the view)."""
    endpoint = admin_page(view, admin_only=admin_only)
    endpoint.__name__ = name
    return endpoint


def audit_users_clients_routes(state: StateSource) -> list[Route]:
    """``/admin/audit`` (+ ``/admin/audit/export``), ``/admin/users`` and ``/admin/clients``.

    ``_route`` is imported here, not at module level, because ``aiconnector.web.routes``
    imports this module."""
    from aiconnector.web.admin.audit import audit_page
    from aiconnector.web.admin.audit_export import audit_export
    from aiconnector.web.admin.clients import clients_page, delete_client_post
    from aiconnector.web.admin.users import create_user_post, users_page
    from aiconnector.web.routes import _route

    return [
        _route("/admin/audit", _page(audit_page, "admin_audit"), _page(_get_only, "admin_audit_post"), state),
        _route(
            "/admin/audit/export",
            _page(audit_export, "admin_audit_export"),
            _page(_get_only, "admin_audit_export_post"),
            state,
        ),
        _route(
            "/admin/users",
            _page(users_page, "admin_users", admin_only=True),
            _page(create_user_post, "admin_users_post", admin_only=True),
            state,
        ),
        _route(
            "/admin/clients",
            _page(clients_page, "admin_clients", admin_only=True),
            _page(delete_client_post, "admin_clients_post", admin_only=True),
            state,
        ),
    ]
