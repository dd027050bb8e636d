"""A real WordPress (Debian 12's 6.1) for tests, with one user per role.

``scripts/wordpress/start-wordpress.sh`` runs the site and bootstraps the admin's Application
Password (the REST API cannot issue its own first credential). Everything after that goes through
the REST API as the admin, the way the WordPress backend talks to a site, so a fixture that starts
at all has already shown that users, roles and Application Passwords work over REST."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "wordpress"
ROLES = ("administrator", "editor", "author", "contributor", "subscriber")
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-test-password"
ADMIN_EMAIL = "admin@example.com"
APP_PASSWORD_NAME = "tests"
UNAVAILABLE_EXIT = 3  # start-wordpress.sh: this machine cannot run WordPress (not root, no apt)
SCRIPT_TIMEOUT_S = 900  # generous: a first start on a fresh machine installs Debian packages
HTTP_TIMEOUT_S = 30
PORT_CLOSE_TIMEOUT_S = 10


class WordPressUnavailable(RuntimeError):
    """This machine cannot run WordPress (not root, no apt-get, packages not installable): a
    reason to skip, unlike a WordPress that was set up and then misbehaves."""


@dataclass(frozen=True)
class WordPressUser:
    id: int
    username: str
    password: str  # login password, for wp-login.php
    # Application Password named "tests", for REST (Basic auth), as WordPress hands it out: the REST
    # API chunks it ("abcd efgh ..."), the admin's bootstrap one has no spaces; both work as they are.
    app_password: str
    role: str
    email: str


@dataclass
class WordPressInstance:
    url: str  # no trailing slash
    base_dir: Path
    admin: WordPressUser  # the service account
    users: dict[str, WordPressUser]  # by role; "administrator" is ``admin``

    def stop_web(self) -> None:
        """Stop only the PHP web server, keeping MariaDB: to a client that is a WordPress outage.
        Returns once the port refuses connections, so the caller's next request fails at once."""
        _run_script("stop-wordpress.sh", self.base_dir, _port(self.url), "--web")
        # The server's workers may hold the listening socket a moment longer than its leader.
        deadline = time.monotonic() + PORT_CLOSE_TIMEOUT_S
        while _accepts_connections(self.url):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.url} still accepts connections after stop-wordpress.sh --web")
            time.sleep(0.05)

    def start_web(self) -> None:
        """Start the web server again. The start script is idempotent and only starts what is
        down; it returns once /wp-json/ answers 200."""
        _run_script("start-wordpress.sh", self.base_dir, _port(self.url))

    def create_user(self, username: str, role: str, password: str) -> WordPressUser:
        """A new user with an Application Password, made over REST as the admin."""
        email = f"{username}@example.com"
        created = _json(
            self.api(
                "POST",
                "users",
                json={"username": username, "password": password, "email": email, "roles": [role]},
            ),
            201,
        )
        return WordPressUser(
            created["id"], username, password, self._new_app_password(created["id"]), role, email
        )

    def delete_user(self, user_id: int) -> None:
        """Delete for good (the REST API has no trash for users), handing their content to the admin."""
        _json(
            self.api("DELETE", f"users/{user_id}", params={"force": "true", "reassign": self.admin.id}), 200
        )

    def api(self, method: str, path: str, user: WordPressUser | None = None, **kwargs: Any) -> httpx.Response:
        """A direct call to ``/wp-json/wp/v2/<path>`` as ``user`` (the admin by default), with
        Basic auth over the user's Application Password; ``kwargs`` go to ``httpx.request``."""
        user = user or self.admin
        kwargs.setdefault("timeout", HTTP_TIMEOUT_S)
        return httpx.request(
            method,
            f"{self.url}/wp-json/wp/v2/{path.lstrip('/')}",
            auth=(user.username, user.app_password),
            **kwargs,
        )

    def _new_app_password(self, user_id: int) -> str:
        reply = self.api("POST", f"users/{user_id}/application-passwords", json={"name": APP_PASSWORD_NAME})
        return _json(reply, 201)["password"]

    def _ensure_user(self, username: str, role: str, password: str) -> WordPressUser:
        """Create the user, or reset one left by an earlier start of the same base dir to this role
        and password with a single fresh Application Password, so starting again is idempotent."""
        matches = _json(self.api("GET", "users", params={"context": "edit", "search": username}), 200)
        existing = next((u for u in matches if u["username"] == username), None)
        if existing is None:
            return self.create_user(username, role, password)
        user_id = existing["id"]
        _json(self.api("POST", f"users/{user_id}", json={"password": password, "roles": [role]}), 200)
        _json(self.api("DELETE", f"users/{user_id}/application-passwords"), 200)
        return WordPressUser(
            user_id, username, password, self._new_app_password(user_id), role, existing["email"]
        )


