"""The official MCP conformance suite (@modelcontextprotocol/conformance, `conformance server`)
against the real /mcp endpoint, once per database variant.

scripts/test installs Node 22 and the suite into .tools/ (scripts/install-node-tools) and exports
AICONNECTOR_CONFORMANCE (the CLI) and AICONNECTOR_NODE22 (the node binary). Without them the test
skips with a reason; under CI=true it fails instead.

The CLI has no header option, so auth-preload.mjs (loaded with NODE_OPTIONS=--import) adds our
Authorization header to every request the CLI makes to the MCP URL. Scenarios that need the
suite's own fixture tools/resources/prompts are listed in expected-failures.yml; the CLI exits
non-zero on any other failing scenario and on baseline entries that now pass.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.conftest import LiveServer
from tests.support import IN_CI

HERE = Path(__file__).resolve().parent
PRELOAD = HERE / "auth-preload.mjs"
EXPECTED_FAILURES = HERE / "expected-failures.yml"
RUN_TIMEOUT_S = 240  # the whole suite takes about a second against a healthy server
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Result directories are named server-<scenario>-<ISO timestamp with ':' and '.' replaced by '-'>.
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI requires the MCP conformance suite: {reason}")
    pytest.skip(f"MCP conformance suite skipped: {reason}")


@dataclass(frozen=True)
class Tools:
    conformance: Path
    node22: Path


@pytest.fixture(scope="module")
def conformance_tools() -> Tools:
    cli = os.environ.get("AICONNECTOR_CONFORMANCE", "")
    node = os.environ.get("AICONNECTOR_NODE22", "")
    if not cli:
        _unavailable("AICONNECTOR_CONFORMANCE is not set (run via scripts/test, which installs it)")
    if not node:
        _unavailable("AICONNECTOR_NODE22 is not set (run via scripts/test, which installs it)")
    for name, value in (("AICONNECTOR_CONFORMANCE", cli), ("AICONNECTOR_NODE22", node)):
        if not (Path(value).is_file() and os.access(value, os.X_OK)):
            _unavailable(f"{name}={value} is not an executable file")
    return Tools(Path(cli), Path(node))


@dataclass
class ScenarioResult:
    scenario: str
    checks: list[dict] = field(default_factory=list)

    @property
    def status(self) -> str:
        statuses = {c.get("status") for c in self.checks}
        if "FAILURE" in statuses:
            return "FAILURE"
        if "WARNING" in statuses:  # the CLI's baseline logic counts warnings as failures
            return "WARNING"
        return "SUCCESS"

    @property
    def failing(self) -> bool:
        return self.status != "SUCCESS"

    def problems(self) -> list[str]:
        out = []
        for c in self.checks:
            if c.get("status") in ("FAILURE", "WARNING"):
                detail = c.get("errorMessage") or json.dumps(c.get("details"), default=str)[:400]
                out.append(f"{c.get('status')} {c.get('id')}: {detail}")
        return out


def read_results(out_dir: Path) -> dict[str, ScenarioResult]:
    results: dict[str, ScenarioResult] = {}
    for checks_file in sorted(out_dir.glob("*/checks.json")):
        m = RESULT_DIR.match(checks_file.parent.name)
        scenario = m["scenario"] if m else checks_file.parent.name
        try:
            checks = json.loads(checks_file.read_text())
        except ValueError as exc:
            checks = [{"id": scenario, "status": "FAILURE", "errorMessage": f"unreadable checks.json: {exc}"}]
        results.setdefault(scenario, ScenarioResult(scenario)).checks.extend(checks)
    return results


def expected_failures() -> list[str]:
    data = yaml.safe_load(EXPECTED_FAILURES.read_text()) or {}
    return [str(s) for s in data.get("server") or []]


def summarize(results: dict[str, ScenarioResult], expected: set[str]) -> tuple[str, list[str], list[str]]:
    """A printable per-scenario table, the unexpected failures and the stale baseline entries."""
    lines = []
    unexpected, stale = [], []
    for name, res in sorted(results.items()):
        if res.failing and name in expected:
            verdict = "expected failure"
        elif res.failing:
            verdict = "UNEXPECTED " + res.status
            unexpected.append(name)
        elif name in expected:
            verdict = "PASSES BUT IS IN BASELINE (stale)"
            stale.append(name)
        else:
            verdict = "pass"
        lines.append(f"  {name:<34} {verdict}")
        if res.failing:
            lines.extend(f"      {p}" for p in res.problems())
    not_run = sorted(expected - results.keys())
    passed = sum(not r.failing for r in results.values())
    xfailed = sum(r.failing and n in expected for n, r in results.items())
    lines.append(
        f"  -- {len(results)} scenarios: {passed} passed, {xfailed} expected failures, "
        f"{len(unexpected)} unexpected failures, {len(stale)} stale baseline entries"
    )
    if not_run:
        lines.append(f"  -- baseline entries that did not run: {', '.join(not_run)}")
    return "\n".join(lines), unexpected, stale


def test_mcp_conformance_suite(conformance_tools: Tools, live_server: LiveServer, tmp_path: Path) -> None:
    # conformance_tools comes first so that a skip happens before a server is started.
    password = live_server.app_password(name="conformance suite")
    auth = live_server.basic_header("admin", password)["Authorization"]
    home = tmp_path / "home"
    out_dir = tmp_path / "results"
    home.mkdir()

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NODE_", "NPM_", "npm_")) and k not in ("HOME", "XDG_CONFIG_HOME")
    }
    env.update(
        HOME=str(home),
        TMPDIR=str(tmp_path),
        PATH=f"{conformance_tools.node22.parent}{os.pathsep}{env.get('PATH', '')}",
        # A file: URL so that a path with spaces survives NODE_OPTIONS' word splitting.
        NODE_OPTIONS=f"--import={PRELOAD.as_uri()}",
        AICONNECTOR_CONFORMANCE_URL=live_server.mcp_url,
        AICONNECTOR_CONFORMANCE_AUTH=auth,
    )
    cmd = [
        "timeout",
        "--kill-after=10",
        str(RUN_TIMEOUT_S),
        str(conformance_tools.conformance),
        "server",
        "--url",
        live_server.mcp_url,
        "--expected-failures",
        str(EXPECTED_FAILURES),
        "--output-dir",
        str(out_dir),
    ]
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S + 30
    )
    output = ANSI.sub("", proc.stdout + proc.stderr)

    results = read_results(out_dir) if out_dir.is_dir() else {}
    expected = set(expected_failures())
    table, unexpected, stale = summarize(results, expected)
    print(f"MCP conformance suite against {live_server.mcp_url} (exit {proc.returncode}):\n{table}")

    if proc.returncode == 124:
        pytest.fail(f"conformance suite timed out after {RUN_TIMEOUT_S} s\n{table}\n{output[-3000:]}")
    assert results, f"conformance suite produced no results (exit {proc.returncode}):\n{output[-3000:]}"
    assert not unexpected and not stale and proc.returncode == 0, (
        f"conformance suite exit {proc.returncode}; "
        f"unexpected failures: {', '.join(unexpected) or 'none'}; "
        f"stale baseline entries (now passing): {', '.join(stale) or 'none'}\n{table}\n"
        f"--- CLI output (tail) ---\n{output[-2000:]}"
    )
