"""The scope checkboxes of the admin forms (device clients, application passwords).

The same rule as the consent screen (web/scope_choices.py): scopes the person's role can never
use are shown disabled and are never granted, even if a hand-edited form sends them."""

from __future__ import annotations

from starlette.datastructures import FormData

from aiconnector.core.scopes import ALL_SCOPES
from aiconnector.web.scope_choices import ScopeChoice, grantable, scope_choices


def scope_options(role: str) -> list[ScopeChoice]:
    """Every scope, each marked usable or not for ``role``, in canonical order."""
    return scope_choices(ALL_SCOPES, role)


def chosen_scopes(form: FormData, role: str) -> frozenset[str]:
    """The ticked scopes this role may grant; empty when none were ticked."""
    ticked = [value for value in form.getlist("scope") if isinstance(value, str)]
    return grantable(ALL_SCOPES, ticked, role)


def form_text(form: FormData, name: str) -> str:
    """A text field's value, stripped; "" when missing or not text (a file upload)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
