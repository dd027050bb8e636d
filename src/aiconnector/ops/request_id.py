"""The id of the request being served.

Taken from the client's (or the load balancer's) ``X-Request-Id`` when it is well formed —
1 to 128 characters from ``A-Z a-z 0-9 . _ : -`` — and generated otherwise, so a hostile header
can neither forge a log line nor blow up its size. It lives in a context variable for the
duration of the request: log lines (``ops.logs``) and audit events (``core.audit``) written
while serving it carry it, and the response echoes it as ``X-Request-Id``.

Generated ids are a random per-process prefix and a counter: unique across instances (48
random bits per process) and much cheaper than a UUID per request."""

from __future__ import annotations

import itertools
import re
import secrets
from contextvars import ContextVar

HEADER = b"x-request-id"
MAX_LENGTH = 128
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:-]{1,%d}" % MAX_LENGTH)

# None outside a request (start-up, background tasks).
current_request_id: ContextVar[str | None] = ContextVar("aiconnector_request_id", default=None)

_PREFIX = secrets.token_hex(6) + "-"
_counter = itertools.count(1)


def new_request_id() -> str:
    return _PREFIX + str(next(_counter))


def accept_request_id(value: bytes | None) -> str:
    """The incoming id when it is well formed, else a new one."""
    if value is not None and _WELL_FORMED.fullmatch(value):
        return value.decode("ascii")
    return new_request_id()


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The request id for an ASGI header list (the first ``X-Request-Id`` counts)."""
    for name, value in headers:
        if name == HEADER:
            return accept_request_id(value)
    return new_request_id()
