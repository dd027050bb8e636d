"""The load of ``bench/loadtest.py``: simulated agents, a revoker, and a judge for every answer.

**Agents.** Each agent is an OAuth client with its own user: it registers its client at
``POST /oauth/register`` (RFC 7591), gets an authorization code from
``core.tokens.create_authorization_code`` (what the consent page calls once the user clicks
*Authorize*; the browser half needs a signed-in session and is not what is under load) and
redeems it with PKCE at ``POST /oauth/token``. From then on everything is HTTP: MCP
``tools/call`` (``whoami``, ``list_posts``, ``get_post``, one third each) on ``/mcp`` with
``Authorization: Bearer`` over the stateless 2025-11-25 transport (one POST per call, no
session), and every ~``refresh_every`` s (uniform ±40 %) a ``refresh_token`` grant at
``/oauth/token``, continuing with the rotated pair it returns. A share of the refreshes
(``race_share``) is sent twice at once to two instances, as a client retrying a lost answer
would: both must succeed (the grace window) and the chain must stay usable — except when the
token itself came from such a race and may be the successor the retry displaced: it has had its
one grace use, so then exactly one of the two may be refused as already used
(docs/security.md, "Why one grace retry, not a stream"). Every request
goes to the next instance in round-robin order, as a load balancer without sticky sessions
would send it.

**Revoker.** Every ~``revoke_every`` s (uniform ±25 %) it picks a random active agent and
revokes its connection the way a client does on logout: ``POST /oauth/revoke`` with the
agent's refresh token (RFC 7009; a refresh token ends the whole connection). Around that:

1. *probers* (one per instance, on their own keep-alive connections) call ``whoami`` with the
   agent's access token until the instance has answered 200 — the credential is then in that
   instance's cache, the case a revoke must reach;
2. the revoke is sent; its commit time is when the load generator's own ``LISTEN`` connection
   hears the ``revoked:<connection>`` notification the revoking transaction sent (PostgreSQL
   delivers it at commit, to every listener at once);
3. from the moment the revoke is sent the probers send a request every ``probe_interval`` s
   without waiting for answers, until their instance has refused and commit + ``window`` has
   passed; then one every 50 ms for ``verify_seconds``; the old refresh token is then
   presented at ``/oauth/token`` on every instance and must be refused (``invalid_grant``).

*Propagation* per instance: every request sent to it that long after the commit or later was
refused (see ``RevokeReport``); the resolution is ``probe_interval``.

The revoked agent sees 401s (or ``invalid_grant``, or the ``-32004`` error of a call cut short)
on its own requests, registers a new connection and goes on, so the load stays constant.

**Judge.** Expected: 200 results; 401 / ``invalid_grant`` / ``-32004`` for a credential whose
revoke had been sent before the answer arrived; 200 for a revoked credential on a request sent
no later than ``window`` after the commit. Unexpected (the run fails): any other status, any
5xx, JSON-RPC or tool error, timeout or connection error; a refusal of a live credential; a
revoked credential accepted on a request sent more than ``window`` after the commit; an
instance that never refuses it; a revoke whose notification never arrives."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson
from sqlalchemy import select

from aiconnector.config import Settings
from aiconnector.core.clients import ClientRecord, resolve_client
from aiconnector.core.code_grant import s256
from aiconnector.core.scopes import DEFAULT_SCOPES
from aiconnector.core.tokens import create_authorization_code
from aiconnector.core.users import create_user
from aiconnector.db.models import OAuthToken
from aiconnector.runtime import Runtime, open_runtime
from aiconnector.security import sha256_hex
from bench.loadtest_http import FastClient, RequestTimeout, TransportFailure

PROTOCOL_VERSION = "2025-11-25"
CHANNEL = "aiconnector_connections"  # core.pg_notify.CHANNEL
CONNECTION_REVOKED = -32004  # mcp.jsonrpc.CONNECTION_REVOKED
REDIRECT_URI = "http://127.0.0.1:8976/callback"
TOOLS = ("whoami", "list_posts", "get_post")
MAX_RECORDED_ERRORS = 200


@dataclass(frozen=True, slots=True)
class LoadConfig:
    duration: float = 60.0
    agents: int = 32
    warmup: float = 3.0
    refresh_every: float = 5.0
    revoke_every: float = 2.0
    window: float = 0.100  # the bound: a revoke bites everywhere within 100 ms
    race_share: float = 0.1
    probe_interval: float = 0.005
    verify_seconds: float = 1.0
    refusal_deadline: float = 5.0
    timeout: float = 10.0
    seed: int | None = None
    http_client: str = "fast"  # or "httpx" (see loadtest_http.py)


# --- recording ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


class Recorder:
    """Counts and latencies of requests *sent* inside the measured window; unexpected errors
    from the whole run (warm-up and drain included: an error is an error)."""

    def __init__(self) -> None:
        self.measure_from = float("inf")
        self.measure_until = float("inf")
        self.latency_ms: dict[str, list[float]] = defaultdict(list)
        self.outcomes: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.errors: list[dict[str, Any]] = []

    def measured(self, t_send: float) -> bool:
        return self.measure_from <= t_send < self.measure_until

    def record(self, kind: str, outcome: str, t_send: float, t_recv: float) -> None:
        if not self.measured(t_send):
            return
        self.outcomes[f"{kind}:{outcome}"] += 1
        if outcome == "ok":
            self.latency_ms[kind].append((t_recv - t_send) * 1000)

    def error(self, kind: str, what: str, **detail: Any) -> None:
        self.unexpected[f"{kind}: {what}"] += 1
        if len(self.errors) < MAX_RECORDED_ERRORS:
            self.errors.append({"kind": kind, "what": what, "t": round(time.monotonic(), 4), **detail})

    def requests(self, *kinds: str) -> int:
        return sum(n for key, n in self.outcomes.items() if not kinds or key.split(":", 1)[0] in kinds)


# --- answers ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP exchange, reduced to what the judge needs. ``outcome``: ``ok``, ``http_401``,
    ``invalid_grant``, ``rpc_revoked`` (-32004), ``rpc_error``, ``tool_error``, ``http_<n>``,
    ``timeout``, ``transport_error`` or ``bad_body``."""

    outcome: str
    t_send: float
    t_recv: float
    instance: int
    body: Any = None
    detail: str = ""

    @property
    def ms(self) -> float:
        return (self.t_recv - self.t_send) * 1000


