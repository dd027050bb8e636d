"""Routes of the connections pages; ``web.routes.web_routes`` includes them.

Every view goes through ``admin_page`` (sign-in, role and CSRF checks on the server). The
state may be a function returning it, because the app builds routes before its lifespan has
opened the database. (``web.routes._route`` is not reused: that module imports this one.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from aiconnector.web.admin.access import admin_page
from aiconnector.web.admin.connection_detail import (
    detail_get,
    rename_post,
    revoke_get,
    revoke_post,
    scopes_post,
)
from aiconnector.web.admin.connections import connections_get, connections_json
from aiconnector.web.state import WebState

StateSource = WebState | Callable[[], WebState]
Endpoint = Callable[[Request, WebState], Awaitable[Response]]


def connections_routes(state: StateSource) -> list[Route]:
    def bound(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            return await endpoint(request, state if isinstance(state, WebState) else state())

        return run

    def get(path: str, endpoint: Endpoint, name: str) -> Route:
        return Route(path, bound(endpoint), methods=["GET"], name=name)

    def post(path: str, endpoint: Endpoint, name: str) -> Route:
        return Route(path, bound(endpoint), methods=["POST"], name=name)

    async def admin_home(_request: Request) -> Response:
        return RedirectResponse("/admin/connections", status_code=303)

    return [
        Route("/admin", admin_home, methods=["GET"], name="admin_home"),
        Route("/admin/", admin_home, methods=["GET"], name="admin_home_slash"),
        get("/admin/connections", admin_page(connections_get), "admin_connections"),
        get("/admin/connections.json", admin_page(connections_json), "admin_connections_json"),
        get("/admin/connections/{id}", admin_page(detail_get), "admin_connection"),
        post("/admin/connections/{id}/name", admin_page(rename_post), "admin_connection_rename"),
        post(
            "/admin/connections/{id}/scopes",
            admin_page(scopes_post, admin_only=True),
            "admin_connection_scopes",
        ),
        get("/admin/connections/{id}/revoke", admin_page(revoke_get), "admin_connection_revoke_form"),
        post("/admin/connections/{id}/revoke", admin_page(revoke_post), "admin_connection_revoke"),
    ]
