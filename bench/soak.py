"""Soak: screens left on play for hours while the data is republished (not part of CI).

``--screens`` browser-less cockpit screens (``tests/bokeh_client.py``: the page's HTTP and
websocket protocol) open the cockpit and press ▶ play (the same property change a click
sends), then read every update the server pushes. Every ``--publish-every`` seconds the
stocks layer is republished with ``twin ingest`` (a changed copy of the demo's stocks.csv),
which the open cockpits pick up. The server's memory (VmRSS over its processes) is sampled
every 30 s.

Reported: memory after the warm-up, at the peak and at the end (growth over the warm-up
level against ``--bound-mb``), updates received per screen, screens still connected, the
publishes that failed, and lines of the server's log that show an error.

Usage::

    python bench/soak.py --workspace W [--minutes 120] [--screens 10] [--publish-every 300]
                         [--num-procs 1] [--bound-mb 150] [--json FILE]

``W`` is a workspace `twin demo` made (its city files are in ``W/../source``); a user
``soak`` (viewer) is added if missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cockpit import group_pids, machine, rss_kb  # noqa: E402
from tests.bokeh_client import Screen, open_document  # noqa: E402
from tests.browser.conftest import free_port  # noqa: E402
from tests.logins import login_cookie  # noqa: E402

TWIN = str(Path(sys.executable).with_name("twin"))
USER, PASSWORD = "soak", "soak-password-1"
_ERROR_MARKS = ("Traceback", "ERROR", "Exception", "error:")


def _rss_mb(pgid: int) -> float:
    return sum(rss_kb(p) for p in group_pids(pgid)) / 1024


def _stocks_variant(source: Path, out: Path, round_: int) -> None:
    """The demo's stocks with every quantity changed a little (a new version each time)."""
    rows = list(csv.DictReader(io.StringIO(source.read_text(encoding="utf-8-sig"))))
    numeric = [k for k in rows[0] if k.lower() in ("数量", "quantity", "stock", "amount", "qty")]
    for row in rows:
        for key in numeric:
            with contextlib.suppress(ValueError):
                row[key] = str(round(float(row[key]) * (1 + 0.01 * ((round_ % 7) - 3))))
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


async def _soak(base: str, cookie: str, pgid: int, args: argparse.Namespace,
                workspace: Path, source: Path) -> dict[str, Any]:
    from tornado.httpclient import AsyncHTTPClient

    AsyncHTTPClient.configure(None, max_clients=max(10, args.screens))
    screens: list[Screen] = list(await asyncio.gather(*(
        open_document(base, cookie, keep_open=True) for _ in range(args.screens))))
    played = 0
    for screen in screens:
        await screen.ready()
        toggle = screen.find("Toggle", "ct-play")
        if toggle is not None:
            await screen.change(toggle, "active", True)
            played += 1
    drains = [asyncio.ensure_future(s.drain()) for s in screens]
    started = time.monotonic()
    samples: list[tuple[float, float]] = []
    publishes: list[dict[str, Any]] = []
    next_publish = started + args.publish_every
    next_sample = started
    with tempfile.TemporaryDirectory() as tmp:
        while time.monotonic() - started < args.minutes * 60:
            now = time.monotonic()
            if now >= next_sample:
                samples.append((round(now - started), round(_rss_mb(pgid), 1)))
                next_sample += 30
            if now >= next_publish:
                variant = Path(tmp) / "stocks.csv"
                _stocks_variant(source, variant, len(publishes))
                t0 = time.perf_counter()
                done = await asyncio.create_subprocess_exec(
                    TWIN, "ingest", str(workspace), str(variant), "--kind", "stocks",
                    "--name", "stocks", "--note", "soak", stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE)
                _, err = await done.communicate()
                publishes.append({"at_s": round(now - started), "rc": done.returncode,
                                  "seconds": round(time.perf_counter() - t0, 1),
                                  "error": err.decode(errors="replace")[-300:]
                                  if done.returncode else ""})
                next_publish += args.publish_every
            await asyncio.sleep(1)
    connected = sum(s.open for s in screens)
    for screen in screens:
        screen.close()
    await asyncio.gather(*drains, return_exceptions=True)
    return {"samples": samples, "publishes": publishes, "played": played,
            "connected_at_end": connected, "patches": [s.patches for s in screens],
            "open_s": [round(s.seconds, 2) for s in screens]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from twin import Workspace
    from twin.errors import UserExistsError
    from twin.users import Users

    # The code and load the server starts with (the run takes hours; HEAD may move meanwhile).
    at_start = machine()
    workspace = args.workspace.resolve()
    source = args.stocks or workspace.parent / "source" / "stocks.csv"
    ws = Workspace.open(workspace)
    try:
        Users(ws).add(USER, "viewer", PASSWORD, actor="bench")
    except UserExistsError:
        Users(ws).set_password(USER, PASSWORD, actor="bench")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = Path(tempfile.mkstemp(prefix="citytwin-soak-", suffix=".log")[1])
    with log_path.open("wb") as log:
        proc = subprocess.Popen([TWIN, "serve", str(workspace), "--port", str(port),
                                 "--num-procs", str(args.num_procs)], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                cookie = login_cookie(base, USER, PASSWORD)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(
                        f"twin serve did not start: {log_path.read_text()}") from None
                time.sleep(0.5)
        result = asyncio.run(_soak(base, cookie, proc.pid, args, workspace, source))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    log_text = log_path.read_text(errors="replace")
    errors = [line for line in log_text.splitlines() if any(m in line for m in _ERROR_MARKS)]
    samples = result.pop("samples")
    warm = [rss for at, rss in samples if at >= args.warmup_minutes * 60] or [samples[-1][1]]
    growth = warm[-1] - warm[0]
    return {
        "machine": at_start, "minutes": args.minutes, "screens": args.screens,
        "num_procs": args.num_procs, "publish_every_s": args.publish_every,
        "rss_after_warmup_mb": warm[0], "rss_peak_mb": max(r for _, r in samples),
        "rss_end_mb": warm[-1], "growth_mb": round(growth, 1), "bound_mb": args.bound_mb,
        "within_bound": growth <= args.bound_mb,
        "publishes": len(result["publishes"]),
        "publishes_failed": [p for p in result["publishes"] if p["rc"] != 0],
        "publish_s_median": sorted(p["seconds"] for p in result["publishes"])[
            len(result["publishes"]) // 2] if result["publishes"] else None,
        "screens_on_play": result["played"], "connected_at_end": result["connected_at_end"],
        "updates_per_screen_min": min(result["patches"]),
        "updates_per_screen_max": max(result["patches"]),
        "log_error_lines": len(errors), "log_errors_sample": errors[:10],
        "rss_samples": samples, "log": str(log_path),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="soak: cockpits on play for hours")
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--stocks", type=Path, default=None,
                        help="stocks CSV to republish (default: W/../source/stocks.csv)")
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--warmup-minutes", type=float, default=5.0)
    parser.add_argument("--screens", type=int, default=10)
    parser.add_argument("--publish-every", type=float, default=300.0)
    parser.add_argument("--num-procs", type=int, default=1)
    parser.add_argument("--bound-mb", type=float, default=150.0,
                        help="largest growth of the server's memory after the warm-up")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = run(args)
    summary = {k: v for k, v in out.items() if k not in ("rss_samples", "machine")}
    print(json.dumps(summary, indent=1, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