REFUSALS = frozenset({"http_401", "invalid_grant", "rpc_revoked"})


def tool_body(tool: str, arguments: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    )


def mcp_headers(access_token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {access_token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL_VERSION,
    }


def _json_of(response: Any) -> Any:
    text = response.content
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [ln[5:].strip() for ln in response.text.splitlines() if ln.startswith("data:")]
        text = data[-1].encode() if data else b""
    return orjson.loads(text)


def classify_mcp(response: Any) -> tuple[str, Any, str]:
    try:
        message = _json_of(response) if response.content else None
    except orjson.JSONDecodeError:
        message = None
    error = message.get("error") if isinstance(message, dict) else None
    if isinstance(error, dict) and error.get("code") == CONNECTION_REVOKED:
        return "rpc_revoked", None, str(error.get("message"))
    if response.status_code == 401:
        return "http_401", None, ""
    if response.status_code != 200:
        return f"http_{response.status_code}", None, response.text[:200]
    if not isinstance(message, dict):
        return "bad_body", None, response.text[:200]
    if error is not None:
        return "rpc_error", None, orjson.dumps(error).decode()[:200]
    result = message.get("result")
    if not isinstance(result, dict):
        return "bad_body", None, response.text[:200]
    if result.get("isError"):
        return "tool_error", None, orjson.dumps(result.get("content"))[:200].decode(errors="replace")
    return "ok", result, ""


def classify_token(response: Any) -> tuple[str, Any, str]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, dict) and body.get("refresh_token"):
        return "ok", body, ""
    if response.status_code == 400 and isinstance(body, dict) and body.get("error") == "invalid_grant":
        return "invalid_grant", None, str(body.get("error_description"))
    return f"http_{response.status_code}", None, response.text[:200]


# --- the cluster as the generator sees it --------------------------------------------------------


