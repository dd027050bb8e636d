"""Times on admin pages: UTC in the markup, the viewer's own timezone on screen.

The server cannot know the viewer's timezone, so it renders ``<time datetime="…UTC ISO…">``
with a readable UTC fallback, and /static/admin-time.js rewrites the text in the browser's
timezone (the page works, in UTC, without the script)."""

from __future__ import annotations

from datetime import UTC, datetime

from markupsafe import Markup, escape

from aiconnector.db.models import utcnow


def exact_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def relative(value: datetime, now: datetime | None = None) -> str:
    """ "3 minutes ago", "2 days ago": the fallback wording the script also uses."""
    seconds = int(((now or utcnow()) - value).total_seconds())
    if seconds < 45:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "just now"


def time_tag(value: datetime | None, *, relative_text: bool = False, empty: str = "never") -> Markup:
    """``<time>`` for a UTC datetime; with ``relative_text`` the text is relative and the
    exact time is on hover (title)."""
    if value is None:
        return Markup('<span class="muted">{}</span>').format(empty)
    iso = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    exact = exact_utc(value)
    if relative_text:
        return Markup('<time datetime="{}" title="{}" data-relative>{}</time>').format(
            iso, exact, relative(value)
        )
    return Markup('<time datetime="{}">{}</time>').format(iso, escape(exact))
