"""Client-side commands for headless agents (DESIGN §2): ``login``, ``token``, ``proxy`` and
``logout``. They talk to a server over HTTP only, from any machine; the work is done in
``aiconnector.client``, this module is the terminal: what is printed where, and exit codes.

stdout carries what a script wants to capture (the user code and URL during login, the token
from ``token``, JSON-RPC from ``proxy``); progress and errors go to stderr. Secrets are never
printed, except the access token by ``token``, which is what it is for."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import click
import httpx

from aiconnector import __version__
from aiconnector.client.credentials import CredentialStore
from aiconnector.client.device_flow import DeviceAuthorization
from aiconnector.client.device_flow import login as device_login
from aiconnector.client.discovery import origin_of
from aiconnector.client.errors import ClientError
from aiconnector.client.proxy import serve_stdio
from aiconnector.client.qr import terminal_qr
from aiconnector.client.tokens import TokenSource, revoke

T = TypeVar("T")
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
# Without a TTY (CI logs), one "still waiting" line per this many seconds instead of a spinner.
QUIET_PROGRESS_SECONDS = 60
url_argument = click.argument("url", metavar="URL")


def _http() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=30.0, headers={"User-Agent": f"aiconnector-cli/{__version__}"})


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run a client coroutine; client errors become ``error: …`` on stderr and exit 1."""
    try:
        return asyncio.run(work)
    except ClientError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("cancelled", err=True)
        sys.exit(130)


def _minutes(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


class TerminalView:
    """How ``login`` looks: instructions on stdout (a script may read the code from there),
    a QR code only on an interactive stdout, and progress on stderr: a spinner with the time
    left on a TTY, else an occasional line that reads well in CI logs."""

    def __init__(self) -> None:
        self.interactive_out = sys.stdout.isatty()
        self.interactive_err = sys.stderr.isatty()
        self._frame = 0
        self._last_line = float("-inf")
        self._spinning = False

    def show_code(self, auth: DeviceAuthorization) -> None:
        click.echo("To approve this login, open")
        click.echo(f"    {auth.verification_uri}")
        click.echo("and enter the code")
        click.echo(f"    {auth.user_code}")
        if auth.verification_uri_complete:
            click.echo(f"(or open {auth.verification_uri_complete}, which fills in the code)")
            if self.interactive_out:
                click.echo(terminal_qr(auth.verification_uri_complete))
        click.echo("Approve only a code shown by a login you started yourself.")
        click.echo(f"The code expires in {max(1, round(auth.expires_in / 60))} minutes.")

    def waiting(self, seconds_left: float) -> None:
        if self.interactive_err:
            self._frame = (self._frame + 1) % len(SPINNER)
            click.echo(
                f"\r{SPINNER[self._frame]} Waiting for approval… {_minutes(seconds_left)} left ",
                nl=False,
                err=True,
            )
            self._spinning = True
            return
        now = time.monotonic()
        if now - self._last_line >= QUIET_PROGRESS_SECONDS:
            self._last_line = now
            click.echo(f"Waiting for approval ({_minutes(seconds_left)} left)…", err=True)

    def note(self, message: str) -> None:
        self._end_spinner()
        click.echo(message, err=True)

    def done(self) -> None:
        self._end_spinner()

    def _end_spinner(self) -> None:
        if self._spinning:
            click.echo("\r\033[K", nl=False, err=True)
            self._spinning = False


def _scope(values: tuple[str, ...]) -> str | None:
    """``--scope a --scope "b c"`` → ``"a b c"``; None asks for the server's default."""
    scopes = [part for value in values for part in value.split()]
    return " ".join(dict.fromkeys(scopes)) or None


@click.command("login")
@url_argument
@click.option("--client-id", help="Use this registered client instead of registering one.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="Scope to ask for (repeatable, or space-separated); default: the server's (content:read).",
)
def login(url: str, client_id: str | None, scopes: tuple[str, ...]) -> None:
    """Connect this machine to the site at URL (its address or its MCP URL).

    Shows a code to approve in a browser on any device (the device flow, RFC 8628), waits for
    the approval and stores the credentials in your config directory, readable only by you.
    """
    store = CredentialStore()

    async def work() -> None:
        async with _http() as http:
            creds = await device_login(
                url, store=store, view=TerminalView(), http=http, client_id=client_id, scope=_scope(scopes)
            )
        click.echo(f"Approved. Logged in to {creds.origin} with scopes: {creds.scope or '(default)'}.")
        click.echo(f"Credentials saved in {store.path_for(creds.origin)}")

    _run(work())


@click.command("token")
@url_argument
def token(url: str) -> None:
    """Print a valid access token for URL, refreshing it when needed.

    For scripts: curl -H "Authorization: Bearer $(aiconnector token URL)" URL/mcp …
    """

    async def work() -> str:
        async with _http() as http:
            return await TokenSource(CredentialStore(), origin_of(url), http).access_token()

    click.echo(_run(work()))


@click.command("proxy")
@url_argument
def proxy(url: str) -> None:
    """Serve the site's MCP endpoint on stdin/stdout for agents that launch stdio servers.

    Tokens are refreshed transparently; run `aiconnector login URL` first.
    """
    try:
        origin_of(url)
    except ClientError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    _run(serve_stdio(url, CredentialStore()))


@click.command("logout")
@url_argument
@click.option(
    "--local-only", is_flag=True, help="Forget the credentials without asking the server to revoke them."
)
def logout(url: str, local_only: bool) -> None:
    """Revoke this machine's connection to URL and forget its credentials."""
    store = CredentialStore()

    async def work() -> None:
        origin = origin_of(url)
        async with store.alocked(origin):
            creds = store.load(origin)
            if creds is None:
                click.echo(f"not logged in to {origin}", err=True)
                return
            if not local_only:
                async with _http() as http:
                    try:
                        await revoke(http, creds)
                    except ClientError as exc:
                        raise ClientError(
                            f"{exc.message}; credentials kept, try again or use --local-only"
                        ) from exc
            store.delete(origin)
        done = "forgot" if local_only else "revoked the connection and removed"
        click.echo(f"Logged out of {origin}: {done} the credentials.")

    _run(work())


COMMANDS = (login, token, proxy, logout)
