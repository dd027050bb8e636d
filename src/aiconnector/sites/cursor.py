"""Opaque keyset cursors for the built-in site's lists.

A cursor carries the sort key of the last row a client saw (plus its id as tie-breaker), so the
next page is a ``WHERE (key, id) > (last_key, last_id)`` range scan on an index instead of an
``OFFSET`` that gets slower with every page and skips or repeats rows when content changes
between calls. The encoding is base64url of compact JSON; it is opaque to clients but not a
secret, so anything decoded is validated strictly: a cursor names the ordering it belongs to,
and every value must have the type that ordering expects. Anything else is ``InvalidInput``.

Signing is unnecessary: a forged cursor can only move the start of a range that is still
filtered by the caller's visibility rules."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import BindParameter, ColumnElement, FromClause, and_, bindparam, or_

from aiconnector.errors import InvalidInput
from aiconnector.storable import is_storable

# Longest cursor accepted; real ones are well under 200 characters.
_MAX_CURSOR_LENGTH = 1024

R = TypeVar("R")

KeyValue = datetime | str | int
KeyKind = type[datetime] | type[str] | type[int]


def _invalid() -> InvalidInput:
    return InvalidInput("invalid cursor")


def _encode_value(value: KeyValue) -> str | int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    return value


def _decode_value(raw: Any, kind: KeyKind) -> KeyValue:
    """Check one decoded JSON value against the type its column needs."""
    if kind is datetime:
        if not isinstance(raw, str):
            raise _invalid()
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise _invalid() from None
        if value.tzinfo is None:
            raise _invalid()
        return value.astimezone(UTC)
    if kind is int:
        # bool is an int subclass in Python; JSON true/false is not a valid id.
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise _invalid()
        return raw
    if not isinstance(raw, str) or not is_storable(raw):  # NUL would reach the query: a 500 on PostgreSQL
        raise _invalid()
    return raw


def encode_cursor(tag: str, key: Sequence[KeyValue]) -> str:
    """Cursor for the row whose sort key is ``key`` (last element: the row id) under ordering ``tag``."""
    payload = orjson.dumps([tag, [_encode_value(v) for v in key]])
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, tag: str, kinds: Sequence[KeyKind]) -> tuple[KeyValue, ...]:
    """Decode and validate a cursor made by ``encode_cursor`` for the same ordering ``tag``."""
    if not cursor or len(cursor) > _MAX_CURSOR_LENGTH:
        raise _invalid()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise _invalid() from None
    if not (isinstance(data, list) and len(data) == 2 and data[0] == tag):
        raise _invalid()
    values = data[1]
    if not isinstance(values, list) or len(values) != len(kinds):
        raise _invalid()
    return tuple(_decode_value(v, k) for v, k in zip(values, kinds, strict=True))


@dataclass(frozen=True, slots=True)
class KeysetOrder:
    """One ordering of a list: its columns (the last one the unique id) and direction.

    All columns sort the same way, which keeps the "after this row" condition a simple
    lexicographic comparison that every database plans as an index range. The condition uses
    bound parameters (``cursor_0``, ``cursor_1``...) rather than the cursor's values, so a list
    statement can be built once per query shape and reused with ``cursor_params``."""

    tag: str
    columns: tuple[ColumnElement[Any], ...]
    kinds: tuple[KeyKind, ...]
    descending: bool

    def order_by(self, source: FromClause | None = None) -> list[ColumnElement[Any]]:
        """ORDER BY terms on the ordering's columns, or on the same-named columns of ``source``
        (a subquery selecting them) when the ordering is re-applied to an outer query."""
        columns = self.columns if source is None else [source.c[c.key] for c in self.columns]
        return [c.desc() if self.descending else c.asc() for c in columns]

    def after_clause(self) -> ColumnElement[bool]:
        """Condition selecting the rows that come strictly after the cursor's row."""
        params = [bindparam(f"cursor_{i}") for i in range(len(self.columns))]
        return _lexicographic_after(self.columns, params, self.descending)

    def cursor_params(self, cursor: str) -> dict[str, KeyValue]:
        """Values for ``after_clause``'s parameters, decoded and validated from ``cursor``."""
        values = decode_cursor(cursor, self.tag, self.kinds)
        return {f"cursor_{i}": value for i, value in enumerate(values)}

    def cursor_for(self, row: Any) -> str:
        """Cursor pointing just after ``row`` (anything with the ordering's column names as attributes)."""
        return encode_cursor(self.tag, [getattr(row, c.key) for c in self.columns])


def _lexicographic_after(
    columns: Sequence[ColumnElement[Any]], values: Sequence[BindParameter[Any]], descending: bool
) -> ColumnElement[bool]:
    """``(c1, c2, ...) > (v1, v2, ...)`` (or ``<``) spelled out with AND/OR.

    Row-value comparison syntax is not portable across SQLite and PostgreSQL for every type,
    so the expansion ``c1 > v1 OR (c1 = v1 AND (c2 > v2 OR ...))`` is built instead. Each
    parameter takes its column's type, so a datetime is bound the way the dialect stores it."""
    column, value = columns[0], values[0]
    beyond = column < value if descending else column > value
    if len(columns) == 1:
        return beyond
    return or_(beyond, and_(column == value, _lexicographic_after(columns[1:], values[1:], descending)))


def paginate_rows(
    rows: Sequence[R], limit: int, order: KeysetOrder, obj: Callable[[R], Any] = lambda row: row
) -> tuple[list[R], str | None]:
    """Split ``limit + 1`` fetched rows into the page and the cursor for the next one.

    ``obj`` picks the object carrying the sort key when a row is wrapped in something else
    (a post row grouped with its terms, for example)."""
    if len(rows) <= limit:
        return list(rows), None
    page = list(rows[:limit])
    return page, order.cursor_for(obj(page[-1]))
