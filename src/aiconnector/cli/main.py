"""``aiconnector`` entry point. Global options and settings, then one group per resource."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from aiconnector.config import Settings, settings_from_env
from aiconnector.errors import ConnectorError
from aiconnector.runtime import Runtime, open_runtime

T = TypeVar("T")


def run_with_runtime(ctx: click.Context, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Open the database (migrating it), run ``work``, and turn domain errors into a clean
    message on stderr with exit status 1."""
    settings: Settings = ctx.obj

    async def runner() -> T:
        async with open_runtime(settings) as rt:
            return await work(rt)

    try:
        return asyncio.run(runner())
    except ConnectorError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)


@click.group()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    envvar="AICONNECTOR_DATA_DIR",
    help="Where the SQLite database lives (default ./aiconnector-data).",
)
@click.option(
    "--database-url",
    envvar="AICONNECTOR_DATABASE_URL",
    help="SQLAlchemy URL, e.g. postgresql+asyncpg://user@host/db (default: SQLite in the data dir).",
)
@click.version_option(package_name="aiconnector")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, database_url: str | None) -> None:
    """AI Connector: let AI agents work on your site through scoped, revocable connections."""
    ctx.obj = settings_from_env().with_overrides(data_dir=data_dir, database_url=database_url)


def register_commands() -> None:
    from aiconnector.cli import access, agent, clients, docs, serve

    cli.add_command(serve.serve)
    for command in (*access.COMMANDS, *agent.COMMANDS, clients.clients, docs.docs):
        cli.add_command(command)


def main(argv: list[str] | None = None) -> Any:
    register_commands()
    return cli.main(args=argv, prog_name="aiconnector")
