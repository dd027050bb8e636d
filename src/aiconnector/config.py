"""Settings: one frozen object built from ``AICONNECTOR_*`` environment variables, with
command-line flags layered on top. Every component receives it explicitly, so tests can run
several differently configured servers in one process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "AICONNECTOR_"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./aiconnector-data")
    database_url: str | None = None
    # PostgreSQL connections each instance keeps open, and the extra ones it may open in a
    # burst (closed again when returned): see db/engine.py.
    database_pool_size: int = 20
    database_max_overflow: int = 10
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    demo: bool = True
    site: str = "builtin"
    access_token_ttl: int = 3600
    # Extra Origins allowed on /mcp besides the server's own origin and loopback origins.
    allowed_origins: tuple[str, ...] = ()
    max_request_bytes: int = 4 * 1024 * 1024
    max_upload_bytes: int = 20 * 1024 * 1024
    # Fetching media by URL: private and loopback addresses are refused unless this is set
    # (development and tests only).
    allow_private_fetch: bool = False
    # Seconds between flushes of batched "last used" updates for application passwords.
    last_used_flush_seconds: float = 5.0
    # Seconds a verified credential is remembered before the database is asked again.
    credential_cache_seconds: float = 30.0
    auth_failures_per_minute: int = 10
    # OAuth: a just-rotated refresh token still works for this many seconds (clients that
    # refresh twice at once); reuse after that is treated as theft and ends the connection.
    refresh_token_grace_seconds: int = 30
    # OAuth: refresh tokens unused for this long stop working (0 = only revocation ends them).
    refresh_token_idle_seconds: int = 0
    # OAuth: dynamically registered clients without an active connection are deleted this long
    # after registration or their last new connection.
    dynamic_client_ttl_seconds: int = 7 * 24 * 3600
    # OAuth: client registrations (RFC 7591) accepted per client address per minute.
    registrations_per_minute: int = 20
    # OAuth: Client ID Metadata Document fetches per document URL, and per client address, per
    # minute (core/document_fetch_limits.py).
    metadata_fetches_per_minute: int = 20
    # OAuth device grant (RFC 8628): how long a device code and its user code live, and the
    # polling interval a device starts with (each too-early poll adds 5 s to it).
    device_code_ttl_seconds: int = 600
    device_poll_interval: int = 5
    # Wrong user codes a signed-in person, and an address, may enter per code lifetime.
    device_wrong_codes_per_user: int = 5
    device_wrong_codes_per_address: int = 20
    admin_password: str | None = field(default=None, repr=False)
    # WordPress backend (``site = "wordpress"``): the site's base URL and the service account
    # (an administrator) whose Application Password creates each person's own password.
    wp_url: str | None = None
    wp_user: str | None = None
    wp_app_password: str | None = field(default=None, repr=False)
    # Seconds before a WordPress request is abandoned as "site unreachable".
    wp_timeout_seconds: float = 15.0
    # Seconds read-mostly WordPress data (site info, terms, users) is reused; our own writes
    # drop it at once.
    wp_cache_seconds: float = 30.0
    # Key (urlsafe base64 of 32 bytes) that encrypts WordPress credentials at rest. Every
    # instance needs the same one; without it a key file in ``data_dir`` is created and used.
    credentials_key: str | None = field(default=None, repr=False)
    log_level: str = "info"
    # --- production operations (``aiconnector.ops``) -------------------------------------
    # Bearer token that unlocks ``GET /metrics`` on the main port; without it that path is 404.
    metrics_token: str | None = field(default=None, repr=False)
    # ``HOST:PORT`` of a separate, unauthenticated listener serving only ``/metrics`` (for a
    # scraper on a private network), e.g. ``127.0.0.1:9100``.
    metrics_bind: str | None = None
    # Log lines as ``text`` (for a terminal) or ``json`` (one object per line, for production).
    log_format: str = "text"
    # Addresses or CIDR networks of reverse proxies whose ``X-Forwarded-For`` and
    # ``X-Forwarded-Proto`` are believed; from any other peer those headers are ignored.
    trusted_proxies: tuple[str, ...] = ()
    # On SIGTERM: seconds in-flight requests get to finish before they are cancelled.
    shutdown_grace_seconds: float = 20.0
    # On SIGTERM: seconds to keep accepting requests with /readyz already failing, so a load
    # balancer stops sending new ones before the listener closes (a second SIGTERM cuts it short).
    shutdown_delay_seconds: float = 0.0

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'aiconnector.db').resolve()}"

    @property
    def origin(self) -> str:
        """The public origin (scheme://host[:port]) clients reach this server at."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.origin}/mcp"

    def names_this_resource(self, value: str) -> bool:
        """RFC 8707: does a ``resource`` parameter name our MCP endpoint? The bare origin is
        accepted too, since some clients send the server's base URL; both mean the MCP URL."""
        return value in (self.mcp_url, self.origin, self.origin + "/")

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with the given non-None values applied (CLI flags over env)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _coerce(raw: str, current: Any) -> Any:
    if isinstance(current, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    if isinstance(current, Path):
        return Path(raw)
    if isinstance(current, tuple):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def settings_from_env(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from ``AICONNECTOR_<FIELD>`` variables (e.g. ``AICONNECTOR_DATABASE_URL``)."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is not None and raw != "":
            values[f.name] = (
                _coerce(raw, getattr(defaults, f.name)) if getattr(defaults, f.name) is not None else raw
            )
    return replace(defaults, **values)
