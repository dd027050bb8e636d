"""The system under load for ``bench/loadtest.py``: a throwaway PostgreSQL database and one or
more real ``aiconnector serve`` processes on it.

* ``scratch_database`` creates ``aiconnector_load_<random>`` next to the database named by a
  base URL and drops it (``WITH (FORCE)``) afterwards, whatever happened.
* ``running_instances`` starts the instances one after the other (the first one migrates,
  creates ``admin`` and seeds the demo site; the others find it done), each as its own
  process group on a free loopback port with ``--no-access-log``, all with the same
  ``--public-url`` as if they sat behind one load balancer. An instance counts as started when
  ``/readyz`` answers ``ready`` *and* its LISTEN connection shows in ``pg_stat_activity``:
  revocations must be able to reach it before the first request is sent. Stopped with SIGINT
  (uvicorn's clean shutdown), SIGKILL after 30 s."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL_BASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
# The origin every instance names as its own, i.e. the load balancer's: tokens are bound to
# ``<PUBLIC_URL>/mcp`` whichever instance issued them. Nothing listens there; the load
# generator plays the balancer and talks to the instances' own ports.
PUBLIC_URL = "http://aiconnector-load.invalid"
ADMIN_PASSWORD = "load-test-admin-password"
START_TIMEOUT = 90.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def asyncpg_dsn(url: str, database: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql")
    if database is not None:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


async def _admin_execute(base_url: str, sql: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(base_url), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def postgres_unavailable(base_url: str) -> str | None:
    """None when the server behind ``base_url`` answers; otherwise why not."""
    try:
        asyncio.run(_admin_execute(base_url, "SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means the load test cannot run
        return f"PostgreSQL at {make_url(base_url).render_as_string()} unreachable: {exc}"
    return None


@contextmanager
def scratch_database(base_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``base_url``; yields its SQLAlchemy URL."""
    name = f"aiconnector_load_{secrets.token_hex(5)}"
    asyncio.run(_admin_execute(base_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin_execute(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat_cpu(pid: int) -> float:
    """utime + stime of a process in seconds (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Instance:
    index: int
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def listener_name(self) -> str:
        """``pg_stat_activity.application_name`` of its LISTEN connection (see core.pg_notify)."""
        return f"aiconnector-listener 127.0.0.1:{self.port}"[:63]

    def cpu_seconds(self) -> float:
        try:
            return _stat_cpu(self.process.pid)
        except OSError:
            return 0.0


def aiconnector_command() -> list[str]:
    """The installed ``aiconnector`` script next to this interpreter, as an operator runs it."""
    script = Path(sys.executable).parent / "aiconnector"
    if script.exists():
        return [str(script)]
    found = shutil.which("aiconnector")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from aiconnector.cli.main import main; sys.exit(main())"]


def _start(index: int, database_url: str, directory: Path, pool_size: int | None) -> Instance:
    port = free_port()
    data_dir = directory / f"instance-{index}"
    data_dir.mkdir()
    env = {
        **os.environ,
        "AICONNECTOR_DATABASE_URL": database_url,
        "AICONNECTOR_DATA_DIR": str(data_dir),
        "AICONNECTOR_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AICONNECTOR_LOG_LEVEL": "warning",
        # One address registers every simulated agent's client (RFC 7591); the default of 20 a
        # minute per address is for the internet, not for one load generator.
        "AICONNECTOR_REGISTRATIONS_PER_MINUTE": "100000",
    }
    command = aiconnector_command()
    if pool_size is not None:  # the --pool-size experiment: the product setting
        env["AICONNECTOR_DATABASE_POOL_SIZE"] = str(pool_size)
    argv = [
        *command,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--public-url",
        PUBLIC_URL,
        "--no-access-log",
    ]
    log_path = directory / f"instance-{index}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(  # noqa: S603 - our own argv
            argv,
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
        )
    return Instance(index, port, process, log_path)


async def _listening(database_url: str, listener_name: str) -> bool:
    conn = await asyncpg.connect(asyncpg_dsn(database_url), timeout=5)
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
            " AND datname = current_database()",
            listener_name,
        )
    finally:
        await conn.close()
    return bool(found)


def _wait_ready(instance: Instance, database_url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    ready = False
    while time.monotonic() < deadline:
        if instance.process.poll() is not None:
            raise RuntimeError(f"instance {instance.index} exited:\n{tail(instance.log_path)}")
        try:
            if not ready:
                ready = httpx.get(f"{instance.base_url}/readyz", timeout=5).text == "ready"
            if ready and asyncio.run(_listening(database_url, instance.listener_name)):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(
        f"instance {instance.index} not ready (readyz and LISTEN) after {START_TIMEOUT:.0f} s:\n"
        f"{tail(instance.log_path)}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def running_instances(
    count: int, database_url: str, *, keep_logs: bool = False, pool_size: int | None = None
) -> Iterator[list[Instance]]:
    """``count`` instances of ``aiconnector serve`` on ``database_url``, started one by one
    (through ``loadtest_serve.py`` with that PostgreSQL pool size when ``pool_size`` is set)."""
    directory = Path(tempfile.mkdtemp(prefix="aic-load-"))
    try:
        with ExitStack() as stack:
            instances: list[Instance] = []
            for index in range(count):
                instance = _start(index, database_url, directory, pool_size)
                stack.callback(_stop, instance.process)
                _wait_ready(instance, database_url)
                instances.append(instance)
            yield instances
            for instance in instances:
                if instance.process.poll() is not None:
                    raise RuntimeError(f"instance {instance.index} died during the run")
    finally:
        if keep_logs:
            log(f"server logs kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def instance_logs_with_errors(instances: list[Instance]) -> dict[int, str]:
    """The tail of every instance log that mentions a traceback or an error (the servers run
    at log level warning, so a clean run leaves them empty or nearly so)."""
    out: dict[int, str] = {}
    for instance in instances:
        try:
            text = instance.log_path.read_text(errors="replace")
        except OSError:
            continue
        if "Traceback" in text or "ERROR" in text:
            out[instance.index] = tail(instance.log_path, 40)
    return out
