"""Rendering the sign-in, consent and error pages, and the headers every one of them carries.

Templates are Jinja2 with autoescaping on for everything, so a client name such as
``<script>…`` registered by anyone on the internet is shown as text. The pages run no script at
all; the policy says so (``default-src 'none'``) and forbids framing (clickjacking a consent
button), referrers (the URL holds the OAuth ``state``), caching (pages hold CSRF tokens and the
user's name) and MIME sniffing. ``form-action`` lists where a form may go — including where
the redirect after the POST goes, since Chromium applies ``form-action`` to that redirect too."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, Response

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# Printable ASCII except space: left as it is, so a Location that already is a URI (with its
# %XX escapes) goes out unchanged.
_LOCATION_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_HOSTPORT = re.compile(r"^[a-z0-9.\-]+(:\d{1,5})?$|^\[[0-9a-f:.]+\](:\d{1,5})?$")


def csp_source(uri: str) -> str | None:
    """The CSP source expression that allows navigating to ``uri``: its origin for http(s),
    its scheme for private-use schemes (``cursor:``). None for anything that cannot be written
    safely into a policy (so a strange URI can never inject a directive)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not _SCHEME.match(scheme):
        return None
    if scheme not in ("http", "https"):
        return f"{scheme}:"
    host = (parts.hostname or "").lower()
    netloc = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        return None
    if port is not None:
        netloc += f":{port}"
    return f"{scheme}://{netloc}" if _HOSTPORT.match(netloc) else None


def content_security_policy(form_action: Iterable[str] = ()) -> str:
    sources = " ".join(["'self'", *form_action])
    return (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        f"form-action {sources}; frame-ancestors 'none'; base-uri 'none'"
    )


def security_headers(form_action: Iterable[str] = ()) -> dict[str, str]:
    """Headers for every auth page and every redirect they answer with."""
    return {
        "Content-Security-Policy": content_security_policy(form_action),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "X-Content-Type-Options": "nosniff",
    }


def render(
    template: str,
    *,
    status_code: int = 200,
    form_action: Iterable[str] = (),
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    html = _env.get_template(template).render(**context)
    return HTMLResponse(html, status_code, headers={**security_headers(form_action), **(headers or {})})


def error_page(
    site_host: str, title: str, message: str, *, status_code: int = 400, hint: str | None = None
) -> HTMLResponse:
    """A dead end that never redirects: used when the redirect target itself is not trusted."""
    return render(
        "error.html", status_code=status_code, site_host=site_host, title=title, message=message, hint=hint
    )


def location_header(url: str) -> str:
    """``url`` as a valid ``Location`` value: every character outside printable ASCII
    (non-ASCII, space, control characters) percent-encoded as UTF-8, as RFC 3987 §3.1 maps an
    IRI to a URI. HTTP headers carry bytes, not text, so a raw ``例`` (a ``next`` path, a
    redirect URI registered before such URIs were refused) would otherwise end the request
    with a 500. Browsers decode a percent-encoded host and apply IDNA to it, so an
    international host name still reaches the same site."""
    return quote(url, safe=_LOCATION_SAFE, errors="surrogatepass")


def see_other(location: str, *, headers: Mapping[str, str] | None = None) -> Response:
    """303 after a POST (and for GET redirects too), with the auth pages' headers. Every
    redirect of the sign-in, consent and device pages goes through here, so each one's
    ``Location`` is built by ``location_header``."""
    return Response(
        status_code=303,
        headers={**security_headers(), "Location": location_header(location), **(headers or {})},
    )
