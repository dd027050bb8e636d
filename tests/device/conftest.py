"""Device-flow tests run against the whole product (``create_app``) on a real uvicorn on
127.0.0.1, once per database, with short polling intervals so the rules can be exercised in
seconds. Helpers speak HTTP exactly as a device (httpx) and a person's browser (httpx with
cookies, or chromium in the browser tests) would."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update

from aiconnector.core.client_metadata import DEVICE_CODE_GRANT
from aiconnector.core.clients import create_device_client, create_pre_registered_client
from aiconnector.core.users import create_user
from aiconnector.db.models import AuditEvent, Connection, DeviceCode, RateCounter
from aiconnector.errors import Conflict
from aiconnector.security import sha256_hex
from tests.browser.conftest import browser, page  # noqa: F401 - re-exported fixtures
from tests.conftest import ADMIN_PASSWORD, LiveServer, make_settings
from tests.support import DatabaseUnderTest, free_port, serve_in_thread
from tests.web.conftest import CSRF_FIELD, REQUEST_FIELD, field

USER_PASSWORD = "correct horse battery"
USERS = (("editor1", "editor"), ("reader", "subscriber"), *((f"guesser{i}", "author") for i in range(1, 5)))
USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")


@contextmanager
def device_server(
    database: DatabaseUnderTest,
    tmp: Any,
    **overrides: Any,  # noqa: ANN401
) -> Iterator[LiveServer]:
    """The whole app with fast polling and room for many device-authorization requests."""
    from aiconnector.app import create_app

    port = free_port()
    values: dict[str, Any] = {
        "device_poll_interval": 1,
        "registrations_per_minute": 10_000,
        "auth_failures_per_minute": 10_000,
        "demo": False,
        **overrides,
    }
    settings = make_settings(database, tmp, port, **values)
    with serve_in_thread(create_app(settings), port) as base_url:
        server = LiveServer(base_url, settings, database)
        server.run(_seed)
        yield server


async def _seed(rt: Any) -> None:  # noqa: ANN401 - Runtime
    """Test users (a module's servers share one database, so the second finds them there)."""
    for username, role in USERS:
        with contextlib.suppress(Conflict):
            await create_user(rt.sessions, username, role=role, password=USER_PASSWORD)


@pytest.fixture(scope="module")
def server(database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with device_server(database, tmp_path_factory.mktemp("device")) as live:
        yield live


# --- the device's side -------------------------------------------------------------------------


@dataclass
class Device:
    """A device client and what it does over HTTP."""

    server: LiveServer
    client_id: str
    name: str

    def start(self, **form: str) -> httpx.Response:
        return httpx.post(
            f"{self.server.base_url}/oauth/device_authorization",
            data={"client_id": self.client_id, **form},
            timeout=30,
        )

    def begin(self, **form: str) -> dict[str, Any]:
        response = self.start(**form)
        assert response.status_code == 200, response.text
        return response.json()

    def poll(self, device_code: str, **form: str) -> httpx.Response:
        return httpx.post(
            f"{self.server.base_url}/oauth/token",
            data={
                "grant_type": DEVICE_CODE_GRANT,
                "device_code": device_code,
                "client_id": self.client_id,
                **form,
            },
            timeout=30,
        )


def new_device(server: LiveServer, name: str = "CI runner") -> Device:
    async def make(rt: Any) -> str:  # noqa: ANN401
        return (await create_device_client(rt.sessions, name=name)).record.client_id

    return Device(server, server.run(make), name)


def new_code_client(server: LiveServer) -> str:
    async def make(rt: Any) -> str:  # noqa: ANN401
        new = await create_pre_registered_client(
            rt.sessions, name="Code-only app", redirect_uris=["http://127.0.0.1:7777/cb"]
        )
        return new.record.client_id

    return server.run(make)


def error_of(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.json()["error"]


# --- the person's side ---------------------------------------------------------------------------


@contextmanager
def signed_in(
    server: LiveServer, username: str = "admin", password: str | None = None
) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, follow_redirects=False, timeout=30) as client:
        token = field(CSRF_FIELD, client.get("/login").text)
        response = client.post(
            "/login",
            data={
                "username": username,
                "password": password or (ADMIN_PASSWORD if username == "admin" else USER_PASSWORD),
                "csrf": token,
                "next": "/",
            },
        )
        assert response.status_code == 303, response.text
        yield client


def enter_code(client: httpx.Client, user_code: str) -> httpx.Response:
    """Open /device and submit ``user_code`` with the page's CSRF token."""
    form = client.get("/device")
    assert form.status_code == 200, form.text
    return client.post("/device", data={"csrf": field(CSRF_FIELD, form.text), "user_code": user_code})


def decide_on(
    client: httpx.Client, consent: httpx.Response, action: str, scopes: list[str] | None = None
) -> httpx.Response:
    assert consent.status_code == 200, consent.text
    checked = (
        scopes if scopes is not None else re.findall(r'name="scope" value="([^"]+)"\s+checked', consent.text)
    )
    data: dict[str, str | list[str]] = {
        "csrf": field(CSRF_FIELD, consent.text),
        "request": field(REQUEST_FIELD, consent.text),
        "action": action,
        "scope": checked,
    }
    return client.post("/device", data=data)


def approve(
    server: LiveServer, user_code: str, username: str = "admin", scopes: list[str] | None = None
) -> None:
    with signed_in(server, username) as client:
        done = decide_on(client, enter_code(client, user_code), "authorize", scopes)
        assert done.status_code == 200 and "Device connected" in done.text, done.text


# --- looking at the database ---------------------------------------------------------------------


def device_row(server: LiveServer, device_code: str) -> DeviceCode:
    async def fetch(rt: Any) -> DeviceCode:  # noqa: ANN401
        async with rt.sessions() as session:
            return await session.get(DeviceCode, sha256_hex(device_code))

    return server.run(fetch)


def set_device(server: LiveServer, device_code: str, **values: Any) -> None:  # noqa: ANN401
    async def write(rt: Any) -> None:  # noqa: ANN401
        async with rt.sessions.begin() as session:
            await session.execute(
                update(DeviceCode)
                .where(DeviceCode.device_code_hash == sha256_hex(device_code))
                .values(**values)
            )

    server.run(write)


def connection(server: LiveServer, connection_id: str) -> Connection:
    async def fetch(rt: Any) -> Connection:  # noqa: ANN401
        async with rt.sessions() as session:
            return await session.get(Connection, connection_id)

    return server.run(fetch)


def audit_events(
    server: LiveServer,
    event: str,
    match: Callable[[AuditEvent], bool] = lambda _e: True,
    *,
    wait: bool = True,
) -> list[AuditEvent]:
    """Events named ``event`` matching ``match``, newest first (waits up to 10 s for the
    batched writer when ``wait`` and none is there yet)."""

    async def fetch(rt: Any) -> list[AuditEvent]:  # noqa: ANN401
        async with rt.sessions() as session:
            rows = await session.scalars(
                select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id.desc())
            )
            return [row for row in rows if match(row)]

    deadline = time.monotonic() + (10 if wait else 0)
    while True:
        rows = server.run(fetch)
        if rows or time.monotonic() >= deadline:
            return rows
        time.sleep(0.2)


def forget_wrong_codes(server: LiveServer) -> None:
    """Start a test with no wrong codes on record (limits count them over a code lifetime)."""

    async def clear(rt: Any) -> None:  # noqa: ANN401
        async with rt.sessions.begin() as session:
            await session.execute(
                delete(AuditEvent).where(AuditEvent.event.in_(("device.code_rejected", "device.lockout")))
            )
            await session.execute(delete(RateCounter))

    server.run(clear)