class CommitListener:
    """The load generator's own ``LISTEN`` on the instances' channel: when it hears
    ``revoked:<id>``, that revoke has committed (PostgreSQL sends notifications at commit)."""

    def __init__(self) -> None:
        self.heard: dict[str, float] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._conn: asyncpg.Connection | None = None

    async def start(self, dsn: str) -> None:
        self._conn = await asyncpg.connect(dsn, timeout=10)
        await self._conn.add_listener(CHANNEL, self._on_notify)

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        kind, _, connection_id = payload.partition(":")
        if kind != "revoked":
            return
        self.heard.setdefault(connection_id, time.monotonic())
        event = self._events.get(connection_id)
        if event is not None:
            event.set()

    async def wait(self, connection_id: str, timeout: float) -> float | None:
        if connection_id not in self.heard:
            event = self._events.setdefault(connection_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        return self.heard.get(connection_id)


@dataclass
class Revocation:
    agent: int
    generation: int
    connection_id: str
    access_token: str
    refresh_token: str
    client_id: str
    picked: float
    revoke_sent: float | None = None
    revoke_answered: float | None = None
    commit: float | None = None
    # Per instance: (sent, answered) of each refusal that arrived after the revoke was sent.
    refusals: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    # Every 200 a request with one of this connection's credentials got once it was picked:
    # (who asked, instance, when the request was sent).
    accepted: list[tuple[str, int, float]] = field(default_factory=list)
    done: bool = False

    def refused(self, answer: Answer) -> bool:
        """Is this refusal expected, i.e. did it arrive after the revoke was sent?"""
        return self.revoke_sent is not None and answer.t_recv >= self.revoke_sent

    def late(self, t_send: float, window: float) -> bool:
        return self.commit is not None and t_send > self.commit + window


class Cluster:
    """What every simulated agent shares: the instances, the HTTP clients, the database (for
    minting codes and finding connection ids), the recorder and the round-robin counter."""

    def __init__(
        self, urls: list[str], database_url: str, public_url: str, config: LoadConfig, recorder: Recorder
    ) -> None:
        self.urls = urls
        self.database_url = database_url
        self.settings = Settings(database_url=database_url, public_url=public_url, demo=False)
        self.config = config
        self.rec = recorder
        self.rng = random.Random(config.seed)
        self._rr = itertools.count()
        self.stopping = False
        self.commits = CommitListener()
        self.post_ids: list[int] = []
        # Probes and revokes go over connections of their own: their timing must not depend on
        # the agents' pool.
        self.http = _client(config)
        self.side_http = _client(config)
        self.rt: Runtime | None = None
        self._db = asyncio.Semaphore(4)
        self._stack = contextlib.AsyncExitStack()

    def next_instance(self) -> int:
        return next(self._rr) % len(self.urls)

    async def send(
        self,
        instance: int,
        path: str,
        classify: Callable[[Any], tuple[str, Any, str]],
        *,
        side: bool = False,
        **kwargs: Any,
    ) -> Answer:
        client = self.side_http if side else self.http
        t_send = time.monotonic()
        try:
            response = await client.post(self.urls[instance] + path, **kwargs)
        except (httpx.TimeoutException, RequestTimeout) as exc:
            return Answer("timeout", t_send, time.monotonic(), instance, detail=repr(exc))
        except (httpx.TransportError, TransportFailure) as exc:
            return Answer("transport_error", t_send, time.monotonic(), instance, detail=repr(exc))
        t_recv = time.monotonic()
        outcome, body, detail = classify(response)
        return Answer(outcome, t_send, t_recv, instance, body, detail)

    async def tool(
        self, instance: int, access_token: str, tool: str, arguments: dict[str, Any], *, side: bool = False
    ) -> Answer:
        return await self.send(
            instance,
            "/mcp",
            classify_mcp,
            side=side,
            content=tool_body(tool, arguments),
            headers=mcp_headers(access_token),
        )

    async def refresh(
        self, instance: int, refresh_token: str, client_id: str, *, side: bool = False
    ) -> Answer:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
        return await self.send(instance, "/oauth/token", classify_token, side=side, data=form)

    async def open(self) -> None:
        self._stack.push_async_callback(self.http.aclose)
        self._stack.push_async_callback(self.side_http.aclose)
        self.rt = await self._stack.enter_async_context(open_runtime(self.settings, apply_migrations=False))
        await self.commits.start(_asyncpg_dsn(self.database_url))
        self._stack.push_async_callback(self.commits.stop)

    async def close(self) -> None:
        await self._stack.aclose()

    async def sessions_opened(self) -> int:
        """``pg_stat_database.sessions`` of the database: connections opened so far."""
        conn = await asyncpg.connect(_asyncpg_dsn(self.database_url), timeout=10)
        try:
            value = await conn.fetchval(
                "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
            )
        finally:
            await conn.close()
        return int(value or 0)


def _client(config: LoadConfig) -> Any:
    if config.http_client == "httpx":
        size = 4 * config.agents + 16
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        return httpx.AsyncClient(timeout=config.timeout, limits=limits)
    if config.http_client == "fast":
        return FastClient(timeout=config.timeout)
    raise ValueError(f"unknown HTTP client {config.http_client!r}")


def _asyncpg_dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def jitter(rng: random.Random, mean: float, spread: float) -> float:
    return mean * rng.uniform(1 - spread, 1 + spread)


# --- agents -------------------------------------------------------------------------------------


class RegistrationFailed(Exception):
    pass


class Agent:
    def __init__(self, cluster: Cluster, index: int, user_id: int) -> None:
        self.c = cluster
        self.index = index
        self.user_id = user_id
        self.client: ClientRecord | None = None
        self.generation = 0
        self.access_token = ""
        self.refresh_token = ""
        self.connection_id = ""
        self.registered_at = float("inf")
        self.next_refresh = float("inf")
        self.needs_registration = True
        # The current refresh token was picked from a race's two answers: it may be the
        # successor the race's retry displaced (rotated already, its one grace use spent).
        self.maybe_displaced = False
        self.revocations: dict[int, Revocation] = {}
        self.registrations = 0

    # - connection --------------------------------------------------------------------------

    async def register(self) -> None:
        """A new connection: client registration (first time only) and the code grant, over HTTP;
        the code itself from the consent page's core function."""
        c = self.c
        if self.client is None:
            instance = c.next_instance()
            document = {
                "client_name": f"load agent {self.index}",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
            }
            t_send = time.monotonic()
            response = await c.http.post(f"{c.urls[instance]}/oauth/register", json=document)
            c.rec.record(
                "register_client", "ok" if response.status_code == 201 else "failed", t_send, time.monotonic()
            )
            if response.status_code != 201:
                raise RegistrationFailed(f"register: HTTP {response.status_code} {response.text[:200]}")
            assert c.rt is not None
            async with c._db:
                self.client = await resolve_client(
                    c.rt.sessions, response.json()["client_id"], settings=c.settings
                )
        assert c.rt is not None
        verifier = secrets.token_urlsafe(48)
        async with c._db:
            code = await create_authorization_code(
                c.rt.sessions,
                client=self.client,
                user_id=self.user_id,
                redirect_uri=REDIRECT_URI,
                code_challenge=s256(verifier),
                scopes=DEFAULT_SCOPES,
                resource=c.settings.mcp_url,
                agent_name=f"load agent {self.index}",
            )
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": self.client.client_id,
            "resource": c.settings.mcp_url,
        }
        answer = await c.send(c.next_instance(), "/oauth/token", classify_token, data=form)
        c.rec.record("code_grant", answer.outcome, answer.t_send, answer.t_recv)
        if answer.outcome != "ok":
            raise RegistrationFailed(f"code grant: {answer.outcome} {answer.detail}")
        async with c._db, c.rt.sessions() as session:
            connection_id = await session.scalar(
                select(OAuthToken.connection_id).where(
                    OAuthToken.token_hash == sha256_hex(answer.body["refresh_token"])
                )
            )
        assert connection_id is not None
        self.generation += 1
        self.registrations += 1
        self.access_token = answer.body["access_token"]
        self.refresh_token = answer.body["refresh_token"]
        self.connection_id = connection_id
        now = time.monotonic()
        self.registered_at = now
        self.next_refresh = now + jitter(c.rng, c.config.refresh_every, 0.4)
        self.needs_registration = False

    def revocable(self, now: float) -> bool:
        return (
            not self.needs_registration
            and self.generation not in self.revocations
            and now - self.registered_at >= 0.5
        )

    # - judging -----------------------------------------------------------------------------

    def judge(self, kind: str, generation: int, answer: Answer) -> str:
        """``ok``, ``revoked`` (an expected refusal), ``refused`` (a live credential refused:
        unexpected) or ``error`` (unexpected)."""
        c = self.c
        revocation = self.revocations.get(generation)
        if answer.outcome == "ok":
            c.rec.record(kind, "ok", answer.t_send, answer.t_recv)
            if revocation is not None:
                if revocation.done:
                    if revocation.late(answer.t_send, c.config.window):
                        c.rec.error(
                            kind, "revoked credential accepted after the window", **_where(self, answer)
                        )
                else:
                    revocation.accepted.append((f"agent {kind}", answer.instance, answer.t_send))
            return "ok"
        if answer.outcome in REFUSALS:
            if revocation is not None and revocation.refused(answer):
                c.rec.record(kind, "refused_revoked", answer.t_send, answer.t_recv)
                return "revoked"
            c.rec.record(kind, "refused_live", answer.t_send, answer.t_recv)
            c.rec.error(
                kind, f"{answer.outcome} for a live credential", detail=answer.detail, **_where(self, answer)
            )
            return "refused"
        c.rec.record(kind, answer.outcome, answer.t_send, answer.t_recv)
        c.rec.error(kind, answer.outcome, detail=answer.detail, **_where(self, answer))
        return "error"

    # - work --------------------------------------------------------------------------------

    async def tool_call(self) -> str:
        c = self.c
        tool = c.rng.choice(TOOLS)
        arguments: dict[str, Any] = {}
        if tool == "list_posts":
            arguments = {"limit": 10}
        elif tool == "get_post":
            arguments = {"id": c.rng.choice(c.post_ids)}
        generation = self.generation
        answer = await c.tool(c.next_instance(), self.access_token, tool, arguments)
        return self.judge("tool", generation, answer)

    def _drop_spent_retry(self, answers: list[Answer]) -> list[Answer]:
        """A race from a possibly displaced token: one answer ok and the other "already used"
        is the server's rule, not an error; it is recorded and left out of judging."""
        spent = [a for a in answers if a.outcome == "invalid_grant" and "already used" in a.detail]
        if not self.maybe_displaced or len(spent) != 1 or not any(a.outcome == "ok" for a in answers):
            return answers
        self.c.rec.record("refresh_race", "refused_spent_retry", spent[0].t_send, spent[0].t_recv)
        return [a for a in answers if a is not spent[0]]

    async def refresh(self) -> str:
        c = self.c
        generation, token = self.generation, self.refresh_token
        client_id = self.client.client_id if self.client else ""
        if c.rng.random() < c.config.race_share:
            # Two at once on two instances (a client retrying a lost answer): both must succeed.
            answers = await asyncio.gather(
                c.refresh(c.next_instance(), token, client_id), c.refresh(c.next_instance(), token, client_id)
            )
            kind = "refresh_race"
            answers = self._drop_spent_retry(answers)
        else:
            answers = [await c.refresh(c.next_instance(), token, client_id)]
            kind = "refresh"
        verdicts = [self.judge(kind, generation, a) for a in answers]
        good = [a for a, v in zip(answers, verdicts, strict=True) if v == "ok"]
        if good and generation == self.generation:
            chosen = c.rng.choice(good)
            self.access_token = chosen.body["access_token"]
            self.refresh_token = chosen.body["refresh_token"]
            self.maybe_displaced = len(good) > 1
        self.next_refresh = time.monotonic() + jitter(c.rng, c.config.refresh_every, 0.4)
        for verdict in ("revoked", "refused", "error"):
            if verdict in verdicts:
                return verdict
        return "ok"

    async def run(self) -> None:
        c = self.c
        while not c.stopping:
            if self.needs_registration:
                try:
                    await self.register()
                except (RegistrationFailed, httpx.HTTPError, RequestTimeout, TransportFailure) as exc:
                    c.rec.error("register", str(exc)[:300], agent=self.index)
                    await asyncio.sleep(0.5)
                continue
            if time.monotonic() >= self.next_refresh:
                verdict = await self.refresh()
            else:
                verdict = await self.tool_call()
            if verdict in ("revoked", "refused"):
                self.needs_registration = True
            elif verdict == "error":
                await asyncio.sleep(0.05)  # do not spin on a broken instance


