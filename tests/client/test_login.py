"""``aiconnector login`` end to end: the CLI in a subprocess against the real app, the user
code read from its output and approved (or denied) in chromium on the /device page, as a
person would; then ``token`` and ``logout`` with what it stored."""

from __future__ import annotations

import re
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiconnector.client.credentials import CredentialStore
from aiconnector.core.scopes import SCOPE_DESCRIPTIONS
from tests.client.conftest import RestartableServer, app_server, cli_command, cli_env, mcp_works, run_cli
from tests.conftest import ADMIN_PASSWORD
from tests.support import DatabaseUnderTest

USER_CODE = re.compile(r"^\s+([B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4})\s*$", re.MULTILINE)


@pytest.fixture(scope="module")
def device_server(
    database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RestartableServer]:
    """Polling every second instead of five keeps these tests quick."""
    with app_server(database, tmp_path_factory.mktemp("device"), device_poll_interval=1) as server:
        yield server


class LoginProcess:
    """``aiconnector login`` running in the background, its stdout collected as it comes."""

    def __init__(self, config: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*cli_command(), "login", *args],
            env=cli_env(config),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout += line

    def user_code(self, timeout: float = 60) -> tuple[str, str]:
        """The code and the verification URL, as a person reads them off the terminal."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = USER_CODE.search(self.stdout)
            url = re.search(r"^\s+(http\S+/device)\s*$", self.stdout, re.MULTILINE)
            if match and url:
                return match.group(1), url.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.proc.kill()
        raise AssertionError(f"no user code in the output: {self.stdout!r} {self.proc.stderr.read()!r}")  # type: ignore[union-attr]

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        assert self.proc.stderr is not None
        stderr = self.proc.stderr.read()
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code, self.stdout, stderr


def approve_in_browser(page, verification_uri: str, user_code: str, *, approve: bool = True) -> None:  # noqa: ANN001
    page.goto(verification_uri)
    if "/login" in page.url:
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()
    page.get_by_label("Code").fill(user_code.lower().replace("-", " "))  # as sloppily as people type
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Authorize" if approve else "Deny").wait_for()
    assert page.get_by_text(user_code).first.is_visible(), "the consent screen repeats the code"
    if approve:
        assert page.get_by_label(SCOPE_DESCRIPTIONS["content:write"]).is_checked()
    page.get_by_role("button", name="Authorize" if approve else "Deny").click()
    page.wait_for_load_state()


def test_login_approved_in_the_browser(device_server: RestartableServer, config_dir: Path, page) -> None:  # noqa: ANN001
    server = device_server.live
    login = LoginProcess(config_dir, server.mcp_url, "--scope", "content:read", "--scope", "content:write")
    user_code, verification_uri = login.user_code()
    assert verification_uri == f"{server.base_url}/device"
    approve_in_browser(page, verification_uri, user_code)
    returncode, stdout, stderr = login.finish()
    assert returncode == 0, stderr
    assert "Approved. Logged in to" in stdout and "content:read content:write" in stdout

    store = CredentialStore()
    path = store.path_for(server.base_url)
    creds = store.load(server.base_url)
    assert creds is not None and creds.dynamic_client
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    for secret in (creds.access_token, creds.refresh_token or "-"):
        assert secret not in stdout and secret not in stderr, "login never prints a token"

    token = run_cli(config_dir, "token", server.base_url)
    assert token.returncode == 0, token.stderr
    assert mcp_works(server, token.stdout.strip())

    out = run_cli(config_dir, "logout", server.base_url)
    assert out.returncode == 0, out.stderr
    assert not path.exists()
    assert not mcp_works(server, creds.access_token)


def test_login_denied_in_the_browser(device_server: RestartableServer, config_dir: Path, page) -> None:  # noqa: ANN001
    server = device_server.live
    login = LoginProcess(config_dir, server.base_url)
    user_code, verification_uri = login.user_code()
    approve_in_browser(page, verification_uri, user_code, approve=False)
    returncode, _stdout, stderr = login.finish()
    assert returncode == 1
    assert "error: the request was denied; nothing was stored" in stderr
    assert not CredentialStore().path_for(server.base_url).exists()


def test_login_code_expires(database: DatabaseUnderTest, tmp_path: Path, config_dir: Path) -> None:
    with app_server(
        database, tmp_path / "expiring", device_code_ttl_seconds=3, device_poll_interval=1
    ) as server:
        result = run_cli(config_dir, "login", server.base_url)
    assert result.returncode == 1
    assert "error: the code expired before it was approved; run aiconnector login again" in result.stderr
    assert USER_CODE.search(result.stdout)


def test_login_with_an_unknown_client_id(device_server: RestartableServer, config_dir: Path) -> None:
    result = run_cli(config_dir, "login", device_server.base_url, "--client-id", "no-such-client")
    assert result.returncode == 1
    assert "no-such-client" in result.stderr and result.stdout == ""
