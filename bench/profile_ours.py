"""Where does our server spend its time on an authenticated ``tools/call``?

Attaches ``py-spy record`` to our server after the warm-up while ``wrk`` drives one tool at 32
connections (the server's own CPU times come from /proc), then summarises the samples:

* by package of the innermost frame (self time): our code, uvicorn, SQLAlchemy, pydantic, ...;
* by the innermost frame of *our* code on the stack: the function of ours that is responsible
  for the sample, together with the library code it called directly. This is the list to
  optimise from;
* inclusive time of our functions (any position on the stack).

Run: ``.venv/bin/python bench/profile_ours.py [--tools whoami,get_post,list_posts] [--duration 10]``
Raw py-spy output and the summary go to bench/results/."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    CLIENT_CPU,
    ROOT,
    SERVERS,
    TOOLS,
    can_pin,
    check_tool,
    ensure_wrk,
    log,
    pinned,
    run_wrk,
    running_server,
    seeded_database,
)

# "function (path/to/file.py)" as py-spy --nolineno writes a frame.
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*)\)$")


@dataclass(frozen=True, slots=True)
class Frame:
    func: str
    file: str

    @property
    def ours(self) -> bool:
        return self.file.startswith("aiconnector/") or "/aiconnector/" in self.file

    @property
    def package(self) -> str:
        """``aiconnector.mcp.transport`` for our modules, else the top-level package or module
        (py-spy names files relative to their sys.path entry: ``sqlalchemy/orm/session.py``)."""
        path = self.file.replace("\\", "/")
        if self.ours:
            return "aiconnector." + path.split("aiconnector/", 1)[1].removesuffix(".py").replace("/", ".")
        if path.startswith("<"):
            return path
        return path.lstrip("/").split("/", 1)[0].removesuffix(".py")

    @property
    def name(self) -> str:
        return f"{self.package}.{self.func}" if self.ours else f"{self.func} [{self.package}]"


# Stacks rooted here are the aiosqlite connection threads (SQLite calls), not the event loop.
_WORKER_ROOT = "Thread._bootstrap"


def parse_frame(text: str) -> Frame:
    match = _FRAME.match(text.strip())
    return Frame(match["func"], match["file"]) if match else Frame(text.strip(), "?")


def read_stacks(path: Path) -> list[tuple[list[Frame], int]]:
    """Collapsed stacks (``root;...;leaf count``), root first, with thread/process frames dropped."""
    stacks: list[tuple[list[Frame], int]] = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [parse_frame(part) for part in stack.split(";")]
        frames = [f for f in frames if f.file != "?"]
        stacks.append((frames, int(count)))
    return stacks


def _without_ours(frames: list[Frame]) -> str:
    """Name the work in a stack with no frame of ours. SQLAlchemy's async layer runs the ORM
    in greenlets, which py-spy shows as separate stacks, so those samples belong to the
    site backend's queries even though no frame of ours is on them."""
    packages = {f.package for f in frames}
    if "sqlalchemy" in packages:
        return "(no frame of ours) SQLAlchemy ORM in a greenlet: statement execution, row loading"
    if frames[-1].package == "aiosqlite":
        return "(no frame of ours) aiosqlite: handing calls to / results from its thread"
    if packages & {"uvicorn", "httptools", "uvloop", "asyncio"}:
        return "(no frame of ours) event loop and uvicorn HTTP parsing/writing"
    return f"(no frame of ours) {frames[-1].package}"


