"""The audit log page and its exports (/admin/audit, /admin/audit/export), on both databases:
who sees what, every filter, keyset paging, CSV/JSON content (formula injection neutralised),
security events standing out, empty states, and the page in a real browser at two widths."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from aiconnector.core.connections import new_connection
from aiconnector.db.models import AuditEvent
from tests.admin.conftest import USER_PASSWORD, admin_client, ensure_user, shot, signed_in_page
from tests.conftest import LiveServer

PAGED_EVENT = "test.paged"  # 60 events: more than one page of 50
FORMULA = '=HYPERLINK("http://evil.example","x")'
ROW_ID = re.compile(r'<tr class="([^"]*)" id="event-(\d+)"')


@dataclass(frozen=True)
class Seed:
    alice_id: int
    admin_id: int
    alice_conn: str
    admin_conn: str
    paged_ids: list[int]  # newest first
    reuse_id: int  # security.refresh_token_reuse on alice's connection
    formula_id: int  # login.failure whose detail starts with "="
    old_id: int  # alice's event from 40 days ago


@pytest.fixture(scope="module")
def seed(live_server: LiveServer) -> Seed:
    """Users, connections and events with known timestamps, written straight to the database."""
    alice_id = ensure_user(live_server, "alice", role="author")
    admin_id = ensure_user(live_server, "admin")
    now = datetime.now(UTC)

    async def make(rt: Any) -> Seed:  # noqa: ANN401 - Runtime
        alice_conn = new_connection(
            user_id=alice_id, agent_name="Alice's Claude", method="oauth", scopes="content:read"
        )
        admin_conn = new_connection(
            user_id=admin_id, agent_name="Admin bot", method="oauth", scopes="content:read"
        )

        def event(name: str, **values: Any) -> AuditEvent:  # noqa: ANN401
            values.setdefault("at", now - timedelta(minutes=5))
            values.setdefault("outcome", "success")
            values.setdefault("detail", {})
            return AuditEvent(event=name, **values)

        async with rt.sessions.begin() as session:
            session.add_all([alice_conn, admin_conn])
        paged = [
            event(PAGED_EVENT, user_id=admin_id, connection_id=admin_conn.id, detail={"n": i}, ip="10.0.0.1")
            for i in range(60)
        ]
        reuse = event(
            "security.refresh_token_reuse", outcome="failure", user_id=alice_id, connection_id=alice_conn.id
        )
        formula = event("login.failure", outcome="failure", detail={"username": FORMULA}, ip="10.0.0.9")
        old = event("test.old", user_id=alice_id, at=now - timedelta(days=40))
        async with rt.sessions.begin() as session:
            for row in [*paged, reuse, formula, old]:
                session.add(row)
                await session.flush()  # one at a time: ids in insertion order
        return Seed(
            alice_id,
            admin_id,
            alice_conn.id,
            admin_conn.id,
            [row.id for row in reversed(paged)],
            reuse.id,
            formula.id,
            old.id,
        )

    return live_server.run(make)


def shown(client: httpx.Client, url: str, **params: str) -> tuple[list[int], httpx.Response]:
    """The event ids listed on a page, top to bottom."""
    response = client.get(url, params=params) if params else client.get(url)  # params={} drops url's query
    assert response.status_code == 200, response.text
    return [int(m.group(2)) for m in ROW_ID.finditer(response.text)], response


def link(html: str, label: str) -> str | None:
    match = re.search(rf'href="([^"]+)">{re.escape(label)}</a>', html)
    return match.group(1).replace("&amp;", "&") if match else None


def test_signed_out_visitors_go_to_sign_in(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.base_url) as client:
        for path in ("/admin/audit", "/admin/audit/export?format=csv"):
            response = client.get(path)
            assert response.status_code == 303
            assert response.headers["location"].startswith("/login?next=")


def test_keyset_pages_cover_every_event_once(live_server: LiveServer, seed: Seed) -> None:
    with admin_client(live_server) as client:
        first, page1 = shown(client, "/admin/audit", event=PAGED_EVENT)
        assert first == seed.paged_ids[:50]
        assert link(page1.text, "← Newer") is None
        older = link(page1.text, "Older →")
        assert older and "before=" in older and "event=test.paged" in older
        second, page2 = shown(client, older)
        assert second == seed.paged_ids[50:]
        assert link(page2.text, "Older →") is None
        newer = link(page2.text, "← Newer")
        assert newer and "after=" in newer
        back, _ = shown(client, newer)
        assert back == first, "going back a page shows exactly the first page again"


def test_filters_narrow_the_list(live_server: LiveServer, seed: Seed) -> None:
    with admin_client(live_server) as client:
        ids, _ = shown(client, "/admin/audit", user="alice")
        assert seed.reuse_id in ids and seed.old_id in ids and seed.paged_ids[0] not in ids
        ids, _ = shown(client, "/admin/audit", connection=seed.alice_conn)
        assert ids == [seed.reuse_id]
        ids, _ = shown(client, "/admin/audit", outcome="failure", user="alice")
        assert ids == [seed.reuse_id]
        ids, _ = shown(client, "/admin/audit", event="security")
        assert seed.reuse_id in ids and seed.formula_id in ids and seed.paged_ids[0] not in ids
        ids, _ = shown(client, "/admin/audit", user="alice", range="7d")
        assert seed.old_id not in ids and seed.reuse_id in ids
        fifty_days_ago = (datetime.now(UTC) - timedelta(days=50)).strftime("%Y-%m-%dT%H:%M")
        thirty_days_ago = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
        ids, _ = shown(
            client, "/admin/audit", user="alice", **{"from": fifty_days_ago, "to": thirty_days_ago}
        )
        assert ids == [seed.old_id]
        ids, page = shown(client, "/admin/audit", user="nobody-by-this-name")
        assert (
            ids == []
            and "There is no user named" in page.text
            and "No events match these filters." in page.text
        )
        ids, page = shown(client, "/admin/audit", **{"from": "yesterday"})
        assert ids and "is not a date and time" in page.text


def test_security_events_are_marked(live_server: LiveServer, seed: Seed) -> None:
    with admin_client(live_server) as client:
        response = client.get("/admin/audit", params={"user": "alice"})
    classes = {int(m.group(2)): m.group(1) for m in ROW_ID.finditer(response.text)}
    assert classes[seed.reuse_id] == "security"
    assert classes[seed.old_id] == ""
    assert response.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
    assert '<script src="/static/admin-time.js" defer></script>' in response.text
    assert re.search(
        r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ">\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>',
        response.text,
    )


def test_others_see_only_their_own_events(live_server: LiveServer, seed: Seed) -> None:
    with admin_client(live_server, "alice", USER_PASSWORD) as client:
        ids, page = shown(client, "/admin/audit")
        assert seed.reuse_id in ids and seed.old_id in ids
        assert seed.formula_id not in ids and not set(seed.paged_ids) & set(ids)
        assert 'id="f-user"' not in page.text, "no user filter for non-administrators"
        ids, _ = shown(client, "/admin/audit", user="admin")  # the user filter is ignored
        assert not set(seed.paged_ids) & set(ids)
        ids, _ = shown(client, "/admin/audit", connection=seed.admin_conn)
        assert ids == []
        exported = json.loads(client.get("/admin/audit/export", params={"format": "json"}).text)
    exported_ids = {e["id"] for e in exported}
    assert seed.reuse_id in exported_ids and seed.formula_id not in exported_ids
    assert not set(seed.paged_ids) & exported_ids
    assert all(e["user_id"] == seed.alice_id or e["connection_id"] == seed.alice_conn for e in exported)


def test_csv_export_is_complete_and_neutralises_formulas(live_server: LiveServer, seed: Seed) -> None:
    with admin_client(live_server) as client:
        response = client.get("/admin/audit/export", params={"format": "csv", "event": PAGED_EVENT})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [int(r["id"]) for r in rows] == seed.paged_ids, "every page of events, newest first"
        assert json.loads(rows[0]["detail"]) == {"n": 59}
        failures = client.get("/admin/audit/export", params={"format": "csv", "event": "login.failure"})
    row = next(r for r in csv.DictReader(io.StringIO(failures.text)) if int(r["id"]) == seed.formula_id)
    assert row["security"] == "yes"
    assert json.loads(row["detail"])["username"] == FORMULA  # the JSON cell starts with "{": safe as is
    for cells in csv.reader(io.StringIO(failures.text)):
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells), cells


def test_spreadsheet_safe_cells() -> None:
    from aiconnector.web.admin.audit_export import spreadsheet_safe

    for dangerous in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert spreadsheet_safe(dangerous) == "'" + dangerous
    assert spreadsheet_safe("conn_abc") == "conn_abc"
    assert spreadsheet_safe(42) == 42


def test_json_export_matches_the_filters(live_server: LiveServer, seed: Seed) -> None:
    with admin_client(live_server) as client:
        response = client.get("/admin/audit/export", params={"format": "json", "connection": seed.alice_conn})
        assert response.headers["content-type"].startswith("application/json")
        events = response.json()
        assert [e["id"] for e in events] == [seed.reuse_id]
        assert events[0]["security"] is True and events[0]["event"] == "security.refresh_token_reuse"
        assert (
            client.get("/admin/audit/export", params={"format": "json", "user": "nobody-here"}).json() == []
        )
        assert client.get("/admin/audit/export", params={"format": "xml"}).status_code == 400


def test_audit_page_is_read_only(live_server: LiveServer) -> None:
    with admin_client(live_server) as client:
        assert client.post("/admin/audit", data={}).status_code == 403  # no CSRF token
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/admin/audit").text)
        assert token
        assert client.post("/admin/audit", data={"csrf": token.group(1)}).status_code == 405


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
def test_audit_page_in_a_browser(
    live_server: LiveServer, seed: Seed, browser: Any, width: int, height: int
) -> None:  # noqa: ANN401
    page = signed_in_page(browser, live_server, width=width, height=height, next_path="/admin/audit")
    try:
        page.get_by_label("Event type").select_option("security")
        page.get_by_label("Outcome").select_option("failure")
        page.get_by_role("button", name="Apply filters").click()
        page.wait_for_url(re.compile(r".*event=security.*"))
        row = page.locator(f"#event-{seed.reuse_id}")
        assert "security" in (row.get_attribute("class") or "")
        assert row.locator(".badge.security").is_visible()
        shot(page, live_server, f"admin-audit-{width}")
        # The page's own content fits its column (the side navigation is the layout's business).
        assert page.evaluate(
            "document.querySelector('main').scrollWidth <= document.querySelector('main').clientWidth"
        )
        page.get_by_label("Event type").select_option(PAGED_EVENT)
        page.get_by_label("Outcome").select_option("")
        page.get_by_role("button", name="Apply filters").click()
        page.get_by_role("link", name="Older →").click()
        assert page.locator("tbody tr").count() == 10
        page.goto(f"{live_server.base_url}/admin/audit?event=no.such.event")
        assert page.get_by_text("No events match these filters.").is_visible()
        shot(page, live_server, f"admin-audit-empty-{width}")
    finally:
        page.context.close()
