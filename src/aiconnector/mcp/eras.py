"""Protocol eras on one endpoint: which protocol version a POST speaks, the 2026-07-28 header
and ``_meta`` envelope rules, and the per-version shape of results.

Two eras share ``/mcp`` (docs/architecture.md, "MCP transport"):

* the ``initialize`` era (2024-11-05 .. 2025-11-25), served statelessly: every POST stands
  alone and the version comes from the ``MCP-Protocol-Version`` header (absent = 2025-03-26);
* the stateless 2026-07-28 era: ``server/discover``, routing headers that must equal the body,
  and a required ``_meta`` envelope on every request.

Routing follows mcp-wire.md §1.1: the header decides when present; without it, ``initialize``
is legacy, a body carrying the modern envelope key is a modern request missing its header
(-32020), and anything else is legacy at 2025-03-26."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from aiconnector import SERVER_NAME, __version__
from aiconnector.mcp.jsonrpc import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    UNSUPPORTED_PROTOCOL_VERSION,
    JsonRpcError,
    Message,
)

LEGACY_VERSIONS: tuple[str, ...] = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN_VERSIONS: tuple[str, ...] = ("2026-07-28",)
SUPPORTED_VERSIONS: tuple[str, ...] = (*MODERN_VERSIONS, *reversed(LEGACY_VERSIONS))  # newest first
LATEST_LEGACY_VERSION = LEGACY_VERSIONS[-1]
# The version a header-less, non-initialize POST is served at (2025-06-18+ transports.mdx).
DEFAULT_LEGACY_VERSION = "2025-03-26"

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
REQUIRED_ENVELOPE_KEYS: tuple[str, ...] = (PROTOCOL_VERSION_KEY, CLIENT_CAPABILITIES_KEY)

# Lower-case header names as they appear in the ASGI scope.
VERSION_HEADER = b"mcp-protocol-version"
METHOD_HEADER = b"mcp-method"
NAME_HEADER = b"mcp-name"
ROUTING_HEADERS = frozenset({VERSION_HEADER, METHOD_HEADER, NAME_HEADER})
# Method -> params key mirrored in Mcp-Name.
NAME_BEARING_METHODS: dict[str, str] = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

SERVER_INFO: dict[str, str] = {"name": SERVER_NAME, "version": __version__}


@dataclass(frozen=True, slots=True)
class Protocol:
    """What one protocol version allows on the wire; looked up once per request."""

    version: str
    modern: bool
    # Tool.annotations and progress `message`: 2025-03-26+.
    annotations: bool
    # Tool.title, Tool.outputSchema, Resource.title, CallToolResult.structuredContent: 2025-06-18+.
    structured: bool
    # Resource not found: -32002 up to 2025-11-25, -32602 from 2026-07-28 (changelog minor 6).
    resource_not_found_code: int


def _protocol(version: str) -> Protocol:
    index = (*LEGACY_VERSIONS, *MODERN_VERSIONS).index(version)
    modern = version in MODERN_VERSIONS
    return Protocol(
        version=version,
        modern=modern,
        annotations=index >= 1,
        structured=index >= 2,
        resource_not_found_code=INVALID_PARAMS if modern else -32002,
    )


PROTOCOLS: dict[str, Protocol] = {v: _protocol(v) for v in SUPPORTED_VERSIONS}

# Caching hints for cacheable results (2026-07-28 only). tools/list depends on the
# connection's scopes, and resources on the site's content, so those are private.
CACHE_HINTS: dict[str, tuple[int, str]] = {
    "server/discover": (60_000, "public"),
    "tools/list": (60_000, "private"),
    "prompts/list": (60_000, "public"),
    "resources/templates/list": (60_000, "public"),
    "resources/list": (0, "private"),
    "resources/read": (0, "private"),
}

_B64_SENTINEL = re.compile(r"=\?base64\?(.*)\?=", re.DOTALL)


def decode_header_value(raw: str) -> str | None:
    """Decode an ``=?base64?…?=`` routing-header value; plain values pass through.

    A malformed sentinel (bad or non-canonical base64, invalid UTF-8) yields None so that
    it can never match a body value by accident."""
    match = _B64_SENTINEL.fullmatch(raw)
    if match is None:
        return raw
    payload = match.group(1)
    try:
        decoded = base64.b64decode(payload, validate=True)
        if base64.b64encode(decoded).decode("ascii") != payload:
            return None
        return decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def unsupported_version(requested: str) -> JsonRpcError:
    return JsonRpcError(
        UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version",
        {"supported": list(SUPPORTED_VERSIONS), "requested": requested},
        status=400,
    )


def _mismatch(message: str) -> JsonRpcError:
    return JsonRpcError(HEADER_MISMATCH, message, status=400)


def _repeated(name: bytes) -> JsonRpcError:
    return _mismatch(f"{name.decode()} header must not be repeated")


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")


def select_protocol(message: Message, headers: dict[bytes, bytes], duplicate: bytes | None) -> Protocol:
    """Decide the era and version of a POST (mcp-wire.md §1.1) and, for 2026-07-28, apply the
    header and envelope rules. Raises ``JsonRpcError`` with the status the spec asks for."""
    if duplicate == VERSION_HEADER:
        raise _repeated(duplicate)
    header_version = _header(headers, VERSION_HEADER)
    if header_version is None:
        if message.method != "initialize" and _has_envelope(message.params):
            raise _mismatch("MCP-Protocol-Version header missing (required with the 2026-07-28 envelope)")
        return PROTOCOLS[DEFAULT_LEGACY_VERSION]
    protocol = PROTOCOLS.get(header_version)
    if protocol is not None and not protocol.modern:
        return protocol  # Mcp-Method / Mcp-Name mean nothing to the legacy era
    if duplicate is not None:
        raise _repeated(duplicate)
    if protocol is None:
        raise unsupported_version(header_version)
    if not message.is_notification:
        _check_envelope(message, protocol)
        _check_routing_headers(message, headers)
    return protocol


def _has_envelope(params: dict[str, Any] | None) -> bool:
    if params is None:
        return False
    meta = params.get("_meta")
    return type(meta) is dict and PROTOCOL_VERSION_KEY in meta


def _check_envelope(message: Message, protocol: Protocol) -> None:
    """Required ``_meta`` keys (-32602) and the version key equal to the header (-32020)."""
    params = message.params
    meta = params.get("_meta") if params is not None else None
    if type(meta) is not dict:
        raise JsonRpcError(
            INVALID_PARAMS,
            "params._meta must be an object carrying the required envelope keys: "
            + ", ".join(REQUIRED_ENVELOPE_KEYS),
            status=400,
        )
    missing = [key for key in REQUIRED_ENVELOPE_KEYS if key not in meta]
    if missing:
        raise JsonRpcError(
            INVALID_PARAMS,
            "params._meta is missing the required envelope key(s): " + ", ".join(missing),
            status=400,
        )
    if type(meta[CLIENT_CAPABILITIES_KEY]) is not dict:
        raise JsonRpcError(
            INVALID_PARAMS, f"params._meta[{CLIENT_CAPABILITIES_KEY!r}] must be an object", status=400
        )
    if meta[PROTOCOL_VERSION_KEY] != protocol.version:
        raise _mismatch("MCP-Protocol-Version header does not match the request envelope's protocol version")


def _check_routing_headers(message: Message, headers: dict[bytes, bytes]) -> None:
    """Mcp-Method on every request, Mcp-Name on name-bearing ones; both equal the body
    (case-sensitive, after base64-sentinel decoding). A missing header is a mismatch."""
    method_header = _header(headers, METHOD_HEADER)
    if method_header is None or decode_header_value(method_header) != message.method:
        raise _mismatch("Mcp-Method header does not match the request body's method")
    name_key = NAME_BEARING_METHODS.get(message.method)
    if name_key is None:
        return
    body_value = message.params.get(name_key) if message.params is not None else None
    if type(body_value) is not str:
        return  # params validation reports the missing or mistyped field
    name_header = _header(headers, NAME_HEADER)
    if name_header is None or decode_header_value(name_header) != body_value:
        raise _mismatch(f"Mcp-Name header does not match the request body's {name_key!r} parameter")


def negotiate_legacy(requested: str) -> str:
    """``initialize``: echo a version we serve, else offer our latest handshake version."""
    return requested if requested in LEGACY_VERSIONS else LATEST_LEGACY_VERSION


def decorate_result(result: dict[str, Any], method: str, protocol: Protocol) -> dict[str, Any]:
    """Add the 2026-07-28 result fields; legacy results go out untouched (mcp-wire §5.10)."""
    if not protocol.modern:
        return result
    result["resultType"] = "complete"
    meta = result.get("_meta")
    if meta is None:
        result["_meta"] = {SERVER_INFO_KEY: SERVER_INFO}
    else:
        meta[SERVER_INFO_KEY] = SERVER_INFO
    hints = CACHE_HINTS.get(method)
    if hints is not None:
        result["ttlMs"], result["cacheScope"] = hints
    return result
