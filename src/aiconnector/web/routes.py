"""The browser-facing routes of the authorization server: sign-in, sign-out, consent and the
device verification page.

``web_routes`` takes the state itself or a function returning it: the app builds its routes
before its lifespan has opened the database, so it can pass ``lambda: self.web_state`` and
fill that in at start-up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aiconnector.oauth.authorize import authorize_get, authorize_post
from aiconnector.web.admin.add_routes import add_connection_routes
from aiconnector.web.admin.admin_routes_misc import audit_users_clients_routes
from aiconnector.web.admin.connections_routes import connections_routes
from aiconnector.web.device import device_get, device_post
from aiconnector.web.login import login_get, login_post, logout_get, logout_post
from aiconnector.web.state import WebState

View = Callable[[Request, WebState], Awaitable[Response]]
StateSource = WebState | Callable[[], WebState]


def _bind(view: View, state: StateSource) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await view(request, state if isinstance(state, WebState) else state())

    endpoint.__name__ = view.__name__
    return endpoint


def _route(path: str, get: View, post: View, state: StateSource) -> Route:
    """One path, GET (and HEAD) and POST dispatched to separate views (anything else: 405)."""
    views = {"GET": _bind(get, state), "HEAD": _bind(get, state), "POST": _bind(post, state)}

    async def endpoint(request: Request) -> Response:
        return await views[request.method](request)

    return Route(path, endpoint, methods=["GET", "POST"], name=get.__name__.removesuffix("_get"))


def web_routes(state: StateSource) -> list[Route]:
    return [
        _route("/login", login_get, login_post, state),
        _route("/logout", logout_get, logout_post, state),
        _route("/oauth/authorize", authorize_get, authorize_post, state),
        _route("/device", device_get, device_post, state),
        *connections_routes(state),
        *audit_users_clients_routes(state),
        *add_connection_routes(state),
    ]
