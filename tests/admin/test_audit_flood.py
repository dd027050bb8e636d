"""An unauthenticated flood does not bury real security events (docs/security.md, "Audit
log"): 500 bad bearer tokens from one address are counted on one row per minute, and the
security filter of /admin/audit still shows a replayed authorization code on its first page,
with the flood's count. On both databases, against the full server."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from sqlalchemy import select

from aiconnector.core.clients import create_pre_registered_client
from aiconnector.core.code_grant import s256
from aiconnector.core.scopes import DEFAULT_SCOPES
from aiconnector.core.tokens import create_authorization_code
from aiconnector.db.models import AuditEvent
from tests.admin.conftest import admin_client
from tests.conftest import LiveServer

FLOOD = 500
REDIRECT = "http://127.0.0.1:7777/callback"
VERIFIER = "v" * 64
ROW = re.compile(r'<tr class="[^"]*" id="event-(\d+)">(.*?)</tr>', re.DOTALL)
REPEATS = re.compile(r'class="badge repeats"[^>]*>×(\d+)<')


def replay_a_code(server: LiveServer) -> int:
    """Redeem one authorization code twice: the id of the ``security.code_replay`` event."""

    async def mint(rt: Any) -> tuple[str, str]:  # noqa: ANN401 - Runtime
        client = await create_pre_registered_client(rt.sessions, name="Replayer", redirect_uris=[REDIRECT])
        code = await create_authorization_code(
            rt.sessions,
            client=client.record,
            user_id=1,
            redirect_uri=REDIRECT,
            code_challenge=s256(VERIFIER),
            scopes=DEFAULT_SCOPES,
            resource=server.settings.mcp_url,
            agent_name="replayer",
        )
        return client.record.client_id, code

    client_id, code = server.run(mint)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": client_id,
        "code_verifier": VERIFIER,
    }
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert http.post("/oauth/token", data=form).status_code == 200
        assert http.post("/oauth/token", data=form).json()["error"] == "invalid_grant"
    [event] = stored(server, "security.code_replay")
    return event.id


def stored(server: LiveServer, event: str) -> list[AuditEvent]:
    async def read(rt: Any) -> list[AuditEvent]:  # noqa: ANN401 - Runtime
        async with rt.sessions() as session:
            return list(await session.scalars(select(AuditEvent).where(AuditEvent.event == event)))

    return server.run(read)


def bad_bearer_rows(server: LiveServer) -> list[AuditEvent]:
    return [r for r in stored(server, "auth.failure") if r.detail.get("method") == "bearer"]


def counted(rows: list[AuditEvent]) -> int:
    return sum(int(r.detail.get("count", 1)) for r in rows)


def test_a_bad_token_flood_is_counted_and_the_security_filter_stays_useful(live_server: LiveServer) -> None:
    replay_id = replay_a_code(live_server)
    first_minute = int(time.time() // 60)
    with httpx.Client(base_url=live_server.base_url, timeout=30) as http:
        for n in range(FLOOD):
            response = http.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": n, "method": "tools/list"},
                headers={"Authorization": f"Bearer not-a-token-{n}", "Accept": "application/json"},
            )
            assert response.status_code == 401
    last_minute = int(time.time() // 60)

    rows: list[AuditEvent] = []
    for _ in range(200):  # the counts reach the database with the writer's next flush
        rows = bad_bearer_rows(live_server)
        if counted(rows) >= FLOOD:
            break
        time.sleep(0.05)
    assert counted(rows) == FLOOD
    assert len(rows) <= last_minute - first_minute + 1, "one row per minute the flood touched"

    with admin_client(live_server) as client:
        page = client.get("/admin/audit", params={"event": "security"})
    assert page.status_code == 200
    shown = {int(event_id): html for event_id, html in ROW.findall(page.text)}
    assert replay_id in shown, "the replayed code is on the first page of security events"
    flood_rows = [html for html in shown.values() if "<code>auth.failure</code>" in html]
    assert len(flood_rows) == len(rows)
    assert sum(int(m.group(1)) if (m := REPEATS.search(html)) else 1 for html in flood_rows) == FLOOD
