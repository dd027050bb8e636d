"""``aiconnector serve``: migrate, create the first admin, seed the demo site, serve HTTP."""

from __future__ import annotations

import asyncio

import click
import uvicorn

from aiconnector.config import Settings
from aiconnector.runtime import ensure_admin, open_runtime
from aiconnector.sites.factory import SiteConfigError, check_site_settings


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
    "--site",
    type=click.Choice(["builtin", "wordpress"]),
    envvar="AICONNECTOR_SITE",
    help="Content backend: the built-in site (default) or a WordPress site.",
)
@click.option("--wp-url", envvar="AICONNECTOR_WP_URL", help="WordPress site URL (with --site wordpress).")
@click.option(
    "--wp-user",
    envvar="AICONNECTOR_WP_USER",
    help="WordPress administrator used as the service account; its Application Password is read "
    "from AICONNECTOR_WP_APP_PASSWORD (never a flag, so it stays out of shell history).",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Log one line per HTTP request (costs ~10% throughput at high request rates).",
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
    site: str | None,
    wp_url: str | None,
    wp_user: str | None,
    access_log: bool,
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
    )
    try:
        check_site_settings(settings)
    except SiteConfigError as exc:
        raise click.UsageError(str(exc)) from None

    async def first_start() -> str | None:
        async with open_runtime(settings) as rt:
            return await ensure_admin(rt)

    from aiconnector.app import create_app  # imported here so other commands start fast

    password = asyncio.run(first_start())
    if password:
        click.echo(
            "Created user 'admin' with password:\n\n"
            f"    {password}\n\n"
            "It is shown only this once: keep it somewhere safe.",
            err=True,
        )
    click.echo(f"AI Connector serving {settings.origin} (MCP endpoint {settings.mcp_url})", err=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        proxy_headers=False,
        server_header=False,
        access_log=access_log,
    )
