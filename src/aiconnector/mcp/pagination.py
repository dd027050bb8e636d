"""Opaque, stable MCP list cursors.

A cursor is base64url(JSON ``[kind, position]``): clients must treat it as opaque, and the
``kind`` tag stops a cursor from one list being replayed against another. Anything that does
not decode to the expected kind is an invalid-params error (-32602), as the spec asks."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from aiconnector.mcp.jsonrpc import INVALID_PARAMS, JsonRpcError


def encode_cursor(kind: str, position: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([kind, position])).decode("ascii").rstrip("=")


def decode_cursor(kind: str, cursor: str) -> Any:
    """Return the position stored in ``cursor``; raise -32602 if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = orjson.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        decoded = None
    if type(decoded) is not list or len(decoded) != 2 or decoded[0] != kind:
        raise JsonRpcError(INVALID_PARAMS, "Invalid cursor")
    return decoded[1]


def decode_offset(kind: str, cursor: str | None) -> int:
    """Offset-based cursors for lists held in memory (tools, prompts)."""
    if cursor is None:
        return 0
    offset = decode_cursor(kind, cursor)
    if type(offset) is not int or offset < 0:
        raise JsonRpcError(INVALID_PARAMS, "Invalid cursor")
    return offset
