"""What fronting WordPress costs: ``get_post`` and ``list_posts`` through the connector vs the
same WordPress REST requests made directly, in one run.

1. Starts a real WordPress (the test fixture's scripts) and seeds posts with terms.
2. Starts ``aiconnector serve --site wordpress`` in its own process, signs the editor in
   through the sign-in page (so their own "AI Connector" Application Password is created, as
   in production) and gives the bench an application password for MCP.
3. Records the exact REST requests the WordPress backend makes for each tool (an in-process
   backend with a recording transport), so "direct" replays precisely those.
4. Interleaves direct and connector calls (one after the other, sequentially, so both see the
   same machine noise) and reports p50/p99 of each and the connector's added latency as a
   fraction of WordPress's own time.

    .venv/bin/python bench/wordpress_latency.py --requests 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.wordpress.instance import WordPressInstance, WordPressUser, start_wordpress, stop_wordpress  # noqa: E402

from aiconnector.core.principal import Actor  # noqa: E402
from aiconnector.sites.base import PostQuery  # noqa: E402
from aiconnector.sites.wordpress import WordPressBackend  # noqa: E402
from bench.harness import free_port, log, parse_result, tool_call_body  # noqa: E402

RESULTS = REPO / "bench" / "results"
PROTOCOL_VERSION = "2025-11-25"


@dataclass(frozen=True)
class Recorded:
    method: str
    url: str


class StaticCredentials:
    def __init__(self, person: WordPressUser) -> None:
        self.person = person

    async def credentials_for(self, actor: Actor) -> tuple[str, str]:
        return self.person.username, self.person.app_password


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests through and remembers them (method and full URL)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.seen: list[Recorded] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(Recorded(request.method, str(request.url)))
        return await self.inner.handle_async_request(request)


async def record_requests(
    wp: WordPressInstance, person: WordPressUser, post_id: int
) -> dict[str, list[Recorded]]:
    """The REST requests one warm call of each tool makes (credentials checked, ids known)."""
    recorder = Recorder()
    backend = WordPressBackend(wp.url, StaticCredentials(person), transport=recorder)
    actor = Actor(person.id, person.username, person.role)
    calls: dict[str, Callable[[], object]] = {
        "get_post": lambda: backend.get_post(actor, post_id),
        "list_posts": lambda: backend.list_posts(actor, PostQuery(limit=10)),
    }
    recorded: dict[str, list[Recorded]] = {}
    try:
        for tool, call in calls.items():
            await call()  # warm: the credential check and the id's type are learnt here
            recorder.seen.clear()
            await call()
            recorded[tool] = list(recorder.seen)
    finally:
        await backend.aclose()
    return recorded


def seed(wp: WordPressInstance, count: int) -> int:
    editor = wp.users["editor"]
    category = wp.api("POST", "categories", editor, json={"name": "Bench"}).json()
    tags = [wp.api("POST", "tags", editor, json={"name": f"bench-{i}"}).json()["id"] for i in range(3)]
    first = 0
    for i in range(count):
        made = wp.api(
            "POST",
            "posts",
            editor,
            json={
                "title": f"Bench post {i}",
                "content": "<p>" + "Lorem ipsum dolor sit amet. " * 40 + "</p>",
                "status": "publish",
                "categories": [category["id"]],
                "tags": tags,
            },
        )
        first = first or made.json()["id"]
    return first


def start_connector(wp: WordPressInstance, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AICONNECTOR_DATA_DIR": str(data_dir),
        "AICONNECTOR_WP_APP_PASSWORD": wp.admin.app_password,
    }
    argv = [
        str(REPO / ".venv/bin/aiconnector"), "serve", "--site", "wordpress", "--wp-url", wp.url,
        "--wp-user", wp.admin.username, "--port", str(port), "--no-access-log", "--no-demo",
    ]  # fmt: skip
    with open(data_dir / "server.log", "wb") as server_log:  # the child keeps its own descriptor
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=server_log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the connector did not start: {(data_dir / 'server.log').read_text()[-2000:]}")


def sign_in(base_url: str, person: WordPressUser) -> None:
    """The sign-in page, as a person uses it: provisions their WordPress identity."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        token = re.search(r'name="csrf" value="([^"]+)"', http.get("/login").text)
        assert token, "no CSRF field on the sign-in page"
        answer = http.post(
            "/login", data={"username": person.username, "password": person.password, "csrf": token.group(1)}
        )
        if answer.status_code != 303:
            raise RuntimeError(f"sign-in failed: {answer.status_code} {answer.text[:300]}")


def app_password(data_dir: Path, username: str) -> str:
    env = {**os.environ, "AICONNECTOR_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [str(REPO / ".venv/bin/aiconnector"), "app-passwords", "create", username, "--name", "bench"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args: argparse.Namespace) -> dict[str, object]:
    base = Path(tempfile.mkdtemp(prefix="aic-wp-bench-"))
    wp = start_wordpress(base / "wp", free_port())
    connector: subprocess.Popen[bytes] | None = None
    try:
        post_id = seed(wp, args.posts)
        editor = wp.users["editor"]
        recorded = asyncio.run(record_requests(wp, editor, post_id))
        port = free_port()
        connector = start_connector(wp, base, port)
        sign_in(f"http://127.0.0.1:{port}", editor)
        basic = httpx.BasicAuth(editor.username, app_password(base, editor.username))
        mcp_headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL_VERSION,
        }
        bodies = {
            "get_post": tool_call_body("get_post", {"id": post_id}),
            "list_posts": tool_call_body("list_posts", {"limit": 10}),
        }
        timings: dict[str, dict[str, list[float]]] = {t: {"direct": [], "connector": []} for t in bodies}
        with (
            httpx.Client(auth=(editor.username, editor.app_password), timeout=30) as direct,
            httpx.Client(auth=basic, headers=mcp_headers, timeout=30) as mcp,
        ):

            def direct_call(tool: str) -> None:
                for request in recorded[tool]:
                    answer = direct.request(request.method, request.url)
                    answer.raise_for_status()

            def connector_call(tool: str) -> None:
                parse_result(mcp.post(f"http://127.0.0.1:{port}/mcp", content=bodies[tool]))

            for i in range(args.warmup + args.requests):
                for tool in bodies:
                    for side, call in (("direct", direct_call), ("connector", connector_call)):
                        started = time.perf_counter()
                        call(tool)
                        if i >= args.warmup:
                            timings[tool][side].append(time.perf_counter() - started)
    finally:
        if connector is not None:
            connector.terminate()
            connector.wait(timeout=30)
        stop_wordpress(wp)

    report: dict[str, object] = {"requests": args.requests, "posts": args.posts, "rest_requests_per_call": {}}
    for tool, sides in timings.items():
        direct_p50 = statistics.median(sides["direct"]) * 1000
        ours_p50 = statistics.median(sides["connector"]) * 1000
        report[tool] = {
            "direct_p50_ms": round(direct_p50, 2),
            "direct_p99_ms": round(percentile(sides["direct"], 0.99) * 1000, 2),
            "connector_p50_ms": round(ours_p50, 2),
            "connector_p99_ms": round(percentile(sides["connector"], 0.99) * 1000, 2),
            "added_p50_ms": round(ours_p50 - direct_p50, 2),
            "added_fraction_of_wordpress": round((ours_p50 - direct_p50) / direct_p50, 3),
        }
        report["rest_requests_per_call"][tool] = [
            f"{r.method} {r.url.split('/wp-json')[1]}" for r in recorded[tool]
        ]  # type: ignore[index]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="measured calls per tool and side")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--posts", type=int, default=20)
    args = parser.parse_args()
    report = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"wordpress-latency-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print("| tool | direct p50 / p99 (ms) | connector p50 / p99 (ms) | added p50 (ms) | added / WordPress |")
    print("|---|---|---|---|---|")
    for tool in ("get_post", "list_posts"):
        r = report[tool]
        assert isinstance(r, dict)
        print(
            f"| `{tool}` | {r['direct_p50_ms']} / {r['direct_p99_ms']} | {r['connector_p50_ms']} / "
            f"{r['connector_p99_ms']} | {r['added_p50_ms']} | {r['added_fraction_of_wordpress']:.0%} |"
        )
    log(f"REST requests per call: {json.dumps(report['rest_requests_per_call'])}")
    log(f"written {out}")


if __name__ == "__main__":
    main()
