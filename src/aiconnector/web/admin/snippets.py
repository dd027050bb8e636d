"""The values a person copies into each MCP client, built from this server's public URL.

Every string here is what the client's own documentation expects (docs/clients.md follows the
same steps), so the Add Connection page, the docs and the tests agree. The page shows each
value in a copyable block and also one plain-text "connection details" block per client, the
fallback when the clipboard is unavailable or a value must be pasted somewhere else."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit


@dataclass(frozen=True, slots=True)
class Value:
    """One labelled value to copy. ``slug`` makes a stable element id for the copy button."""

    slug: str
    label: str
    text: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Link:
    """A one-click install link (a client's URL scheme, or a page of this site)."""

    label: str
    href: str


@dataclass(frozen=True, slots=True)
class ClientGuide:
    """One entry on the Add Connection page: how to connect one kind of client."""

    key: str
    title: str
    summary: str
    steps: tuple[str, ...]
    values: tuple[Value, ...] = ()
    links: tuple[Link, ...] = ()
    notes: tuple[str, ...] = ()
    # "generic" or "device": the entry registers a client through a form on its page.
    form: str | None = None

    @property
    def details(self) -> str:
        return details_text(self.title, self.values, self.links)


def details_text(title: str, values: Iterable[Value], links: Iterable[Link] = ()) -> str:
    """The plain-text block behind "Copy connection details": every value, labelled."""
    lines = [title, ""]
    for value in values:
        lines += [f"{value.label}:", value.text, ""]
    for link in links:
        lines += [f"{link.label}:", link.href, ""]
    return "\n".join(lines).rstrip() + "\n"


def server_name(origin: str) -> str:
    """The name the server gets in a client's list: derived from the host ("news-example-com")
    so two sites do not collide; "site" for a bare address or localhost, as in docs/clients.md."""
    host = (urlsplit(origin).hostname or "").lower().removeprefix("www.")
    try:
        ipaddress.ip_address(host)
        return "site"
    except ValueError:
        pass
    if host in ("", "localhost"):
        return "site"
    return re.sub(r"[^a-z0-9]+", "-", host).strip("-")[:60] or "site"


def _compact(document: object) -> str:
    return json.dumps(document, separators=(",", ":"))


def claude_desktop_config(name: str, mcp_url: str) -> str:
    """``claude_desktop_config.json`` for Claude Desktop builds that run only local commands:
    mcp-remote bridges stdio to our HTTP endpoint and does the OAuth sign-in itself."""
    config = {"mcpServers": {name: {"command": "npx", "args": ["-y", "mcp-remote", mcp_url]}}}
    return json.dumps(config, indent=2)


def cursor_deeplink(name: str, mcp_url: str) -> str:
    """Cursor's install link: ``config`` is the server's mcp.json entry, base64-encoded JSON."""
    config = base64.b64encode(_compact({"url": mcp_url}).encode()).decode()
    query = f"name={quote(name, safe='')}&config={quote(config, safe='')}"
    return f"cursor://anysphere.cursor-deeplink/mcp/install?{query}"


def cursor_mcp_json(name: str, mcp_url: str) -> str:
    return json.dumps({"mcpServers": {name: {"url": mcp_url}}}, indent=2)


def vscode_server(name: str, mcp_url: str) -> str:
    """The server definition VS Code takes from its install link and ``code --add-mcp``."""
    return _compact({"name": name, "type": "http", "url": mcp_url})


def vscode_install_link(name: str, mcp_url: str) -> str:
    return f"vscode:mcp/install?{quote(vscode_server(name, mcp_url), safe='')}"


def vscode_command(name: str, mcp_url: str) -> str:
    return shlex.join(["code", "--add-mcp", vscode_server(name, mcp_url)])


def claude_code_command(name: str, mcp_url: str) -> str:
    return shlex.join(["claude", "mcp", "add", "--transport", "http", name, mcp_url])


def basic_credentials(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def mcp_remote_with_password(mcp_url: str, username: str, password: str) -> str:
    """mcp-remote sending an application password instead of doing OAuth."""
    header = f"Authorization: Basic {basic_credentials(username, password)}"
    return shlex.join(["npx", "-y", "mcp-remote", mcp_url, "--header", header])


def oauth_endpoints(origin: str) -> tuple[Value, Value]:
    return (
        Value("authorization-url", "Authorization URL", f"{origin}/oauth/authorize"),
        Value("token-url", "Token URL", f"{origin}/oauth/token"),
    )


def client_guides(origin: str, mcp_url: str) -> list[ClientGuide]:
    """Every Add Connection entry, in the order the page lists them."""
    name = server_name(origin)
    url = Value("connector-url", "Connector URL", mcp_url)
    authorize = "A browser tab opens this site's sign-in page: sign in, check the scopes, click Authorize."
    public_https = (
        "This client connects from the cloud, so the site must be reachable at a public HTTPS "
        "address (start the server with --public-url https://your-site)."
    )
    return [
        ClientGuide(
            key="claude",
            title="Claude (claude.ai, Claude Desktop, mobile)",
            summary="Add a custom connector in Claude's settings.",
            steps=(
                "In Claude, open Settings → Connectors → Add custom connector.",
                "Name it, paste the connector URL below, click Add, then Connect.",
                authorize,
                "Back in Claude, start a chat and ask “List my recent posts”.",
            ),
            values=(
                url,
                Value(
                    "claude-desktop-config",
                    "claude_desktop_config.json (older Claude Desktop)",
                    claude_desktop_config(name, mcp_url),
                    "Only for Claude Desktop builds without custom connectors: it runs mcp-remote, "
                    "which opens the browser for sign-in.",
                ),
            ),
            notes=(public_https + " Claude Desktop with mcp-remote can use a local server.",),
        ),
        ClientGuide(
            key="chatgpt",
            title="ChatGPT",
            summary="Create an app in ChatGPT's developer mode.",
            steps=(
                "In ChatGPT, open Settings → Apps → Advanced and turn on Developer mode.",
                "Click Create app, paste the MCP server URL below, choose OAuth and save.",
                "Sign in and click Authorize in the window that opens.",
            ),
            values=(Value("mcp-server-url", "MCP server URL", mcp_url),),
            notes=(
                public_https,
                "ChatGPT uses the search and fetch tools for deep research; the other tools are "
                "available in developer mode. ChatGPT cannot send custom headers, so application "
                "passwords do not work with it.",
            ),
        ),
        ClientGuide(
            key="cursor",
            title="Cursor",
            summary="One click, or an entry in mcp.json.",
            steps=(
                "Click “Add to Cursor” below, or add the mcp.json entry to ~/.cursor/mcp.json "
                "(Settings → MCP → Add new MCP server).",
                "Cursor shows “Needs login”: click it, sign in in the browser and click Authorize.",
            ),
            links=(Link("Add to Cursor", cursor_deeplink(name, mcp_url)),),
            values=(Value("cursor-mcp-json", "mcp.json entry", cursor_mcp_json(name, mcp_url)), url),
        ),
        ClientGuide(
            key="vscode",
            title="VS Code",
            summary="Install link, or one command in a terminal.",
            steps=(
                "Click “Install in VS Code” below, or run the command in a terminal, or use the "
                "command palette: MCP: Add Server… → HTTP and paste the connector URL.",
                "VS Code opens the browser: sign in and click Authorize.",
            ),
            links=(Link("Install in VS Code", vscode_install_link(name, mcp_url)),),
            values=(Value("vscode-command", "Terminal command", vscode_command(name, mcp_url)), url),
        ),
        ClientGuide(
            key="claude-code",
            title="Claude Code",
            summary="One command in a terminal.",
            steps=(
                "Run the command below in a terminal.",
                "Inside Claude Code, run /mcp and choose Authenticate; the browser opens: sign in "
                "and click Authorize.",
            ),
            values=(Value("claude-code-command", "Command", claude_code_command(name, mcp_url)),),
        ),
        ClientGuide(
            key="generic",
            title="Generic MCP client",
            summary="Register a client with fixed values for tools that need them.",
            steps=(
                "Clients that support OAuth discovery need only the MCP URL; they register themselves.",
                "For a client that needs fixed values, register it below and give it the "
                "Authorization URL, Token URL and Client ID (and the secret, if confidential).",
                "Scopes are space-separated (default content:read); PKCE with S256 is required.",
            ),
            values=(Value("mcp-url", "MCP URL", mcp_url), *oauth_endpoints(origin)),
            form="generic",
        ),
        ClientGuide(
            key="device",
            title="Device Auth (headless agents)",
            summary="For servers and CI runners without a browser.",
            steps=(
                "Register a device client below.",
                "Run the command it shows on the agent's machine; it prints a short code.",
                "Open this site's /device page on any device, enter the code and click Authorize.",
            ),
            values=(Value("device-page", "Where to approve the code", f"{origin}/device"),),
            form="device",
        ),
        ClientGuide(
            key="app-password",
            title="Application Password",
            summary="HTTP Basic for clients that send a header but do not speak OAuth.",
            steps=(
                "Create an application password on your profile page (it is shown only once).",
                "Configure the client to send it as HTTP Basic (username and password) on the "
                "connector URL, e.g. with mcp-remote's --header option.",
            ),
            links=(Link("Open Application Passwords", "/admin/profile"),),
            values=(url,),
        ),
    ]


def guide_by_key(origin: str, mcp_url: str, key: str) -> ClientGuide | None:
    return next((g for g in client_guides(origin, mcp_url) if g.key == key), None)
