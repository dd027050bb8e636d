"""Per-server credentials on disk, safe against other users and against ourselves.

One JSON file per server origin in the user's config directory
(``$AICONNECTOR_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/aiconnector``, else
``~/.config/aiconnector``). The directory is 0700 and files 0600 from the moment they exist
(``mkstemp`` creates them so), and every write is a temp file + ``os.replace``, so a reader in
another process sees either the old or the new credentials, never half of each.

Refresh tokens rotate: if two processes (say two ``aiconnector proxy`` instances) both
refreshed with the same refresh token, one would be burning the rotation. ``locked`` takes an
exclusive ``flock`` on a separate lock file (the credentials file itself is replaced on every
write, so a lock on it would guard a file that no longer has a name); whoever gets the lock
second re-reads the file and usually finds a fresh token there already."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiconnector.client.discovery import Endpoints
from aiconnector.client.errors import ClientError

FORMAT_VERSION = 1
CONFIG_DIR_ENV = "AICONNECTOR_CONFIG_DIR"


def config_dir() -> Path:
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / "aiconnector"


@dataclass(frozen=True, slots=True)
class Credentials:
    """One server's login: where to talk to, who we are to it, and the current tokens."""

    endpoints: Endpoints
    client_id: str
    # True when ``login`` registered the client itself (RFC 7591), so it may register again
    # if the server has garbage-collected it; False for a client id the user gave.
    dynamic_client: bool
    access_token: str
    refresh_token: str | None
    expires_at: float  # epoch seconds
    lifetime: float  # expires_in as issued, to size the refresh margin
    scope: str

    @property
    def origin(self) -> str:
        return self.endpoints.origin

    def refresh_margin(self) -> float:
        """Refresh this long before expiry: a minute for hour-long tokens, proportionally
        less for short ones so they are not refreshed on every use."""
        return min(60.0, self.lifetime / 10)

    def expiring(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) >= self.expires_at - self.refresh_margin()

    def with_tokens(self, response: dict[str, Any], now: float | None = None) -> Credentials:
        """New credentials from a token endpoint response (RFC 6749 §5.1). A response
        without a refresh token keeps the old one (rotation is the server's choice)."""
        return replace(self, **token_fields(response, now, default_refresh=self.refresh_token))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "endpoints": self.endpoints.to_json(),
            "client_id": self.client_id,
            "dynamic_client": self.dynamic_client,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
            "lifetime": self.lifetime,
            "scope": self.scope,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Credentials:
        return cls(
            endpoints=Endpoints.from_json(data["endpoints"]),
            client_id=str(data["client_id"]),
            dynamic_client=bool(data.get("dynamic_client", False)),
            access_token=str(data["access_token"]),
            refresh_token=data.get("refresh_token"),
            expires_at=float(data["expires_at"]),
            lifetime=float(data.get("lifetime", 3600)),
            scope=str(data.get("scope", "")),
        )

    def __repr__(self) -> str:  # never show tokens in tracebacks or logs
        return f"Credentials(origin={self.origin!r}, client_id={self.client_id!r}, scope={self.scope!r})"


def token_fields(
    response: dict[str, Any], now: float | None = None, *, default_refresh: str | None = None
) -> dict[str, Any]:
    """The token-related fields of ``Credentials`` from a token endpoint response."""
    access = response.get("access_token")
    if not isinstance(access, str) or not access:
        raise ClientError("the server's token response has no access_token")
    lifetime = float(response.get("expires_in") or 3600)
    return {
        "access_token": access,
        "refresh_token": response.get("refresh_token") or default_refresh,
        "expires_at": (now if now is not None else time.time()) + lifetime,
        "lifetime": lifetime,
        "scope": str(response.get("scope", "")),
    }


def file_stem(origin: str) -> str:
    """A readable file name for an origin: ``https_site.example_443``."""
    parts = urlsplit(origin)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return re.sub(r"[^A-Za-z0-9.-]", "_", f"{parts.scheme}_{parts.hostname}_{port}")


class CredentialStore:
    """The config directory; every method is safe to call from several processes at once."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else config_dir()

    def path_for(self, origin: str) -> Path:
        return self.directory / f"{file_stem(origin)}.json"

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = stat.S_IMODE(self.directory.stat().st_mode)
        if mode & 0o077:
            os.chmod(self.directory, 0o700)

    def load(self, origin: str) -> Credentials | None:
        path = self.path_for(origin)
        try:
            with path.open("rb") as fh:
                if stat.S_IMODE(os.fstat(fh.fileno()).st_mode) & 0o077:
                    os.fchmod(fh.fileno(), 0o600)  # someone loosened it; tokens stay private
                data = json.loads(fh.read())
            creds = Credentials.from_json(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ClientError(
                f"credentials file {path} is unreadable ({type(exc).__name__}); "
                f"run: aiconnector login {origin}"
            ) from exc
        if creds.origin != origin:
            raise ClientError(f"credentials file {path} belongs to {creds.origin}, not {origin}")
        return creds

    def save(self, creds: Credentials) -> Path:
        """Write atomically with mode 0600 (mkstemp's mode, so never readable by others,
        not even for an instant)."""
        self._ensure_directory()
        path = self.path_for(creds.origin)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(json.dumps(creds.to_json(), indent=2).encode() + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return path

    def delete(self, origin: str) -> bool:
        try:
            self.path_for(origin).unlink()
        except FileNotFoundError:
            return False
        return True

    @contextlib.contextmanager
    def locked(self, origin: str) -> Iterator[None]:
        """Exclusive cross-process lock for one server's credentials (blocking)."""
        self._ensure_directory()
        lock_path = self.directory / f"{file_stem(origin)}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.asynccontextmanager
    async def alocked(self, origin: str) -> AsyncIterator[None]:
        """``locked`` for coroutines: waits in a worker thread so the event loop keeps
        serving other requests. If the waiter is cancelled, the lock is released as soon as
        the thread gets it, instead of being held by nobody until the process exits."""
        lock = self.locked(origin)
        acquiring = asyncio.ensure_future(asyncio.to_thread(lock.__enter__))
        try:
            await asyncio.shield(acquiring)
        except asyncio.CancelledError:
            acquiring.add_done_callback(
                lambda f: None if f.cancelled() or f.exception() else lock.__exit__(None, None, None)
            )
            raise
        try:
            yield
        finally:
            lock.__exit__(None, None, None)
