"""(a) Our server: ``aiconnector.app.create_app`` as ``aiconnector serve`` runs it, over the
benchmark's already seeded database (demo seeding off), under the same uvicorn options as the
other servers (``serve`` itself also keeps uvicorn's access log on; see docs/benchmarks.md)."""

from __future__ import annotations

from aiconnector.app import create_app
from bench.backend import serve, server_settings

if __name__ == "__main__":
    settings = server_settings()
    serve(create_app(settings), settings)
