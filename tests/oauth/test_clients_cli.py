"""``aiconnector clients create|list|delete`` through click, against each database kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aiconnector.cli.clients import clients
from aiconnector.cli.main import cli
from aiconnector.config import Settings
from aiconnector.core.clients import resolve_client
from aiconnector.core.code_grant import redeem_authorization_code, s256
from aiconnector.core.connections import get_connection
from aiconnector.core.scopes import DEFAULT_SCOPES
from aiconnector.core.tokens import create_authorization_code
from aiconnector.runtime import ensure_admin, open_runtime
from tests.support import DatabaseUnderTest, run_sync

VERIFIER = "v" * 43


@pytest.fixture
def run(database: DatabaseUnderTest, tmp_path: Path):  # noqa: ANN201
    if "clients" not in cli.commands:
        cli.add_command(clients)
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True) -> Result:
        result = runner.invoke(cli, ["--database-url", database.url, "--data-dir", str(tmp_path), *args])
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


def connect(database: DatabaseUnderTest, tmp_path: Path, client_id: str, redirect_uri: str) -> str:
    """Make a connection through the client, as a finished authorization would."""
    settings = Settings(data_dir=tmp_path, database_url=database.url, admin_password="x" * 12)

    async def work() -> str:
        async with open_runtime(settings) as rt:
            await ensure_admin(rt)
            client = await resolve_client(rt.sessions, client_id, settings=settings)
            code = await create_authorization_code(
                rt.sessions,
                client=client,
                user_id=1,
                redirect_uri=redirect_uri,
                code_challenge=s256(VERIFIER),
                scopes=DEFAULT_SCOPES,
                resource=settings.mcp_url,
                agent_name="script",
            )
            pair = await redeem_authorization_code(
                rt.sessions,
                code=code,
                client=client,
                redirect_uri=redirect_uri,
                code_verifier=VERIFIER,
                resource=None,
                settings=settings,
                audit=rt.audit,
                bus=rt.bus,
            )
            return pair.connection_id

    return run_sync(work())


def connection_revoked(database: DatabaseUnderTest, tmp_path: Path, connection_id: str) -> bool:
    async def work() -> bool:
        async with open_runtime(Settings(data_dir=tmp_path, database_url=database.url)) as rt:
            return (await get_connection(rt.sessions, connection_id)).revoked_at is not None

    return run_sync(work())


def test_create_list_delete(run, database: DatabaseUnderTest, tmp_path: Path) -> None:  # noqa: ANN001
    public = run("clients", "create", "--name", "Newsroom bot", "--redirect-uri", "http://127.0.0.1/cb")
    assert "client_secret" not in public.output
    public_id = public.output.split("client_id: ", 1)[1].split()[0]
    confidential = run("clients", "create", "--name", "Backend", "--confidential")
    secret = confidential.output.split("client_secret: ", 1)[1].split()[0]
    assert secret.startswith("aic_cs_")
    listed = json.loads(run("clients", "list", "--json").output)
    by_id = {c["client_id"]: c for c in listed}
    assert by_id[public_id]["name"] == "Newsroom bot" and by_id[public_id]["kind"] == "pre_registered"
    assert by_id[public_id]["token_endpoint_auth_method"] == "none"
    assert by_id[public_id]["redirect_uris"] == ["http://127.0.0.1/cb"]
    assert secret not in json.dumps(listed)
    assert "Newsroom bot" in run("clients", "list").output

    connection_id = connect(database, tmp_path, public_id, "http://127.0.0.1:5555/cb")
    deleted = run("clients", "delete", public_id)
    assert "1 connection(s) revoked" in deleted.output
    assert connection_revoked(database, tmp_path, connection_id)
    assert public_id not in run("clients", "list", "--json").output


def test_errors_exit_non_zero(run) -> None:  # noqa: ANN001
    bad = run("clients", "create", "--name", "x", "--redirect-uri", "javascript:alert(1)", ok=False)
    assert bad.exit_code == 1 and "javascript" in bad.output
    missing = run("clients", "delete", "app_nope", ok=False)
    assert missing.exit_code == 1 and "not found" in missing.output
