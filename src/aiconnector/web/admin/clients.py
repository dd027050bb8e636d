"""``/admin/clients`` (administrators only): the OAuth clients that may ask this site for
access, how each one came to be registered, and the connections made through it.

Deleting a client revokes every active connection made through it first (``delete_client``):
a client is deleted because it is no longer trusted, and its tokens must stop working at
once, not when they expire. The page says how many connections that is before the button is
pressed."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.clients import USER_REGISTERED, ClientSummary, delete_client, list_clients
from aiconnector.db.models import Connection, User
from aiconnector.errors import NotFound
from aiconnector.web.admin.access import AdminUser, render_admin
from aiconnector.web.admin.admin_routes_misc import time_html
from aiconnector.web.pages import see_other
from aiconnector.web.state import WebState

# How each kind of client got here, in the words a site owner uses.
HOW_REGISTERED = {
    "dynamic": "Registered itself (dynamic client registration)",
    "metadata_document": "Described by its own metadata document (URL client ID)",
    "pre_registered": "Added by the site owner",
    "device": "Added by the site owner for headless agents (device sign-in)",
}


def how_registered(summary: ClientSummary) -> str:
    record = summary.record
    if record.kind == USER_REGISTERED:
        who = record.registered_by or "a user who has since been removed"
        return f"Registered by {who} on the Add Connection page (not an administrator); removed when unused"
    return HOW_REGISTERED.get(record.kind, record.kind)


@dataclass(frozen=True, slots=True)
class ClientConnection:
    id: str
    agent_name: str
    username: str
    active: bool


@dataclass(frozen=True, slots=True)
class ClientView:
    summary: ClientSummary
    how: str
    connections: tuple[ClientConnection, ...]

    @property
    def active_count(self) -> int:
        return sum(1 for c in self.connections if c.active)


async def connections_by_client(state: WebState) -> dict[str, list[ClientConnection]]:
    """Every connection made through a client, active first, in one query (the connections
    module lists by user, not by client)."""
    stmt = (
        select(
            Connection.id, Connection.agent_name, User.username, Connection.client_id, Connection.revoked_at
        )
        .join(User, User.id == Connection.user_id)
        .where(Connection.client_id.is_not(None))
        .order_by(Connection.created_at.desc(), Connection.id.desc())
    )
    grouped: dict[str, list[ClientConnection]] = defaultdict(list)
    async with state.sessions() as session:
        for conn_id, agent, username, client_id, revoked_at in (await session.execute(stmt)).all():
            grouped[client_id].append(ClientConnection(conn_id, agent, username, revoked_at is None))
    for rows in grouped.values():
        rows.sort(key=lambda c: not c.active)  # stable: newest first within each group
    return grouped


async def clients_page(request: Request, state: WebState, user: AdminUser) -> Response:
    summaries = await list_clients(state.sessions)
    by_client = await connections_by_client(state)
    clients = [
        ClientView(s, how_registered(s), tuple(by_client.get(s.record.client_id, ())))
        for s in reversed(summaries)  # newest first: the one just registered is the one asked about
    ]
    params = request.query_params
    revoked = params.get("revoked", "")
    return render_admin(
        "admin/clients.html",
        state,
        user,
        active="clients",
        clients=clients,
        deleted=params.get("deleted") == "1",
        revoked=int(revoked) if revoked.isdigit() and len(revoked) < 7 else 0,
        missing=params.get("missing") == "1",
        when=time_html,
    )


async def delete_client_post(request: Request, state: WebState, user: AdminUser) -> Response:
    """Revoke the client's connections, delete it, and 303 back to the list with the count."""
    form = await request.form()
    client_id = form.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        return see_other("/admin/clients?missing=1")
    try:
        revoked = await delete_client(state.sessions, client_id, audit=state.audit, bus=state.bus)
    except NotFound:
        return see_other("/admin/clients?missing=1")
    return see_other("/admin/clients?" + urlencode({"deleted": 1, "revoked": revoked}))
