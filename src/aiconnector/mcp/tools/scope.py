"""Scope checks that depend on a tool's arguments, not just on the tool.

The transport checks each tool's declared scope before calling it. Some calls need *more*
scope depending on what they ask for: ``create_post`` and ``update_post`` sit under
``content:write`` but setting a status of ``publish``, ``future`` or ``private`` is publishing,
which DESIGN §5 puts under ``content:publish``. Such a call raises ``ScopeRequired``, which the
transport turns into HTTP 403 with ``WWW-Authenticate: Bearer error="insufficient_scope"`` so
the client can step up, rather than into a tool error the agent could only apologise for."""

from __future__ import annotations

from aiconnector.mcp.registry import ToolContext


class ScopeRequired(Exception):
    """The connection lacks ``scope`` for this particular call (step-up needed)."""

    def __init__(self, scope: str, message: str) -> None:
        super().__init__(message)
        self.scope = scope
        self.message = message


def require_scope(ctx: ToolContext, scope: str, action: str) -> None:
    """Raise ``ScopeRequired`` unless the connection was granted ``scope``.

    ``action`` completes the sentence "This connection needs the … scope to …"."""
    if not ctx.principal.has_scope(scope):
        raise ScopeRequired(
            scope, f"This connection needs the {scope} scope to {action}; ask the user to grant it."
        )
