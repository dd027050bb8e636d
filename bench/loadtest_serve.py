"""``aiconnector serve`` with another PostgreSQL connection pool size, for the load test's
``--pool-size`` experiment only (``bench/loadtest.py --pool-size 40``).

The product's engine (``aiconnector.db.engine.create_engine``) keeps 10 pooled connections
and allows 20 overflow connections on PostgreSQL. An overflow connection is closed as soon as
it is returned while 10 are idle, so a load that keeps more than 10 requests in the database
at once opens and closes PostgreSQL sessions continuously. This wrapper swaps the pool
arguments (``AICONNECTOR_LOAD_POOL_SIZE`` / ``AICONNECTOR_LOAD_MAX_OVERFLOW``) and runs the
normal command line, so that cost can be measured without changing the product.

Run as: ``python bench/loadtest_serve.py serve --port … [serve options]``."""

from __future__ import annotations

import os
import sys
from typing import Any


def main() -> Any:
    import aiconnector.db.engine as engine_module
    from aiconnector.cli.main import main as cli

    size = int(os.environ["AICONNECTOR_LOAD_POOL_SIZE"])
    overflow = int(os.environ.get("AICONNECTOR_LOAD_MAX_OVERFLOW", "10"))
    original = engine_module.create_async_engine

    def create_async_engine(url: Any, **kwargs: Any) -> Any:
        if "pool_size" in kwargs:  # PostgreSQL; SQLite keeps its own settings
            kwargs.update(pool_size=size, max_overflow=overflow)
        return original(url, **kwargs)

    engine_module.create_async_engine = create_async_engine  # type: ignore[assignment]
    return cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
