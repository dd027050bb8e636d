"""How fast are OAuth refresh-token grants, and does a Bearer token cost more than an
application password on ``/mcp``?

One seeded database, one run, servers one at a time on CPU 0 and ``wrk`` on CPU 1:

(a) ``refresh_token`` grants/s on ``POST /oauth/token``: 32 rotating chains (one per
    connection, one user each, one registered public client), each request presenting the
    refresh token its chain's previous answer returned (``wrk/refresh.lua``). Compared with
    ``servers/refresh_floor.py``, the irreducible work of a rotating refresh on the same
    tables and driver (one conditional UPDATE, two INSERTs, one link UPDATE, one transaction).
    After each run the database is checked: one live refresh token per chain, every rotated
    token linked to its successor, no chain revoked, as many rotations as answers (give or
    take the requests still in flight when wrk stopped).
(b) ``tools/call whoami`` on ``/mcp`` with ``Authorization: Bearer`` (an access token from
    the code grant) and with ``Basic`` (an application password) on our server, and with
    ``Basic`` on the minimal Starlette baseline, same 32 connections.

Prints req/s, p50/p99, server CPU per request and the ratios; writes bench/results/oauth-*.json.
Exits non-zero if any request failed or a chain check did not hold.

Run: ``.venv/bin/python bench/oauth_throughput.py [--duration 10] [--connections 32]
[--parts refresh,mcp] [--database-url postgresql+asyncpg://…/<empty database>]``"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from aiconnector.config import Settings  # noqa: E402
from aiconnector.core.clients import create_pre_registered_client, resolve_client  # noqa: E402
from aiconnector.core.code_grant import redeem_authorization_code, s256  # noqa: E402
from aiconnector.core.scopes import ALL_SCOPES, CONTENT_READ  # noqa: E402
from aiconnector.core.tokens import create_authorization_code  # noqa: E402
from aiconnector.core.users import create_user, first_administrator  # noqa: E402
from aiconnector.db.models import AuditEvent, Connection, OAuthToken  # noqa: E402
from aiconnector.runtime import Runtime, open_runtime  # noqa: E402
from aiconnector.security import sha256_hex  # noqa: E402
from bench.harness import (  # noqa: E402
    LUA_SCRIPT,
    ROOT,
    SERVERS,
    CallFailed,
    Fixture,
    LoadResult,
    RunningServer,
    ServerKind,
    can_pin,
    check_tool,
    ensure_wrk,
    log,
    run_wrk,
    running_server,
    seeded_database,
)
from bench.mcp_throughput import environment, fmt, ratio  # noqa: E402

REFRESH_SCRIPT = LUA_SCRIPT.parent / "refresh.lua"
REDIRECT_URI = "http://127.0.0.1/callback"
OURS = SERVERS["ours"]
BASELINE = SERVERS["starlette"]
FLOOR = ServerKind("refresh_floor", "(f) refresh floor", "bench.servers.refresh_floor")
PARTS = ("refresh", "mcp")
# wrk 4.1 burns one request() per thread before connecting (see wrk/refresh.lua): one spare chain.
SPARE_CHAINS = 1
T = TypeVar("T")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="connections = refresh chains (32)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each run")
    parser.add_argument("--parts", default=",".join(PARTS), help="refresh, mcp or both (default)")
    parser.add_argument(
        "--database-url",
        help="an EMPTY database to seed instead of a temporary SQLite file (it is left filled)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and wrk to separate CPUs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and server logs")
    return parser.parse_args()


# --- database side: client, users, codes, chain checks (in this process, like a test would) --


def _settings(fixture: Fixture, origin: str) -> Settings:
    """Settings whose MCP URL is the server's at ``origin``: codes are bound to that resource
    and the code grant checks it."""
    return Settings(
        data_dir=fixture.directory, database_url=fixture.database_url, demo=False, public_url=origin
    )


def _with_runtime(fixture: Fixture, origin: str, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run ``work(runtime)`` in a fresh event loop over the benchmark database (the servers are
    separate processes; each helper opens and closes its own engine)."""

    async def main() -> T:
        async with open_runtime(_settings(fixture, origin), apply_migrations=False) as rt:
            return await work(rt)

    return asyncio.run(main())


