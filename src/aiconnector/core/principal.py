"""Who is calling: the authenticated user behind a connection, and what that connection may do."""

from __future__ import annotations

from dataclasses import dataclass

from aiconnector.core.roles import Cap, has_cap


@dataclass(frozen=True, slots=True)
class Actor:
    """The person on whose behalf the site is changed; site backends check roles against it."""

    user_id: int
    username: str
    role: str

    def can(self, cap: Cap) -> bool:
        return has_cap(self.role, cap)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated request: the actor, the connection it came through and its scopes."""

    actor: Actor
    connection_id: str
    method: str  # "oauth" | "device" | "application_password"
    scopes: frozenset[str]
    agent_name: str = ""
    # Loaded with the credential so that "who am I" questions never need another query.
    display_name: str = ""

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
