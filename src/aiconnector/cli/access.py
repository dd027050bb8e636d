"""Server-side commands over users, application passwords, connections and the audit log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys

import click

from aiconnector.cli.main import run_with_runtime
from aiconnector.cli.output import emit
from aiconnector.core import app_passwords, connections, users
from aiconnector.core.scopes import UnknownScope, parse_scopes
from aiconnector.runtime import Runtime

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")


@click.group("users")
def users_group() -> None:
    """Manage site users."""


@users_group.command("create")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["administrator", "editor", "author", "contributor", "subscriber"]),
)
@click.option("--email", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def users_create(ctx: click.Context, name: str, role: str, email: str, password_stdin: bool) -> None:
    """Create a user (without a password unless --password-stdin)."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None

    async def work(rt: Runtime) -> users.UserRecord:  # audited (user.created) by create_user
        users.refuse_local_users(rt.settings.site)
        return await users.create_user(rt.sessions, name, role=role, email=email, password=password)

    record = run_with_runtime(ctx, work)
    click.echo(f"created user {record.username} (id {record.id}, {record.role})")


@users_group.command("list")
@json_option
@click.pass_context
def users_list(ctx: click.Context, as_json: bool) -> None:
    """List users."""
    rows = run_with_runtime(ctx, lambda rt: users.list_users(rt.sessions))
    emit([r.to_json() for r in rows], ["id", "username", "role", "email", "created_at"], as_json=as_json)


@click.group("app-passwords")
def app_passwords_group() -> None:
    """Application passwords: HTTP Basic credentials for clients without OAuth."""


@app_passwords_group.command("create")
@click.argument("user")
@click.option("--name", required=True, help="Which agent uses it, e.g. 'Cursor on laptop'.")
@click.option("--scope", "scopes", multiple=True, help="Limit to these scopes (repeatable; default: all).")
@click.pass_context
def app_passwords_create(ctx: click.Context, user: str, name: str, scopes: tuple[str, ...]) -> None:
    """Create an application password and print it (only the password, shown once)."""
    try:
        wanted = parse_scopes(scopes) if scopes else None
    except UnknownScope as exc:
        raise click.BadParameter(str(exc), param_hint="--scope") from None

    async def work(rt: Runtime) -> str:
        password, _ = await app_passwords.create_app_password(
            rt.sessions, user, name=name, scopes=wanted, audit=rt.audit
        )
        return password

    click.echo(run_with_runtime(ctx, work))


@app_passwords_group.command("list")
@click.argument("user", required=False)
@json_option
@click.pass_context
def app_passwords_list(ctx: click.Context, user: str | None, as_json: bool) -> None:
    """List application passwords (of USER, or everyone's)."""
    rows = run_with_runtime(ctx, lambda rt: app_passwords.list_app_passwords(rt.sessions, user))
    emit(
        [r.to_json() for r in rows],
        ["id", "username", "name", "hint", "status", "scopes", "created_at", "last_used_at", "last_ip"],
        as_json=as_json,
    )


@app_passwords_group.command("revoke")
@click.argument("password_id", type=int)
@click.option("--reason", default="revoked from the command line")
@click.pass_context
def app_passwords_revoke(ctx: click.Context, password_id: int, reason: str) -> None:
    """Revoke an application password (and its connection) by id."""

    async def work(rt: Runtime) -> bool:
        connection_id = await app_passwords.connection_of(rt.sessions, password_id)
        return await connections.revoke_connection(rt.sessions, connection_id, audit=rt.audit, reason=reason)

    changed = run_with_runtime(ctx, work)
    click.echo(f"revoked application password {password_id}" if changed else "already revoked")


@click.group("connections")
def connections_group() -> None:
    """Authorized agents."""


@connections_group.command("list")
@click.option("--active", is_flag=True, help="Only connections that are not revoked.")
@json_option
@click.pass_context
def connections_list(ctx: click.Context, active: bool, as_json: bool) -> None:
    """List connections, newest first."""
    rows = run_with_runtime(
        ctx, lambda rt: connections.list_connections(rt.sessions, include_revoked=not active)
    )
    emit(
        [r.to_json() for r in rows],
        ["id", "agent_name", "username", "method", "status", "scopes", "created_at", "last_active_at"],
        as_json=as_json,
    )


@connections_group.command("revoke")
@click.argument("connection_id")
@click.option("--reason", default="revoked from the command line")
@click.pass_context
def connections_revoke(ctx: click.Context, connection_id: str, reason: str) -> None:
    """Revoke a connection: its credentials stop working and its running requests end."""
    changed = run_with_runtime(
        ctx,
        lambda rt: connections.revoke_connection(rt.sessions, connection_id, audit=rt.audit, reason=reason),
    )
    click.echo(f"revoked {connection_id}" if changed else f"{connection_id} was already revoked")


@click.command("audit")
@click.option("--limit", default=50, show_default=True)
@click.option("--event", "events", multiple=True, help="Only these event kinds (repeatable).")
@click.option("--connection", "connection_id", help="Only events of this connection.")
@click.option("--follow", is_flag=True, help="Keep printing new events as they arrive.")
@json_option
@click.pass_context
def audit(
    ctx: click.Context,
    limit: int,
    events: tuple[str, ...],
    connection_id: str | None,
    follow: bool,
    as_json: bool,
) -> None:
    """Show the audit log, newest first (oldest first with --follow)."""
    columns = ["id", "at", "event", "outcome", "user_id", "connection_id", "ip", "detail"]

    async def work(rt: Runtime) -> None:
        records = await rt.audit.query(limit=limit, events=events or None, connection_id=connection_id)
        emit([r.to_json() for r in records], columns, as_json=as_json)
        last = max((r.id for r in records), default=0)
        while follow:
            await asyncio.sleep(1)
            new = await rt.audit.query(after_id=last, events=events or None, connection_id=connection_id)
            for record in new:
                # One line per event while following: JSON Lines with --json, plain text otherwise.
                data = record.to_json()
                click.echo(
                    json.dumps(data, default=str) if as_json else " ".join(str(data[c]) for c in columns)
                )
                last = record.id

    with contextlib.suppress(KeyboardInterrupt):
        run_with_runtime(ctx, work)


COMMANDS = (users_group, app_passwords_group, connections_group, audit)
