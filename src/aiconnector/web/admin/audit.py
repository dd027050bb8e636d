"""``GET /admin/audit``: the audit log, filtered, newest first, a page at a time.

Administrators see every event; anyone else sees only events about themselves or their own
connections (``AuditFilter.visible_to_user_id``), whatever filters they type into the URL.
The filters are plain GET parameters, so a filtered view can be bookmarked, shared with
another administrator, and exported (``audit_export``) exactly as shown.

Pages are keyset cursors on the event id (``before`` = older than, ``after`` = newer than):
new events arriving while someone reads never shift or repeat rows between pages.

A failure repeated from one source is one row per minute (``core.audit_repeats``), shown with
its count (×N), so a flood of bad tokens stays a line or two and the security filter keeps
showing the events that matter."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from aiconnector.core.audit import OUTCOMES, AuditFilter, AuditRecord, is_security_event
from aiconnector.core.users import list_users
from aiconnector.web.admin.access import AdminUser, render_admin
from aiconnector.web.admin.admin_routes_misc import time_html
from aiconnector.web.state import WebState

PAGE_SIZE = 50
SECURITY_CHOICE = "security"  # the event-type option meaning "every security event"
# Presets for the time range: most questions are "what happened lately".
RANGES: dict[str, tuple[str, timedelta]] = {
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(days=1)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
}
FILTER_FIELDS = ("user", "connection", "event", "outcome", "range", "from", "to")
DETAIL_PREVIEW_CHARS = 240


@dataclass
class AuditQuery:
    """What the filter form asked for, as the database filter plus what the form shows back.

    ``impossible`` is set when a filter names nothing that exists (an unknown user): the
    answer is then "no events", never "all events" as ignoring the filter would give."""

    where: AuditFilter
    values: dict[str, str]
    errors: list[str] = field(default_factory=list)
    impossible: bool = False

    @property
    def active(self) -> bool:
        return any(self.values.values())

    def url(self, path: str = "/admin/audit", **extra: str | int) -> str:
        """``path`` with the current filters (and ``extra``) as its query string."""
        params = {k: v for k, v in self.values.items() if v} | {k: str(v) for k, v in extra.items()}
        return f"{path}?{urlencode(params)}" if params else path


def _parse_time(raw: str) -> datetime:
    """An ``<input type=datetime-local>`` value (or full ISO 8601), read as UTC when it has
    no zone: the form labels these fields UTC, since the server cannot know the viewer's zone."""
    value = datetime.fromisoformat(raw)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def parse_audit_query(request: Request, state: WebState, user: AdminUser) -> AuditQuery:
    """Read the filter parameters; shared by the page and the export so both always agree."""
    params = request.query_params
    values = {name: params.get(name, "").strip()[:200] for name in FILTER_FIELDS}
    query = AuditQuery(AuditFilter(visible_to_user_id=None if user.is_admin else user.id), values)
    where: dict[str, Any] = {}

    username = values["user"]
    if username and user.is_admin:
        match = [u for u in await list_users(state.sessions) if u.username == username]
        if match:
            where["user_id"] = match[0].id
        else:
            query.errors.append(f"There is no user named “{username}”.")
            query.impossible = True
    elif username:
        values["user"] = ""  # others only ever see their own events; the filter means nothing
    if values["connection"]:
        where["connection_id"] = values["connection"]
    if values["event"] == SECURITY_CHOICE:
        where["security_only"] = True
    elif values["event"]:
        where["events"] = (values["event"],)
    if values["outcome"] in OUTCOMES:
        where["outcome"] = values["outcome"]
    else:
        values["outcome"] = ""
    if values["range"] in RANGES:
        where["since"] = datetime.now(UTC) - RANGES[values["range"]][1]
    else:
        values["range"] = ""
    for name, key in (("from", "since"), ("to", "until")):
        if not values[name]:
            continue
        try:
            moment = _parse_time(values[name])
        except ValueError:
            query.errors.append(f"“{values[name]}” is not a date and time; that filter was ignored.")
            values[name] = ""
            continue
        # The preset and the explicit bound both narrow: keep the later start.
        if key == "since" and where.get("since"):
            moment = max(moment, where["since"])
        where[key] = moment
    query.where = replace(query.where, **where)
    return query


def _cursor(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() and len(raw) < 19 else None


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One event as the table shows it."""

    record: AuditRecord
    username: str | None
    security: bool
    detail_text: str

    @classmethod
    def of(cls, record: AuditRecord, usernames: dict[int, str]) -> AuditRow:
        detail = json.dumps(record.detail, sort_keys=True, ensure_ascii=False, default=str)
        if detail == "{}":
            detail = ""
        elif len(detail) > DETAIL_PREVIEW_CHARS:
            detail = detail[: DETAIL_PREVIEW_CHARS - 1] + "…"
        return cls(
            record,
            usernames.get(record.user_id) if record.user_id is not None else None,
            is_security_event(record.event),
            detail,
        )


async def audit_page(request: Request, state: WebState, user: AdminUser) -> Response:
    query = await parse_audit_query(request, state, user)
    before = _cursor(request.query_params.get("before"))
    after = _cursor(request.query_params.get("after")) if before is None else None
    records: list[AuditRecord] = []
    if not query.impossible:
        records = await state.audit.query(
            limit=PAGE_SIZE + 1, before_id=before, after_id=after, matching=query.where
        )
    more = len(records) > PAGE_SIZE
    records = records[:PAGE_SIZE]
    if after is not None:
        records.reverse()  # read oldest-first to find the page just above; show newest-first
    newer = older = None
    if records:
        # A cursor in the URL means the page on its other side has at least that event.
        has_newer = more if after is not None else before is not None
        has_older = more if after is None else True
        newer = query.url(after=records[0].id) if has_newer else None
        older = query.url(before=records[-1].id) if has_older else None
    users = await list_users(state.sessions)
    usernames = {u.id: u.username for u in users}
    event_names = await state.audit.event_names()
    if query.values["event"] and query.values["event"] not in (SECURITY_CHOICE, *event_names):
        event_names.append(query.values["event"])
    return render_admin(
        "admin/audit.html",
        state,
        user,
        active="audit",
        rows=[AuditRow.of(r, usernames) for r in records],
        query=query,
        usernames=sorted(usernames.values()) if user.is_admin else [],
        event_names=event_names,
        security_choice=SECURITY_CHOICE,
        outcomes=OUTCOMES,
        ranges={key: label for key, (label, _) in RANGES.items()},
        newer_url=newer,
        older_url=older,
        paged=before is not None or after is not None,
        csv_url=query.url("/admin/audit/export", format="csv"),
        json_url=query.url("/admin/audit/export", format="json"),
        when=time_html,
    )
