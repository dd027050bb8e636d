"""``kill -9`` in the middle of a write burst leaves no change without its audit event
(docs/security.md, "Audit log"), on SQLite and PostgreSQL.

A real ``aiconnector serve`` takes, all at once: ``create_post`` calls over HTTP with an
application password (a mutating tool: its event is written ahead), RFC 7009 revocations of
access and refresh tokens, dynamic client registrations, and users and application passwords
made in the admin UI. Every other kind of work is paced by the posts, so every kind is still
under way when the process is killed after ``KILL_AFTER`` acknowledged posts. Then the
database must hold, for every change that exists, its event: each post has the ``tool_call``
of the request that made it (matched by request id, which is also the post's title), and an
acknowledged one says ``success``; each revoked token has ``token.revoked`` or its connection
``connection.revoked``; each client ``client.registered``; each user ``user.created``; each
application password its ``connection.created``. Zero missing."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from aiconnector.config import Settings
from aiconnector.core.app_passwords import create_app_password
from aiconnector.core.clients import create_pre_registered_client
from aiconnector.db.models import AppPassword, AuditEvent, Connection, OAuthClient, OAuthToken, Post, User
from aiconnector.runtime import Runtime, open_runtime
from aiconnector.security import sha256_hex
from tests.admin.conftest import csrf_of
from tests.conftest import ADMIN_PASSWORD
from tests.ops.conftest import ACCEPT, ServeProcess, basic, serve_process, tool_call
from tests.support import DatabaseUnderTest, mint_oauth_connection, run_sync

KILL_AFTER = 80  # acknowledged create_post calls before the kill
POST_WORKERS = 6
TOKEN_PAIRS = 300  # more than the burst gets through: revocations are still running at the kill
# Other work per acknowledged post, so each kind keeps going until the kill.
REVOKES_PER_POST, POSTS_PER_REGISTRATION, POSTS_PER_USER, POSTS_PER_APP_PASSWORD = 1, 2, 10, 5
PREFIX = "k9"
REDIRECT = "http://127.0.0.1:7777/callback"
GENEROUS = {"AICONNECTOR_REGISTRATIONS_PER_MINUTE": "1000000"}


def in_runtime(database: DatabaseUnderTest, data_dir: Path, work: Callable[[Runtime], Awaitable[Any]]) -> Any:  # noqa: ANN401
    async def run() -> Any:  # noqa: ANN401
        settings = Settings(data_dir=data_dir, database_url=database.url)
        async with open_runtime(settings, apply_migrations=False) as rt:
            return await work(rt)

    return run_sync(run())


@dataclass
class Credentials:
    app_password: str
    client_id: str
    tokens: list[tuple[str, str]]  # (access or refresh, the token), one per connection


def credentials(database: DatabaseUnderTest, data_dir: Path, resource: str) -> Credentials:
    async def make(rt: Runtime) -> Credentials:
        password, _ = await create_app_password(rt.sessions, "admin", name="kill -9", audit=rt.audit)
        client = await create_pre_registered_client(rt.sessions, name="revoker", redirect_uris=[REDIRECT])
        tokens = []
        for n in range(TOKEN_PAIRS):
            _, pair = await mint_oauth_connection(
                rt.sessions,
                rt.settings,
                scopes="content:read",
                resource=resource,
                client_id=client.record.client_id,
            )
            tokens.append(("refresh", pair.refresh_token) if n % 2 else ("access", pair.access_token))
        return Credentials(password, client.record.client_id, tokens)

    return in_runtime(database, data_dir, make)


@dataclass
class Burst:
    """What the server acknowledged before it died, and how each kind of work ended."""

    posts: set[str] = field(default_factory=set)
    revoked: set[str] = field(default_factory=set)  # tokens whose revocation answered 200
    stopped_by: dict[str, str] = field(default_factory=dict)
    killed: bool = False
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def posted(self, title: str) -> None:
        async with self.progress:
            self.posts.add(title)
            self.progress.notify_all()

    async def paced(self, posts_needed: int) -> None:
        """Wait for that many acknowledged posts (or the kill: the next request then fails)."""
        async with self.progress:
            await self.progress.wait_for(lambda: self.killed or len(self.posts) >= posts_needed)

    async def kill(self, server: ServeProcess) -> None:
        await self.paced(KILL_AFTER)
        os.killpg(server.proc.pid, signal.SIGKILL)
        async with self.progress:
            self.killed = True
            self.progress.notify_all()


async def drive(server: ServeProcess, creds: Credentials) -> Burst:
    burst = Burst()
    counter = iter(range(10**6))
    limits = httpx.Limits(max_connections=20)

    async def until_killed(kind: str, work: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=limits) as http:
            try:
                await work(http)
            except httpx.TransportError as exc:  # the server is gone: this kind is done
                burst.stopped_by[kind] = type(exc).__name__

    async def posts(http: httpx.AsyncClient) -> None:
        auth = basic("admin", creds.app_password)
        while True:
            title = f"{PREFIX}-post-{next(counter)}"
            response = await http.post(
                "/mcp",
                json=tool_call("create_post", {"title": title, "content": "written in a burst"}),
                headers={**ACCEPT, **auth, "X-Request-Id": title},
            )
            assert response.status_code == 200, response.text
            assert response.json()["result"]["isError"] is False, response.text
            await burst.posted(title)

    async def revocations(http: httpx.AsyncClient) -> None:
        for n, (_, token) in enumerate(creds.tokens):
            await burst.paced(n // REVOKES_PER_POST)
            response = await http.post("/oauth/revoke", data={"token": token, "client_id": creds.client_id})
            assert response.status_code == 200, response.text
            burst.revoked.add(token)

    async def registrations(http: httpx.AsyncClient) -> None:
        for n in range(10**6):
            await burst.paced(n * POSTS_PER_REGISTRATION)
            body = {"client_name": f"{PREFIX}-reg-{n}", "redirect_uris": [REDIRECT]}
            assert (await http.post("/oauth/register", json=body)).status_code == 201

    async def admin_ui(http: httpx.AsyncClient) -> None:
        login = {"username": "admin", "password": ADMIN_PASSWORD, "next": "/admin"}
        response = await http.post("/login", data={**login, "csrf": csrf_of((await http.get("/login")).text)})
        assert response.status_code == 303, response.text
        csrf = csrf_of((await http.get("/admin/profile")).text)
        for n in range(10**6):
            await burst.paced(n * POSTS_PER_USER)
            user = {"username": f"{PREFIX}-user-{n}", "email": "", "role": "subscriber"}
            response = await http.post(
                "/admin/users", data={**user, "password": "k9-password-1", "csrf": csrf}
            )
            assert response.status_code == 303, response.text
            for m in range(POSTS_PER_USER // POSTS_PER_APP_PASSWORD):
                await burst.paced(n * POSTS_PER_USER + m * POSTS_PER_APP_PASSWORD)
                name = f"{PREFIX}-ap-{n}-{m}"
                response = await http.post("/admin/profile", data={"name": name, "csrf": csrf})
                assert response.status_code == 303, response.text

    await asyncio.gather(
        *(until_killed("posts", posts) for _ in range(POST_WORKERS)),
        until_killed("revocations", revocations),
        until_killed("registrations", registrations),
        until_killed("admin", admin_ui),
        burst.kill(server),
    )
    return burst


@dataclass
class Stored:
    post_titles: set[str]
    tool_calls: dict[str, str]  # request id -> outcome
    access_revoked: set[str]  # connection ids with a revoked access token
    connections_revoked: set[str]
    events: dict[str, list[AuditEvent]]
    clients: set[str]
    users: set[int]
    app_password_connections: set[str]
    tokens: dict[str, OAuthToken]


def stored(database: DatabaseUnderTest, data_dir: Path, creds: Credentials) -> Stored:
    async def read(rt: Runtime) -> Stored:
        async with rt.sessions() as session:
            events: dict[str, list[AuditEvent]] = {}
            for row in await session.scalars(select(AuditEvent)):
                events.setdefault(row.event, []).append(row)
            tokens = {t.token_hash: t for t in await session.scalars(select(OAuthToken))}
            revoked = await session.scalars(select(Connection.id).where(Connection.revoked_at.is_not(None)))
            like = f"{PREFIX}-%"
            return Stored(
                post_titles=set(await session.scalars(select(Post.title).where(Post.title.like(like)))),
                tool_calls={e.detail.get("request_id", ""): e.outcome for e in events.get("tool_call", [])},
                access_revoked={
                    t.connection_id
                    for t in tokens.values()
                    if t.kind == "access" and t.revoked_at is not None
                },
                connections_revoked=set(revoked),
                events=events,
                clients=set(
                    await session.scalars(select(OAuthClient.client_id).where(OAuthClient.name.like(like)))
                ),
                users=set(await session.scalars(select(User.id).where(User.username.like(like)))),
                app_password_connections=set(
                    await session.scalars(
                        select(AppPassword.connection_id).where(AppPassword.name.like(like))
                    )
                ),
                tokens=tokens,
            )

    return in_runtime(database, data_dir, read)


def test_kill_9_mid_burst_loses_no_event_of_a_change(database: DatabaseUnderTest, tmp_path: Path) -> None:
    with serve_process(database, tmp_path, env=GENEROUS) as server:
        creds = credentials(database, tmp_path, f"{server.base_url}/mcp")
        burst = run_sync(drive(server, creds))
        assert server.wait(timeout=60) == -signal.SIGKILL
    assert set(burst.stopped_by) == {"posts", "revocations", "registrations", "admin"}, burst.stopped_by
    after = stored(database, tmp_path, creds)

    def with_event(event: str, key: Callable[[AuditEvent], Any]) -> set[Any]:  # noqa: ANN401
        return {key(e) for e in after.events.get(event, [])}

    # Mutating tool calls: every post has the event of the call that made it.
    assert len(after.post_titles) >= len(burst.posts) >= KILL_AFTER
    assert sorted(after.post_titles - set(after.tool_calls)) == []
    assert {t: after.tool_calls[t] for t in burst.posts if after.tool_calls[t] != "success"} == {}

    # RFC 7009: every revoked access token, every connection ended by its refresh token.
    assert burst.revoked, "some revocations were acknowledged before the kill"
    assert sorted(after.access_revoked - with_event("token.revoked", lambda e: e.connection_id)) == []
    assert (
        sorted(after.connections_revoked - with_event("connection.revoked", lambda e: e.connection_id)) == []
    )
    for token in burst.revoked:  # and what was acknowledged did happen
        row = after.tokens[sha256_hex(token)]
        assert row.revoked_at is not None or row.connection_id in after.connections_revoked

    # Registrations, users and application passwords made over HTTP.
    assert after.clients and after.users and after.app_password_connections
    assert sorted(after.clients - with_event("client.registered", lambda e: e.detail.get("client_id"))) == []
    assert sorted(after.users - with_event("user.created", lambda e: e.user_id)) == []
    assert (
        sorted(after.app_password_connections - with_event("connection.created", lambda e: e.connection_id))
        == []
    )
