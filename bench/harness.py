"""The benchmark harness shared by ``mcp_throughput.py`` and ``profile_ours.py``: one seeded
SQLite database, server processes pinned to one core, ``wrk`` pinned to the other, and a
pre-flight check that every server answers each tool with a real result.

Pinning matters on a 2-core machine: without it the load generator and the server fight for
the same core and the numbers measure the scheduler, not the server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
LUA_SCRIPT = ROOT / "bench" / "wrk" / "post.lua"
PROTOCOL_VERSION = "2025-11-25"
SERVER_CPU = "0"
CLIENT_CPU = "1"
TOOLS: tuple[str, ...] = ("whoami", "get_post", "list_posts")


@dataclass(frozen=True, slots=True)
class ServerKind:
    key: str
    label: str
    module: str


SERVERS: dict[str, ServerKind] = {
    s.key: s
    for s in (
        ServerKind("ours", "(a) AI Connector", "bench.servers.ours"),
        ServerKind("starlette", "(b) minimal Starlette", "bench.servers.starlette_baseline"),
        ServerKind("sdk", "(c) official SDK", "bench.servers.sdk_server"),
    )
}


@dataclass(slots=True)
class Fixture:
    """The seeded database and the credential every request uses."""

    directory: Path
    database_url: str
    authorization: str
    post_id: int
    bodies: dict[str, bytes] = field(default_factory=dict)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tool_call_body(tool: str, arguments: dict[str, Any]) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}},
        separators=(",", ":"),
    ).encode()


async def _seed(database_url: str, data_dir: Path) -> tuple[str, int]:
    """Migrate, create the admin, seed the demo site, make one application password; return
    the Authorization header value and the id of a published post."""
    from aiconnector.config import Settings
    from aiconnector.core.app_passwords import create_app_password, verify_app_password
    from aiconnector.runtime import ensure_admin, open_runtime
    from aiconnector.sites.base import PostQuery
    from aiconnector.sites.builtin import BuiltinSite
    from aiconnector.sites.demo import seed_demo_content

    settings = Settings(
        data_dir=data_dir, database_url=database_url, demo=False, admin_password="bench-admin-pw"
    )
    async with open_runtime(settings) as rt:
        await ensure_admin(rt)
        await seed_demo_content(rt.sessions, admin_user_id=1)
        password, _ = await create_app_password(rt.sessions, "admin", name="benchmark", audit=rt.audit)
        principal = await verify_app_password(rt.sessions, "admin", password)
        assert principal is not None
        site = BuiltinSite(rt.sessions, public_url=settings.origin)
        page = await site.list_posts(principal.actor, PostQuery(limit=1))
        if not page.items:
            raise RuntimeError("demo content has no published post")
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    return f"Basic {token}", page.items[0].id


@contextmanager
def seeded_database(keep: bool = False, database_url: str | None = None) -> Iterator[Fixture]:
    """Seed a fresh database: a new SQLite file in a temporary directory by default, or the
    (empty) database at ``database_url``, e.g. a PostgreSQL database made for one run. The
    temporary directory always exists: it holds the server logs."""
    directory = Path(tempfile.mkdtemp(prefix="aic-bench-"))
    database_url = database_url or f"sqlite+aiosqlite:///{directory / 'bench.db'}"
    try:
        authorization, post_id = asyncio.run(_seed(database_url, directory))
        fixture = Fixture(directory, database_url, authorization, post_id)
        fixture.bodies = {
            "whoami": tool_call_body("whoami", {}),
            "get_post": tool_call_body("get_post", {"id": post_id}),
            "list_posts": tool_call_body("list_posts", {"limit": 10}),
        }
        yield fixture
    finally:
        if keep:
            log(f"kept benchmark data in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def can_pin() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pinned(cpu: str, argv: Sequence[str], pin: bool) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if pin else list(argv)


def ensure_wrk() -> str:
    """Path of ``wrk``; installs Debian's package when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit("wrk is not installed; install it (Debian: apt-get install -y wrk) and run again")
    log("wrk not found: running `apt-get update` and `apt-get install -y wrk`")
    subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        sys.exit("apt-get install wrk did not provide a wrk binary")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def headers(fixture: Fixture, authorization: str | None = None) -> dict[str, str]:
    """What an MCP client sends on each POST (wrk/post.lua sends the same); the fixture's
    application password unless another ``authorization`` is given."""
    return {
        "Authorization": authorization or fixture.authorization,
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL_VERSION,
    }


_ORIGIN = re.compile(r"http://127\.0\.0\.1:\d+")


class CallFailed(Exception):
    """A server answered a benchmark request with something other than a tool result."""


def parse_result(response: httpx.Response) -> dict[str, Any]:
    """The ``CallToolResult`` of a JSON or single-event SSE response; raise ``CallFailed``
    on an HTTP error, a JSON-RPC error or an ``isError`` result."""
    if response.status_code != 200:
        raise CallFailed(f"HTTP {response.status_code}: {response.text[:300]}")
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        text = data[-1] if data else ""
    message = json.loads(text)
    if "result" not in message:
        raise CallFailed(f"JSON-RPC error: {json.dumps(message.get('error'))[:300]}")
    result = message["result"]
    if result.get("isError"):
        raise CallFailed(f"tool error: {json.dumps(result.get('content'))[:300]}")
    return result


