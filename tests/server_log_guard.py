"""No unexpected server error goes unnoticed: a test fails when a server it ran logged an
unhandled exception or answered a 5xx the test did not say it expects.

Two kinds of servers run in the suite:

* in-process ones (``tests.support.serve_in_thread``): their records reach the root logger, where
  ``ServerLogGuard`` watches for ERROR records, records with a traceback, and ``aiconnector.access``
  lines with a 5xx status, while each test runs (an autouse fixture in tests/conftest.py);
* ``aiconnector serve`` subprocesses: their log text is checked with ``assert_clean_server_log``
  by the fixture that started them.

A test that provokes a 5xx or an error on purpose says so with
``@pytest.mark.server_errors(status=(503,), logs=("regex",))``; anything else fails it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

ACCESS_LOGGER = "aiconnector.access"
# The loggers servers write to; a client's own errors in the test process (the SDK logs its
# OAuth failures) are the test's business, not a server error.
SERVER_LOGGERS = ("aiconnector", "uvicorn", "starlette", "sqlalchemy", "alembic")
# An access line of our text log format: '... "GET /path HTTP/1.1" 503 1.20ms ...'.
_ACCESS_STATUS = re.compile(r'"[A-Z]+ (?P<path>\S*) HTTP/[\d.]+" (?P<status>\d{3}) ')
_JSON_STATUS = re.compile(r'"status":\s*(?P<status>\d{3})')
_TRACEBACK_MARKERS = ("Traceback (most recent call last)", "Exception in ASGI application")
# An ERROR or CRITICAL record in the text format ("... ERROR   logger: ...") or the JSON one.
_ERROR_LEVEL = re.compile(r' (ERROR|CRITICAL) +\S+: |"level":"(error|critical)"')


@dataclass(frozen=True)
class Allowed:
    """What a test declared it provokes: 5xx statuses and log-message patterns."""

    statuses: frozenset[int] = frozenset()
    patterns: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def of(cls, node: pytest.Item | None) -> Allowed:
        marker = node.get_closest_marker("server_errors") if node is not None else None
        if marker is None:
            return cls()
        return cls(
            frozenset(marker.kwargs.get("status", ())),
            tuple(re.compile(p) for p in marker.kwargs.get("logs", ())),
        )

    def permits_status(self, status: int) -> bool:
        return status in self.statuses

    def permits_text(self, text: str) -> bool:
        return any(p.search(text) for p in self.patterns)


class ServerLogGuard(logging.Handler):
    """Collects the problems logged while one test runs."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.problems: list[str] = []
        self.allowed = Allowed()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name == ACCESS_LOGGER:
                fields = getattr(record, "fields", None) or {}
                status = int(fields.get("status") or 0)
                if status >= 500 and not self.allowed.permits_status(status):
                    self.problems.append(f"answered {status}: {record.getMessage()}")
                return
            if record.levelno < logging.ERROR and not record.exc_info:
                return
            if not record.name.startswith(SERVER_LOGGERS):
                return
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + "".join(logging.Formatter().formatException(record.exc_info))
            if not self.allowed.permits_text(text):
                self.problems.append(f"logged {record.levelname} from {record.name}: {text}")
        except Exception:  # noqa: BLE001 - a guard must never break the server it watches
            self.handleError(record)


_guard = ServerLogGuard()


@pytest.fixture(autouse=True)
def server_log_guard(request: pytest.FixtureRequest) -> Iterator[ServerLogGuard]:
    """Installed for every test; fails the test at teardown with what the servers logged."""
    root = logging.getLogger()
    if _guard not in root.handlers:  # ``configure_logging`` replaces the root's handlers
        root.addHandler(_guard)
    access = logging.getLogger(ACCESS_LOGGER)
    if access.getEffectiveLevel() > logging.INFO:
        access.setLevel(logging.INFO)
    _guard.problems = []
    _guard.allowed = Allowed.of(request.node)
    yield _guard
    problems, _guard.problems = _guard.problems, []
    _guard.allowed = Allowed()
    if problems:
        pytest.fail("unexpected server errors:\n" + "\n".join(problems[:10]), pytrace=False)


def server_log_problems(text: str, allowed: Allowed | None = None) -> list[str]:
    """Unexpected 5xx answers and tracebacks in the log text of an ``aiconnector serve``."""
    allowed = allowed or Allowed()
    problems: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        match = _ACCESS_STATUS.search(line) or _JSON_STATUS.search(line)
        if match:
            status = int(match.group("status"))
            if status >= 500 and not allowed.permits_status(status):
                problems.append(line)
        elif any(marker in line for marker in _TRACEBACK_MARKERS) or _ERROR_LEVEL.search(line):
            context = "\n".join(lines[i - 1 : i + 15])
            if not allowed.permits_text(context):
                problems.append(context)
            while i < len(lines) and not _starts_record(lines[i]):
                i += 1  # the rest of this traceback belongs to the same problem
    return problems


def _starts_record(line: str) -> bool:
    """A new log record: text records open with their date, JSON ones with a brace."""
    return line[:4].isdigit() or line.startswith("{")


def assert_clean_server_log(text: str, allowed: Allowed | None = None) -> None:
    problems = server_log_problems(text, allowed)
    assert not problems, "the server logged unexpected errors:\n" + "\n---\n".join(problems[:5])