def _where(agent: Agent, answer: Answer) -> dict[str, Any]:
    return {
        "agent": agent.index,
        "connection": agent.connection_id,
        "instance": answer.instance,
        "t_send": round(answer.t_send, 4),
        "ms": round(answer.ms, 1),
    }


# --- the revoker --------------------------------------------------------------------------------


@dataclass
class RevokeReport:
    """What one revoke showed, per instance ``i`` and in ms after the commit was heard:

    * ``propagation_ms[i]``: every request sent to ``i`` this long after the commit or later
      was refused — the send time of the first refused request after the last accepted one
      (0 if nothing was accepted after the commit and the first request sent after it was
      refused, or a refusal arrived before the commit was heard). Probes go out every
      ``probe_interval`` s through the whole window, so that is the resolution.
    * ``last_accepted_ms[i]``: the latest send time of a request ``i`` still accepted after
      the commit (None: none was) — a lower bound.
    * ``refusal_seen_ms[i]``: when the first refusal *arrived*: includes the time the loaded
      server took to answer it."""

    agent: int
    connection_id: str
    revoke_instance: int
    revoke_ms: float
    notify_heard: bool
    propagation_ms: dict[int, float]
    last_accepted_ms: dict[int, float | None]
    refusal_seen_ms: dict[int, float]
    accepted_after_commit: int
    accepted_after_window: int
    probes: int
    refresh_refused_everywhere: bool