def start_wordpress(base_dir: Path, port: int) -> WordPressInstance:
    """Start (or restart) the WordPress kept in ``base_dir`` on 127.0.0.1:``port``, with one user
    per role named after the role and a fresh Application Password for each non-admin user.

    Raises ``WordPressUnavailable`` when the machine cannot run it; whatever was started is
    stopped again when anything fails."""
    base_dir.mkdir(parents=True, exist_ok=True)
    try:
        env = _parse_env(_run_script("start-wordpress.sh", base_dir, port))
        admin = WordPressUser(
            int(env["WP_ADMIN_ID"]),
            env["WP_ADMIN_USER"],
            env["WP_ADMIN_PASSWORD"],
            env["WP_APP_PASSWORD"],
            "administrator",
            env["WP_ADMIN_EMAIL"],
        )
        instance = WordPressInstance(env["WP_URL"], base_dir, admin, {"administrator": admin})
        for role in ROLES[1:]:
            instance.users[role] = instance._ensure_user(role, role, f"{role}-test-password")
    except BaseException:
        _run_script("stop-wordpress.sh", base_dir, port, check=False)
        raise
    return instance


def stop_wordpress(instance: WordPressInstance) -> None:
    """Stop the web server and MariaDB. The base dir is kept: its logs explain a failed session."""
    _run_script("stop-wordpress.sh", instance.base_dir, _port(instance.url))


def _run_script(name: str, base_dir: Path, port: int, *args: str, check: bool = True) -> str:
    """Run one of the scripts for this base dir and port; return its stdout."""
    env = {
        **os.environ,
        "WP_BASE": str(base_dir),
        "WP_PORT": str(port),
        "WP_ADMIN_USER": ADMIN_USERNAME,
        "WP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WP_ADMIN_EMAIL": ADMIN_EMAIL,
        "WP_APP_NAME": APP_PASSWORD_NAME,
    }
    done = subprocess.run(
        ["bash", str(SCRIPTS / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
    )
    if not check or done.returncode == 0:
        return done.stdout
    log = done.stderr.strip().splitlines()
    if done.returncode == UNAVAILABLE_EXIT and name == "start-wordpress.sh" and log:
        raise WordPressUnavailable(log[-1].partition("] ")[2])  # drop the "[start-wordpress HH:MM:SS]"
    tail = "\n".join(log[-20:])
    raise RuntimeError(f"{name} {' '.join(args)} failed with exit status {done.returncode}:\n{tail}")


def _parse_env(text: str) -> dict[str, str]:
    """The script's ``KEY='value'`` lines, unquoted the way a shell sourcing them would."""
    return dict(shlex.split(line)[0].split("=", 1) for line in text.splitlines() if line.strip())


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def _accepts_connections(url: str) -> bool:
    try:
        socket.create_connection(("127.0.0.1", _port(url)), timeout=5).close()
    except OSError:
        return False
    return True


def _json(reply: httpx.Response, status: int) -> Any:
    """The decoded body, or an error that shows what WordPress said instead of ``status``."""
    if reply.status_code != status:
        raise RuntimeError(
            f"{reply.request.method} {reply.request.url} -> {reply.status_code} (expected {status}): "
            f"{reply.text[:500]}"
        )
    return reply.json()
