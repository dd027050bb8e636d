"""Tool registry: every MCP tool declares its scope, the role capability it needs at minimum,
its input and output models and its annotations in one place, so ``tools/list``, scope
checks, docs/tools.md and the role x scope tests all read the same declaration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from aiconnector.config import Settings
from aiconnector.core.principal import Principal
from aiconnector.core.roles import Cap
from aiconnector.sites.base import SiteBackend


class ProgressReporter(Protocol):
    async def __call__(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None: ...


async def _no_progress(progress: float, total: float | None = None, message: str | None = None) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool handler gets besides its arguments."""

    principal: Principal
    site: SiteBackend
    settings: Settings
    # Sends notifications/progress when the client asked for them (progressToken); else no-op.
    report_progress: ProgressReporter = _no_progress


Handler = Callable[[ToolContext, Any], Awaitable[BaseModel]]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    title: str
    description: str
    scope: str
    capability: Cap
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    handler: Handler
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    open_world: bool = False
    # The text content sent beside structuredContent; default is the JSON of the output.
    render_text: Callable[[BaseModel], str] | None = None
    input_schema: dict[str, Any] = field(default_factory=dict, compare=False)
    output_schema: dict[str, Any] = field(default_factory=dict, compare=False)


class ToolRegistry:
    """Ordered collection of tools; built once at start-up."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def add(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} registered twice")
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def visible_to(self, principal: Principal) -> list[Tool]:
        """Tools this connection may call: scope granted and the role has the capability."""
        return [
            t
            for t in self._tools.values()
            if t.scope in principal.scopes and principal.actor.can(t.capability)
        ]


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """JSON Schema for a model with $defs kept (clients resolve local refs) and titles dropped
    from the root, so schemas stay compact in tools/list."""
    schema = model.model_json_schema(mode="serialization")
    schema.pop("title", None)
    schema.setdefault("type", "object")
    return schema


def define_tool(
    *,
    name: str,
    title: str,
    description: str,
    scope: str,
    capability: Cap,
    input_model: type[BaseModel],
    output_model: type[BaseModel],
    handler: Handler,
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
    render_text: Callable[[BaseModel], str] | None = None,
) -> Tool:
    """Build a ``Tool`` with its JSON schemas computed once from the pydantic models."""
    input_schema = input_model.model_json_schema(mode="validation")
    input_schema.pop("title", None)
    input_schema.setdefault("type", "object")
    return Tool(
        name=name,
        title=title,
        description=description,
        scope=scope,
        capability=capability,
        input_model=input_model,
        output_model=output_model,
        handler=handler,
        read_only=read_only,
        destructive=destructive,
        idempotent=idempotent,
        open_world=open_world,
        render_text=render_text,
        input_schema=input_schema,
        output_schema=_inline_schema(output_model),
    )
