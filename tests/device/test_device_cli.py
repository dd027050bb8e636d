"""``aiconnector clients create --device``: a public device-grant client, and the commands to
run on the agent's machine."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from click.testing import CliRunner

from aiconnector.cli.main import cli, register_commands
from aiconnector.core.client_metadata import DEVICE_CODE_GRANT


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None):  # noqa: ANN201
    register_commands()
    return CliRunner().invoke(cli, ["--data-dir", str(tmp_path), *args], env=env, catch_exceptions=False)


def test_create_device_client_prints_login_and_curl(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "clients", "create", "--device", "--name", "CI runner",
        "--scope", "content:read", "--scope", "content:write",
        env={"AICONNECTOR_PUBLIC_URL": "https://site.example"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    client_id = lines[0].removeprefix("client_id: ")
    login = next(line.strip() for line in lines if line.strip().startswith("aiconnector login"))
    assert shlex.split(login) == [
        "aiconnector", "login", "https://site.example", "--client-id", client_id,
        "--scope", "content:read content:write",
    ]  # fmt: skip
    curl = shlex.split(next(line.strip() for line in lines if line.strip().startswith("curl")))
    assert "https://site.example/oauth/device_authorization" in curl
    assert f"client_id={client_id}" in curl and "scope=content:read content:write" in curl
    assert "client_secret" not in result.output

    listed = json.loads(run(tmp_path, "clients", "list", "--json").output)
    (row,) = [c for c in listed if c["client_id"] == client_id]
    assert row["kind"] == "device" and row["token_endpoint_auth_method"] == "none"
    assert row["grant_types"] == [DEVICE_CODE_GRANT, "refresh_token"] and row["redirect_uris"] == []


def test_device_flag_refuses_what_does_not_apply(tmp_path: Path) -> None:
    assert run(tmp_path, "clients", "create", "--device", "--name", "x", "--confidential").exit_code == 2
    assert (
        run(
            tmp_path, "clients", "create", "--device", "--name", "x", "--redirect-uri", "http://127.0.0.1/"
        ).exit_code
        == 2
    )
    assert run(tmp_path, "clients", "create", "--name", "x", "--scope", "content:read").exit_code == 2
    assert run(tmp_path, "clients", "create", "--device", "--name", "x", "--scope", "bogus").exit_code == 2
