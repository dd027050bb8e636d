"""``create_app(settings)``: the whole server wired on one screen.

``/mcp`` is routed before Starlette so the hot path skips the router and middleware stack;
everything else (metadata, public site, media, health) goes through Starlette, behind the edge
checks (``web.edge``: Host, and text the database cannot store). In front of
both sit the operations layers (``aiconnector.ops``): trusted forwarded headers first (only
when proxies are configured), then request id, access log and request metrics."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from aiconnector import SERVER_NAME
from aiconnector.config import Settings
from aiconnector.core.clients import purge_expired_clients
from aiconnector.core.connections import ActivityTracker, count_active_connections
from aiconnector.core.events import RevocationWatcher
from aiconnector.core.inflight import InflightRequests
from aiconnector.core.periodic import PeriodicTask
from aiconnector.core.pg_notify import NotifyListener
from aiconnector.core.ratelimit import FailureLimiter
from aiconnector.core.scopes import ALL_SCOPES
from aiconnector.db import migrate
from aiconnector.mcp.auth import RequestAuthenticator
from aiconnector.mcp.services import McpServices
from aiconnector.mcp.tools import build_registry
from aiconnector.mcp.transport import create_mcp_app
from aiconnector.oauth import OAuthState, oauth_routes
from aiconnector.ops.forwarded import with_trusted_proxies
from aiconnector.ops.metrics import Metrics
from aiconnector.ops.metrics_http import MetricsEndpoint, MetricsListener
from aiconnector.ops.observe import ObservedHttp
from aiconnector.ops.shutdown import Drain
from aiconnector.runtime import Runtime, open_runtime
from aiconnector.sites.factory import open_site
from aiconnector.web.edge import with_edge_checks
from aiconnector.web.public import make_public_views
from aiconnector.web.routes import web_routes
from aiconnector.web.state import WebState
from aiconnector.web.static_files import static_mount


def protected_resource_metadata(settings: Settings) -> dict[str, Any]:
    """RFC 9728 metadata; ``resource`` is the public MCP URL exactly as clients use it."""
    return {
        "resource": settings.mcp_url,
        "authorization_servers": [settings.origin],
        "scopes_supported": list(ALL_SCOPES),
        "bearer_methods_supported": ["header"],
        "resource_name": SERVER_NAME,
        "resource_documentation": f"{settings.origin}/",
    }


class Server:
    """The ASGI application. Built empty; the lifespan fills in the parts that need the database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime: Runtime | None = None
        self.inflight = InflightRequests()
        self.metrics = Metrics()
        # Set when shutdown begins (SIGTERM): /readyz fails from then on.
        self.drain = Drain(self.inflight)
        self._metrics_endpoint = (
            MetricsEndpoint(self.metrics, settings.metrics_token) if settings.metrics_token else None
        )
        self._mcp: Any = None
        self._site_views: Any = None
        self._oauth: OAuthState | None = None
        self._web: WebState | None = None
        self._router = Starlette(routes=self._routes(), lifespan=self._lifespan)
        self._starlette = with_edge_checks(self._router, settings)
        observed = ObservedHttp(self._route, self.metrics)
        self._entry = with_trusted_proxies(observed, settings.trusted_proxies)

    @property
    def routes(self) -> list[Any]:
        """Every route but /mcp and /metrics (dispatched before routing): tests read it to
        check each page is reachable."""
        return self._router.routes

    def _routes(self) -> list[Route]:
        async def prm(_: Request) -> Response:
            return JSONResponse(
                protected_resource_metadata(self.settings),
                headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"},
            )

        async def healthz(_: Request) -> Response:
            return PlainTextResponse("ok")

        async def readyz(_: Request) -> Response:
            if self.drain.started:
                return PlainTextResponse("shutting down", status_code=503)
            try:
                assert self.runtime is not None
                if not await migrate.is_current(self.runtime.engine):
                    return PlainTextResponse("migrations pending", status_code=503)
            except Exception:
                return PlainTextResponse("database unreachable", status_code=503)
            return PlainTextResponse("ready")

        async def home(request: Request) -> Response:
            return await self._site_views[0](request)

        async def media(request: Request) -> Response:
            return await self._site_views[1](request)

        return [
            *oauth_routes(lambda: self._oauth),
            *web_routes(lambda: self._web),
            static_mount(),
            Route("/.well-known/oauth-protected-resource", prm),
            Route("/.well-known/oauth-protected-resource/mcp", prm),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/media/{key}/{filename}", media),
            Route("/", home),
        ]

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        settings = self.settings
        async with AsyncExitStack() as stack:
            rt = await stack.enter_async_context(open_runtime(settings))
            self.runtime = rt
            opened = await open_site(rt, stack)
            site = opened.backend
            activity = ActivityTracker(rt.sessions, interval=settings.last_used_flush_seconds)
            authenticator = RequestAuthenticator(
                rt.sessions,
                audit=rt.audit,
                limiter=FailureLimiter(rt.sessions, limit=settings.auth_failures_per_minute),
                activity=activity,
                resource=settings.mcp_url,
                cache_seconds=settings.credential_cache_seconds,
                metrics=self.metrics,
            )
            rt.bus.subscribe(authenticator.forget_connection)
            rt.bus.subscribe(self.inflight.cancel_connection)
            rt.bus.subscribe_changes(authenticator.forget_connection)
            rt.bus.subscribe(self.metrics.revocation_seen)
            self.metrics.count_active_with(lambda: count_active_connections(rt.sessions))
            self.metrics.gauge(
                "aiconnector_audit_pending_events",
                "Audit events queued, not yet written.",
                lambda: rt.audit.pending,
            )
            self._oauth = OAuthState.build(settings, rt.sessions, rt.audit, rt.bus, metrics=self.metrics)
            self._web = WebState.create(
                settings,
                rt.sessions,
                rt.audit,
                bus=rt.bus,
                check_password=opened.check_password,
                metrics=self.metrics,
            )
            watcher = RevocationWatcher(rt.sessions, rt.bus)
            listener = NotifyListener(settings, rt.bus, watcher)  # PostgreSQL only; a no-op on SQLite
            janitor = PeriodicTask("purge-expired-clients", lambda: purge_expired_clients(rt.sessions), 3600)
            parts: list[Any] = [rt.audit, activity, watcher, listener, janitor]
            if settings.metrics_bind:
                parts.append(MetricsListener(self.metrics, settings.metrics_bind))
            for part in parts:
                await part.start()
                stack.push_async_callback(part.stop)
            # Leaving the lifespan ends a shutdown: readiness off before anything stops.
            stack.callback(self.drain.begin)
            self._site_views = make_public_views(site)
            self._mcp = create_mcp_app(
                McpServices(
                    settings=settings,
                    registry=build_registry(),
                    site=site,
                    authenticate=authenticator,
                    audit=rt.audit,
                    inflight=self.inflight,
                    metrics=self.metrics,
                )
            )
            # Everything built so far lives as long as the process: move it out of the garbage
            # collector's view, so full collections under load scan only per-request garbage
            # (measured: full collections over the start-up heap caused the p99 stalls).
            gc.freeze()
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._entry(scope, receive, send)

    def _route(self, scope: Scope) -> tuple[Any, str | None]:
        """Which application serves ``scope``, and its route label when known here."""
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/mcp":
                return self._mcp, "/mcp"
            if path == "/metrics" and self._metrics_endpoint is not None:
                return self._metrics_endpoint, "/metrics"
        return self._starlette, None


def create_app(settings: Settings) -> Server:
    return Server(settings)
