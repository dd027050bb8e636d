"""The properties every fuzzed answer must have: never a 5xx, and errors in the shape their
RFC or JSON-RPC prescribes.

* OAuth endpoints: a JSON object whose ``error`` is from the endpoint's RFC vocabulary
  (RFC 6749 §5.2, RFC 7591 §3.2.2, RFC 7009 §2.2.1, RFC 8628 §3.5, RFC 8707 §2), 401 exactly for
  ``invalid_client``; 429 is ``temporarily_unavailable`` with ``Retry-After``.
* HTML pages: 2xx/4xx are HTML pages; a redirect has a ``Location`` that is plain ASCII (RFC
  9110 §10.2.2 carries a URI, never raw text).
* ``/mcp``: JSON-RPC 2.0 objects (``code`` an integer, ``message`` a string) — as JSON or as
  SSE events — or, for transport-level refusals (401, 429), a plain JSON ``{"error": …}``; an
  empty body only where the wire reference prescribes one (202 notifications, 405)."""

from __future__ import annotations

import json
from typing import Any

import httpx

RFC6749 = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)
RFC8707 = frozenset({"invalid_target"})
RFC8628_POLL = frozenset({"authorization_pending", "slow_down", "access_denied", "expired_token"})
RFC7009 = frozenset({"unsupported_token_type"})
RFC7591 = frozenset(
    {
        "invalid_redirect_uri",
        "invalid_client_metadata",
        "invalid_software_statement",
        "unapproved_software_statement",
    }
)
RATE_LIMITED = "temporarily_unavailable"

TOKEN_ERRORS = RFC6749 | RFC8707 | RFC8628_POLL
REVOKE_ERRORS = RFC6749 | RFC7009
INTROSPECT_ERRORS = RFC6749
DEVICE_AUTHORIZATION_ERRORS = RFC6749 | RFC8707
# RFC 7591 §3.2.2 for the metadata; a body over the endpoint's size limit is refused before
# it is read as metadata (413, RFC 6749's ``invalid_request``).
REGISTER_ERRORS = RFC7591


def _describe(response: httpx.Response) -> str:
    request = response.request
    return f"{request.method} {request.url.path} -> {response.status_code}: {response.text[:300]!r}"


def no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, "server error: " + _describe(response)


def is_json(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip() == "application/json"


def check_oauth(response: httpx.Response, allowed: frozenset[str]) -> Any:
    """An OAuth endpoint's answer; returns the JSON body of a success (None when empty)."""
    no_server_error(response)
    status = response.status_code
    if status < 400:
        assert status in (200, 201), _describe(response)
        if not response.content:
            return None
        assert is_json(response), _describe(response)
        return response.json()
    assert is_json(response), "OAuth error that is not JSON: " + _describe(response)
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str), _describe(response)
    assert isinstance(body.get("error_description", ""), str), _describe(response)
    error = body["error"]
    if status == 429:
        assert error == RATE_LIMITED and response.headers.get("retry-after", "").isdigit(), _describe(
            response
        )
        return None
    vocabulary = allowed | {"invalid_request"} if status == 413 else allowed
    assert error in vocabulary, (
        f"error {error!r} is not in the RFC vocabulary {sorted(allowed)}: " + _describe(response)
    )
    assert (status == 401) == (error == "invalid_client"), "invalid_client is exactly the 401: " + _describe(
        response
    )
    assert status in (400, 401, 413), _describe(response)
    return None


def _ascii_uri(value: str) -> bool:
    return value.isascii() and all(0x21 <= ord(c) < 0x7F for c in value)


def check_html(response: httpx.Response) -> None:
    """A browser page: an HTML page (2xx, 4xx) or a redirect with an ASCII ``Location``."""
    no_server_error(response)
    status = response.status_code
    if 300 <= status < 400:
        location = response.headers.get("location")
        assert location and _ascii_uri(location), "redirect without a valid Location: " + repr(location)
        return
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith("text/html"), "page that is not HTML: " + _describe(response)
    text = response.text.lower()
    assert "<html" in text or "<!doctype html" in text, _describe(response)
    assert "traceback" not in text, _describe(response)


def check_local_redirect(response: httpx.Response) -> None:
    """After sign-in, ``next`` never leaves the site: a same-site absolute path."""
    location = response.headers.get("location", "")
    if 300 <= response.status_code < 400:
        assert location.startswith("/") and not location.startswith(("//", "/\\")), repr(location)


# --- JSON-RPC ----------------------------------------------------------------------------------


def check_jsonrpc_object(obj: Any, where: str) -> None:
    """One JSON-RPC 2.0 response object (JSON-RPC 2.0 §5, §5.1)."""
    assert isinstance(obj, dict) and obj.get("jsonrpc") == "2.0", f"not JSON-RPC: {where}"
    if "method" in obj:  # a notification the server streams (progress)
        assert isinstance(obj["method"], str), where
        return
    assert ("result" in obj) != ("error" in obj), f"exactly one of result and error: {where}"
    assert "id" in obj and (obj["id"] is None or type(obj["id"]) in (str, int)), where
    if "error" in obj:
        error = obj["error"]
        assert isinstance(error, dict), where
        assert type(error.get("code")) is int, f"error code must be an integer: {where}"
        assert isinstance(error.get("message"), str), f"error message must be a string: {where}"
    else:
        assert isinstance(obj["result"], dict), where


def _sse_events(text: str) -> list[Any]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip() for line in block.split("\n") if line.startswith("data:")]
        if data:
            events.append(json.loads("\n".join(data)))
    return events


def check_mcp(response: httpx.Response) -> None:
    no_server_error(response)
    status, where = response.status_code, _describe(response)
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    if status in (202, 204, 405):
        assert not response.content, "202/204/405 carry no body: " + where
        return
    if content_type == "text/event-stream":
        assert status == 200, where
        events = _sse_events(response.text)
        for event in events:
            check_jsonrpc_object(event, where)
        return
    assert content_type == "application/json", "neither JSON nor SSE: " + where
    body = response.json()
    if isinstance(body, dict) and "jsonrpc" in body:
        check_jsonrpc_object(body, where)
        if status >= 400:
            assert "error" in body, "a 4xx carries a JSON-RPC error: " + where
        return
    # Transport-level refusals (mcp-wire.md §3.1): plain JSON, an OAuth-style error.
    assert status in (401, 429), "only 401/429 may answer outside JSON-RPC: " + where
    assert isinstance(body, dict) and isinstance(body.get("error"), str), where
    if status == 401:
        assert response.headers.get("www-authenticate"), "401 without a challenge: " + where
    else:
        assert response.headers.get("retry-after", "").isdigit(), where
