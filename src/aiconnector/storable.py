"""Text the databases can store, checked once at the edge.

PostgreSQL refuses a NUL character in ``text`` (and ``\\u0000`` in ``jsonb``), and no database
driver can encode an unpaired UTF-16 surrogate as UTF-8. Such a string reaching a query is an
exception deep inside a transaction — a 500 and a traceback — where it should have been a 400
naming the bad input. SQLite stores both, so the same request behaved differently on the two
databases. One predicate, used by every door text comes in through (the HTTP edge layer for
paths, query strings and forms, tool arguments, Basic credentials, client ids, cursors), keeps
them out and the answer the same everywhere."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# NUL, and the surrogate range: a str only holds these unpaired (paired ones decode to one
# code point), and they cannot be encoded as UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
PROBLEM = "must not contain NUL characters or unpaired surrogates"
_MAX_DEPTH = 64


def is_storable(text: str) -> bool:
    """True when ``text`` has no NUL character and no unpaired surrogate."""
    return _UNSTORABLE.search(text) is None


def first_unstorable(value: Any, where: str = "") -> str | None:  # noqa: ANN401 - any decoded JSON
    """The path (``""`` for ``value`` itself, ``tags[1]``, ``meta.key``) of the first string in
    ``value`` — a string, or lists and mappings of them, keys included — that is not storable;
    None when every string is. Nesting deeper than any real input counts as unstorable."""
    return _walk(value, where, 0)


def _walk(value: Any, where: str, depth: int) -> str | None:  # noqa: ANN401
    if isinstance(value, str):
        return None if is_storable(value) else where
    if depth > _MAX_DEPTH:
        return where
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and not is_storable(key):
                return where or "(key)"
            found = _walk(item, f"{where}.{key}" if where else str(key), depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _walk(item, f"{where}[{index}]", depth + 1)
            if found is not None:
                return found
    return None
