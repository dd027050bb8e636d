"""``aiconnector clients``: OAuth clients the site owner registers, lists and deletes.

Pre-registered clients are for agents and tools the owner sets up by hand (a script, an
internal service that introspects tokens); ``--device`` ones for headless agents that sign in
with the device grant (``aiconnector login``). Dynamic and metadata-document clients register
themselves and show up in the list too."""

from __future__ import annotations

import click

from aiconnector.cli.main import run_with_runtime
from aiconnector.cli.output import emit
from aiconnector.core import clients as store
from aiconnector.core.device_instructions import device_instructions
from aiconnector.core.scopes import UnknownScope, format_scopes, parse_scopes
from aiconnector.runtime import Runtime

COLUMNS = [
    "client_id",
    "name",
    "kind",
    "token_endpoint_auth_method",
    "redirect_uris",
    "created_at",
    "last_used_at",
]


@click.group("clients")
def clients_group() -> None:
    """OAuth clients allowed to ask for access."""


@clients_group.command("create")
@click.option("--name", required=True, help="Shown on the consent page, e.g. 'Newsroom bot'.")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help="Where authorization codes may be sent (repeatable). Loopback http URIs match any port.",
)
@click.option("--confidential", is_flag=True, help="Give the client a secret (client_secret_basic/post).")
@click.option(
    "--device",
    is_flag=True,
    help="A public client for headless agents (device grant, RFC 8628); prints the login command.",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="With --device: scopes the printed commands ask for (repeatable, or space-separated).",
)
@click.pass_context
def clients_create(
    ctx: click.Context,
    name: str,
    redirect_uris: tuple[str, ...],
    confidential: bool,
    device: bool,
    scopes: tuple[str, ...],
) -> None:
    """Register a client; print its id (and its secret, shown only this once)."""
    if device and (redirect_uris or confidential):
        raise click.UsageError("--device clients have no redirect URI and no secret")
    if scopes and not device:
        raise click.UsageError("--scope only applies to --device clients")
    try:
        scope = format_scopes(parse_scopes(scopes)) if scopes else None
    except UnknownScope as exc:
        raise click.UsageError(str(exc)) from None

    async def work(rt: Runtime) -> store.NewClient:  # audited (client.registered) by core.clients
        if device:
            return await store.create_device_client(rt.sessions, name=name)
        return await store.create_pre_registered_client(
            rt.sessions, name=name, redirect_uris=redirect_uris, confidential=confidential
        )

    new = run_with_runtime(ctx, work)
    click.echo(f"client_id: {new.record.client_id}")
    if new.secret is not None:
        click.echo(f"client_secret: {new.secret}")
        click.echo("The secret is shown only once; store it now.", err=True)
    if device:
        click.echo(device_instructions(ctx.obj.origin, new.record.client_id, scope))


@clients_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
@click.pass_context
def clients_list(ctx: click.Context, as_json: bool) -> None:
    """List registered clients, oldest first."""
    rows = run_with_runtime(ctx, lambda rt: store.list_clients(rt.sessions))
    emit(
        [r.to_json() for r in rows],
        [
            "client_id",
            "name",
            "kind",
            "token_endpoint_auth_method",
            "redirect_uris",
            "created_at",
            "last_used_at",
        ],
        as_json=as_json,
    )


@clients_group.command("delete")
@click.argument("client_id")
@click.pass_context
def clients_delete(ctx: click.Context, client_id: str) -> None:
    """Delete a client and revoke every active connection made through it."""
    revoked = run_with_runtime(
        ctx, lambda rt: store.delete_client(rt.sessions, client_id, audit=rt.audit, bus=rt.bus)
    )
    click.echo(f"deleted {client_id} ({revoked} connection(s) revoked)")


clients = clients_group