class Revoker:
    def __init__(self, cluster: Cluster, agents: list[Agent]) -> None:
        self.c = cluster
        self.agents = agents
        self.reports: list[RevokeReport] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        c = self.c
        while not c.stopping:
            await asyncio.sleep(jitter(c.rng, c.config.revoke_every, 0.25))
            if c.stopping:
                break
            now = time.monotonic()
            candidates = [a for a in self.agents if a.revocable(now)]
            if not candidates:
                continue
            agent = c.rng.choice(candidates)
            revocation = Revocation(
                agent=agent.index,
                generation=agent.generation,
                connection_id=agent.connection_id,
                access_token=agent.access_token,
                refresh_token=agent.refresh_token,
                client_id=agent.client.client_id if agent.client else "",
                picked=now,
            )
            agent.revocations[agent.generation] = revocation
            task = asyncio.create_task(self.revoke(revocation))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks)

    async def _probe_once(self, r: Revocation, instance: int, probes: Counter[int]) -> Answer:
        c = self.c
        answer = await c.tool(instance, r.access_token, "whoami", {}, side=True)
        probes[instance] += 1
        c.rec.record("probe", answer.outcome, answer.t_send, answer.t_recv)
        if answer.outcome == "ok":
            r.accepted.append(("probe", instance, answer.t_send))
        elif answer.outcome in REFUSALS and r.refused(answer):
            r.refusals.setdefault(instance, []).append((answer.t_send, answer.t_recv))
        elif answer.outcome in REFUSALS:
            c.rec.error(
                "probe",
                f"{answer.outcome} before the revoke was sent",
                connection=r.connection_id,
                instance=instance,
            )
        else:
            c.rec.error(
                "probe", answer.outcome, detail=answer.detail, connection=r.connection_id, instance=instance
            )
        return answer

    async def _probe(self, r: Revocation, instance: int, warm: asyncio.Event, probes: Counter[int]) -> None:
        """Ask ``instance`` with the access token: one at a time until it has accepted it (it
        is then in its credential cache: ``warm``) and until the revoke is sent; then one every
        ``probe_interval`` without waiting for answers (so the resolution does not depend on
        how long the loaded server takes to answer) until it refuses; then one every 50 ms for
        ``verify_seconds`` past the later of its first refusal and commit + window."""
        c, cfg = self.c, self.c.config
        loop_deadline = time.monotonic() + cfg.refusal_deadline
        while not warm.is_set() or r.revoke_sent is None:
            answer = await self._probe_once(r, instance, probes)
            if answer.outcome == "ok":
                warm.set()
            elif answer.outcome in REFUSALS and r.revoke_sent is None:
                warm.set()  # an error already recorded; let the revoke go ahead
            if not warm.is_set() and time.monotonic() > loop_deadline:
                c.rec.error(
                    "probe",
                    "the live token was never accepted",
                    connection=r.connection_id,
                    instance=instance,
                )
                warm.set()
            await asyncio.sleep(cfg.probe_interval)
        inflight: set[asyncio.Task[Answer]] = set()
        # Dense probing through the whole window, even once a refusal has arrived: requests can
        # be processed out of order, and the propagation figure needs probes on both sides.
        while (
            instance not in r.refusals or r.commit is None or time.monotonic() < r.commit + cfg.window + 0.02
        ):
            if r.revoke_answered is not None and time.monotonic() - r.revoke_answered > cfg.refusal_deadline:
                c.rec.error(
                    "probe",
                    f"instance still accepts the revoked token {cfg.refusal_deadline:.0f} s after the revoke",
                    connection=r.connection_id,
                    instance=instance,
                )
                break
            task = asyncio.create_task(self._probe_once(r, instance, probes))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            await asyncio.sleep(cfg.probe_interval)
        if inflight:
            await asyncio.gather(*inflight)
        while r.commit is None:
            await asyncio.sleep(0.01)
        first = min((t_recv for _, t_recv in r.refusals.get(instance, [])), default=time.monotonic())
        verify_until = max(first, r.commit + cfg.window) + cfg.verify_seconds
        while time.monotonic() < verify_until:
            await self._probe_once(r, instance, probes)
            await asyncio.sleep(0.05)

    async def revoke(self, r: Revocation) -> None:
        c, cfg = self.c, self.c.config
        n = len(c.urls)
        warm = [asyncio.Event() for _ in range(n)]
        probes: Counter[int] = Counter()
        probers = [asyncio.create_task(self._probe(r, i, warm[i], probes)) for i in range(n)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(w.wait() for w in warm)), cfg.refusal_deadline)
        instance = c.next_instance()
        form = {"token": r.refresh_token, "token_type_hint": "refresh_token", "client_id": r.client_id}
        r.revoke_sent = time.monotonic()
        answer = await c.send(instance, "/oauth/revoke", _classify_revoke, side=True, data=form)
        r.revoke_answered = answer.t_recv
        c.rec.record("revoke", answer.outcome, answer.t_send, answer.t_recv)
        if answer.outcome != "ok":
            c.rec.error("revoke", answer.outcome, detail=answer.detail, connection=r.connection_id)
        heard = await c.commits.wait(r.connection_id, 2.0)
        if heard is None:
            c.rec.error("revoke", "no NOTIFY heard within 2 s of the revoke", connection=r.connection_id)
        r.commit = heard if heard is not None else answer.t_recv
        await asyncio.gather(*probers)
        # The refresh token must be refused everywhere too (never rotated into a new pair).
        refused_everywhere = True
        for i in range(n):
            ref = await c.refresh(i, r.refresh_token, r.client_id, side=True)
            c.rec.record("probe_refresh", ref.outcome, ref.t_send, ref.t_recv)
            if ref.outcome == "ok":
                refused_everywhere = False
                c.rec.error(
                    "probe_refresh", "revoked refresh token accepted", connection=r.connection_id, instance=i
                )
            elif ref.outcome != "invalid_grant":
                refused_everywhere = False
                c.rec.error(
                    "probe_refresh", ref.outcome, detail=ref.detail, connection=r.connection_id, instance=i
                )
        r.done = True
        late = [a for a in r.accepted if r.late(a[2], cfg.window)]
        for who, inst, t_send in late:
            c.rec.error(
                who.split(" ", 1)[-1] if who.startswith("agent") else "probe",
                "revoked credential accepted after the window",
                connection=r.connection_id,
                instance=inst,
                sent_after_commit_ms=round((t_send - r.commit) * 1000, 1),
            )
        if c.rec.measured(r.picked):
            self.reports.append(
                RevokeReport(
                    agent=r.agent,
                    connection_id=r.connection_id,
                    revoke_instance=instance,
                    revoke_ms=round(answer.ms, 2),
                    notify_heard=heard is not None,
                    **_propagation(r, n),
                    accepted_after_commit=sum(1 for a in r.accepted if a[2] > r.commit),
                    accepted_after_window=len(late),
                    probes=sum(probes.values()),
                    refresh_refused_everywhere=refused_everywhere,
                )
            )


