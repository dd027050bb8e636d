"""MCP method handlers, looked up in one dict per era.

Each method has a params validator (a strict pydantic TypeAdapter over the ``mcp_types``
params model, built once at import) and a coroutine returning the plain result dict; the
transport adds the era's decorations and frames it. Keeping handlers free of HTTP lets the
same code serve both eras and both JSON and SSE responses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types
import orjson
from pydantic import TypeAdapter, ValidationError

from aiconnector import SERVER_NAME
from aiconnector.core.inflight import InflightRequest
from aiconnector.core.principal import Principal
from aiconnector.core.scopes import CONTENT_READ
from aiconnector.errors import (
    Conflict,
    ConnectorError,
    InsufficientScope,
    InvalidInput,
    NotAllowed,
    NotFound,
    SiteUnavailable,
)
from aiconnector.mcp import site_resources
from aiconnector.mcp.eras import SERVER_INFO, SUPPORTED_VERSIONS, Protocol, negotiate_legacy
from aiconnector.mcp.jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND, JsonRpcError, Message, RequestId
from aiconnector.mcp.pagination import decode_offset, encode_cursor
from aiconnector.mcp.registry import ProgressReporter, Tool, ToolContext
from aiconnector.mcp.services import McpServices
from aiconnector.mcp.tool_audit import ToolAudit

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    f"{SERVER_NAME} connects you to a content site (posts, pages, comments, media, categories, tags). "
    "Use the tools to find, read and edit content on behalf of the signed-in user. What you may do depends "
    "on the scopes granted to this connection and on the user's role; a tool refused for a missing scope "
    "needs the user to re-authorize with more scope. Published posts and pages are also readable as "
    "resources at aiconnector://posts/{id} and aiconnector://pages/{id}. Prefer drafts over publishing "
    "unless the user asked to publish, and confirm before deleting anything."
)
# Only what we serve: no subscriptions/listen, so no listChanged/subscribe; no completions.
CAPABILITIES: dict[str, Any] = {
    "tools": {"listChanged": False},
    "resources": {"subscribe": False, "listChanged": False},
    "prompts": {"listChanged": False},
}
# The initialize era also gets ``logging``: clients (and the conformance suite) send
# logging/setLevel, which we accept. We emit no log notifications, so any level is honoured
# trivially. The 2026-07-28 era deprecates logging, so discover does not advertise it.
LEGACY_CAPABILITIES: dict[str, Any] = {**CAPABILITIES, "logging": {}}
TOOLS_PAGE_SIZE = 100
_TOOLS_CURSOR = "tools"
_PROMPTS_CURSOR = "prompts"


def require_scope(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise InsufficientScope(principal.scopes, scope)


async def _no_progress(progress: float, total: float | None = None, message: str | None = None) -> None:
    return None


@dataclass(slots=True)
class Call:
    """One request being served: who asks, at which protocol version, and the per-request
    hooks the transport provides (progress sender, in-flight entry)."""

    principal: Principal
    protocol: Protocol
    request_id: RequestId
    ip: str | None
    user_agent: str | None
    report_progress: ProgressReporter = _no_progress
    inflight: InflightRequest | None = None


Handler = Callable[[Call, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Method:
    handler: Handler
    params: TypeAdapter[Any]

    def validate(self, params: dict[str, Any] | None) -> Any:
        """Strict validation: no str<->int coercion, so a mistyped field is an error."""
        try:
            return self.params.validate_python(params if params is not None else {}, strict=True)
        except ValidationError as exc:
            raise JsonRpcError(INVALID_PARAMS, "Invalid params: " + describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError, limit: int = 8) -> str:
    """``field.path: message; …`` — names every offending field, no input values echoed."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


_CALL_TOOL = TypeAdapter(mcp_types.CallToolRequestParams)
_PAGINATED = TypeAdapter(mcp_types.PaginatedRequestParams)
_READ_RESOURCE = TypeAdapter(mcp_types.ReadResourceRequestParams)
_GET_PROMPT = TypeAdapter(mcp_types.GetPromptRequestParams)
_INITIALIZE = TypeAdapter(mcp_types.InitializeRequestParams)
_PLAIN = TypeAdapter(mcp_types.RequestParams)
_CANCELLED = TypeAdapter(mcp_types.CancelledNotificationParams)
_SET_LEVEL = TypeAdapter(mcp_types.SetLevelRequestParams)


_ERROR_PREFIXES: dict[type[ConnectorError], str] = {
    NotFound: "Not found",
    NotAllowed: "Not allowed",
    InvalidInput: "Invalid input",
    Conflict: "Conflict",
    SiteUnavailable: "Site unavailable",
}


