"""The product as a user installs it: the wheel built from this tree, installed into a brand-new
virtual environment with its runtime dependencies only (no test extras, no editable install),
and ``aiconnector serve`` started from there on a free port with a fresh data directory.

An editable install with test extras once hid a missing runtime dependency (``python-multipart``
came in through ``mcp``) and missing package data (``web/templates/admin/``): nobody could sign
in on a fresh install while the suite was green. These fixtures make that class of defect fail
a test. They cost about a minute (build, install from pip's cache, start)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.interop.conftest import browser, page  # noqa: F401 - the async chromium fixtures
from tests.support import free_port, wait_until_ready

REPO = Path(__file__).resolve().parents[2]
# What the test extra brings and a user's install must not need (it hid python-multipart).
TEST_ONLY_DISTRIBUTIONS = ("mcp", "pytest", "playwright", "ruff")


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a person's shell: none of the suite's AICONNECTOR_*, no PYTHONPATH
    that could lend the clean install the repository's source."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AICONNECTOR_", "PYTHON", "VIRTUAL_ENV", "PYTEST"))
    }
    return {**env, **extra}


@dataclass(frozen=True)
class CleanInstall:
    """A virtual environment holding only the built wheel and its runtime dependencies."""

    wheel: Path
    prefix: Path

    def bin(self, name: str) -> str:
        return str(self.prefix / "bin" / name)

    def installed(self) -> set[str]:
        pip = [self.bin("python"), "-m", "pip", "--disable-pip-version-check"]
        listed = _run([*pip, "list", "--format=freeze"])
        return {line.split("==")[0].lower() for line in listed.stdout.split()}


def build_wheel(out: Path) -> Path:
    """``pip wheel`` of a copy of exactly what is packaged from (src/, pyproject.toml, README),
    so nothing else in the checkout (build/, egg-info, .venv) can leak into the result."""
    source = out / "source"
    source.mkdir()
    shutil.copytree(
        REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    wheels = out / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "-q", "-w", str(wheels), "."], cwd=source)
    [wheel] = wheels.glob("aiconnector-*.whl")
    return wheel


@pytest.fixture(scope="session")
def clean_install(tmp_path_factory: pytest.TempPathFactory) -> CleanInstall:
    root = tmp_path_factory.mktemp("installed")
    wheel = build_wheel(root)
    prefix = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(prefix)
    pip = [str(prefix / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "install", "-q", str(wheel)], env=clean_env())
    _run([*pip, "check"], env=clean_env())
    return CleanInstall(wheel, prefix)


@dataclass
class InstalledServer:
    """``aiconnector serve`` running from the clean install; its log is kept for the checks."""

    base_url: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def installed_server(
    clean_install: CleanInstall, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InstalledServer]:
    root = tmp_path_factory.mktemp("installed-server")
    data_dir, log_path, port = root / "data", root / "serve.log", free_port()
    argv = [clean_install.bin("aiconnector"), "--data-dir", str(data_dir), "serve", "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,  # not the checkout: nothing of the source tree is importable from here
            env=clean_env(AICONNECTOR_ADMIN_PASSWORD=ADMIN_PASSWORD),
            start_new_session=True,
        )
    server = InstalledServer(f"http://127.0.0.1:{port}", data_dir, log_path, proc)
    try:
        wait_until_ready(server.base_url, proc, server.log)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
