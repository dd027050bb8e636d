"""The server-side commands, run as a user runs them: the installed ``aiconnector`` script in a
subprocess, against each kind of database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import DatabaseUnderTest

AICONNECTOR = str(Path(sys.executable).with_name("aiconnector"))


@pytest.fixture
def cli(database: DatabaseUnderTest, tmp_path: Path):  # noqa: ANN201
    env = {**os.environ, "AICONNECTOR_DATABASE_URL": database.url, "AICONNECTOR_DATA_DIR": str(tmp_path)}

    def run(*args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [AICONNECTOR, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120
        )
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    return run


def test_users_create_and_list_json(cli) -> None:  # noqa: ANN001
    out = cli(
        "users",
        "create",
        "maria",
        "--role",
        "editor",
        "--email",
        "maria@example.com",
        "--password-stdin",
        stdin="correct horse battery\n",
    )
    assert "created user maria" in out.stdout
    users = json.loads(cli("users", "list", "--json").stdout)
    maria = next(u for u in users if u["username"] == "maria")
    assert maria["role"] == "editor" and maria["email"] == "maria@example.com"
    assert "password" not in json.dumps(users)


def test_errors_go_to_stderr_with_nonzero_exit(cli) -> None:  # noqa: ANN001
    cli("users", "create", "x", "--role", "author")
    again = cli("users", "create", "x", "--role", "author", ok=False)
    assert again.returncode != 0 and "already exists" in again.stderr and again.stdout == ""
    missing = cli("app-passwords", "create", "nobody", "--name", "n", ok=False)
    assert missing.returncode != 0 and "not found" in missing.stderr
    bad_scope = cli("app-passwords", "create", "x", "--name", "n", "--scope", "everything", ok=False)
    assert bad_scope.returncode != 0 and "unknown scope" in bad_scope.stderr


def test_app_password_lifecycle(cli) -> None:  # noqa: ANN001
    cli("users", "create", "lee", "--role", "author")
    created = cli(
        "app-passwords",
        "create",
        "lee",
        "--name",
        "Claude Code",
        "--scope",
        "content:read",
        "--scope",
        "content:write",
    )
    password = created.stdout.strip()
    assert password.startswith("aic_ap_") and "\n" not in password, "only the password is printed"

    [listed] = json.loads(cli("app-passwords", "list", "lee", "--json").stdout)
    assert listed["name"] == "Claude Code" and listed["status"] == "active"
    assert listed["scopes"] == ["content:read", "content:write"]
    assert password not in json.dumps(listed)

    [conn] = [c for c in json.loads(cli("connections", "list", "--json").stdout) if c["username"] == "lee"]
    assert conn["method"] == "application_password" and conn["agent_name"] == "Claude Code"

    out = cli("app-passwords", "revoke", str(listed["id"]))
    assert "revoked" in out.stdout
    [after] = json.loads(cli("connections", "list", "--json").stdout)[:1]
    assert after["id"] == conn["id"] and after["status"] == "revoked"
    assert json.loads(cli("connections", "list", "--active", "--json").stdout) == []

    events = json.loads(cli("audit", "--json").stdout)
    kinds = [e["event"] for e in events if e["connection_id"] == conn["id"]]
    assert kinds == ["connection.revoked", "connection.created"]
    assert password not in json.dumps(events)


def test_connections_revoke_unknown_id_fails_cleanly(cli) -> None:  # noqa: ANN001
    out = cli("connections", "revoke", "conn_nope", ok=False)
    assert out.returncode == 1 and "not found" in out.stderr and "Traceback" not in out.stderr


def test_human_listing_has_aligned_columns(cli) -> None:  # noqa: ANN001
    cli("users", "create", "ana", "--role", "subscriber")
    lines = cli("users", "list").stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "USERNAME", "ROLE"]
    assert any("ana" in line and "subscriber" in line for line in lines[1:])
