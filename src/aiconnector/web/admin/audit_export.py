"""``GET /admin/audit/export?format=csv|json&…filters``: the filtered audit log as a file.

The same filters and the same access rule as the page (``parse_audit_query``), so an export
holds exactly what the viewer may see. Rows are streamed in keyset batches: exporting a year
of events holds one batch in memory, not the year.

CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``,
tab or carriage return) get a leading apostrophe: event details hold text chosen by anyone on
the internet (a username typed at the sign-in form, a client name), and the file is meant to
be opened in Excel or Sheets (OWASP "CSV injection")."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from aiconnector.core.audit import AuditFilter, AuditRecord, is_security_event
from aiconnector.web.admin.access import ADMIN_CSP, AdminUser
from aiconnector.web.admin.audit import parse_audit_query
from aiconnector.web.pages import error_page
from aiconnector.web.state import WebState

CSV_COLUMNS = (
    "id",
    "at",
    "event",
    "outcome",
    "security",
    "user_id",
    "connection_id",
    "ip",
    "user_agent",
    "detail",
)
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A text cell a spreadsheet will show as text, never evaluate; other values unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_TRIGGERS):
        return "'" + value
    return value


def csv_row(record: AuditRecord) -> list[object]:
    data = record.to_json()
    data["security"] = "yes" if is_security_event(record.event) else ""
    data["detail"] = json.dumps(record.detail, sort_keys=True, ensure_ascii=False, default=str)
    return [spreadsheet_safe(data[column]) for column in CSV_COLUMNS]


def _csv_line(cells: Iterable[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue()


async def _csv_chunks(records: AsyncIterator[AuditRecord]) -> AsyncIterator[str]:
    yield _csv_line(CSV_COLUMNS)
    async for record in records:
        yield _csv_line(csv_row(record))


async def _json_chunks(records: AsyncIterator[AuditRecord]) -> AsyncIterator[str]:
    """A JSON array written one event per line, so it streams and still parses as one value."""
    separator = "[\n"
    async for record in records:
        data: dict[str, Any] = record.to_json()
        data["security"] = is_security_event(record.event)
        yield separator + json.dumps(data, ensure_ascii=False, default=str)
        separator = ",\n"
    yield "[]\n" if separator == "[\n" else "\n]\n"


async def _empty() -> AsyncIterator[AuditRecord]:
    return
    yield  # an async generator that yields nothing


FORMATS = {"csv": ("text/csv; charset=utf-8", _csv_chunks), "json": ("application/json", _json_chunks)}


async def audit_export(request: Request, state: WebState, user: AdminUser) -> Response:
    kind = request.query_params.get("format", "csv")
    if kind not in FORMATS:
        return error_page(state.site_host, "Unknown format", "Export as csv or json.", status_code=400)
    query = await parse_audit_query(request, state, user)
    where: AuditFilter = query.where
    records = _empty() if query.impossible else state.audit.iter_matching(where)
    media_type, chunks = FORMATS[kind]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        chunks(records),
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="audit-{stamp}.{kind}"',
            "Content-Security-Policy": ADMIN_CSP,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
