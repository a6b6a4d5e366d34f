"""Benchmark grid events: a 100,000-row hotline import, and /events with 20,000 open events.

Builds (or opens, ``--workspace``) the fused ``city`` demo (about a million residents, with
grid units), then:

**Import** (target: 100,000 rows, assignment included, within 10 s): a hotline export of
``--rows`` calls (GBK CSV in the demo's layout, at residential places drawn from the fused
cells, half of them by building id) is imported into a copy of the workspace with
``twin events WS import`` — the whole command, from its start to its answer — and, in this
process, read and taken in with the phases timed (parse: decode, columns, times, places;
intake: locate every point in its cell, grid unit, community, street, district and zone, due
times, duplicates, insert and the automatic assignment step).

**Page** (target: first render within 3 s): another copy holds ``--open`` open events; a
dispatcher logs in in Debian's Chromium (1920×1080) and opens ``/events``; the time from the
request to the queue's first row and the map's canvas drawn, cold (the server's first
/events) and warm (median of 3 more); in the same run, the same page with ``--baseline``
(100) open events, for what the page costs without them.

Usage: python bench/events.py [--workspace PATH] [--rows 100000] [--open 20000]
       [--baseline 100] [--part all|import|page] [--json FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
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

from bench.cockpit import machine  # noqa: E402

TWIN = str(Path(sys.executable).with_name("twin"))
PASSWORD = "bench-pass-1"
_CATEGORIES = ["物资短缺", "药品需求", "发热就医", "老人残障帮扶", "违反管控", "配送受阻", "其他"]
_PRIORITIES = ["特急", "紧急", "一般", "较低"]


def hotline_csv(ws: Any, path: Path, rows: int, *, seed: int = 0) -> None:
    """``rows`` calls over the last 12 hours at residential places of ``ws`` (GBK)."""
    import numpy as np
    import pandas as pd

    from twin import grid
    from twin.events.locate import Locator
    from twin.facts import Facts

    rng = np.random.default_rng(seed)
    cells = Facts(ws).read(10, columns=["residents"])
    weight = cells["residents"].to_numpy(float) + 0.01
    pick = rng.choice(len(cells), rows, p=weight / weight.sum())
    lng, lat = grid.cell_centres(cells["cell"].to_numpy(np.uint64)[pick])
    lng = lng + rng.normal(0, 0.0003, rows)
    lat = lat + rng.normal(0, 0.0003, rows)
    buildings = Locator(ws)._load_buildings()  # the ids a hotline resolves addresses to
    by_id = rng.random(rows) < 0.5
    ids = buildings["id"].to_numpy(object)[rng.integers(0, len(buildings), rows)]
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).replace(tzinfo=None)
    seconds = np.sort(rng.integers(0, 12 * 3600, rows))[::-1]
    times = pd.Series(pd.to_datetime(now) - pd.to_timedelta(seconds, unit="s")).dt.strftime(
        "%Y-%m-%d %H:%M:%S")
    frame = pd.DataFrame({
        "工单编号": [f"BX{i:07d}" for i in range(rows)], "受理时间": times,
        "诉求类别": rng.choice(_CATEGORIES, rows), "紧急程度": rng.choice(_PRIORITIES, rows),
        "来源渠道": "12345热线", "诉求地址": "示范路",
        "建筑编号": np.where(by_id, ids, ""),
        "经度": np.where(by_id, "", np.char.mod("%.6f", lng)),
        "纬度": np.where(by_id, "", np.char.mod("%.6f", lat)),
        "诉求内容": "家中缺少生活物资", "来电人": "王女士",
        "联系电话": [f"139{v:08d}" for v in rng.integers(0, 10**8, rows)],
    })
    frame.to_csv(path, index=False, encoding="gbk")


def bench_import(ws_root: Path, work: Path, rows: int) -> dict[str, Any]:
    from twin import Workspace
    from twin.events.intake import read_hotline_csv
    from twin.events.store import Events

    export = work / "hotline.csv"
    hotline_csv(Workspace.open(ws_root), export, rows)
    out: dict[str, Any] = {"rows": rows, "file_mb": round(export.stat().st_size / 1e6, 1)}
    # The whole command, in a copy of the workspace.
    copy = work / "ws-cli"
    shutil.copytree(ws_root, copy)
    started = time.perf_counter()
    run = subprocess.run([TWIN, "events", str(copy), "import", str(export), "--json"],
                         capture_output=True, text=True, check=False)
    out["cli_s"] = round(time.perf_counter() - started, 2)
    if run.returncode != 0:
        raise SystemExit(f"twin events import failed: {run.stderr}")
    answer = json.loads(run.stdout)
    out.update(created=answer["created"], duplicates=answer["duplicates"],
               outside=answer["outside"], skipped=len(answer["skipped"]))
    # The phases, in this process, in another copy.
    copy2 = work / "ws-phases"
    shutil.copytree(ws_root, copy2)
    ws = Workspace.open(copy2)
    started = time.perf_counter()
    events = Events(ws)
    events.locator  # noqa: B018 - boundaries, buildings and zones read
    out["load_units_s"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    parsed = read_hotline_csv(export, events.locator, events.categories)
    out["parse_s"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    events.intake(parsed.frame, actor="bench", source=export.name)
    out["intake_s"] = round(time.perf_counter() - started, 2)
    out["target_s"] = 10.0
    out["met"] = out["cli_s"] <= 10.0
    shutil.rmtree(copy, ignore_errors=True)
    shutil.rmtree(copy2, ignore_errors=True)
    return out


def _page_times(ws_root: Path, work: Path, n_open: int, name: str) -> dict[str, Any]:
    """A copy of ``ws_root`` with ``n_open`` open events; /events opened 4 times (cold, warm)."""
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, served
    from twin import Workspace
    from twin.events.intake import read_hotline_csv
    from twin.events.store import Events
    from twin.users import Users

    copy = work / name
    shutil.copytree(ws_root, copy)
    ws = Workspace.open(copy)
    export = work / f"{name}.csv"
    hotline_csv(ws, export, n_open, seed=1)
    events = Events(ws)
    parsed = read_hotline_csv(export, events.locator, events.categories)
    events.intake(parsed.frame, actor="bench", source=export.name)
    open_now = events.stats()["open"]
    Users(ws).add("bench-disp", "dispatcher", PASSWORD, actor="bench")
    times: list[float] = []
    queue_times: list[float] = []
    shot = work / f"events-{name}-1920x1080.png"
    with served([TWIN, "serve", str(copy), "--port", "{port}", "--address", "127.0.0.1"],
                ready_path="/login", timeout=180) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(f"{base}/login?next=/cockpit")
        page.fill("#username", "bench-disp")
        page.fill("#password", PASSWORD)
        page.click(".ct-login-submit")
        page.wait_for_url(f"{base}/cockpit*", timeout=120_000)
        for _ in range(4):
            started = time.perf_counter()
            page.goto(f"{base}/events")
            page.wait_for_selector(".ct-queue .tabulator-row", timeout=120_000)
            queue_times.append(time.perf_counter() - started)
            page.wait_for_selector(".ct-events-map canvas", timeout=120_000)
            times.append(time.perf_counter() - started)
        page.screenshot(path=str(shot))
        browser.close()
    shutil.rmtree(copy, ignore_errors=True)
    return {"open_events": open_now, "first_render_cold_s": round(times[0], 2),
            "first_render_warm_median_s": round(statistics.median(times[1:]), 2),
            "queue_cold_s": round(queue_times[0], 2),
            "queue_warm_median_s": round(statistics.median(queue_times[1:]), 2),
            "screenshot": str(shot)}


def bench_page(ws_root: Path, work: Path, n_open: int, n_baseline: int) -> dict[str, Any]:
    """/events with ``n_open`` open events, and in the same run with ``n_baseline`` (what the
    page costs without the load)."""
    out = _page_times(ws_root, work, n_open, "many")
    out["baseline"] = _page_times(ws_root, work, n_baseline, "few")
    out["target_s"] = 3.0
    out["met"] = out["first_render_cold_s"] <= 3.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="A fused city demo (else built).")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--open", type=int, default=20_000)
    parser.add_argument("--baseline", type=int, default=100,
                        help="open events of the same run's baseline page")
    parser.add_argument("--part", choices=["all", "import", "page"], default="all")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="citytwin-bench-events-"))
    result: dict[str, Any] = {"benchmark": "events", "machine": machine()}
    if args.workspace is None:
        from dashboards.demo import prepare_demo
        from tests.conftest import fused_demo

        started = time.perf_counter()
        ws, _ = fused_demo(work / "city", size="city")
        prepare_demo(ws, password=PASSWORD)
        result["build_s"] = round(time.perf_counter() - started, 1)
        root = ws.root
    else:
        root = args.workspace
    if args.part in ("all", "import"):
        result["import"] = bench_import(root, work, args.rows)
        print(json.dumps(result["import"], ensure_ascii=False), flush=True)
    if args.part in ("all", "page"):
        result["page"] = bench_page(root, work, args.open, args.baseline)
        print(json.dumps(result["page"], ensure_ascii=False), flush=True)
    text = json.dumps(result, indent=1, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
