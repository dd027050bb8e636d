"""The ASGI layer in front of every Starlette route (everything but ``/mcp``, which makes the
same checks itself): refuse, before any endpoint runs, requests no endpoint should see.

* ``Host`` not naming this server (``ops.hosts``): 421, DNS-rebinding protection. Health
  probes are exempt: load balancers and orchestrators address instances by IP.
* Text the database cannot store (``aiconnector.storable``: NUL, unpaired surrogates) in the
  path, a query parameter or a form field: 400. Checked here once, with the same parsers the
  endpoints use (Starlette's for forms, ``parse_qsl`` for queries), instead of field by field
  in every endpoint: otherwise each missed field is a database exception and a 500.

Errors take the shape of the endpoint that would have answered: the OAuth endpoints (and the
metadata documents) answer RFC 6749 JSON, ``{"error": "invalid_request", …}``; every other
path, the sign-in, consent and device pages among them, gets the plain HTML error page.

Only form bodies are buffered (to read them, then replay them to the endpoint), and at most
``MAX_FORM_BYTES``: no form of ours comes near it (the OAuth endpoints allow 64 KiB). JSON
bodies are the endpoints' own business (registration validates every field it keeps)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import FormParser, MultiPartParser
from starlette.responses import Response

from aiconnector.config import Settings
from aiconnector.errors import OAuthError
from aiconnector.oauth.http import CORS, error_response
from aiconnector.ops.hosts import HostPolicy
from aiconnector.storable import PROBLEM, is_storable
from aiconnector.web.pages import error_page

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_FORM_BYTES = 1024 * 1024
_FORM_TYPES = {b"application/x-www-form-urlencoded": FormParser, b"multipart/form-data": MultiPartParser}
_UNCHECKED_HOST_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_NAME_SHOWN = 60  # characters of a parameter name an error message repeats


class _Refused(Exception):
    def __init__(self, status: int, title: str, description: str) -> None:
        self.status = status
        self.title = title
        self.description = description


class _ClientGone(Exception):
    """The client left while its form was being read."""


def _answers_oauth_json(path: str) -> bool:
    """The OAuth endpoints and metadata answer JSON; ``/oauth/authorize`` is a browser page."""
    return (path.startswith("/oauth/") and path != "/oauth/authorize") or path.startswith("/.well-known/")


def _check_items(items: Iterable[tuple[str, Any]], where: str) -> None:
    for name, value in items:
        if not is_storable(name):
            raise _Refused(400, "Bad request", f"A {where} name {PROBLEM}.")
        text = value.filename if isinstance(value, UploadFile) else value
        if isinstance(text, str) and not is_storable(text):
            raise _Refused(400, "Bad request", f"The {where} {name[:_NAME_SHOWN]!r} {PROBLEM}.")


async def _read_form(receive: Receive, headers: Headers) -> bytes:
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise _Refused(413, "Request too large", f"The form is larger than {MAX_FORM_BYTES} bytes.")
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body += message.get("body", b"")
        if len(body) > MAX_FORM_BYTES:
            raise _Refused(413, "Request too large", f"The form is larger than {MAX_FORM_BYTES} bytes.")
        if not message.get("more_body", False):
            return bytes(body)


async def _parse_form(
    parser: type[FormParser] | type[MultiPartParser], headers: Headers, body: bytes
) -> FormData | None:
    """The form as the endpoint will see it; None when it does not parse (the endpoint, using
    the same parser, then refuses it in its own way)."""

    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        return await parser(headers, stream()).parse()
    except Exception:  # noqa: BLE001 - malformed forms are the endpoint's to answer
        return None


class EdgeChecks:
    def __init__(self, app: App, settings: Settings) -> None:
        self._app = app
        self._hosts = HostPolicy.from_settings(settings)
        self._site_host = settings.origin.partition("://")[2]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        try:
            receive = await self._check(scope, receive)
        except _ClientGone:
            return
        except _Refused as refused:
            await self._refusal(scope, refused)(scope, receive, send)
            return
        await self._app(scope, receive, send)

    async def _check(self, scope: Scope, receive: Receive) -> Receive:
        """Raise ``_Refused`` for a request to refuse; otherwise the ``receive`` to serve it
        with (replaying a form body read here)."""
        path: str = scope["path"]
        headers = Headers(scope=scope)
        if path not in _UNCHECKED_HOST_PATHS and not self._hosts.allows(_host(scope)):
            raise _Refused(421, "Wrong address", "This server does not answer to that host name.")
        if not is_storable(path):
            raise _Refused(400, "Bad request", f"The address {PROBLEM}.")
        query: bytes = scope.get("query_string", b"")
        if query:
            _check_items(parse_qsl(query.decode("latin-1"), keep_blank_values=True), "parameter")
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower().encode("latin-1")
        parser = _FORM_TYPES.get(media_type)
        if parser is None:
            return receive
        body = await _read_form(receive, headers)
        form = await _parse_form(parser, headers, body)
        if form is not None:
            try:
                _check_items(form.multi_items(), "field")
            finally:
                await form.close()
        return _replay(body, receive)

    def _refusal(self, scope: Scope, refused: _Refused) -> Response:
        if _answers_oauth_json(scope["path"]):
            response = error_response(
                OAuthError("invalid_request", refused.description, status=refused.status)
            )
            response.headers.update(CORS)
            return response
        return error_page(self._site_host, refused.title, refused.description, status_code=refused.status)


def _host(scope: Scope) -> bytes | None:
    """The Host header; repeated ones joined, so they never match (RFC 9112 §3.2: a 400)."""
    values = [value for name, value in scope["headers"] if name == b"host"]
    return b", ".join(values) if values else None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the endpoint the body already read, then carries on with the
    real one (which reports the disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


def with_edge_checks(app: App, settings: Settings) -> App:
    return EdgeChecks(app, settings)
