"""What to run on a headless agent's machine to connect it through a device client.

Two places show these lines: ``aiconnector clients create --device`` prints them and the
admin page *Add Connection → Device Auth* displays them. Building them here keeps the two
identical, so a command copied from the browser is exactly the one the CLI documents."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

TOKEN_POLL_HINT = (
    "then open verification_uri_complete in a browser and poll the token endpoint with\n"
    "  grant_type=urn:ietf:params:oauth:grant-type:device_code and the device_code."
)


@dataclass(frozen=True, slots=True)
class DeviceCommands:
    """The two ways to start a device login: ``aiconnector login`` where the package is
    installed, else a plain ``curl`` device authorization request (RFC 8628 §3.1)."""

    login: str
    curl: str


def device_commands(origin: str, client_id: str, scope: str | None) -> DeviceCommands:
    """Shell-quoted commands for a device client. ``origin`` is this server's public URL
    (``AICONNECTOR_PUBLIC_URL``); ``scope`` is space-separated, None for the server default."""
    login = ["aiconnector", "login", origin, "--client-id", client_id]
    endpoint = f"{origin}/oauth/device_authorization"
    curl = ["curl", "-sS", "-X", "POST", endpoint, "-d", f"client_id={client_id}"]
    if scope:
        login += ["--scope", scope]
        curl += ["--data-urlencode", f"scope={scope}"]
    return DeviceCommands(login=shlex.join(login), curl=shlex.join(curl))


def device_instructions(origin: str, client_id: str, scope: str | None) -> str:
    """The commands as the CLI prints them after creating a device client."""
    commands = device_commands(origin, client_id, scope)
    return "\n".join(
        [
            "",
            "On the agent's machine, run:",
            f"  {commands.login}",
            "Without the aiconnector package:",
            f"  {commands.curl}",
            TOKEN_POLL_HINT,
        ]
    )
