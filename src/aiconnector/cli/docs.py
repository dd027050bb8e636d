"""``aiconnector docs tools``: regenerate docs/tools.md from the tool registry."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("docs")
def docs() -> None:
    """Generate documentation from the code."""


@docs.command("tools")
@click.option("--output", type=click.Path(path_type=Path), default=Path("docs/tools.md"), show_default=True)
def tools(output: Path) -> None:
    """Write the tools reference."""
    from aiconnector.mcp.tools_doc import write_tools_doc

    click.echo(f"wrote {write_tools_doc(output)}")