@dataclass(frozen=True, slots=True)
class OAuthSetup:
    """The public client every chain uses, one user per chain, and the administrator (whose
    Bearer token is compared with their application password)."""

    client_id: str
    chain_users: tuple[int, ...]
    admin_id: int


def prepare(fixture: Fixture, chains: int) -> OAuthSetup:
    """Register the client and the chain users. One user per chain because redeeming a code
    revokes the same user's older connections to the same client (``replaced``)."""

    async def work(rt: Runtime) -> OAuthSetup:
        client = await create_pre_registered_client(
            rt.sessions, name="oauth benchmark", redirect_uris=[REDIRECT_URI]
        )
        users = [
            await create_user(rt.sessions, f"bench-chain-{i:03d}", role="subscriber") for i in range(chains)
        ]
        admin = await first_administrator(rt.sessions)
        assert admin is not None and not client.record.confidential
        return OAuthSetup(client.record.client_id, tuple(u.id for u in users), admin.id)

    return _with_runtime(fixture, "http://127.0.0.1", work)


@dataclass(frozen=True, slots=True)
class Grant:
    """A freshly redeemed pair: the first link of a chain."""

    access_token: str
    refresh_token: str


def new_grants(
    fixture: Fixture,
    setup: OAuthSetup,
    origin: str,
    user_ids: Sequence[int],
    scopes: frozenset[str],
    *,
    over_http: bool,
) -> list[Grant]:
    """One authorization code per user via ``create_authorization_code`` (what the consent
    screen calls), redeemed with PKCE: at ``<origin>/oauth/token`` when ``over_http``, else
    in-process with ``redeem_authorization_code`` (the refresh floor has no code grant)."""

    async def work(rt: Runtime) -> list[Grant]:
        client = await resolve_client(rt.sessions, setup.client_id, settings=rt.settings)
        grants: list[Grant] = []
        async with httpx.AsyncClient(base_url=origin, timeout=30) as http:
            for user_id in user_ids:
                verifier = secrets.token_urlsafe(48)
                code = await create_authorization_code(
                    rt.sessions,
                    client=client,
                    user_id=user_id,
                    redirect_uri=REDIRECT_URI,
                    code_challenge=s256(verifier),
                    scopes=scopes,
                    resource=rt.settings.mcp_url,
                    agent_name="oauth benchmark",
                )
                if over_http:
                    response = await http.post(
                        "/oauth/token",
                        data={
                            "grant_type": "authorization_code",
                            "code": code,
                            "redirect_uri": REDIRECT_URI,
                            "code_verifier": verifier,
                            "client_id": client.client_id,
                            "resource": rt.settings.mcp_url,
                        },
                    )
                    if response.status_code != 200:
                        raise CallFailed(f"code grant: HTTP {response.status_code} {response.text[:300]}")
                    body = response.json()
                    grants.append(Grant(body["access_token"], body["refresh_token"]))
                    continue
                pair = await redeem_authorization_code(
                    rt.sessions,
                    code=code,
                    client=client,
                    redirect_uri=REDIRECT_URI,
                    code_verifier=verifier,
                    resource=None,
                    settings=rt.settings,
                    audit=rt.audit,
                    bus=None,
                )
                grants.append(Grant(pair.access_token, pair.refresh_token))
        return grants

    return _with_runtime(fixture, origin, work)


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The database after a refresh run. ``ok`` when the chains are intact: each still a single
    line with exactly one live refresh token at its end, every rotated token linked to its
    successor, no connection revoked and no security event (a reuse would have revoked it).
    ``chains`` includes the spare, which may end the run unused."""

    chains: int
    live_refresh_tokens: int
    chains_not_single: int
    rotated: int
    rotated_unlinked: int
    revoked_connections: int
    security_events: int
    answered_ok: int

    @property
    def rotations_match(self) -> bool:
        """Rotations the server committed = answers wrk received, plus at most one request
        per chain still in flight when wrk stopped (committed, but never read)."""
        return self.answered_ok <= self.rotated <= self.answered_ok + self.chains

    @property
    def ok(self) -> bool:
        return (
            self.live_refresh_tokens == self.chains
            and not self.chains_not_single
            and not self.rotated_unlinked
            and not self.revoked_connections
            and not self.security_events
            and self.rotations_match
        )


def check_chains(fixture: Fixture, origin: str, grants: Sequence[Grant], answered_ok: int) -> ChainCheck:
    first_hashes = [sha256_hex(g.refresh_token) for g in grants]

    async def work(rt: Runtime) -> ChainCheck:
        async with rt.sessions() as session:
            ids = (
                await session.scalars(
                    select(OAuthToken.connection_id).where(OAuthToken.token_hash.in_(first_hashes))
                )
            ).all()
            refresh = (OAuthToken.kind == "refresh", OAuthToken.connection_id.in_(ids))
            live_per_chain = (
                await session.execute(
                    select(OAuthToken.connection_id, func.count())
                    .where(*refresh, OAuthToken.rotated_at.is_(None), OAuthToken.revoked_at.is_(None))
                    .group_by(OAuthToken.connection_id)
                )
            ).all()
            rotated = await session.scalar(
                select(func.count()).where(*refresh, OAuthToken.rotated_at.is_not(None))
            )
            unlinked = await session.scalar(
                select(func.count()).where(
                    *refresh, OAuthToken.rotated_at.is_not(None), OAuthToken.replaced_by_id.is_(None)
                )
            )
            revoked = await session.scalar(
                select(func.count()).where(Connection.id.in_(ids), Connection.revoked_at.is_not(None))
            )
            security = await session.scalar(
                select(func.count()).where(
                    AuditEvent.connection_id.in_(ids), AuditEvent.event.startswith("security.")
                )
            )
        live = {conn: n for conn, n in live_per_chain}
        return ChainCheck(
            chains=len(ids),
            live_refresh_tokens=sum(live.values()),
            chains_not_single=sum(1 for conn in ids if live.get(conn) != 1),
            rotated=rotated or 0,
            rotated_unlinked=unlinked or 0,
            revoked_connections=revoked or 0,
            security_events=security or 0,
            answered_ok=answered_ok,
        )

    return _with_runtime(fixture, origin, work)


# --- load -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measured:
    load: LoadResult
    chains: ChainCheck | None = None

    @property
    def clean(self) -> bool:
        return self.load.clean and (self.chains is None or self.chains.ok)


def measure_refresh(
    server: RunningServer,
    fixture: Fixture,
    setup: OAuthSetup,
    args: argparse.Namespace,
    wrk: str,
    pin: bool,
    *,
    over_http: bool,
) -> Measured:
    """Warm-up and measured run, each on fresh chains: a run ends with requests in flight whose
    new tokens wrk never reads, so a chain cannot continue into the next run."""
    result: LoadResult | None = None
    grants: list[Grant] = []
    for seconds in (args.warmup, args.duration):
        grants = new_grants(
            fixture, setup, server.origin, setup.chain_users, frozenset({CONTENT_READ}), over_http=over_http
        )
        result = run_wrk(
            wrk,
            server,
            b"",
            fixture,
            seconds=seconds,
            connections=args.connections,
            pin=pin,
            script=REFRESH_SCRIPT,
            url=f"{server.origin}/oauth/token",
            env={
                "BENCH_CHAINS": " ".join(g.refresh_token for g in grants),
                "BENCH_CLIENT_ID": setup.client_id,
            },
        )
    assert result is not None
    time.sleep(1.0)  # let the server commit what was in flight when wrk stopped
    check = check_chains(fixture, server.origin, grants, result.requests - result.rpc_errors)
    report(f"refresh_token {server.kind.label}", Measured(result, check))
    return Measured(result, check)


def measure_whoami(
    server: RunningServer,
    fixture: Fixture,
    authorization: str,
    args: argparse.Namespace,
    wrk: str,
    pin: bool,
) -> Measured:
    """Pre-flight call (must be a real result), warm-up, measured run."""
    structured, _ = check_tool(server, fixture, "whoami", authorization)
    log(f"   whoami as {structured['username']} via {structured['auth_method']}")
    result: LoadResult | None = None
    for seconds in (args.warmup, args.duration):
        result = run_wrk(
            wrk,
            server,
            fixture.bodies["whoami"],
            fixture,
            seconds=seconds,
            connections=args.connections,
            pin=pin,
            authorization=authorization,
        )
    assert result is not None
    scheme = authorization.split(" ", 1)[0]
    report(f"whoami {scheme:<6} {server.kind.label}", Measured(result))
    return Measured(result)


def report(label: str, measured: Measured) -> None:
    load = measured.load
    check = "" if measured.chains is None else f"  chains {'ok' if measured.chains.ok else 'BROKEN'}"
    log(
        f"   {label:<42}{load.rps:8.0f} req/s  p50 {load.p50_ms:7.2f} ms  p99 {load.p99_ms:7.2f} ms  "
        f"{'ok' if load.clean else 'ERRORS'}{check}"
    )


def refuse_refresh_probe(server: RunningServer) -> None:
    """Readiness of a token endpoint: an unknown refresh token must be refused with
    ``invalid_grant`` (any other answer means the server is not what we think it is)."""
    response = httpx.post(
        f"{server.origin}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "aic_rt_unknown", "client_id": "nobody"},
        timeout=5,
    )
    if response.status_code not in (400, 401) or "error" not in response.json():
        raise CallFailed(f"token endpoint answered HTTP {response.status_code}: {response.text[:200]}")


def run_all(
    fixture: Fixture, setup: OAuthSetup, parts: set[str], args: argparse.Namespace, wrk: str, pin: bool
) -> dict[str, Measured]:
    """Every measurement of the run, keyed ``<part>/<server>[/<scheme>]``."""
    out: dict[str, Measured] = {}
    log(f"== {OURS.label}")
    with running_server(OURS, fixture, pin=pin) as server:
        if "refresh" in parts:
            out["refresh/ours"] = measure_refresh(server, fixture, setup, args, wrk, pin, over_http=True)
        if "mcp" in parts:
            (admin,) = new_grants(
                fixture, setup, server.origin, [setup.admin_id], frozenset(ALL_SCOPES), over_http=True
            )
            bearer = f"Bearer {admin.access_token}"
            out["mcp/ours/basic"] = measure_whoami(server, fixture, fixture.authorization, args, wrk, pin)
            out["mcp/ours/bearer"] = measure_whoami(server, fixture, bearer, args, wrk, pin)
    if "refresh" in parts:
        log(f"== {FLOOR.label}")
        with running_server(FLOOR, fixture, pin=pin, probe=refuse_refresh_probe) as server:
            out["refresh/floor"] = measure_refresh(server, fixture, setup, args, wrk, pin, over_http=False)
    if "mcp" in parts:
        log(f"== {BASELINE.label}")
        with running_server(BASELINE, fixture, pin=pin) as server:
            basic = fixture.authorization
            out["mcp/starlette/basic"] = measure_whoami(server, fixture, basic, args, wrk, pin)
    return out


# --- report -----------------------------------------------------------------------------------

ROWS: dict[str, str] = {
    "refresh/ours": "refresh_token grant, (a) ours",
    "refresh/floor": "refresh_token grant, (f) floor",
    "mcp/ours/bearer": "whoami, (a) ours, Bearer",
    "mcp/ours/basic": "whoami, (a) ours, Basic app password",
    "mcp/starlette/basic": "whoami, (b) minimal Starlette, Basic",
}
RATIOS: tuple[tuple[str, str, str], ...] = (
    ("refresh ours / floor", "refresh/ours", "refresh/floor"),
    ("bearer / basic (ours)", "mcp/ours/bearer", "mcp/ours/basic"),
    ("bearer / baseline", "mcp/ours/bearer", "mcp/starlette/basic"),
    ("basic / baseline", "mcp/ours/basic", "mcp/starlette/basic"),
    ("refresh ours / whoami bearer ours", "refresh/ours", "mcp/ours/bearer"),
)


def server_busy(load: LoadResult) -> float:
    """Share of the server's core it used (1.0 = saturated). Well below 1 under a closed loop of
    32 connections means requests spend their time waiting (on database locks), not computing."""
    cpu = load.cpu_event_loop_s + load.cpu_other_threads_s
    return cpu / load.seconds if load.seconds else 0.0


def summarise(measured: dict[str, Measured]) -> dict[str, Any]:
    rows = {
        key: {
            **asdict(m.load),
            "rps": round(m.load.rps, 1),
            "p99_over_p50": round(m.load.tail_ratio, 2),
            "cpu_us_per_request": round(m.load.cpu_us_per_request, 1),
            "server_cpu_busy": round(server_busy(m.load), 3),
            "clean": m.clean,
            **({"chains": {**asdict(m.chains), "ok": m.chains.ok}} if m.chains else {}),
        }
        for key, m in measured.items()
    }
    ratios = {
        name: {
            "rps": ratio(rows[a]["rps"], rows[b]["rps"]),
            # Inverse CPU per request: the same ratio seen through the less noisy figure.
            "cpu": ratio(rows[b]["cpu_us_per_request"], rows[a]["cpu_us_per_request"]),
        }
        for name, a, b in RATIOS
        if a in rows and b in rows
    }
    return {"rows": rows, "ratios": ratios}


def print_tables(summary: dict[str, Any], connections: int) -> None:
    print(f"\n{connections} connections")
    print(
        f"  {'':<40}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'p99/p50':>9}{'CPU us/req':>12}"
        f"{'CPU busy':>10}  errors  chains"
    )
    for key, label in ROWS.items():
        row = summary["rows"].get(key)
        if row is None:
            continue
        errors = row["non2xx"] + row["socket_errors"] + row["rpc_errors"]
        chains = row.get("chains")
        chain_text = "" if chains is None else ("ok" if chains["ok"] else f"BROKEN {chains}")
        print(
            f"  {label:<40}{row['rps']:>9.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{row['p99_over_p50']:>9.2f}{row['cpu_us_per_request']:>12.0f}{row['server_cpu_busy']:>10.0%}"
            f"  {errors:>6}  {chain_text}"
        )
    print("\n  ratio (req/s; in brackets: by server CPU per request)")
    for name, value in summary["ratios"].items():
        print(f"  {name:<36}{fmt(value['rps'])}x  ({fmt(value['cpu'])}x)")


def main() -> int:
    args = parse_args()
    parts = {p for p in args.parts.split(",") if p}
    if not parts or parts - set(PARTS):
        sys.exit(f"--parts takes {', '.join(PARTS)}")
    wrk = ensure_wrk()
    pin = can_pin() and not args.no_pin
    if not pin:
        log("warning: server and wrk are NOT pinned to separate CPUs; figures will be lower and noisier")
    env = environment(args, pin)
    env["database"] = "sqlite" if not args.database_url else args.database_url.split(":", 1)[0]
    log(f"uvicorn loop/http: {env['uvicorn']}; pinned: {pin}; load average {env['load_average_before']}")
    try:
        with seeded_database(keep=args.keep, database_url=args.database_url) as fixture:
            setup = prepare(fixture, args.connections + SPARE_CHAINS)
            measured = run_all(fixture, setup, parts, args, wrk, pin)
    except (RuntimeError, CallFailed) as exc:
        log(f"benchmark failed: {exc}")
        return 1
    env["load_average_after"] = os.getloadavg()
    summary = summarise(measured)
    print_tables(summary, args.connections)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"oauth-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"environment": env, "results": summary}, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")
    return 0 if all(m.clean for m in measured.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
