"""Narrowing a connection's scopes while it refreshes (security review, issue 12 finding 2).

The full server on both databases: an administrator narrows a connection in the admin UI while
eight refreshes of it run. Whatever the interleaving, afterwards every live token of the
connection carries at most the narrowed scopes, the admin saw the narrowing applied (303, not a
500 from a deadlock) and no refresh failed with a 5xx. Many trials, because a lost update or a
lock-order deadlock only shows up in some interleavings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from sqlalchemy import select

from aiconnector.core.clients import ClientRecord, create_pre_registered_client
from aiconnector.core.code_grant import s256
from aiconnector.core.tokens import create_authorization_code, verify_access_token
from aiconnector.db.models import Connection, OAuthToken
from aiconnector.runtime import Runtime, open_runtime
from tests.admin.conftest import csrf_of
from tests.conftest import ADMIN_PASSWORD, LiveServer
from tests.oauth.conftest import REDIRECT, new_verifier

TRIALS = 20
REFRESHES = 8
WIDE = frozenset({"content:read", "content:write"})
NARROW = "content:read"


@pytest_asyncio.fixture(loop_scope="session")
async def server_rt(live_server: LiveServer) -> AsyncIterator[Runtime]:
    async with open_runtime(live_server.settings, apply_migrations=False) as runtime:
        yield runtime


@pytest_asyncio.fixture(loop_scope="session")
async def admin(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """An administrator signed in through /login (the client keeps the session cookie)."""
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=60) as client:
        token = csrf_of((await client.get("/login")).text)
        signed_in = await client.post(
            "/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf": token, "next": "/admin"}
        )
        assert signed_in.status_code == 303, signed_in.text
        yield client


async def new_connection(
    server: LiveServer, rt: Runtime, http: httpx.AsyncClient, client: ClientRecord
) -> dict[str, str]:
    """A fresh OAuth connection with both wide scopes, through the code grant over HTTP."""
    verifier = new_verifier()
    code = await create_authorization_code(
        rt.sessions,
        client=client,
        user_id=1,
        redirect_uri=REDIRECT,
        code_challenge=s256(verifier),
        scopes=WIDE,
        resource=server.settings.mcp_url,
        agent_name="narrowing race",
    )
    response = await http.post(
        f"{server.base_url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": client.client_id,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_narrowing_during_concurrent_refreshes_always_sticks(
    live_server: LiveServer, server_rt: Runtime, admin: httpx.AsyncClient
) -> None:
    settings = live_server.settings
    client = (
        await create_pre_registered_client(server_rt.sessions, name="Race client", redirect_uris=[REDIRECT])
    ).record
    async with httpx.AsyncClient(timeout=60) as http:
        csrf: str | None = None
        for trial in range(TRIALS):
            tokens = await new_connection(live_server, server_rt, http, client)
            verified = await verify_access_token(
                server_rt.sessions, tokens["access_token"], resource=settings.mcp_url
            )
            assert verified is not None
            conn = verified[0].connection_id
            if csrf is None:
                csrf = csrf_of((await admin.get(f"/admin/connections/{conn}")).text)
            refresh = {
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": client.client_id,
            }
            token_url = f"{live_server.base_url}/oauth/token"
            # The narrowing goes out in the middle of the refreshes, so it meets them in
            # every stage: before their transaction, inside it, after it.
            before = [
                asyncio.ensure_future(http.post(token_url, data=refresh)) for _ in range(REFRESHES // 2)
            ]
            narrowing = admin.post(f"/admin/connections/{conn}/scopes", data={"csrf": csrf, "scope": NARROW})
            after = [
                asyncio.ensure_future(http.post(token_url, data=refresh))
                for _ in range(REFRESHES - REFRESHES // 2)
            ]
            narrowed, *refreshed = await asyncio.gather(narrowing, *before, *after)

            assert narrowed.status_code == 303, f"trial {trial}: {narrowed.status_code} {narrowed.text[:300]}"
            for response in refreshed:
                assert response.status_code in (200, 400), f"trial {trial}: {response.text[:300]}"
                if response.status_code == 400:
                    assert response.json()["error"] == "invalid_grant", response.text
            async with server_rt.sessions() as session:
                scopes = await session.scalar(select(Connection.scopes).where(Connection.id == conn))
                live = (
                    await session.execute(
                        select(OAuthToken.kind, OAuthToken.scopes).where(
                            OAuthToken.connection_id == conn, OAuthToken.revoked_at.is_(None)
                        )
                    )
                ).all()
            assert scopes == NARROW
            wide = [(kind, s) for kind, s in live if not set(s.split()) <= {NARROW}]
            assert not wide, f"trial {trial}: tokens kept scopes the connection no longer has: {wide}"
            # And as the resource server sees them: no access token passes the wide check.
            for response in refreshed:
                if response.status_code == 200:
                    seen = await verify_access_token(
                        server_rt.sessions, response.json()["access_token"], resource=settings.mcp_url
                    )
                    assert seen is not None and seen[0].scopes == {NARROW}, f"trial {trial}"
