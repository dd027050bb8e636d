"""Log lines as ``text`` (a terminal) or ``json`` (one object per line, for collectors).

Every JSON line has ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger`` and
``message``; ``request_id`` when written while serving a request (``ops.request_id``); the
fields an access line carries (``ops.observe``); ``exc`` with the traceback of a logged
exception.

Secrets stay out by construction: nothing logs headers, bodies or query strings, and uvicorn's
own access log (which prints the query string) is replaced by ``aiconnector.access``. As a
second line of defence both formats mask anything shaped like one of our credentials
(``aic_xx_…``) or an ``Authorization`` value (``Bearer …``, ``Basic …``) before writing."""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from aiconnector.ops.request_id import current_request_id

FORMATS = ("text", "json")
LEVELS = {"critical": 50, "error": 40, "warning": 30, "info": 20, "debug": 10, "trace": 5}
ACCESS_LOGGER = "aiconnector.access"

# Our credentials' prefix, or an Authorization value: the scheme and a long token-like word.
_SECRET_SHAPES = re.compile(
    r"\b(aic_[a-z]{2}_)[A-Za-z0-9_-]+"
    r"|\b([Bb]earer|[Bb]asic) +[A-Za-z0-9._~+/=-]{16,}"
)


def _mask(match: re.Match[str]) -> str:
    return (match.group(1) or match.group(2) + " ") + "[redacted]"


def mask_secrets(text: str) -> str:
    if "aic_" in text or "asic " in text or "earer " in text:
        return _SECRET_SHAPES.sub(_mask, text)
    return text


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served (None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line.setdefault(key, mask_secrets(value) if isinstance(value, str) else value)
        if record.exc_info:
            line["exc"] = mask_secrets(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc"] = mask_secrets(record.exc_text)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = mask_secrets(super().format(record))
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            return text
        first, newline, rest = text.partition("\n")  # keep the id on the line, not the traceback
        return f"{first} [{request_id}]{newline}{rest}"


def level_number(level: str) -> int:
    try:
        return LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}") from None


def configure_logging(
    log_format: str = "text", level: str = "info", *, access_log: bool = True, stream: IO[str] | None = None
) -> None:
    """One handler on the root logger, in the chosen format; uvicorn's loggers write through
    it and its access log is off (``aiconnector.access`` takes its place)."""
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; use text or json")
    number = level_number(level)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(number)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    # Alembic reports at INFO on every readiness probe (it checks the migration state).
    logging.getLogger("alembic").setLevel(max(number, logging.WARNING))
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers = []
    uvicorn_access.propagate = False
    uvicorn_access.disabled = True
    # Access lines are INFO: on when asked for and the level lets INFO through.
    logging.getLogger(ACCESS_LOGGER).setLevel(number if access_log else logging.CRITICAL + 1)
