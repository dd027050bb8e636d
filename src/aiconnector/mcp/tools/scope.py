"""Scope checks that depend on a tool's arguments, not just on the tool.

The transport checks each tool's declared scope before calling it. Some calls need *more*
scope depending on what they ask for: ``create_post`` and ``update_post`` sit under
``content:write`` but setting a status of ``publish``, ``future`` or ``private`` is publishing,
which DESIGN §5 puts under ``content:publish``. Such a call raises ``InsufficientScope``, which the
transport turns into HTTP 403 with ``WWW-Authenticate: Bearer error="insufficient_scope"`` so
the client can step up, rather than into a tool error the agent could only apologise for."""

from __future__ import annotations

from aiconnector.errors import InsufficientScope
from aiconnector.mcp.registry import ToolContext


def require_scope(ctx: ToolContext, scope: str, action: str) -> None:
    """Raise ``InsufficientScope`` unless the connection was granted ``scope``.

    ``action`` completes the sentence "This connection needs the … scope to …"."""
    if not ctx.principal.has_scope(scope):
        raise InsufficientScope(
            ctx.principal.scopes,
            scope,
            f"This connection needs the {scope} scope to {action}; ask the user to grant it.",
        )