def _propagation(r: Revocation, instances: int) -> dict[str, Any]:
    """The three per-instance figures of ``RevokeReport`` (see there)."""
    assert r.commit is not None
    commit = r.commit
    propagation: dict[int, float] = {}
    last_accepted: dict[int, float | None] = {}
    seen: dict[int, float] = {}
    for i in range(instances):
        refusals = sorted(r.refusals.get(i, []))
        if not refusals:
            continue  # never refused: already an unexpected error
        accepted = [t for _, j, t in r.accepted if j == i and t > commit]
        last = max(accepted, default=None)
        first_seen = min(t for _, t in refusals)
        if last is None and first_seen <= commit:
            bound = commit  # it refused before the generator even heard the commit
        else:
            after = [t for t, _ in refusals if t > (last if last is not None else commit)]
            bound = after[0] if after else max(t for t, _ in refusals)
        propagation[i] = round(max(0.0, bound - commit) * 1000, 2)
        last_accepted[i] = None if last is None else round((last - commit) * 1000, 2)
        seen[i] = round((min(t for _, t in refusals) - commit) * 1000, 2)
    return {"propagation_ms": propagation, "last_accepted_ms": last_accepted, "refusal_seen_ms": seen}


def _classify_revoke(response: Any) -> tuple[str, Any, str]:
    if response.status_code == 200:
        return "ok", None, ""
    return f"http_{response.status_code}", None, response.text[:200]


