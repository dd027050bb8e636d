"""Helpers for the operations tests: in-process servers with their ``Server`` object at hand,
a real ``aiconnector serve`` subprocess, Prometheus text parsing and MCP calls."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from aiconnector.app import Server, create_app
from tests.conftest import ADMIN_PASSWORD, LiveServer, make_settings
from tests.server_log_guard import Allowed, assert_clean_server_log
from tests.support import DatabaseUnderTest, free_port, serve_in_thread, wait_until_ready

AICONNECTOR = str(Path(sys.executable).with_name("aiconnector"))
ACCEPT = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-11-25",
}
METRICS_TOKEN = "metrics-token-for-tests-0123456789"


@dataclass
class Running:
    live: LiveServer
    server: Server

    @property
    def url(self) -> str:
        return self.live.base_url


@contextmanager
def running(database: DatabaseUnderTest, data_dir: Path, **overrides: object) -> Iterator[Running]:
    """``create_app`` under uvicorn in a thread, keeping the ``Server`` for its metrics."""
    port = free_port()
    settings = make_settings(database, data_dir, port, **overrides)
    server = create_app(settings)
    with serve_in_thread(server, port) as base_url:
        yield Running(LiveServer(base_url, settings, database), server)


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def tool_call(
    name: str, arguments: dict[str, Any] | None = None, progress: str | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments or {}}
    if progress is not None:
        params["_meta"] = {"progressToken": progress}
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}


def mcp(base_url: str, headers: dict[str, str], name: str, arguments: dict[str, Any] | None = None,
        **extra: Any) -> httpx.Response:  # fmt: skip
    return httpx.post(
        f"{base_url}/mcp", json=tool_call(name, arguments), headers={**ACCEPT, **headers}, timeout=60, **extra
    )


# --- Prometheus text format ---------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Scrape:
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float | None:
        for sample, found, value in self.samples:
            if sample == name and all(found.get(k) == v for k, v in labels.items()):
                return value
        return None

    def total(self, name: str, **labels: str) -> float:
        return sum(
            value
            for sample, found, value in self.samples
            if sample == name and all(found.get(k) == v for k, v in labels.items())
        )

    def label_values(self, name: str, label: str) -> set[str]:
        return {found[label] for sample, found, _ in self.samples if sample == name and label in found}


def parse_exposition(text: str) -> Scrape:
    """Strict enough to catch a malformed line: every line is a comment or a sample."""
    scrape = Scrape()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            scrape.types[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = dict(_LABEL.findall(match.group(3) or ""))
        raw = match.group(4)
        scrape.samples.append((match.group(1), labels, float("inf") if raw == "+Inf" else float(raw)))
    return scrape


def scrape(base_url: str, token: str | None = METRICS_TOKEN) -> Scrape:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{base_url}/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse_exposition(response.text)


# --- a real ``aiconnector serve`` ---------------------------------------------------------------


@dataclass
class ServeProcess:
    proc: subprocess.Popen[bytes]
    base_url: str
    stderr_path: Path
    stdout_path: Path

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout=timeout)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr


@contextmanager
def serve_process(
    database: DatabaseUnderTest,
    data_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    allowed: Allowed | None = None,
) -> Iterator[ServeProcess]:
    """``aiconnector serve`` in its own process group; killed if the test leaves it running.
    At the end its log must show no 5xx and no traceback beyond what ``allowed`` names (the
    test's ``server_errors`` marker: ``Allowed.of(request.node)``)."""
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AICONNECTOR_")},
        "AICONNECTOR_ADMIN_PASSWORD": ADMIN_PASSWORD,
        **(env or {}),
    }
    stderr_path, stdout_path = data_dir / "serve.stderr", data_dir / "serve.stdout"
    argv = [AICONNECTOR, "--data-dir", str(data_dir), "--database-url", database.url, "serve"]
    argv += ["--port", str(port), *args]
    with stderr_path.open("wb") as err, stdout_path.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=environment, start_new_session=True)
    running = ServeProcess(proc, f"http://127.0.0.1:{port}", stderr_path, stdout_path)
    try:
        wait_until_ready(running.base_url, proc, lambda: running.output)
        yield running
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert_clean_server_log(running.output, allowed)
