"""Every MCP tool, one module per content kind, collected into the registry in a stable order.

The order is what ``tools/list`` shows and docs/tools.md lists: orientation first, then the
ChatGPT pair, then content kinds from most to least used."""

from __future__ import annotations

from aiconnector.mcp.registry import ToolRegistry
from aiconnector.mcp.tools import chatgpt, comments, media, posts, site, terms, users

__all__ = ["build_registry"]

_MODULES = (site, chatgpt, posts, comments, media, terms, users)


def build_registry() -> ToolRegistry:
    registry = ToolRegistry()
    for module in _MODULES:
        for tool in module.TOOLS:
            registry.add(tool)
    return registry
