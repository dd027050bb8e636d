"""``aiconnector serve`` as a user runs it: first start creates and prints the admin password
once, migrates, seeds the demo site and serves; a second start prints no password."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.server_log_guard import assert_clean_server_log
from tests.support import DatabaseUnderTest, free_port

AICONNECTOR = str(Path(sys.executable).with_name("aiconnector"))


def start(database: DatabaseUnderTest, data_dir: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if k != "AICONNECTOR_ADMIN_PASSWORD"}
    proc = subprocess.Popen(
        [
            AICONNECTOR,
            "--data-dir",
            str(data_dir),
            "--database-url",
            database.url,
            "serve",
            "--port",
            str(port),
            "--no-access-log",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError(f"server did not become ready: {proc.communicate()[1]}")
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert_clean_server_log(err)
    return err


def test_first_start_prints_admin_password_once(database: DatabaseUnderTest, tmp_path: Path) -> None:
    port = free_port()
    proc, base = start(database, tmp_path, port)
    try:
        home = httpx.get(base + "/")
        assert home.status_code == 200 and "Lantern" in home.text, "demo site is seeded"
        assert httpx.get(base + "/healthz").text == "ok"
    finally:
        err = stop(proc)
    assert "Created user 'admin' with password:" in err
    password = err.split("with password:")[1].split()[0]
    assert len(password) >= 16

    proc, _ = start(database, tmp_path, port)
    err = stop(proc)
    assert "with password" not in err and password not in err