def connector_error_text(exc: ConnectorError) -> str:
    """The message an agent sees, prefixed with the kind of failure ("Not allowed: …") so a
    model can tell a permission problem from a missing object without parsing prose."""
    prefix = _ERROR_PREFIXES.get(type(exc))
    if prefix is None:
        for cls, text in _ERROR_PREFIXES.items():
            if isinstance(exc, cls):
                prefix = text
                break
    if prefix is None or exc.message.lower().startswith(prefix.lower()):
        return exc.message
    return f"{prefix}: {exc.message}"


def _tool_result(text: str, *, is_error: bool) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": is_error}


class McpHandlers:
    """Method tables for both eras over one ``McpServices``."""

    def __init__(self, services: McpServices) -> None:
        self._services = services
        self._tool_wire: dict[tuple[str, bool, bool], dict[str, Any]] = {}
        shared = {
            "tools/list": Method(self._tools_list, _PAGINATED),
            "tools/call": Method(self._tools_call, _CALL_TOOL),
            "resources/list": Method(self._resources_list, _PAGINATED),
            "resources/templates/list": Method(self._resource_templates, _PAGINATED),
            "resources/read": Method(self._resources_read, _READ_RESOURCE),
            "prompts/list": Method(self._prompts_list, _PAGINATED),
            "prompts/get": Method(self._prompts_get, _GET_PROMPT),
        }
        self.legacy: dict[str, Method] = {
            **shared,
            "initialize": Method(self._initialize, _INITIALIZE),
            "ping": Method(self._ping, _PLAIN),
            "logging/setLevel": Method(self._ping, _SET_LEVEL),
        }
        self.modern: dict[str, Method] = {**shared, "server/discover": Method(self._discover, _PLAIN)}

    def lookup(self, protocol: Protocol, method: str) -> Method:
        found = (self.modern if protocol.modern else self.legacy).get(method)
        if found is None:
            if protocol.modern and method in self.legacy:
                raise JsonRpcError(
                    METHOD_NOT_FOUND,
                    f"Method not found: {method} is not part of protocol {protocol.version} "
                    f"(supported versions: {', '.join(SUPPORTED_VERSIONS)})",
                    method,
                )
            raise JsonRpcError(METHOD_NOT_FOUND, "Method not found", method)
        return found

    def notify(self, principal: Principal, protocol: Protocol, message: Message, reason: str) -> None:
        """Client notifications. Only legacy ``notifications/cancelled`` acts: it cancels the
        caller's own in-flight request with that id (ids are unique per connection only).
        Everything else (initialized, progress, roots changes) needs no action when stateless."""
        if protocol.modern or message.method != "notifications/cancelled":
            return
        try:
            params = _CANCELLED.validate_python(message.params or {}, strict=True)
        except ValidationError:
            return  # a notification cannot be answered with an error
        if params.request_id is not None:
            self._services.inflight.cancel_request(principal.connection_id, params.request_id, reason)

    # --- lifecycle -------------------------------------------------------------------------

    async def _initialize(self, call: Call, params: mcp_types.InitializeRequestParams) -> dict[str, Any]:
        return {
            "protocolVersion": negotiate_legacy(params.protocol_version),
            "capabilities": LEGACY_CAPABILITIES,
            "serverInfo": SERVER_INFO,
            "instructions": INSTRUCTIONS,
        }

    async def _ping(self, call: Call, params: Any) -> dict[str, Any]:
        """ping, and logging/setLevel once its params validated: both answer an empty result."""
        return {}

    async def _discover(self, call: Call, params: Any) -> dict[str, Any]:
        return {
            "supportedVersions": list(SUPPORTED_VERSIONS),
            "capabilities": CAPABILITIES,
            "instructions": INSTRUCTIONS,
        }

    # --- tools -----------------------------------------------------------------------------

    def _tool_to_wire(self, tool: Tool, protocol: Protocol) -> dict[str, Any]:
        """The tool's listing at this version, cached: the registry is fixed at start-up."""
        key = (tool.name, protocol.annotations, protocol.structured)
        wire = self._tool_wire.get(key)
        if wire is None:
            wire = {"name": tool.name, "description": tool.description, "inputSchema": tool.input_schema}
            if protocol.annotations:
                wire["annotations"] = {
                    "readOnlyHint": tool.read_only,
                    "destructiveHint": tool.destructive,
                    "idempotentHint": tool.idempotent,
                    "openWorldHint": tool.open_world,
                }
                if not protocol.structured:  # no Tool.title before 2025-06-18; annotations has one
                    wire["annotations"]["title"] = tool.title
            if protocol.structured:
                wire["title"] = tool.title
                wire["outputSchema"] = tool.output_schema
            self._tool_wire[key] = wire
        return wire

    async def _tools_list(self, call: Call, params: mcp_types.PaginatedRequestParams) -> dict[str, Any]:
        tools = self._services.registry.visible_to(call.principal)
        offset = decode_offset(_TOOLS_CURSOR, params.cursor)
        if offset > len(tools):
            raise JsonRpcError(INVALID_PARAMS, "Invalid cursor")
        page = tools[offset : offset + TOOLS_PAGE_SIZE]
        result: dict[str, Any] = {"tools": [self._tool_to_wire(t, call.protocol) for t in page]}
        if offset + TOOLS_PAGE_SIZE < len(tools):
            result["nextCursor"] = encode_cursor(_TOOLS_CURSOR, offset + TOOLS_PAGE_SIZE)
        return result

    async def _tools_call(self, call: Call, params: mcp_types.CallToolRequestParams) -> dict[str, Any]:
        """Unknown tool -> -32602 (spec); missing scope -> 403 step-up; bad arguments and
        tool failures -> ``isError`` results the model can read and correct (2025-11-25)."""
        tool = self._services.registry.get(params.name)
        if tool is None:
            raise JsonRpcError(INVALID_PARAMS, f"Unknown tool: {params.name}")
        arguments = params.arguments or {}
        principal = call.principal
        audit = ToolAudit(
            self._services, principal, tool.name, arguments, ip=call.ip, user_agent=call.user_agent
        )
        if tool.scope not in principal.scopes:
            await audit.done("denied", f"missing scope {tool.scope}")
            raise InsufficientScope(principal.scopes, tool.scope)
        if not principal.actor.can(tool.capability):
            message = f"Not allowed: the role {principal.actor.role!r} cannot use {tool.name}"
            await audit.done("denied", message)
            return _tool_result(message, is_error=True)
        try:
            args = tool.input_model.model_validate(arguments)
        except ValidationError as exc:
            message = f"Invalid arguments for {tool.name}: {describe_validation_error(exc)}"
            await audit.done("error", message)
            return _tool_result(message, is_error=True)
        if not tool.read_only and not await audit.write_ahead():
            return _tool_result(
                f"{tool.name} was not run: the audit log could not record the call. Try again.",
                is_error=True,
            )
        context = ToolContext(principal, self._services.site, self._services.settings, call.report_progress)
        try:
            output = await tool.handler(context, args)
            structured = output.model_dump(mode="json", by_alias=True)
            text = tool.render_text(output) if tool.render_text else orjson.dumps(structured).decode()
        except InsufficientScope as exc:
            await audit.done("denied", exc.message)
            raise
        except ConnectorError as exc:
            message = connector_error_text(exc)
            await audit.done("error", message)
            return _tool_result(message, is_error=True)
        except asyncio.CancelledError:
            reason = call.inflight.cancel_reason if call.inflight is not None else None
            await audit.done("cancelled", reason or "client disconnected")
            raise
        except Exception:
            log.exception("tool %s failed", tool.name)
            await audit.done("error", "internal error")
            return _tool_result("Internal error", is_error=True)
        await audit.done("success")
        result = _tool_result(text, is_error=False)
        if call.protocol.structured:
            result["structuredContent"] = structured
        return result

    # --- resources and prompts -------------------------------------------------------------

    async def _resources_list(self, call: Call, params: mcp_types.PaginatedRequestParams) -> dict[str, Any]:
        require_scope(call.principal, CONTENT_READ)
        return await site_resources.list_resources(
            self._services.site, call.principal, call.protocol, params.cursor
        )

    async def _resource_templates(
        self, call: Call, params: mcp_types.PaginatedRequestParams
    ) -> dict[str, Any]:
        if params.cursor is not None:
            raise JsonRpcError(INVALID_PARAMS, "Invalid cursor")
        return {"resourceTemplates": site_resources.templates(call.protocol)}

    async def _resources_read(
        self, call: Call, params: mcp_types.ReadResourceRequestParams
    ) -> dict[str, Any]:
        require_scope(call.principal, CONTENT_READ)
        return await site_resources.read_resource(
            self._services.site, call.principal, call.protocol, params.uri
        )

    async def _prompts_list(self, call: Call, params: mcp_types.PaginatedRequestParams) -> dict[str, Any]:
        if params.cursor is not None:
            raise JsonRpcError(INVALID_PARAMS, "Invalid cursor")
        return {"prompts": []}

    async def _prompts_get(self, call: Call, params: mcp_types.GetPromptRequestParams) -> dict[str, Any]:
        raise JsonRpcError(INVALID_PARAMS, f"Unknown prompt: {params.name}")