@dataclass(slots=True)
class RunningServer:
    kind: ServerKind
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``: the server's public origin (its settings derive the
        OAuth resource, ``<origin>/mcp``, from it)."""
        return self.url.removesuffix("/mcp")

    def cpu_seconds(self) -> CpuTimes:
        """CPU time so far of the event-loop thread and of all other threads (the aiosqlite
        connection threads, where SQLite runs). The process total includes threads that have
        already exited (pool overflow connections come and go)."""
        pid = self.process.pid  # taskset execs the server, so this is the Python process
        total = _stat_cpu(Path(f"/proc/{pid}/stat"))
        main = _stat_cpu(Path(f"/proc/{pid}/task/{pid}/stat"))
        return CpuTimes(main, total - main)


def _stat_cpu(stat: Path) -> float:
    """utime + stime in seconds from a /proc stat file."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CpuTimes:
    event_loop: float
    other_threads: float

    def __sub__(self, earlier: CpuTimes) -> CpuTimes:
        return CpuTimes(self.event_loop - earlier.event_loop, self.other_threads - earlier.other_threads)


@contextmanager
def running_server(
    kind: ServerKind,
    fixture: Fixture,
    *,
    pin: bool,
    timeout: float = 90.0,
    probe: Callable[[RunningServer], None] | None = None,
) -> Iterator[RunningServer]:
    """Start one server process pinned to the server core; yield once ``probe`` succeeds
    (default: a real ``whoami`` call with the fixture's credential). ``probe`` raises
    ``httpx.TransportError`` while the server is not listening yet, anything else when it
    answers wrongly. Stopped with SIGINT so uvicorn shuts down cleanly."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        kind.module,
        "--database-url",
        fixture.database_url,
        "--port",
        str(port),
        "--data-dir",
        str(fixture.directory),
    ]
    log_path = fixture.directory / f"{kind.key}-{port}.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(  # noqa: S603 - our own argv
            pinned(SERVER_CPU, argv, pin),
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
        )
    server = RunningServer(kind, f"http://127.0.0.1:{port}/mcp", process, log_path)
    try:
        _wait_ready(server, probe or (lambda s: probe_whoami(s, fixture)), timeout)
        yield server
    finally:
        _stop(process)


def probe_whoami(server: RunningServer, fixture: Fixture) -> None:
    """The default readiness probe: one ``whoami`` call that must return a real result."""
    response = httpx.post(server.url, content=fixture.bodies["whoami"], headers=headers(fixture), timeout=5)
    parse_result(response)


def _wait_ready(server: RunningServer, probe: Callable[[RunningServer], None], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.kind.label} exited: {tail(server.log_path)}")
        try:
            probe(server)  # a started server that answers wrongly is a hard failure
        except httpx.TransportError as exc:
            last_error = repr(exc)
            time.sleep(0.1)
            continue
        return
    raise RuntimeError(f"{server.kind.label} not ready after {timeout:.0f} s: {last_error}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to the process group this harness created for the server, then SIGKILL to the
    same group if it has not exited after 30 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def check_tool(
    server: RunningServer, fixture: Fixture, tool: str, authorization: str | None = None
) -> tuple[dict[str, Any], int]:
    """One real call before measuring: the structured result and the response size."""
    response = httpx.post(
        server.url, content=fixture.bodies[tool], headers=headers(fixture, authorization), timeout=10
    )
    result = parse_result(response)
    structured = result.get("structuredContent")
    if structured is None:
        structured = json.loads(result["content"][0]["text"])
    # Each server has its own port, hence its own public URL inside results: compare without it.
    same_origin = _ORIGIN.sub("http://server", json.dumps(structured))
    return json.loads(same_origin), len(response.content)


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int
    rpc_errors: int
    bytes_per_response: float
    # Server CPU seconds during the run: event-loop thread, and the other (SQLite) threads.
    cpu_event_loop_s: float
    cpu_other_threads_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def tail_ratio(self) -> float:
        return self.p99_ms / self.p50_ms if self.p50_ms else float("inf")

    @property
    def cpu_us_per_request(self) -> float:
        """Server CPU per request: robust against a noisy machine where req/s is not."""
        cpu = self.cpu_event_loop_s + self.cpu_other_threads_s
        return 1e6 * cpu / self.requests if self.requests else 0.0

    @property
    def clean(self) -> bool:
        return not (self.non2xx or self.socket_errors or self.rpc_errors)


def run_wrk(
    wrk: str,
    server: RunningServer,
    body: bytes,
    fixture: Fixture,
    *,
    seconds: float,
    connections: int,
    pin: bool,
    authorization: str | None = None,
    script: Path = LUA_SCRIPT,
    url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> LoadResult:
    """Closed-loop load: ``connections`` keep-alive connections each sending the next request
    as soon as the previous answer arrives. By default ``post.lua`` POSTs ``body`` to /mcp
    with the fixture's credential; ``script``, ``url`` and ``env`` drive another endpoint
    (``refresh.lua`` on /oauth/token). Every script prints the summary of ``summary.lua``."""
    argv = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url or server.url,
    ]
    full_env = {
        **os.environ,
        "BENCH_LUA_DIR": str(LUA_SCRIPT.parent),
        "BENCH_BODY": body.decode(),
        "BENCH_AUTH": authorization or fixture.authorization,
        "BENCH_PROTOCOL": PROTOCOL_VERSION,
        **(env or {}),
    }
    cpu_before = server.cpu_seconds()
    done = subprocess.run(  # noqa: S603 - our own argv
        pinned(CLIENT_CPU, argv, pin), env=full_env, capture_output=True, text=True, check=False
    )
    cpu = server.cpu_seconds() - cpu_before
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    requests = raw["requests"]
    return LoadResult(
        requests=requests,
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        non2xx=raw["non2xx"],
        socket_errors=raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"],
        rpc_errors=raw["rpc_errors"],
        bytes_per_response=raw["bytes"] / requests if requests else 0.0,
        cpu_event_loop_s=cpu.event_loop,
        cpu_other_threads_s=cpu.other_threads,
    )
