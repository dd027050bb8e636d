"""Printing lists for people (aligned columns) or for programs (``--json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(list(rows), indent=2, default=str))
        return
    if not rows:
        click.echo("(none)")
        return

    def cell(value: Any) -> str:
        if isinstance(value, list):
            return " ".join(str(v) for v in value)
        return "" if value is None else str(value)

    table = [[cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in table)) for i, col in enumerate(columns)]
    click.echo("  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip())
    for r in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
