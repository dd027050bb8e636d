"""How fast is an authenticated ``tools/call`` on our ``/mcp`` compared with the floor and with
the official SDK?

For each of ``whoami``, ``get_post`` and ``list_posts``: 32 keep-alive connections for 10 s
against (a) our server, (b) a minimal Starlette app doing the same credential check and the
same database read, and (c) the official SDK's stateless JSON server over the same tools, all
over one seeded SQLite database in one run. Servers run one at a time on CPU 0, ``wrk`` on
CPU 1. Prints req/s, p50, p99 and the ratios, and writes them to bench/results/<time>.json.

Run: ``.venv/bin/python bench/mcp_throughput.py [--duration 10] [--connections 32]``"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backend import fast_uvicorn_options  # noqa: E402
from bench.harness import (  # noqa: E402
    ROOT,
    SERVERS,
    TOOLS,
    CallFailed,
    Fixture,
    LoadResult,
    can_pin,
    check_tool,
    ensure_wrk,
    log,
    run_wrk,
    running_server,
    seeded_database,
)

TARGET_VS_SDK = 5.0
TARGET_VS_FLOOR = 0.5
TARGET_TAIL = 3.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each run")
    parser.add_argument("--servers", default="ours,starlette,sdk", help="comma-separated subset")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and wrk to separate CPUs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary database and server logs")
    return parser.parse_args()


def measure_server(
    key: str, fixture: Fixture, tools: list[str], args: argparse.Namespace, wrk: str, pin: bool
) -> dict[str, Any]:
    """All tools against one server process: pre-flight check, warm-up, measurement."""
    kind = SERVERS[key]
    out: dict[str, Any] = {}
    log(f"== {kind.label}")
    try:
        with running_server(kind, fixture, pin=pin) as server:
            for tool in tools:
                structured, size = check_tool(server, fixture, tool)
                body = fixture.bodies[tool]
                run_wrk(
                    wrk, server, body, fixture, seconds=args.warmup, connections=args.connections, pin=pin
                )
                result = run_wrk(
                    wrk,
                    server,
                    body,
                    fixture,
                    seconds=args.duration,
                    connections=args.connections,
                    pin=pin,
                )
                log(
                    f"   {tool:<10} {result.rps:8.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                    f"p99 {result.p99_ms:7.2f} ms  {'ok' if result.clean else 'ERRORS'}"
                )
                out[tool] = {"load": result, "structured": structured, "response_bytes": size}
    except (RuntimeError, CallFailed) as exc:
        log(f"   unavailable: {exc}")
        out["unavailable"] = str(exc)
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def summarise(measured: dict[str, dict[str, Any]], tools: list[str]) -> dict[str, Any]:
    """Per tool: each server's figures, the ratios the issue asks for, and whether the three
    servers returned the same structured result (a sanity check that they did the same work)."""
    summary: dict[str, Any] = {}
    for tool in tools:
        rows: dict[str, Any] = {}
        for key, per_tool in measured.items():
            entry = per_tool.get(tool)
            if entry is None:
                rows[key] = {"unavailable": per_tool.get("unavailable", "not run")}
                continue
            load: LoadResult = entry["load"]
            rows[key] = {
                **asdict(load),
                "rps": round(load.rps, 1),
                "p99_over_p50": round(load.tail_ratio, 2),
                "cpu_us_per_request": round(load.cpu_us_per_request, 1),
                "clean": load.clean,
                "response_bytes": entry["response_bytes"],
            }
        rps = {key: row.get("rps") for key, row in rows.items()}
        cpu = {key: row.get("cpu_us_per_request") for key, row in rows.items()}
        floor = cpu.get("starlette")
        results = [e[tool]["structured"] for e in measured.values() if tool in e]
        summary[tool] = {
            "servers": rows,
            "ours_over_sdk": ratio(rps.get("ours"), rps.get("sdk")),
            "ours_over_starlette": ratio(rps.get("ours"), rps.get("starlette")),
            "starlette_over_sdk": ratio(rps.get("starlette"), rps.get("sdk")),
            # Server CPU per request above the floor's: what each protocol layer itself costs.
            "ours_overhead_us": cpu["ours"] - floor if cpu.get("ours") and floor else None,
            "sdk_overhead_us": cpu["sdk"] - floor if cpu.get("sdk") and floor else None,
            "same_structured_result": all(r == results[0] for r in results),
        }
    return summary


def fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def print_tables(summary: dict[str, Any], connections: int) -> None:
    for tool, entry in summary.items():
        print(f"\n{tool}  ({connections} connections)")
        print(
            f"  {'server':<24}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'p99/p50':>9}{'CPU us/req':>12}  errors"
        )
        for key, row in entry["servers"].items():
            label = SERVERS[key].label
            if "unavailable" in row:
                print(f"  {label:<24}{'unavailable':>9}  {row['unavailable'][:60]}")
                continue
            errors = row["non2xx"] + row["socket_errors"] + row["rpc_errors"]
            print(
                f"  {label:<24}{row['rps']:>9.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
                f"{row['p99_over_p50']:>9.2f}{row['cpu_us_per_request']:>12.0f}  {errors}"
            )
        vs_sdk, vs_floor = entry["ours_over_sdk"], entry["ours_over_starlette"]
        print(
            f"  ours/(c) = {fmt(vs_sdk)}x (aim >= {TARGET_VS_SDK:g}x)   "
            f"ours/(b) = {fmt(vs_floor)}x (aim >= {TARGET_VS_FLOOR:g}x)   "
            f"(b)/(c) = {fmt(entry['starlette_over_sdk'])}x   "
            f"same result: {'yes' if entry['same_structured_result'] else 'NO'}"
        )
        print(
            f"  CPU per request above (b): ours {fmt(entry['ours_overhead_us'], '{:.0f}')} us, "
            f"SDK {fmt(entry['sdk_overhead_us'], '{:.0f}')} us"
        )


def environment(args: argparse.Namespace, pin: bool) -> dict[str, Any]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in ln
        ),
        platform.processor(),
    )
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "python": platform.python_version(),
        "pinned": pin,
        "uvicorn": fast_uvicorn_options(),
        "versions": {
            p: version(p) for p in ("uvicorn", "starlette", "mcp", "sqlalchemy", "aiosqlite", "pydantic")
        },
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
    }


def main() -> int:
    args = parse_args()
    servers = [s for s in args.servers.split(",") if s]
    tools = [t for t in args.tools.split(",") if t]
    unknown = [s for s in servers if s not in SERVERS] + [t for t in tools if t not in TOOLS]
    if unknown:
        sys.exit(f"unknown server or tool: {', '.join(unknown)}")
    wrk = ensure_wrk()
    pin = can_pin() and not args.no_pin
    if not pin:
        log("warning: server and wrk are NOT pinned to separate CPUs; figures will be lower and noisier")
    env = environment(args, pin)
    log(f"uvicorn loop/http: {env['uvicorn']}; pinned: {pin}; load average {env['load_average_before']}")
    with seeded_database(keep=args.keep) as fixture:
        measured = {key: measure_server(key, fixture, tools, args, wrk, pin) for key in servers}
    env["load_average_after"] = os.getloadavg()
    summary = summarise(measured, tools)
    print_tables(summary, args.connections)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"environment": env, "results": summary}, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")
    failed = any(
        "unavailable" in row or not row["clean"]
        for entry in summary.values()
        for row in entry["servers"].values()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
