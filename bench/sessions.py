"""Benchmark how many cockpit sessions the server delivers at once, without a browser.

A browser on the same two cores spends about 12 CPU-seconds drawing each cockpit in software
WebGL (``bench/cockpit.py`` measures that), which drowns what the server does. Here each
"screen" is a plain client doing what Bokeh's page does before it draws: ``GET /cockpit``
with the session cookie (the server builds the session's document), then the websocket
``PULL-DOC-REQ`` until the whole ``PULL-DOC-REPLY`` has arrived. N such clients start at once;
the time per client is from its GET to the last byte of its document.

Server memory (VmRSS summed over the server's processes) is read idle, at the peak, and
``--after`` seconds after every client has closed (the target: back within 20 % of idle).

Usage::

    python bench/sessions.py --workspace PATH [--sessions 10,25] [--num-procs 1,2]
                             [--after 120] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cockpit import group_pids, machine, rss_kb  # noqa: E402
from tests.browser.conftest import free_port  # noqa: E402

TWIN = str(Path(sys.executable).with_name("twin"))


def _rss_mb(pid: int) -> float:
    """VmRSS of the server's process group (it is started in a session of its own), in MB."""
    return sum(rss_kb(p) for p in group_pids(pid)) / 1024


def _cookie(base: str, user: str, password: str) -> str:
    """Log in once; the session cookie every client then sends."""
    from tests.logins import login_cookie

    return login_cookie(base, user, password)


async def _many(base: str, cookie: str, n: int) -> list[tuple[float, int]]:
    from tests.bokeh_client import open_many

    return await open_many(base, cookie, n)


def _answers(url: str) -> bool:
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def run(workspace: Path, n: int, procs: int, user: str, password: str, after: float
        ) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([TWIN, "serve", str(workspace), "--port", str(port),
                             "--num-procs", str(procs)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _answers(base + "/login"):
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        cookie = _cookie(base, user, password)
        asyncio.run(_many(base, cookie, 1))  # warm: today's picture computed once
        time.sleep(5)
        idle = _rss_mb(proc.pid)
        load = os.getloadavg()[0]
        peak = [idle]
        done = []

        async def main() -> list[tuple[float, int]]:
            async def watch() -> None:
                while not done:
                    peak.append(_rss_mb(proc.pid))
                    await asyncio.sleep(0.5)
            watcher = asyncio.ensure_future(watch())
            out = await _many(base, cookie, n)
            done.append(True)
            await watcher
            return out
        results = asyncio.run(main())
        times = sorted(t for t, _ in results)
        time.sleep(after)
        later = _rss_mb(proc.pid)
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        return {"sessions": n, "num_procs": procs, "load_1min": round(load, 2),
                "p50_s": round(statistics.median(times), 2), "p95_s": round(p95, 2),
                "max_s": round(times[-1], 2),
                "document_kb": round(statistics.median(b for _, b in results) / 1000, 1),
                "rss_idle_mb": round(idle), "rss_peak_mb": round(max(peak)),
                "rss_after_mb": round(later), "after_s": after,
                "back_within_20pct": later <= 1.2 * idle}
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description="cockpit sessions delivered at once")
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--sessions", default="10,25")
    parser.add_argument("--num-procs", default="1,2")
    parser.add_argument("--after", type=float, default=120.0)
    parser.add_argument("--user", default="bench")
    parser.add_argument("--password", default="bench-password-1")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for procs in (int(p) for p in args.num_procs.split(",")):
        for n in (int(s) for s in args.sessions.split(",")):
            row = run(args.workspace, n, procs, args.user, args.password, args.after)
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = {"machine": machine(), "runs": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