@dataclass(slots=True)
class Summary:
    """Event-loop samples are broken down; samples of other threads are only counted, since
    on one core their share says how much SQLite work runs beside the loop."""

    total: int
    worker_samples: int
    by_package: Counter[str]
    by_leaf: Counter[str]
    by_our_frame: Counter[str]
    our_inclusive: Counter[str]

    @classmethod
    def of(cls, stacks: Iterable[tuple[list[Frame], int]]) -> Summary:
        summary = cls(0, 0, Counter(), Counter(), Counter(), Counter())
        for frames, count in stacks:
            if not frames:
                continue
            if frames[0].func == _WORKER_ROOT:
                summary.worker_samples += count
                continue
            summary.total += count
            leaf = frames[-1]
            summary.by_package[leaf.package] += count
            summary.by_leaf[leaf.name] += count
            ours = [f for f in frames if f.ours]
            summary.by_our_frame[ours[-1].name if ours else _without_ours(frames)] += count
            for name in {f.name for f in ours}:
                summary.our_inclusive[name] += count
        return summary

    def render(self, title: str, top: int = 20) -> str:
        lines = [
            f"### {title}",
            f"event-loop thread: {self.total} samples; other (aiosqlite) threads: "
            f"{self.worker_samples} samples (py-spy counts runnable threads too, so take the split "
            "from the CPU times above); percentages below are of event-loop samples",
        ]
        for heading, counter in (
            ("Self time by package", self.by_package),
            ("Self time by function", self.by_leaf),
            (
                "By innermost function of ours on the stack (incl. the library code it calls)",
                self.by_our_frame,
            ),
            ("Inclusive time of our functions", self.our_inclusive),
        ):
            lines.append(f"\n{heading}:")
            for name, count in counter.most_common(top):
                lines.append(f"  {100 * count / max(self.total, 1):5.1f}%  {name}")
        return "\n".join(lines)


def ensure_py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if Path(found).exists():
        return found
    log("py-spy not found: installing it into this environment with pip")
    subprocess.run([sys.executable, "-m", "pip", "install", "py-spy"], check=True)  # noqa: S603
    return str(Path(sys.executable).with_name("py-spy"))


def py_spy_record(py_spy: str, pid: int, seconds: float, rate: int, output: Path) -> list[str]:
    """Collapsed stacks without line numbers, so samples add up per function."""
    return [
        *(py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))),
        *("--rate", str(rate), "--format", "raw", "--nolineno", "--nonblocking", "--output", str(output)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    wrk, py_spy, pin = ensure_wrk(), ensure_py_spy(), can_pin()
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    reports = []
    with seeded_database() as fixture:
        for tool in [t for t in args.tools.split(",") if t]:
            raw = out_dir / f"profile-{stamp}-{tool}.txt"
            with running_server(SERVERS["ours"], fixture, pin=pin) as server:
                check_tool(server, fixture, tool)
                body = fixture.bodies[tool]
                run_wrk(
                    wrk, server, body, fixture, seconds=args.warmup, connections=args.connections, pin=pin
                )
                # Attach after warm-up so start-up and imports stay out of the profile; py-spy
                # runs on the client core so its own work does not slow the server down.
                record = py_spy_record(py_spy, server.process.pid, args.duration, args.rate, raw)
                with subprocess.Popen(pinned(CLIENT_CPU, record, pin), stdout=subprocess.DEVNULL) as spy:  # noqa: S603
                    load = {"seconds": args.duration, "connections": args.connections, "pin": pin}
                    result = run_wrk(wrk, server, body, fixture, **load)  # type: ignore[arg-type]
                    spy.wait(timeout=60)
            errors = result.non2xx + result.rpc_errors + result.socket_errors
            header = (
                f"{tool}: {result.rps:.0f} req/s under py-spy, p50 {result.p50_ms:.2f} ms, "
                f"p99 {result.p99_ms:.2f} ms, errors {errors}\n"
                f"server CPU: event loop {result.cpu_event_loop_s:.2f} s, "
                f"other threads {result.cpu_other_threads_s:.2f} s, "
                f"{result.cpu_us_per_request:.0f} us per request"
            )
            reports.append(Summary.of(read_stacks(raw)).render(header, args.top))
            print(reports[-1] + "\n", flush=True)
    summary_path = out_dir / f"profile-{stamp}.md"
    summary_path.write_text("\n\n".join(reports) + "\n")
    print(f"written to {summary_path.relative_to(ROOT)} (raw stacks beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
