"""Add Connection (/admin/add): one entry per client with its steps and the values to copy.

Most entries only show values built from this server's URL (web/admin/snippets.py). Two
register a client on the spot: *Generic MCP client* (a pre-registered OAuth client, the web
counterpart of ``aiconnector clients create``) and *Device Auth* (``clients create --device``).
Their results are rendered in the POST's answer, never stored: a client secret exists in plain
only in that one response.

Every signed-in user may register one, but only an administrator's client is the site owner's
(``pre_registered``/``device``). Anyone else's is ``user_registered``: the consent screen says
who registered it and warns that the name was not chosen by this site, and it is removed when
unused like a dynamic client (``core.clients``) — so a subscriber cannot dress a phishing
client up as the site owner's."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.audit import AuditContext
from aiconnector.core.clients import (
    USER_REGISTERED,
    NewClient,
    Registrant,
    create_device_client,
    create_pre_registered_client,
)
from aiconnector.core.device_instructions import TOKEN_POLL_HINT, device_commands
from aiconnector.core.scopes import format_scopes
from aiconnector.errors import OAuthError
from aiconnector.web.admin.access import AdminUser, render_admin
from aiconnector.web.admin.scope_form import chosen_scopes, form_text, scope_options
from aiconnector.web.admin.snippets import (
    ClientGuide,
    Value,
    client_guides,
    details_text,
    guide_by_key,
    oauth_endpoints,
)
from aiconnector.web.pages import error_page
from aiconnector.web.state import WebState

MAX_REDIRECT_URIS = 10


async def add_index(request: Request, state: WebState, user: AdminUser) -> Response:
    """The list of clients; each links to its own entry page."""
    settings = state.settings
    return render_admin(
        "admin/add.html", state, user, active="add", guides=client_guides(settings.origin, settings.mcp_url)
    )


def _guide(request: Request, state: WebState) -> ClientGuide | None:
    return guide_by_key(state.settings.origin, state.settings.mcp_url, request.path_params["client"])


def _entry(
    state: WebState,
    user: AdminUser,
    guide: ClientGuide,
    *,
    status_code: int = 200,
    **context: object,
) -> Response:
    defaults: dict[str, object] = {
        "error": None,
        "result": None,
        "result_details": "",
        "result_note": None,
        "form_values": {},
        "scope_options": scope_options(user.role),
    }
    response = render_admin(
        "admin/add_entry.html", state, user, active="add", guide=guide, **{**defaults, **context}
    )
    response.status_code = status_code
    return response


def _not_found(state: WebState) -> Response:
    return error_page(
        state.site_host, "Not found", "There is no such client on the Add Connection page.", status_code=404
    )


async def add_entry_get(request: Request, state: WebState, user: AdminUser) -> Response:
    guide = _guide(request, state)
    return _entry(state, user, guide) if guide else _not_found(state)


async def add_entry_post(request: Request, state: WebState, user: AdminUser) -> Response:
    """Register a Generic or Device client from the entry's form; other entries have none."""
    guide = _guide(request, state)
    if guide is None or guide.form is None:
        return _not_found(state)
    form = await request.form()
    if guide.form == "generic":
        return await _register_generic(state, user, guide, form)
    return await _register_device(state, user, guide, form)


def _admin_context(user: AdminUser) -> AuditContext:
    """``client.registered`` from this page names who registered the client (written with it,
    in its transaction, by ``core.clients``)."""
    return AuditContext(user_id=user.id, username=user.username, via="admin")


def _registrant(state: WebState, user: AdminUser) -> Registrant:
    return Registrant(user.id, unused_ttl_seconds=state.settings.dynamic_client_ttl_seconds)


def _ownership_note(state: WebState, new: NewClient) -> str | None:
    """What a non-administrator is told about the client they just registered."""
    if new.record.kind != USER_REGISTERED:
        return None
    days = max(1, state.settings.dynamic_client_ttl_seconds // 86400)
    return (
        "This client is registered as yours, not as the site owner's: people asked to approve it "
        f"see your username. It is removed after {days} day(s) without a new connection."
    )


async def _register_generic(state: WebState, user: AdminUser, guide: ClientGuide, form: FormData) -> Response:
    name = form_text(form, "name")
    redirect_text = form_text(form, "redirect_uris")
    confidential = form_text(form, "client_type") == "confidential"
    entered = {
        "name": name,
        "redirect_uris": redirect_text,
        "client_type": "confidential" if confidential else "public",
    }
    uris = [line.strip() for line in redirect_text.splitlines() if line.strip()]
    problem = None
    if not name:
        problem = "Enter a name: people see it on the consent screen."
    elif not uris:
        problem = "Enter at least one redirect URI: where the browser returns after Authorize."
    elif len(uris) > MAX_REDIRECT_URIS:
        problem = f"At most {MAX_REDIRECT_URIS} redirect URIs."
    if problem is None:
        try:
            new = await create_pre_registered_client(
                state.sessions,
                name=name,
                redirect_uris=uris,
                confidential=confidential,
                context=_admin_context(user),
                registrant=_registrant(state, user),
            )
        except OAuthError as exc:
            problem = exc.description
    if problem is not None:
        return _entry(state, user, guide, status_code=400, error=problem, form_values=entered)
    values = [Value("client-id", "Client ID", new.record.client_id)]
    if new.secret is not None:
        values.append(
            Value("client-secret", "Client secret", new.secret, "Shown only this once: store it now.")
        )
    values += [
        *oauth_endpoints(state.settings.origin),
        Value("redirect-uris", "Redirect URIs", "\n".join(new.record.redirect_uris)),
        Value("scopes", "Scopes", "content:read", "Space-separated; ask for more as needed."),
        Value("pkce", "PKCE", "S256 (required)"),
        Value("resource", "Resource (RFC 8707)", state.settings.mcp_url),
    ]
    title = f"{new.record.name} (generic MCP client)"
    return _entry(
        state, user, guide, result=values, result_details=details_text(title, values),
        result_note=_ownership_note(state, new),
    )  # fmt: skip


async def _register_device(state: WebState, user: AdminUser, guide: ClientGuide, form: FormData) -> Response:
    name = form_text(form, "name")
    scopes = chosen_scopes(form, user.role)
    if not name:
        return _entry(
            state,
            user,
            guide,
            status_code=400,
            error="Enter the agent's name: people see it when they approve its code.",
            form_values={"scopes": scopes},
        )
    new = await create_device_client(
        state.sessions, name=name, context=_admin_context(user), registrant=_registrant(state, user)
    )
    scope = format_scopes(scopes) or None
    commands = device_commands(state.settings.origin, new.record.client_id, scope)
    values = [
        Value("client-id", "Client ID", new.record.client_id),
        Value("login-command", "On the agent's machine, run", commands.login),
        Value("curl-command", "Without the aiconnector package", commands.curl, TOKEN_POLL_HINT),
        Value("device-page", "Approve the code at", f"{state.settings.origin}/device"),
    ]
    title = f"{new.record.name} (device client)"
    return _entry(
        state, user, guide, result=values, result_details=details_text(title, values),
        result_note=_ownership_note(state, new),
    )  # fmt: skip
