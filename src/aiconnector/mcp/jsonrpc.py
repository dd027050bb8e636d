"""JSON-RPC 2.0 for the MCP endpoint: hostile-input parsing, hand-written envelope validation,
error codes and byte-level response builders.

Validation is by hand instead of through pydantic models of whole messages because it runs on
every request and a handful of ``type()`` checks costs a fraction of a model build; method
params are validated separately (see ``handlers``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

JSONRPC_VERSION = "2.0"

# Standard JSON-RPC codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# MCP codes (mcp_types.jsonrpc and the spec's resources page).
RESOURCE_NOT_FOUND = -32002  # legacy era only; 2026-07-28 uses INVALID_PARAMS
HEADER_MISMATCH = -32020
MISSING_REQUIRED_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022
REQUEST_CANCELLED = -32800
# Our own codes, in the implementation-defined server range (-32000..-32099) and clear of the
# ones the SDK gives a meaning to (-32000 connection closed, -32001 request timeout).
INSUFFICIENT_SCOPE = -32003
CONNECTION_REVOKED = -32004
# The server is shutting down and ended the request at the end of its grace period; retry.
SERVER_SHUTTING_DOWN = -32005

RequestId = str | int


class JsonRpcError(Exception):
    """A protocol-level error answered as a JSON-RPC error object.

    ``status`` overrides the HTTP status the transport would pick from the code and era
    (used for errors raised before the era is known, which are 400 in both eras)."""

    def __init__(self, code: int, message: str, data: Any = None, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.status = status


@dataclass(slots=True)
class Message:
    """A validated inbound JSON-RPC request or notification.

    ``id`` is ``None`` exactly when the message is a notification: ids are str or int only,
    so a JSON ``null`` id is rejected during validation rather than confused with absence."""

    method: str
    params: dict[str, Any] | None
    id: RequestId | None

    @property
    def is_notification(self) -> bool:
        return self.id is None


def parse_json(body: bytes) -> Any:
    """Decode a request body. Deep nesting and out-of-range numbers raise RecursionError or
    ValueError rather than JSONDecodeError, so all three are mapped to a parse error."""
    try:
        return orjson.loads(body)
    except (ValueError, RecursionError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise JsonRpcError(PARSE_ERROR, f"Parse error: {exc}", status=400) from None


def _invalid(reason: str) -> JsonRpcError:
    return JsonRpcError(INVALID_REQUEST, f"Invalid request: {reason}", status=400)


def validate_message(obj: Any) -> Message:
    """Check the envelope of one inbound message; raise -32600 for anything else.

    Batches are refused in every era (allowed only by 2025-03-26 and never sent by SDK
    clients), and so are JSON-RPC responses posted by a client: this server sends no
    server-to-client requests, so there is nothing a response could answer."""
    if type(obj) is not dict:
        if type(obj) is list:
            raise _invalid("batches are not supported; send one JSON-RPC request per POST")
        raise _invalid("body must be a JSON-RPC request or notification object")
    if obj.get("jsonrpc") != JSONRPC_VERSION:
        raise _invalid('"jsonrpc" must be "2.0"')
    method = obj.get("method")
    if method is None:
        if "result" in obj or "error" in obj:
            raise _invalid("this endpoint does not accept JSON-RPC responses")
        raise _invalid('"method" is required')
    if type(method) is not str:
        raise _invalid('"method" must be a string')
    if "id" in obj:
        request_id = obj["id"]
        if type(request_id) is not str and type(request_id) is not int:
            raise _invalid('"id" must be a string or an integer')
    else:
        request_id = None
    params = obj.get("params")
    if params is not None and type(params) is not dict:
        raise _invalid('"params" must be an object')
    if "params" in obj and params is None:
        raise _invalid('"params" must be an object')
    return Message(method, params, request_id)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def result_bytes(request_id: RequestId | None, result: dict[str, Any]) -> bytes:
    return orjson.dumps({"jsonrpc": JSONRPC_VERSION, "id": request_id, "result": result})


def error_object(code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return error


def error_bytes(request_id: RequestId | None, code: int, message: str, data: Any = None) -> bytes:
    return orjson.dumps(
        {"jsonrpc": JSONRPC_VERSION, "id": request_id, "error": error_object(code, message, data)}
    )


def notification_bytes(method: str, params: dict[str, Any]) -> bytes:
    return orjson.dumps({"jsonrpc": JSONRPC_VERSION, "method": method, "params": params})
