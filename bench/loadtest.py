"""Load test: one and two instances under N concurrent agents, with revokes and refreshes.

For each configuration (``--instances 1,2`` by default): a fresh PostgreSQL database
(``aiconnector_load_<random>``, dropped afterwards), that many ``aiconnector serve
--no-access-log`` processes on it, and ``--agents`` simulated OAuth agents spreading their
requests round-robin over the instances (a load balancer without sticky sessions). Each agent
loops on MCP ``tools/call`` (``whoami``, ``list_posts``, ``get_post``) with its Bearer token and
refreshes its tokens every ~5 s; every ~2 s one agent's connection is revoked at
``/oauth/revoke`` and the revoked credentials are tried on every instance until refused (see
``bench/loadtest_load.py`` for the method and what counts as an error).

Reports per configuration: requests, throughput, p50/p90/p99 of tool calls and of refreshes,
revokes, revocation propagation per instance, unexpected errors, CPU of the generator and the
instances; and the 2-instance / 1-instance throughput ratio. Prints a Markdown table, writes
``bench/results/loadtest-<time>.json``. Exits 1 on any unexpected error (or if no revoke was
made and verified), 2 when PostgreSQL is unreachable.

Run: ``.venv/bin/python bench/loadtest.py [--duration 60] [--agents 32] [--instances 1,2]
[--database-url-base postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]``"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadtest_cluster import (  # noqa: E402
    DEFAULT_DATABASE_URL_BASE,
    PUBLIC_URL,
    ROOT,
    Instance,
    instance_logs_with_errors,
    log,
    postgres_unavailable,
    running_instances,
    scratch_database,
)
from bench.loadtest_load import LoadConfig, LoadOutcome, percentile, run_load  # noqa: E402

AGENT_KINDS = ("tool", "refresh", "refresh_race")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds per configuration")
    parser.add_argument("--agents", type=int, default=32, help="concurrent simulated agents (default 32)")
    parser.add_argument("--instances", default="1,2", help="configurations to run: 1, 2 or 1,2 (default)")
    parser.add_argument(
        "--database-url-base",
        default=os.environ.get("AICONNECTOR_LOAD_PG_URL", DEFAULT_DATABASE_URL_BASE),
        help="PostgreSQL server (and a database to connect to) where the scratch database is made",
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before measuring")
    parser.add_argument(
        "--refresh-every", type=float, default=5.0, help="mean s between an agent's refreshes"
    )
    parser.add_argument("--revoke-every", type=float, default=2.0, help="mean s between revokes")
    parser.add_argument("--window-ms", type=float, default=100.0, help="allowed revocation propagation")
    parser.add_argument("--race-share", type=float, default=0.1, help="share of refreshes sent twice at once")
    parser.add_argument("--seed", type=int, help="random seed (agent choices, jitter)")
    parser.add_argument(
        "--http-client",
        choices=("fast", "httpx"),
        default="fast",
        help="the generator's HTTP client: fast (httptools, default) or httpx (to cross-check)",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        help="run the instances with this PostgreSQL pool size (AICONNECTOR_DATABASE_POOL_SIZE) "
        "instead of the product default",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the instances' logs")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/loadtest-*.json")
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> LoadConfig:
    return LoadConfig(
        duration=args.duration,
        agents=args.agents,
        warmup=args.warmup,
        refresh_every=args.refresh_every,
        revoke_every=args.revoke_every,
        window=args.window_ms / 1000,
        race_share=args.race_share,
        seed=args.seed,
        http_client=args.http_client,
    )


# --- CPU ----------------------------------------------------------------------------------------


def _machine_jiffies() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


def postgres_cpu() -> float:
    """CPU seconds so far of the whole PostgreSQL server: every live ``postgres`` process plus
    what the postmaster has collected from exited children (``cutime + cstime``), so backends
    that come and go during the run (pool overflow connections do) are counted too. All
    databases: other work on the same server shows up here."""
    tick = os.sysconf("SC_CLK_TCK")
    procs: dict[int, tuple[int, float, float]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() != "postgres":
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        own = (int(fields[11]) + int(fields[12])) / tick
        children = (int(fields[13]) + int(fields[14])) / tick
        procs[int(proc.name)] = (int(fields[1]), own, children)
    return sum(own for _, own, _ in procs.values()) + sum(
        children for ppid, _, children in procs.values() if ppid not in procs
    )


def cpu_snapshot(instances: list[Instance]) -> dict[str, float]:
    busy, total = _machine_jiffies()
    snap = {
        "generator": time.process_time(),
        "postgres": postgres_cpu(),
        "machine_busy": busy,
        "machine_total": total,
    }
    for instance in instances:
        snap[f"instance_{instance.index}"] = instance.cpu_seconds()
    return snap


# --- one configuration --------------------------------------------------------------------------


def run_configuration(
    count: int,
    config: LoadConfig,
    database_url_base: str,
    *,
    keep_logs: bool = False,
    pool_size: int | None = None,
) -> dict[str, Any]:
    """Fresh database, ``count`` instances, the load; the summary of what happened."""
    pool = "product default (20 + 10 overflow)" if pool_size is None else f"{pool_size} + 10 overflow"
    log(f"== {count} instance(s), {config.agents} agents, {config.duration:g} s, PostgreSQL pool {pool}")
    load_before = os.getloadavg()
    with (
        scratch_database(database_url_base) as database_url,
        running_instances(count, database_url, keep_logs=keep_logs, pool_size=pool_size) as instances,
    ):
        urls = [i.base_url for i in instances]
        log(f"   instances: {', '.join(urls)} (public URL {PUBLIC_URL})")
        outcome = _run_async(
            run_load(urls, database_url, PUBLIC_URL, config, lambda: cpu_snapshot(instances))
        )
        log_errors = instance_logs_with_errors(instances)
    summary = summarise(count, config, outcome)
    summary["load_average"] = {"before": load_before, "after": os.getloadavg()}
    summary["postgres_pool"] = pool
    summary["server_log_errors"] = log_errors
    if log_errors:
        summary["unexpected_errors"] += len(log_errors)
        summary["unexpected_by_kind"]["server log: traceback or ERROR"] = len(log_errors)
    log(
        f"   {summary['throughput_rps']['agent']:.0f} agent req/s, {summary['revokes']} revokes, "
        f"{summary['unexpected_errors']} unexpected errors"
    )
    return summary


def _run_async(coro: Any) -> LoadOutcome:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _dist(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": _r(percentile(values, 50)),
        "p90": _r(percentile(values, 90)),
        "p99": _r(percentile(values, 99)),
        "max": _r(max(values) if values else None),
    }


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def summarise(count: int, config: LoadConfig, outcome: LoadOutcome) -> dict[str, Any]:
    rec = outcome.recorder
    seconds = outcome.measured_seconds
    by_kind: Counter[str] = Counter()
    for key, n in rec.outcomes.items():
        by_kind[key.split(":", 1)[0]] += n
    agent_requests = sum(by_kind[k] for k in AGENT_KINDS)
    refresh_ms = rec.latency_ms["refresh"] + rec.latency_ms["refresh_race"]
    propagation: dict[str, list[float]] = {}
    seen: dict[str, list[float]] = {}
    for report in outcome.revokes:
        for instance, ms in report.propagation_ms.items():
            propagation.setdefault(f"instance_{instance}", []).append(ms)
            role = "revoking_instance" if instance == report.revoke_instance else "other_instance"
            propagation.setdefault(role, []).append(ms)
        for instance, ms in report.refusal_seen_ms.items():
            seen.setdefault(f"instance_{instance}", []).append(ms)
    cpu = outcome.cpu
    machine_total = cpu.get("machine_total") or 1.0
    instance_cpu = {k: v for k, v in cpu.items() if k.startswith("instance_")}
    verified = [
        r
        for r in outcome.revokes
        if r.notify_heard and len(r.propagation_ms) == count and r.refresh_refused_everywhere
    ]
    return {
        "instances": count,
        "agents": config.agents,
        "duration_s": seconds,
        "config": asdict(config),
        "requests": {"all": sum(by_kind.values()), "agent": agent_requests, **dict(sorted(by_kind.items()))},
        "throughput_rps": {
            "all": round(sum(by_kind.values()) / seconds, 1),
            "agent": round(agent_requests / seconds, 1),
            "tool": round(by_kind["tool"] / seconds, 1),
        },
        "latency_ms": {
            "tool": _dist(rec.latency_ms["tool"]),
            "refresh": _dist(refresh_ms),
            "refresh_race": _dist(rec.latency_ms["refresh_race"]),
            "revoke": _dist(rec.latency_ms["revoke"]),
            "probe": _dist(rec.latency_ms["probe"]),
            "code_grant": _dist(rec.latency_ms["code_grant"]),
        },
        "outcomes": dict(sorted(rec.outcomes.items())),
        "revokes": len(outcome.revokes),
        "revokes_verified": len(verified),
        "registrations": outcome.registrations,
        "propagation_ms": {key: _dist(values) for key, values in sorted(propagation.items())},
        "refusal_seen_ms": {key: _dist(values) for key, values in sorted(seen.items())},
        # (revoke, instance) pairs whose first 401 arrived later than the window after commit:
        # an upper bound (probe interval and round trip included), not a violation by itself.
        "propagation_over_window": sum(
            1 for r in outcome.revokes for ms in r.propagation_ms.values() if ms > config.window * 1000
        ),
        "accepted_after_commit": sum(r.accepted_after_commit for r in outcome.revokes),
        "accepted_after_window": sum(r.accepted_after_window for r in outcome.revokes),
        "unexpected_errors": sum(rec.unexpected.values()),
        "unexpected_by_kind": dict(rec.unexpected),
        "errors": rec.errors,
        "cpu": {
            "generator_cores": round(cpu.get("generator", 0.0) / seconds, 3),
            "instances_cores": {k: round(v / seconds, 3) for k, v in instance_cpu.items()},
            "postgres_cores": round(cpu.get("postgres", 0.0) / seconds, 3),
            # Less sensitive to a noisy machine than req/s: what a request costs the instances.
            "instances_us_per_request": round(
                1e6 * sum(instance_cpu.values()) / max(1, sum(by_kind.values())), 1
            ),
            "machine_busy_share": round(cpu.get("machine_busy", 0.0) / machine_total, 3),
            # Whatever else shares the machine (other people's tests, the kernel).
            "other_cores": round(
                (
                    cpu.get("machine_busy", 0.0)
                    - cpu.get("generator", 0.0)
                    - cpu.get("postgres", 0.0)
                    - sum(instance_cpu.values())
                )
                / seconds,
                3,
            ),
        },
        "generator_loop_lag_ms": _dist(outcome.loop_lag_ms),
        "postgres_sessions_opened": outcome.postgres_sessions_opened,
        "revoke_reports": [asdict(r) for r in outcome.revokes],
    }


def passed(summary: dict[str, Any]) -> bool:
    return (
        summary["unexpected_errors"] == 0
        and summary["revokes"] > 0
        and summary["revokes_verified"] == summary["revokes"]
    )


# --- report -------------------------------------------------------------------------------------


def _f(value: float | None, pattern: str = "{:.1f}") -> str:
    return "–" if value is None else pattern.format(value)


def markdown(summaries: list[dict[str, Any]]) -> str:
    heads = [f"{s['instances']} instance{'s' if s['instances'] > 1 else ''}" for s in summaries]
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, cell: Any) -> None:
        rows.append((label, [cell(s) for s in summaries]))

    def lat(kind: str) -> Any:
        return lambda s: " / ".join(_f(s["latency_ms"][kind][p]) for p in ("p50", "p90", "p99"))

    def prop(s: dict[str, Any]) -> str:
        parts = []
        for key, d in s["propagation_ms"].items():
            if key.startswith("instance_"):
                parts.append(f"#{key.removeprefix('instance_')}: {_f(d['p50'])} / {_f(d['max'])}")
        return "; ".join(parts) or "–"

    row("measured duration (s)", lambda s: f"{s['duration_s']:g}")
    row("agents", lambda s: str(s["agents"]))
    row("PostgreSQL pool per instance", lambda s: s["postgres_pool"])
    row(
        "requests, all (agent: tool calls + refreshes)",
        lambda s: f"{s['requests']['all']} ({s['requests']['agent']})",
    )
    row("throughput, agent req/s", lambda s: f"**{s['throughput_rps']['agent']:.0f}**")
    row(
        "throughput, all req/s (incl. probes, revokes, code grants)",
        lambda s: f"{s['throughput_rps']['all']:.0f}",
    )
    row("tool calls", lambda s: str(s["requests"].get("tool", 0)))
    row("tool call p50 / p90 / p99 ms", lat("tool"))
    row(
        "refreshes (of which raced pairs)",
        lambda s: f"{s['latency_ms']['refresh']['n']} ({s['requests'].get('refresh_race', 0) // 2})",
    )
    row("refresh p50 / p90 / p99 ms", lat("refresh"))
    row("revokes (verified on every instance)", lambda s: f"{s['revokes']} ({s['revokes_verified']})")
    row("revoke request p50 / p90 / p99 ms", lat("revoke"))
    row("propagation p50 / max ms, per instance", prop)
    row(
        "first refusal arrived p50 / max ms, per instance",
        lambda s: (
            "; ".join(
                f"#{k.removeprefix('instance_')}: {_f(d['p50'])} / {_f(d['max'])}"
                for k, d in s["refusal_seen_ms"].items()
            )
            or "–"
        ),
    )
    row(
        "propagation p50 / max ms, revoking / other instance",
        lambda s: " · ".join(
            f"{_f(s['propagation_ms'][k]['p50'])} / {_f(s['propagation_ms'][k]['max'])}"
            for k in ("revoking_instance", "other_instance")
            if k in s["propagation_ms"]
        ),
    )
    row(
        "revoked credential accepted after commit (≤ window / after window)",
        lambda s: f"{s['accepted_after_commit'] - s['accepted_after_window']} / {s['accepted_after_window']}",
    )
    row("unexpected errors", lambda s: f"**{s['unexpected_errors']}**")
    row("CPU cores: generator", lambda s: f"{s['cpu']['generator_cores']:.2f}")
    row(
        "CPU cores: instances", lambda s: " + ".join(f"{v:.2f}" for v in s["cpu"]["instances_cores"].values())
    )
    row(
        "instances' CPU per request, µs (all requests)",
        lambda s: f"{s['cpu']['instances_us_per_request']:.0f}",
    )
    row("CPU cores: PostgreSQL (whole server)", lambda s: f"{s['cpu']['postgres_cores']:.2f}")
    row("PostgreSQL sessions opened during the run", lambda s: str(s["postgres_sessions_opened"]))
    row("CPU cores: everything else on the machine", lambda s: f"{s['cpu']['other_cores']:.2f}")
    row("machine CPU busy", lambda s: f"{s['cpu']['machine_busy_share']:.0%}")
    row(
        "generator loop lag p50 / p99 ms",
        lambda s: f"{_f(s['generator_loop_lag_ms']['p50'])} / {_f(s['generator_loop_lag_ms']['p99'])}",
    )
    row(
        "load average before → after (1 min)",
        lambda s: f"{s['load_average']['before'][0]:.1f} → {s['load_average']['after'][0]:.1f}",
    )

    lines = ["| | " + " | ".join(heads) + " |", "| --- |" + " ---: |" * len(heads)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    ratio = throughput_ratio(summaries)
    if ratio is not None:
        lines.append("")
        lines.append(f"2 instances / 1 instance, agent throughput: **{ratio:.2f}×**")
    return "\n".join(lines)


def throughput_ratio(summaries: list[dict[str, Any]]) -> float | None:
    by_count = {s["instances"]: s["throughput_rps"]["agent"] for s in summaries}
    if 1 in by_count and 2 in by_count and by_count[1]:
        return by_count[2] / by_count[1]
    return None


def environment() -> dict[str, Any]:
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("uvicorn", "starlette", "sqlalchemy", "asyncpg", "httpx")},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        counts = [int(x) for x in args.instances.split(",") if x.strip()]
    except ValueError:
        counts = []
    if not counts or any(c < 1 for c in counts):
        sys.exit("--instances takes 1, 2 or 1,2")
    reason = postgres_unavailable(args.database_url_base)
    if reason:
        log(f"load test needs PostgreSQL: {reason}")
        return 2
    config = config_from(args)
    env = environment()
    summaries = []
    for count in counts:
        try:
            summaries.append(
                run_configuration(
                    count, config, args.database_url_base, keep_logs=args.keep_logs, pool_size=args.pool_size
                )
            )
        except RuntimeError as exc:
            log(f"configuration with {count} instance(s) failed: {exc}")
            return 1
    print(markdown(summaries))
    for s in summaries:
        if s["unexpected_errors"]:
            print(f"\nunexpected errors with {s['instances']} instance(s):")
            for what, n in s["unexpected_by_kind"].items():
                print(f"  {n:>5}  {what}")
    if not args.no_write:
        out_dir = ROOT / "bench" / "results"
        out_dir.mkdir(exist_ok=True)
        out = out_dir / f"loadtest-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(
            json.dumps(
                {
                    "environment": env,
                    "configurations": summaries,
                    "ratio_2_over_1": throughput_ratio(summaries),
                },
                indent=2,
            )
        )
        print(f"\nwritten to {out.relative_to(ROOT)}")
    return 0 if all(passed(s) for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
