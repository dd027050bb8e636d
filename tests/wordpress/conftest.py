"""The ``wordpress`` fixture: one real WordPress per test session, in a temporary directory on a
free port. Skipped with the reason when this machine cannot run it (not root, no apt-get), except
under CI=true where that is a failure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import IN_CI, free_port
from tests.wordpress.instance import WordPressInstance, WordPressUnavailable, start_wordpress, stop_wordpress


@pytest.fixture(scope="session")
def wordpress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WordPressInstance]:
    """Session-scoped: a new site takes seconds, and tests keep apart by making their own content
    and users. A test that stops the web server must start it again before it returns."""
    try:
        instance = start_wordpress(tmp_path_factory.mktemp("wordpress"), free_port())
    except WordPressUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI requires a real WordPress: {exc}")
        pytest.skip(f"WordPress tests skipped: {exc}")
    try:
        yield instance
    finally:
        stop_wordpress(instance)