# --- one run ------------------------------------------------------------------------------------


@dataclass
class LoadOutcome:
    recorder: Recorder
    revokes: list[RevokeReport]
    registrations: int
    loop_lag_ms: list[float]
    measured_seconds: float
    cpu: dict[str, Any]
    # Connections the instances (and the generator) opened to the database while measuring.
    postgres_sessions_opened: int


async def _loop_lag(cluster: Cluster, lags: list[float]) -> None:
    """How late the generator's event loop wakes up: its own queueing shows in every figure."""
    while not cluster.stopping:
        start = time.monotonic()
        await asyncio.sleep(0.05)
        if cluster.rec.measured(start):
            lags.append((time.monotonic() - start - 0.05) * 1000)


async def run_load(
    urls: list[str],
    database_url: str,
    public_url: str,
    config: LoadConfig,
    cpu_snapshot: Callable[[], dict[str, float]],
) -> LoadOutcome:
    """Set up ``config.agents`` agents against the instances at ``urls``, run warm-up and the
    measured ``duration``, then stop and let every started revoke finish its checks."""
    rec = Recorder()
    cluster = Cluster(urls, database_url, public_url, config, rec)
    await cluster.open()
    try:
        assert cluster.rt is not None
        users = [
            await create_user(
                cluster.rt.sessions, f"load-agent-{secrets.token_hex(3)}-{i:03d}", role="editor"
            )
            for i in range(config.agents)
        ]
        agents = [Agent(cluster, i, u.id) for i, u in enumerate(users)]
        try:
            await asyncio.gather(*(a.register() for a in agents))
        except (RegistrationFailed, httpx.HTTPError, RequestTimeout, TransportFailure) as exc:
            raise RuntimeError(f"registering the agents failed: {exc}") from exc
        page = await cluster.tool(0, agents[0].access_token, "list_posts", {"limit": 20})
        if page.outcome != "ok":
            raise RuntimeError(f"list_posts before the run: {page.outcome} {page.detail}")
        cluster.post_ids = [item["id"] for item in page.body["structuredContent"]["items"]]
        if not cluster.post_ids:
            raise RuntimeError("the demo site has no published post")

        lags: list[float] = []
        start = time.monotonic()
        rec.measure_from = start + config.warmup
        rec.measure_until = rec.measure_from + config.duration
        workers = [asyncio.create_task(a.run()) for a in agents]
        lag_task = asyncio.create_task(_loop_lag(cluster, lags))
        await asyncio.sleep(max(0.0, rec.measure_from - time.monotonic()))
        cpu_before = cpu_snapshot()
        sessions_before = await cluster.sessions_opened()
        revoker = Revoker(cluster, agents)
        revoker_task = asyncio.create_task(revoker.run())
        await asyncio.sleep(max(0.0, rec.measure_until - time.monotonic()))
        cpu_after = cpu_snapshot()
        cluster.stopping = True
        await asyncio.gather(*workers, revoker_task, lag_task)
        await revoker.drain()
        sessions_after = await cluster.sessions_opened()
        cpu = {key: cpu_after[key] - cpu_before.get(key, 0.0) for key in cpu_after}
        return LoadOutcome(
            recorder=rec,
            revokes=revoker.reports,
            registrations=sum(a.registrations for a in agents),
            loop_lag_ms=lags,
            measured_seconds=config.duration,
            cpu=cpu,
            postgres_sessions_opened=sessions_after - sessions_before,
        )
    finally:
        await cluster.close()
