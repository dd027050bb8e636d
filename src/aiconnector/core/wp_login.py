"""Checking a person's WordPress password the way WordPress itself does: its login form.

Why ``wp-login.php`` and not another door:

* the REST API refuses normal passwords over Basic auth (only Application Passwords work), so
  it cannot check a sign-in;
* XML-RPC would, but many sites switch it off and security plugins block it;
* the login form runs WordPress's whole ``authenticate`` chain, so what a site adds to sign-in
  (lockout plugins, disabled accounts, email-address logins) applies here too, and a plugin
  that demands an interactive second factor makes this check fail closed rather than open.

A successful login answers 302 with a ``wordpress_logged_in_*`` cookie whose value starts with
the canonical ``user_login`` (people may type their email address instead). The session that
login created on the WordPress side is ended at once with WordPress's own nonce-protected
logout, so checking a password leaves no live session behind."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

import httpx

from aiconnector.errors import SiteUnavailable

log = logging.getLogger(__name__)

TEST_COOKIE = ("wordpress_test_cookie", "WP%20Cookie%20check")
_LOGOUT_LINK = re.compile(r"wp-login\.php\?action=logout&(?:amp;)?_wpnonce=([0-9a-f]+)")


class WordPressLogin:
    """Verifies usernames and passwords against one WordPress site's login form."""

    def __init__(self, base_url: str, *, timeout: float, transport: httpx.AsyncBaseTransport | None = None):
        self._login_url = f"{base_url.rstrip('/')}/wp-login.php"
        self._timeout = timeout
        self._transport = transport

    async def verify(self, username: str, password: str) -> str | None:
        """The canonical ``user_login`` when the password is right; None when it is not.

        Raises ``SiteUnavailable`` when WordPress cannot be asked, so an outage is never
        reported to the person as a wrong password."""
        # A client per check: the cookie jar must never carry one person's session into
        # another person's sign-in.
        async with httpx.AsyncClient(
            timeout=self._timeout, transport=self._transport, follow_redirects=False
        ) as client:
            client.cookies.set(*TEST_COOKIE)
            try:
                response = await client.post(
                    self._login_url,
                    data={"log": username, "pwd": password, "testcookie": "1", "rememberme": ""},
                )
            except httpx.HTTPError as exc:
                raise SiteUnavailable(
                    f"WordPress could not be reached to check the password ({exc.__class__.__name__})."
                ) from None
            if response.status_code >= 500:
                raise SiteUnavailable(f"WordPress answered {response.status_code} to the sign-in check.")
            login = _logged_in_user(response)
            if login is not None:
                await self._end_session(client)
            return login

    async def _end_session(self, client: httpx.AsyncClient) -> None:
        """Log the just-created WordPress session out (best effort: it expires by itself)."""
        try:
            confirm = await client.get(self._login_url, params={"action": "logout"})
            match = _LOGOUT_LINK.search(confirm.text)
            if match:
                await client.get(self._login_url, params={"action": "logout", "_wpnonce": match.group(1)})
        except httpx.HTTPError as exc:
            log.warning("could not end the WordPress session opened by a sign-in check: %s", exc)


def _logged_in_user(response: httpx.Response) -> str | None:
    if response.status_code not in (301, 302, 303):
        return None
    for name, value in response.cookies.items():
        if name.startswith("wordpress_logged_in_") and "|" in unquote(value):
            return unquote(value).split("|", 1)[0]
    return None
