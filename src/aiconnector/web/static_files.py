"""Static assets for the admin UI (small scripts and styles), served from the package itself:
no CDN, no external asset, and a CSP that allows scripts only from this site."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def static_mount() -> Mount:
    return Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static")
