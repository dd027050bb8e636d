"""The credentials store: private modes from the first byte, atomic replacement, per-origin
files for both spellings of a server URL, and a lock that really excludes other processes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiconnector.client.credentials import CredentialStore, config_dir
from aiconnector.client.discovery import origin_of, split_server_url
from aiconnector.client.errors import ClientError
from tests.client.conftest import ORIGIN, make_creds


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_modes_are_private(config_dir: Path) -> None:
    store = CredentialStore()
    assert store.directory == config_dir
    path = store.save(make_creds())
    assert mode(config_dir) == 0o700
    assert mode(path) == 0o600
    loaded = store.load(ORIGIN)
    assert (
        loaded is not None and loaded.access_token == "aic_at_one" and loaded.refresh_token == "aic_rt_secret"
    )


def test_loose_modes_are_tightened(config_dir: Path) -> None:
    store = CredentialStore()
    path = store.save(make_creds())
    os.chmod(path, 0o644)
    os.chmod(config_dir, 0o755)
    assert store.load(ORIGIN) is not None
    assert mode(path) == 0o600
    store.save(make_creds())
    assert mode(config_dir) == 0o700


def test_write_is_atomic(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed write leaves the old file whole and no temporary file behind; a successful
    one replaces the file (new inode), so a concurrent reader sees old or new, never a mix."""
    store = CredentialStore()
    path = store.save(make_creds(access="aic_at_old"))
    inode = path.stat().st_ino

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.save(make_creds(access="aic_at_new"))
    monkeypatch.undo()
    assert json.loads(path.read_text())["access_token"] == "aic_at_old"
    assert sorted(p.name for p in config_dir.iterdir()) == [path.name]

    store.save(make_creds(access="aic_at_new"))
    assert path.stat().st_ino != inode
    assert store.load(ORIGIN).access_token == "aic_at_new"  # type: ignore[union-attr]


def test_site_and_mcp_url_share_one_file(config_dir: Path) -> None:
    assert split_server_url("https://Site.Example/") == ("https://site.example", "https://site.example/mcp")
    assert split_server_url("https://site.example:443/mcp") == (
        "https://site.example",
        "https://site.example/mcp",
    )
    assert split_server_url("http://127.0.0.1:8000/mcp")[0] == "http://127.0.0.1:8000"
    assert split_server_url("site.example")[0] == "https://site.example"
    store = CredentialStore()
    assert store.path_for(origin_of("https://site.example")) == store.path_for(
        origin_of("https://site.example/mcp")
    )
    assert store.path_for("http://127.0.0.1:8000").name == "http_127.0.0.1_8000.json"
    assert store.path_for("http://[::1]:8000") != store.path_for("http://127.0.0.1:8000")


def test_plain_http_only_for_loopback() -> None:
    with pytest.raises(ClientError, match="unencrypted"):
        split_server_url("http://site.example")
    assert split_server_url("http://localhost:8000")[0] == "http://localhost:8000"
    assert split_server_url("http://[::1]:8000")[0] == "http://[::1]:8000"


def test_damaged_or_foreign_files_are_reported(config_dir: Path) -> None:
    store = CredentialStore()
    path = store.save(make_creds())
    path.write_text("{not json")
    with pytest.raises(ClientError, match="unreadable.*aiconnector login"):
        store.load(ORIGIN)
    store.save(make_creds(origin="https://other.example"))
    os.replace(store.path_for("https://other.example"), path)
    with pytest.raises(ClientError, match="belongs to https://other.example"):
        store.load(ORIGIN)
    assert store.load("https://missing.example") is None


def test_secrets_stay_out_of_repr() -> None:
    text = repr(make_creds())
    assert "aic_at_one" not in text and "aic_rt_secret" not in text


def test_config_dir_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AICONNECTOR_CONFIG_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_dir() == tmp_path / "xdg" / "aiconnector"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_dir() == tmp_path / "home" / ".config" / "aiconnector"


def test_refresh_margin_scales_with_lifetime() -> None:
    assert make_creds(expires_in=3600).refresh_margin() == 60
    assert make_creds(expires_in=2).refresh_margin() == pytest.approx(0.2)
    assert not make_creds(expires_in=3600).expiring()
    assert make_creds(expires_in=30).expiring(time.time() + 28)


PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("busy")
else:
    print("free")
"""


def test_lock_excludes_other_processes(config_dir: Path) -> None:
    store = CredentialStore()
    lock_file = config_dir / "https_site.example_443.lock"

    def probe() -> str:
        return subprocess.run(
            [sys.executable, "-c", PROBE, str(lock_file)], capture_output=True, text=True, check=True
        ).stdout.strip()

    with store.locked(ORIGIN):
        assert mode(lock_file) == 0o600
        assert probe() == "busy"
    assert probe() == "free"


async def test_async_lock_serializes_coroutines(config_dir: Path) -> None:
    """Two coroutines of one process (a proxy's concurrent requests) exclude each other too."""
    import asyncio

    store = CredentialStore()
    order: list[str] = []

    async def worker(name: str) -> None:
        async with store.alocked(ORIGIN):
            order.append(f"{name} in")
            await asyncio.sleep(0.1)
            order.append(f"{name} out")

    await asyncio.gather(worker("a"), worker("b"))
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
