"""The load test of ``bench/loadtest.py`` in miniature: two real ``aiconnector serve`` processes
on a scratch PostgreSQL database, 4 agents for 5 s with revokes every second and frequent
(partly concurrent) refreshes. Every answer is judged as in the full run: no unexpected
error, and every revoked credential refused on both instances.

PostgreSQL only: skipped with the reason when it is unreachable, a failure under CI=true."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from bench.loadtest import passed, run_configuration
from bench.loadtest_load import LoadConfig

from tests.support import IN_CI, pg_admin_url, pg_unavailable_reason


@pytest.fixture(autouse=True)
def clear_failure_counters() -> None:
    """Overrides the conftest's autouse fixture of the same name: this test starts its own
    instances as subprocesses and does not need the in-process pair it would start."""


def run_in_thread(count: int, config: LoadConfig) -> dict[str, Any]:
    """The load test runs its own event loops; keep them off the test's thread and loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run_configuration, count, config, pg_admin_url()).result()


def test_two_instances_under_load_refuse_every_revoked_credential() -> None:
    reason = pg_unavailable_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"CI requires the PostgreSQL load test: {reason}")
        pytest.skip(f"PostgreSQL load test skipped: {reason}")
    config = LoadConfig(
        duration=5.0, agents=4, warmup=1.0, refresh_every=1.5, revoke_every=1.0, race_share=0.3, seed=20261129
    )
    summary = run_in_thread(2, config)

    assert summary["unexpected_errors"] == 0, (summary["unexpected_by_kind"], summary["errors"][:5])
    assert summary["revokes"] >= 2, summary["revoke_reports"]
    assert summary["revokes_verified"] == summary["revokes"], summary["revoke_reports"]
    for report in summary["revoke_reports"]:
        # Refused on both instances, the refresh token too, and nothing accepted late.
        assert sorted(report["propagation_ms"]) == [0, 1], report
        assert report["refresh_refused_everywhere"] and report["accepted_after_window"] == 0, report
    assert summary["outcomes"].get("tool:ok", 0) > 100
    assert summary["outcomes"].get("refresh:ok", 0) + summary["outcomes"].get("refresh_race:ok", 0) > 0
    assert summary["outcomes"].get("revoke:ok", 0) == summary["revokes"]
    assert summary["server_log_errors"] == {}
    assert passed(summary)
