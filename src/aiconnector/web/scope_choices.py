"""Which requested scopes the consent screen offers, and which the user's role rules out.

A tool call needs both the scope and the role's capability (DESIGN §5), so granting a subscriber
``content:publish`` would give the agent nothing but would mislead the person reading the
connection list. The consent screen shows such scopes disabled, with the reason, and never
grants them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiconnector.core import scopes as s
from aiconnector.core.roles import Cap, has_cap

# The capability without which a role can never use a scope at all.
SCOPE_CAPABILITY: dict[str, Cap] = {
    s.CONTENT_READ: Cap.READ,
    s.CONTENT_WRITE: Cap.EDIT_POSTS,
    s.CONTENT_PUBLISH: Cap.PUBLISH_POSTS,
    s.CONTENT_DELETE: Cap.DELETE_POSTS,
    s.COMMENTS_MODERATE: Cap.MODERATE_COMMENTS,
    s.USERS_READ: Cap.LIST_USERS,
    s.SITE_ADMIN: Cap.MANAGE_OPTIONS,
}


@dataclass(frozen=True, slots=True)
class ScopeChoice:
    scope: str
    description: str
    usable: bool


def usable_by_role(scope: str, role: str) -> bool:
    cap = SCOPE_CAPABILITY.get(scope)
    return cap is not None and has_cap(role, cap)


def scope_choices(requested: Iterable[str], role: str) -> list[ScopeChoice]:
    """The requested scopes in canonical order, each marked usable or not for ``role``."""
    wanted = set(requested)
    return [
        ScopeChoice(scope, s.SCOPE_DESCRIPTIONS[scope], usable_by_role(scope, role))
        for scope in s.ALL_SCOPES
        if scope in wanted
    ]


def grantable(requested: Iterable[str], chosen: Iterable[str], role: str) -> frozenset[str]:
    """What may be granted: chosen by the user, requested by the client, usable by the role.
    Anything else in the form (added by hand) is ignored, never granted."""
    wanted = set(requested)
    return frozenset(scope for scope in chosen if scope in wanted and usable_by_role(scope, role))
