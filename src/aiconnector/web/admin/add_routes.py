"""Routes of the Add Connection and Application Passwords pages; ``web.routes.web_routes``
includes them. Every view goes through ``admin_page`` (sign-in and CSRF checks on the
server). The state may be a function returning it, because the app builds its routes before
its lifespan has opened the database (``web.routes._route`` is not reused: that module
imports this one)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aiconnector.web.admin.access import admin_page
from aiconnector.web.admin.add_connection import add_entry_get, add_entry_post, add_index
from aiconnector.web.admin.profile import back_to_profile, profile_get, profile_post, revoke_post, rotate_post
from aiconnector.web.state import WebState

StateSource = WebState | Callable[[], WebState]
Endpoint = Callable[[Request, WebState], Awaitable[Response]]


def add_connection_routes(state: StateSource) -> list[Route]:
    def route(path: str, method: str, endpoint: Endpoint, name: str) -> Route:
        async def run(request: Request) -> Response:
            return await endpoint(request, state if isinstance(state, WebState) else state())

        return Route(path, run, methods=[method], name=name)

    password = "/admin/profile/passwords/{password_id:int}"
    return [
        route("/admin/add", "GET", admin_page(add_index), "admin_add"),
        route("/admin/add/{client}", "GET", admin_page(add_entry_get), "admin_add_entry"),
        route("/admin/add/{client}", "POST", admin_page(add_entry_post), "admin_add_register"),
        route("/admin/profile", "GET", admin_page(profile_get), "admin_profile"),
        route("/admin/profile", "POST", admin_page(profile_post), "admin_profile_create"),
        route(f"{password}/revoke", "POST", admin_page(revoke_post), "admin_password_revoke"),
        route(f"{password}/rotate", "POST", admin_page(rotate_post), "admin_password_rotate"),
        route(f"{password}/revoke", "GET", back_to_profile, "admin_password_revoke_form"),
        route(f"{password}/rotate", "GET", back_to_profile, "admin_password_rotate_form"),
    ]
