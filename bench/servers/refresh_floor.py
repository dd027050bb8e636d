"""The floor for ``oauth_throughput.py``'s refresh-token benchmark: a minimal Starlette
``POST /oauth/token`` that does only the work a correct rotating refresh cannot skip.

Per request: parse the form, then one write transaction on the same tables, engine settings
and driver as our server —

1. the one-winner claim: ``UPDATE oauth_tokens SET rotated_at = now WHERE token_hash = ? AND
   kind = 'refresh' AND rotated_at IS NULL AND revoked_at IS NULL AND not expired AND its
   connection is not revoked AND client_id = ? RETURNING …`` (every validity check folded into
   the statement that takes the row lock, so no separate read is needed);
2. ``INSERT`` the successor refresh token (``RETURNING id``) and the new access token;
3. ``UPDATE`` the claimed token's ``replaced_by_id`` (the chain link our server keeps too);

and answer the same JSON as our token endpoint. Not done, by design: client lookup and
failure-limiter check, the grace window and reuse detection, scope narrowing, ORM objects.
Statements are built once at import (statement construction is a measurable cost in
SQLAlchemy; a floor should not pay it). The distance between our endpoint and this one is
what our grant's extra work costs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import bindparam, exists, insert, or_, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aiconnector.config import Settings
from aiconnector.core.tokens import ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX
from aiconnector.db.engine import create_engine
from aiconnector.db.models import Connection, OAuthToken, utcnow
from aiconnector.security import random_secret, sha256_hex
from bench.backend import serve, server_settings

_TOKENS = OAuthToken.__table__
_CONNECTIONS = Connection.__table__
_NOW = bindparam("now", type_=_TOKENS.c.rotated_at.type)
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_CLAIM = (
    update(_TOKENS)
    .where(
        _TOKENS.c.token_hash == bindparam("presented_hash"),
        _TOKENS.c.client_id == bindparam("presented_client"),
        _TOKENS.c.kind == "refresh",
        _TOKENS.c.rotated_at.is_(None),
        _TOKENS.c.revoked_at.is_(None),
        or_(_TOKENS.c.expires_at.is_(None), _TOKENS.c.expires_at > _NOW),
        exists().where(_CONNECTIONS.c.id == _TOKENS.c.connection_id, _CONNECTIONS.c.revoked_at.is_(None)),
    )
    .values(rotated_at=_NOW)
    .returning(_TOKENS.c.id, _TOKENS.c.connection_id, _TOKENS.c.scopes, _TOKENS.c.resource)
)
_INSERT = insert(_TOKENS)
_INSERT_RETURNING_ID = insert(_TOKENS).returning(_TOKENS.c.id)
_LINK = (
    update(_TOKENS)
    .where(_TOKENS.c.id == bindparam("predecessor"))
    .values(replaced_by_id=bindparam("successor"))
)


def _error(description: str) -> JSONResponse:
    return JSONResponse({"error": "invalid_grant", "error_description": description}, 400, _NO_STORE)


def create_app(settings: Settings) -> Starlette:
    engine: AsyncEngine | None = None

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal engine
        engine = create_engine(settings.effective_database_url)
        try:
            yield
        finally:
            await engine.dispose()

    async def token(request: Request) -> JSONResponse:
        assert engine is not None
        form = dict(parse_qsl((await request.body()).decode()))
        if form.get("grant_type") != "refresh_token" or "refresh_token" not in form:
            return _error("refresh_token grants only")
        now = utcnow()
        access, refresh = random_secret(ACCESS_TOKEN_PREFIX), random_secret(REFRESH_TOKEN_PREFIX)
        async with engine.begin() as conn:
            claimed = (
                await conn.execute(
                    _CLAIM,
                    {
                        "presented_hash": sha256_hex(form["refresh_token"]),
                        "presented_client": form.get("client_id", ""),
                        "now": now,
                    },
                )
            ).first()
            if claimed is None:
                return _error("unknown, used, expired or revoked refresh token")
            common: dict[str, Any] = {
                "connection_id": claimed.connection_id,
                "client_id": form["client_id"],
                "resource": claimed.resource,
                "created_at": now,
                "scopes": claimed.scopes,
            }
            successor = (
                await conn.execute(
                    _INSERT_RETURNING_ID,
                    {**common, "token_hash": sha256_hex(refresh), "kind": "refresh", "expires_at": None},
                )
            ).scalar_one()
            await conn.execute(
                _INSERT,
                {
                    **common,
                    "token_hash": sha256_hex(access),
                    "kind": "access",
                    "expires_at": now + timedelta(seconds=settings.access_token_ttl),
                },
            )
            await conn.execute(_LINK, {"predecessor": claimed.id, "successor": successor})
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": settings.access_token_ttl,
                "refresh_token": refresh,
                "scope": claimed.scopes,
            },
            headers=_NO_STORE,
        )

    return Starlette(routes=[Route("/oauth/token", token, methods=["POST"])], lifespan=lifespan)


if __name__ == "__main__":
    settings = server_settings()
    serve(create_app(settings), settings)
