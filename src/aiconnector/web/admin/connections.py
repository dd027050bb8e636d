"""The connections list (/admin/connections) and its live-update feed (/admin/connections.json).

Administrators see every connection; anyone else sees only their own: the user filter is
forced to the viewer on the server, whatever the query string says. Pages are keyset pages
(``core.connections.page_connections``) so the list stays fast at 100,000 rows, and the
feed lets /static/admin-connections.js refresh the first page every few seconds without a
reload (the page is complete without it)."""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aiconnector.core.connections import STATUSES, ConnectionPage, ConnectionQuery, Cursor, page_connections
from aiconnector.core.scopes import ALL_SCOPES
from aiconnector.db.models import User
from aiconnector.web.admin.access import AdminUser, render_admin
from aiconnector.web.admin.timefmt import time_tag
from aiconnector.web.state import WebState

METHOD_LABELS = {
    "oauth": "OAuth",
    "device": "Device sign-in",
    "application_password": "Application password",
}
MAX_SEARCH = 100
USER_CHOICES = 500


def read_filters(request: Request, user: AdminUser) -> ConnectionQuery:
    """The filters in the query string, limited to what this viewer may see."""
    params = request.query_params
    user_id: int | None = None
    if user.is_admin:
        raw = params.get("user", "")
        user_id = int(raw) if raw.isdigit() else None
    else:
        user_id = user.id
    method = params.get("method") or None
    status = params.get("status") or None
    return ConnectionQuery(
        user_id=user_id,
        method=method if method in METHOD_LABELS else None,
        status=status if status in STATUSES else None,
        search=(params.get("q") or "").strip()[:MAX_SEARCH] or None,
    )


def filter_params(query: ConnectionQuery, user: AdminUser) -> dict[str, str]:
    """The filters as query parameters, for the pager links and the live feed."""
    values = {
        "user": str(query.user_id) if user.is_admin and query.user_id is not None else "",
        "method": query.method or "",
        "status": query.status or "",
        "q": query.search or "",
    }
    return {k: v for k, v in values.items() if v}


def signature(page: ConnectionPage) -> str:
    """Changes whenever anything shown on the page changes (new row, revoke, rename, activity),
    so the script can poll cheaply and refresh only when needed."""
    text = "|".join(f"{r.id}:{r.agent_name}:{r.scopes}:{r.revoked_at}:{r.last_active_at}" for r in page.rows)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


async def _user_choices(state: WebState) -> list[tuple[int, str]]:
    async with state.sessions() as session:
        rows = await session.execute(
            select(User.id, User.username).order_by(User.username).limit(USER_CHOICES)
        )
    return [(row.id, row.username) for row in rows]


async def connections_get(request: Request, state: WebState, user: AdminUser) -> Response:
    query = read_filters(request, user)
    before = Cursor.decode(request.query_params.get("before"))
    after = None if before else Cursor.decode(request.query_params.get("after"))
    page = await page_connections(state.sessions, query, before=before, after=after)
    params = filter_params(query, user)

    def link(**cursor: str) -> str:
        return "/admin/connections?" + urlencode({**params, **cursor})

    return render_admin(
        "admin/connections.html",
        state,
        user,
        active="connections",
        page=page,
        query=query,
        filtered=bool(params),
        first_page=before is None and after is None,
        older_url=link(before=page.older.encode()) if page.older else None,
        newer_url=link(after=page.newer.encode()) if page.newer else None,
        newest_url=link() if before or after else None,
        feed_url="/admin/connections.json?" + urlencode(params),
        signature=signature(page),
        users=await _user_choices(state) if user.is_admin else [],
        methods=METHOD_LABELS,
        all_scope_count=len(ALL_SCOPES),
        time_tag=time_tag,
    )


async def connections_json(request: Request, state: WebState, user: AdminUser) -> Response:
    """The first page under the same filters, newest first, plus its signature."""
    page = await page_connections(state.sessions, read_filters(request, user))
    return JSONResponse(
        {"signature": signature(page), "connections": [r.to_json() for r in page.rows]},
        headers={"Cache-Control": "no-store"},
    )
