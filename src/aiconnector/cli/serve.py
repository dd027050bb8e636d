"""``aiconnector serve``: migrate, create the first admin, seed the demo site, serve HTTP."""

from __future__ import annotations

import asyncio
import logging

import click
import uvicorn

from aiconnector.config import Settings
from aiconnector.ops.forwarded import parse_networks
from aiconnector.ops.logs import FORMATS, configure_logging, level_number
from aiconnector.ops.metrics_http import parse_bind
from aiconnector.runtime import ensure_admin, open_runtime
from aiconnector.sites.factory import SITES, SiteConfigError, check_site_settings

log = logging.getLogger("aiconnector.serve")


@click.command()
@click.option("--host", envvar="AICONNECTOR_HOST", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, envvar="AICONNECTOR_PORT", help="Port (default 8000).")
@click.option(
    "--public-url",
    envvar="AICONNECTOR_PUBLIC_URL",
    help="Origin clients use to reach this server, e.g. https://example.com (default from host and port).",
)
@click.option("--demo/--no-demo", default=None, help="Seed demo content on an empty site (default on).")
@click.option(
    "--access-token-ttl",
    type=int,
    envvar="AICONNECTOR_ACCESS_TOKEN_TTL",
    help="Access-token lifetime in seconds (default 3600).",
)
@click.option(
    "--allowed-origin",
    "allowed_origins",
    multiple=True,
    help="Extra browser Origin allowed on /mcp (repeatable).",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Log one line per HTTP request (costs ~10% throughput at high request rates).",
)
@click.option(
    "--site",
    type=click.Choice(SITES),
    envvar="AICONNECTOR_SITE",
    help="The site to serve: the built-in one (default) or a WordPress site (docs/wordpress.md).",
)
@click.option("--wp-url", envvar="AICONNECTOR_WP_URL", help="With --site wordpress: the WordPress site URL.")
@click.option(
    "--wp-user",
    envvar="AICONNECTOR_WP_USER",
    help="With --site wordpress: the administrator service account (its Application Password "
    "comes from AICONNECTOR_WP_APP_PASSWORD).",
)
@click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    help="Log lines as text (default; for a terminal) or json (one object per line; for production). "
    "Env AICONNECTOR_LOG_FORMAT.",
)
@click.option(
    "--metrics-bind",
    metavar="HOST:PORT",
    help="Also serve /metrics, without authentication, on this address (e.g. 127.0.0.1:9100). "
    "Env AICONNECTOR_METRICS_BIND. On the main port /metrics needs AICONNECTOR_METRICS_TOKEN.",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="IP|CIDR",
    help="Reverse proxy whose X-Forwarded-For/-Proto are believed (repeatable). "
    "Env AICONNECTOR_TRUSTED_PROXIES (comma-separated).",
)
@click.option(
    "--shutdown-grace-seconds",
    type=float,
    help="On SIGTERM, how long running requests may take to finish (default 20).",
)
@click.option(
    "--shutdown-delay-seconds",
    type=float,
    help="On SIGTERM, keep accepting this long with /readyz failing, for load balancers (default 0).",
)
@click.pass_obj
def serve(
    settings: Settings,
    host: str | None,
    port: int | None,
    public_url: str | None,
    demo: bool | None,
    access_token_ttl: int | None,
    allowed_origins: tuple[str, ...],
    access_log: bool,
    site: str | None,
    wp_url: str | None,
    wp_user: str | None,
    log_format: str | None,
    metrics_bind: str | None,
    trusted_proxies: tuple[str, ...],
    shutdown_grace_seconds: float | None,
    shutdown_delay_seconds: float | None,
) -> None:
    """Run the server."""
    settings = settings.with_overrides(
        host=host,
        port=port,
        public_url=public_url,
        demo=demo,
        access_token_ttl=access_token_ttl,
        allowed_origins=allowed_origins or None,
        site=site,
        wp_url=wp_url,
        wp_user=wp_user,
        log_format=log_format,
        metrics_bind=metrics_bind,
        trusted_proxies=trusted_proxies or None,
        shutdown_grace_seconds=shutdown_grace_seconds,
        shutdown_delay_seconds=shutdown_delay_seconds,
    )
    try:
        check_site_settings(settings)
    except SiteConfigError as exc:
        raise click.UsageError(str(exc)) from None
    _check(settings)
    configure_logging(settings.log_format, settings.log_level, access_log=access_log)

    async def first_start() -> str | None:
        async with open_runtime(settings) as rt:
            return await ensure_admin(rt)  # none in front of WordPress: it owns the people

    from aiconnector.app import create_app  # imported here so other commands start fast
    from aiconnector.ops import shutdown

    password = asyncio.run(first_start())
    if password:
        click.echo(
            "Created user 'admin' with password:\n\n"
            f"    {password}\n\n"
            "It is shown only this once: keep it somewhere safe.",
            err=True,
        )
    log.info("AI Connector serving %s (MCP endpoint %s)", settings.origin, settings.mcp_url)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # configured above
        log_level=settings.log_level,
        proxy_headers=False,  # ops.forwarded decides whom to believe
        server_header=False,
        access_log=False,  # aiconnector.access writes the access log
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    shutdown.run(
        config, app.drain, grace=settings.shutdown_grace_seconds, delay=settings.shutdown_delay_seconds
    )


def _check(settings: Settings) -> None:
    """Refuse bad operations settings before anything starts, naming the option."""
    try:
        parse_networks(settings.trusted_proxies)
    except ValueError as exc:
        hint = "--trusted-proxy / AICONNECTOR_TRUSTED_PROXIES"
        raise click.BadParameter(str(exc), param_hint=hint) from None
    if settings.metrics_bind:
        try:
            parse_bind(settings.metrics_bind)
        except ValueError as exc:
            hint = "--metrics-bind / AICONNECTOR_METRICS_BIND"
            raise click.BadParameter(str(exc), param_hint=hint) from None
    if settings.log_format not in FORMATS:
        raise click.BadParameter("use text or json", param_hint="--log-format / AICONNECTOR_LOG_FORMAT")
    try:
        level_number(settings.log_level)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="AICONNECTOR_LOG_LEVEL") from None
    if settings.shutdown_grace_seconds < 0 or settings.shutdown_delay_seconds < 0:
        raise click.BadParameter("must not be negative", param_hint="--shutdown-grace/delay-seconds")
