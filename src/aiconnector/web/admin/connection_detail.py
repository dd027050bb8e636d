"""One connection (/admin/connections/{id}): what it may do, what it did, and the controls to
rename it, narrow its scopes (administrators) and revoke it (with a confirmation step).

A connection someone may not manage answers 404, not 403, so its existence is not revealed.
Revoking goes through ``core.connections.revoke_connection`` with the server's bus, which
drops cached credentials and cancels the connection's in-flight requests at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.connections import (
    ConnectionChangeError,
    ConnectionRecord,
    get_connection,
    revoke_connection,
    update_connection,
)
from aiconnector.core.scopes import ALL_SCOPES, SCOPE_DESCRIPTIONS, parse_scopes
from aiconnector.db.models import AuditEvent, utcnow
from aiconnector.errors import NotFound
from aiconnector.web.admin.access import AdminUser, render_admin
from aiconnector.web.admin.connections import METHOD_LABELS
from aiconnector.web.admin.svg_chart import Bucket, bar_chart
from aiconnector.web.admin.timefmt import time_tag
from aiconnector.web.pages import error_page, see_other
from aiconnector.web.state import WebState

RECENT_CALLS = 25
# Chart ranges: (bucket length, number of buckets, label format, label every Nth bucket).
RANGES = {
    "24h": (timedelta(hours=1), 24, "%H:%M", 4),
    "30d": (timedelta(days=1), 30, "%b %d", 5),
}
CHART_EVENT_CAP = 200_000
NOTICES = {
    "renamed": "The connection was renamed.",
    "scopes": "Scopes narrowed. The agent's next request is checked against the new scopes.",
    "revoked": "Connection revoked. The agent can no longer use it; requests in progress were stopped.",
}


async def _managed(state: WebState, user: AdminUser, connection_id: str) -> ConnectionRecord | None:
    """The connection, if this viewer may manage it."""
    try:
        record = await get_connection(state.sessions, connection_id)
    except NotFound:
        return None
    return record if user.may_manage(record.user_id) else None


def _not_found(state: WebState) -> Response:
    return error_page(
        state.site_host, "Connection not found", "There is no such connection.", status_code=404
    )


def _floor(moment: datetime, step: timedelta) -> datetime:
    moment = moment.astimezone(UTC)
    if step >= timedelta(days=1):
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


async def requests_chart(state: WebState, connection_id: str, range_key: str) -> object:
    """Tool calls per hour (24 h) or per day (30 days) from the audit log, as SVG."""
    step, count, fmt, every = RANGES[range_key]
    end = _floor(utcnow(), step) + step
    start = end - step * count
    async with state.sessions() as session:
        stamps = await session.scalars(
            select(AuditEvent.at)
            .where(
                AuditEvent.connection_id == connection_id,
                AuditEvent.event == "tool_call",
                AuditEvent.at >= start,
            )
            .limit(CHART_EVENT_CAP)
        )
        counts = [0] * count
        for at in stamps:
            index = int(((at if at.tzinfo else at.replace(tzinfo=UTC)) - start) / step)
            if 0 <= index < count:
                counts[index] += 1
    buckets = []
    for i, n in enumerate(counts):
        begins = start + step * i
        title = (
            f"{begins:%Y-%m-%d %H:%M}–{begins + step:%H:%M} UTC"
            if step < timedelta(days=1)
            else (f"{begins:%Y-%m-%d} UTC")
        )
        buckets.append(Bucket(begins.strftime(fmt), title, n))
    label = "last 24 hours, per hour" if range_key == "24h" else "last 30 days, per day"
    return bar_chart(buckets, title=f"Tool calls, {label} (UTC)", label_every=every)


async def _render(
    request: Request,
    state: WebState,
    user: AdminUser,
    record: ConnectionRecord,
    *,
    confirming: bool = False,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    range_key = request.query_params.get("range", "24h")
    range_key = range_key if range_key in RANGES else "24h"
    calls = await state.audit.query(connection_id=record.id, events=["tool_call"], limit=RECENT_CALLS)
    response = render_admin(
        "admin/connection_detail.html",
        state,
        user,
        active="connections",
        c=record,
        scopes=record.scopes.split(),
        descriptions=SCOPE_DESCRIPTIONS,
        method_label=METHOD_LABELS.get(record.method, record.method),
        calls=calls,
        chart=await requests_chart(state, record.id, range_key),
        range_key=range_key,
        confirming=confirming and record.active,
        notice=NOTICES.get(request.query_params.get("done", "")),
        error=error,
        time_tag=time_tag,
    )
    response.status_code = status_code
    return response


async def detail_get(request: Request, state: WebState, user: AdminUser) -> Response:
    record = await _managed(state, user, request.path_params["id"])
    if record is None:
        return _not_found(state)
    return await _render(request, state, user, record)


async def _change(
    request: Request, state: WebState, user: AdminUser, done: str, **change: object
) -> Response:
    """Apply a rename or a narrowing; on a refused change show the page again with why."""
    record = await _managed(state, user, request.path_params["id"])
    if record is None:
        return _not_found(state)
    try:
        await update_connection(
            state.sessions, record.id, audit=state.audit, bus=state.bus, changed_by=user.id, **change
        )
    except ConnectionChangeError as exc:
        return await _render(request, state, user, record, error=str(exc), status_code=400)
    return see_other(f"/admin/connections/{record.id}?done={done}")


async def rename_post(request: Request, state: WebState, user: AdminUser) -> Response:
    name = (await request.form()).get("name")
    return await _change(request, state, user, "renamed", agent_name=name if isinstance(name, str) else "")


async def scopes_post(request: Request, state: WebState, user: AdminUser) -> Response:
    """Administrators only (the route says so): narrowing is a site-owner decision."""
    chosen = [v for v in (await request.form()).getlist("scope") if isinstance(v, str) and v in ALL_SCOPES]
    scopes = parse_scopes(chosen, default=frozenset())
    return await _change(request, state, user, "scopes", scopes=scopes)


async def revoke_get(request: Request, state: WebState, user: AdminUser) -> Response:
    """The confirmation step (works without script): the connection page with a confirm panel."""
    record = await _managed(state, user, request.path_params["id"])
    if record is None:
        return _not_found(state)
    return await _render(request, state, user, record, confirming=True)


async def revoke_post(request: Request, state: WebState, user: AdminUser) -> Response:
    record = await _managed(state, user, request.path_params["id"])
    if record is None:
        return _not_found(state)
    reason = (await request.form()).get("reason")
    reason = " ".join(reason.split()) if isinstance(reason, str) else ""
    await revoke_connection(
        state.sessions,
        record.id,
        audit=state.audit,
        bus=state.bus,
        revoked_by=user.id,
        reason=reason or f"revoked by {user.username} in the admin",
    )
    return see_other(f"/admin/connections/{record.id}?done=revoked")
