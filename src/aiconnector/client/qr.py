"""A QR code of the verification URL for the terminal, so the person can approve the login
from a phone instead of typing the URL. Only for interactive terminals: in logs and CI output
the block characters are noise. ``segno`` is pure Python, so it adds no build step."""

from __future__ import annotations

import io

import segno


def terminal_qr(text: str) -> str:
    """``text`` as a QR code drawn with half-block characters (two modules per character
    row), which keeps it small enough for an 80×24 terminal for URLs of typical length."""
    out = io.StringIO()
    segno.make(text, error="m").terminal(out=out, compact=True, border=2)
    return out.getvalue()
