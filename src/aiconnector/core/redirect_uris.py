"""Redirect URIs: which ones a client may register, and whether a requested one matches.

An authorization code goes wherever the redirect URI points, so this is where codes are
stolen or kept safe. Registration accepts:

* ``https://`` URIs with a host;
* ``http://`` only on loopback (``127.0.0.1``, ``[::1]``, ``localhost``): native apps listening
  on the machine itself (RFC 8252 §7.3);
* private-use schemes such as ``cursor://…`` or ``vscode://…`` (RFC 8252 §7.1), but never the
  schemes that execute or read locally in a browser (``javascript:``, ``data:``, ``file:``,
  ``view-source:``, ``jar:``…).

No fragments (RFC 6749 §3.1.2), no user name or password (``http://user:pw@host/`` shows one
host and may mean another), no whitespace or control characters, only ASCII (RFC 3986: a
non-ASCII path must be percent-encoded and an international host name written in punycode,
so every redirect is a valid ``Location`` header), at most 2000 characters.

A requested redirect URI carrying whitespace or control characters never matches, even where
a URL parser would strip them (Python's ``urlsplit`` drops tabs and newlines, as browsers do):
what is compared must be exactly what was sent.

Matching is exact string comparison, with one exception: a loopback ``http`` URI matches a
registered one with the same host, path and query on **any port**, because native clients
(VS Code, Claude Code, mcp-remote) pick a free port at run time. ``localhost`` and
``127.0.0.1`` are different hosts: a client registered with one cannot use the other."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

from aiconnector.errors import OAuthError

MAX_LENGTH = 2000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# Schemes a browser executes or reads locally: a code sent there never reaches a client.
FORBIDDEN_SCHEMES = frozenset(
    {"javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "view-source", "jar"}
)
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*")
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f]")


def _invalid(message: str) -> OAuthError:
    return OAuthError("invalid_redirect_uri", message)


def _split(uri: str) -> SplitResult | None:
    try:
        parts = urlsplit(uri)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        return None
    return parts


def check_redirect_uri(uri: object) -> str:
    """Return ``uri`` if a client may register it; raise ``invalid_redirect_uri`` otherwise."""
    if not isinstance(uri, str) or not uri:
        raise _invalid("each redirect URI must be a non-empty string")
    shown = uri[:200]
    if len(uri) > MAX_LENGTH:
        raise _invalid(f"redirect URI longer than {MAX_LENGTH} characters: {shown!r}")
    if _UNSAFE_CHARS.search(uri):
        raise _invalid(f"redirect URI contains whitespace or control characters: {shown!r}")
    if not uri.isascii():
        raise _invalid(
            "redirect URI must be ASCII: percent-encode the path and write an international "
            f"host name in punycode (xn--…): {shown!r}"
        )
    parts = _split(uri)
    if parts is None:
        raise _invalid(f"malformed redirect URI: {shown!r}")
    scheme = parts.scheme.lower()
    if not scheme or not _SCHEME.fullmatch(scheme):
        raise _invalid(f"redirect URI must be absolute: {shown!r}")
    if "#" in uri:
        raise _invalid(f"redirect URI must not contain a fragment: {shown!r}")
    if scheme in FORBIDDEN_SCHEMES:
        raise _invalid(f"the {scheme}: scheme cannot be a redirect URI")
    if "@" in parts.netloc:
        raise _invalid(f"redirect URI must not contain a user name or password: {shown!r}")
    if scheme == "https":
        if not parts.hostname:
            raise _invalid(f"https redirect URI without a host: {shown!r}")
    elif scheme == "http":
        if parts.hostname not in LOOPBACK_HOSTS:
            raise _invalid(
                f"http redirect URIs are only allowed on loopback (127.0.0.1, [::1], localhost): {shown!r}"
            )
    elif len(uri) <= len(scheme) + 1:
        raise _invalid(f"private-use redirect URI without a path: {shown!r}")
    return uri


def _loopback_key(uri: str) -> tuple[str, str, str] | None:
    """(host, path, query) of a loopback http URI without credentials; None for anything else."""
    parts = _split(uri)
    if parts is None or parts.scheme != "http" or parts.fragment or "@" in parts.netloc:
        return None
    if parts.hostname not in LOOPBACK_HOSTS:
        return None
    return parts.hostname, parts.path, parts.query


def redirect_uri_matches(registered: Iterable[str], redirect_uri: str) -> bool:
    """Exact match, or loopback http with any port (RFC 8252 §7.3)."""
    registered = tuple(registered)
    if "#" in redirect_uri or _UNSAFE_CHARS.search(redirect_uri):
        return False
    if redirect_uri in registered:
        return True
    wanted = _loopback_key(redirect_uri)
    return wanted is not None and any(_loopback_key(uri) == wanted for uri in registered)
