"""A short name for the user's platform, from the browser's User-Agent.

Connections are listed by agent name ("Claude Desktop on macOS"), so a person with the same
app on two machines can tell which connection to revoke. The consenting browser usually runs
on the same machine as the agent; when it does not (a cloud agent), the hint is still a useful
reminder of where consent was given. Only coarse platform names are kept: no versions."""

from __future__ import annotations

# Checked in order: mobile and ChromeOS user agents also mention the desktop systems they
# derive from ("Android … Linux", "CrOS … Linux", "iPhone … like Mac OS X").
_PLATFORMS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("iphone", "ipad", "ipod"), "iOS"),
    (("android",), "Android"),
    (("cros",), "ChromeOS"),
    (("windows",), "Windows"),
    (("macintosh", "mac os x"), "macOS"),
    (("linux", "x11"), "Linux"),
)


def platform_from_user_agent(user_agent: str | None) -> str | None:
    ua = (user_agent or "").lower()
    for needles, name in _PLATFORMS:
        if any(needle in ua for needle in needles):
            return name
    return None


def agent_name(client_name: str, user_agent: str | None, *, max_length: int = 200) -> str:
    """``"<client> on <platform>"``, or just the client's name when the platform is unknown."""
    platform = platform_from_user_agent(user_agent)
    name = f"{client_name} on {platform}" if platform else client_name
    return name[:max_length]
