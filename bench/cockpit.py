"""Benchmark the cockpit in a browser: time to first render and websocket payload.

Cases:

* ``cockpit-city``: the ``city`` demo (generated, ingested, fused and prepared with
  :func:`dashboards.demo.prepare_demo`, or ``--workspace PATH``) served by ``twin serve``. Per
  run, a fresh browser context logs in as the viewer ``demo``, waits until that first cockpit
  has drawn (so the server is not still building it), goes to ``about:blank`` and then the
  measured ``page.goto(/cockpit)``: the clock runs from the goto until every
  ``.ct-kpi .ct-kpi-value`` is visible with text AND a screenshot of the ``.ct-map`` canvas is
  non-blank (``nonblank > 0.05``; screenshots polled every ~100 ms, each screenshot itself
  takes some; that is the resolution). The first cockpit of the fresh server (login click to
  drawn) is reported as ``cold_first_load_s``.
* ``hexes-60k``: a minimal Panel page (``bench/cockpit_hexes_app.py``) with one
  H3HexagonLayer of 60,000 res-10 hexes (string hex ids), timed the same way (from
  ``page.goto`` until the canvas is non-blank).
* ``hexes-60k-numeric`` (payload only): the same data with the hex id as two ``uint32``
  columns instead of strings; deck.gl cannot draw that, so only the bytes until the websocket
  has been quiet for 2 s are measured.

Websocket bytes: every frame received from the server on websockets the page opened after the
measured goto, until first render (text frames counted as UTF-8 bytes; binary frames are
Bokeh's buffers, i.e. numeric columns). Three runs each (a new context each), median reported.

Headless Debian Chromium (``tests/browser/conftest.py``'s ``CHROMIUM_ARGS``: WebGL on
SwiftShader, i.e. the CPU), viewport 1920×1080, requests for other hosts aborted.

Usage::

    python bench/cockpit.py [--workspace PATH] [--runs 3] [--json FILE]
                            [--screenshot FILE] [--screenshot-4k FILE] [--skip-hexes]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

from tests.browser.conftest import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    _route_local_only,
    nonblank,
    served,
)

TWIN = str(Path(sys.executable).with_name("twin"))
VIEWER, PASSWORD = "demo", "bench-password-1"
NONBLANK = 0.05
TIMEOUT_S = 180.0


class WsRecorder:
    """Frames received on the page's websockets, with their arrival time."""

    def __init__(self, page: Any) -> None:
        self.armed_at: float | None = None
        self.frames: list[tuple[float, int, bool]] = []  # (time, bytes, binary)
        page.on("websocket", self._on_ws)

    def arm(self) -> None:
        self.armed_at = time.perf_counter()
        self.frames.clear()

    def _on_ws(self, ws: Any) -> None:
        if self.armed_at is None:
            return  # a websocket of the login / warm-up page
        ws.on("framereceived", self._on_frame)

    def _on_frame(self, payload: str | bytes) -> None:
        binary = isinstance(payload, bytes)
        size = len(payload) if binary else len(payload.encode("utf-8"))
        self.frames.append((time.perf_counter(), size, binary))

    def until(self, t_end: float) -> dict[str, Any]:
        got = [f for f in self.frames if f[0] <= t_end]
        total = sum(f[1] for f in got)
        binary = sum(f[1] for f in got if f[2])
        return {"bytes": total, "mb": round(total / 1e6, 3), "frames": len(got),
                "binary_bytes": binary,
                "binary_share": round(binary / total, 3) if total else None}


def new_page(browser: Any, width: int = 1920, height: int = 1080) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": width, "height": height},
                                  device_scale_factor=1, service_workers="block",
                                  locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(TIMEOUT_S * 1000)
    context.route("**/*", _route_local_only)
    return context, context.new_page()


def wait_canvas(page: Any, deadline: float) -> float:
    """Poll the map canvas until non-blank; the perf_counter time it was seen drawn."""
    canvas = page.locator(".ct-map canvas, canvas").first
    canvas.wait_for(state="visible", timeout=max(1.0, deadline - time.perf_counter()) * 1000)
    while True:
        png = canvas.screenshot(timeout=60_000)
        now = time.perf_counter()
        if nonblank(png) > NONBLANK:
            return now
        if now > deadline:
            raise TimeoutError("the map canvas stayed blank")
        page.wait_for_timeout(100)


def wait_kpis(page: Any, deadline: float) -> None:
    values = page.locator(".ct-kpi .ct-kpi-value")
    values.first.wait_for(state="visible", timeout=(deadline - time.perf_counter()) * 1000)
    while True:
        texts = values.all_inner_texts()
        if texts and all(t.strip() for t in texts) and all(v.is_visible()
                                                           for v in values.all()):
            return
        if time.perf_counter() > deadline:
            raise TimeoutError(f"KPI values not all shown: {texts}")
        page.wait_for_timeout(50)


def rendered_cockpit(page: Any) -> float:
    deadline = time.perf_counter() + TIMEOUT_S
    wait_kpis(page, deadline)
    return wait_canvas(page, deadline)


def log_in(page: Any, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", VIEWER)
    page.fill("#password", PASSWORD)
    page.click(".ct-login-submit")
    page.wait_for_url(f"{base}/cockpit*", timeout=TIMEOUT_S * 1000)


def cockpit_runs(browser: Any, base: str, runs: int, shots: dict[str, Path | None],
                 ) -> dict[str, Any]:
    times, payloads, cold = [], [], None
    for i in range(runs):
        context, page = new_page(browser)
        try:
            recorder = WsRecorder(page)
            t0 = time.perf_counter()
            log_in(page, base)
            drawn = rendered_cockpit(page)
            if i == 0:
                cold = round(drawn - t0, 3)  # login click included; fresh server
            page.goto("about:blank")
            page.wait_for_timeout(1000)
            recorder.arm()
            t0 = time.perf_counter()
            page.goto(f"{base}/cockpit")
            drawn = rendered_cockpit(page)
            times.append(drawn - t0)
            payloads.append(recorder.until(drawn))
            print(f"  cockpit run {i + 1}: {times[-1]:.2f} s, {payloads[-1]['mb']} MB "
                  f"({payloads[-1]['frames']} frames)", flush=True)
            if i == 0 and shots.get("hd"):
                page.wait_for_timeout(2000)
                page.screenshot(path=str(shots["hd"]))
        finally:
            context.close()
    if shots.get("4k"):
        context, page = new_page(browser, 3840, 2160)
        try:
            log_in(page, base)
            rendered_cockpit(page)
            page.wait_for_timeout(2000)
            page.screenshot(path=str(shots["4k"]))
            dims = page.evaluate("[document.documentElement.scrollWidth,"
                                 " document.documentElement.scrollHeight]")
            print(f"  4K screenshot saved; document scroll size {dims}", flush=True)
        finally:
            context.close()
    return summarise("cockpit-city", times, payloads, cold_first_load_s=cold)


def summarise(case: str, times: list[float], payloads: list[dict[str, Any]],
              **extra: Any) -> dict[str, Any]:
    mid = sorted(range(len(times)), key=lambda k: times[k])[len(times) // 2] if times else None
    return {"case": case,
            "first_render_median_s": round(statistics.median(times), 3) if times else None,
            "first_render_s": [round(t, 3) for t in times],
            "websocket": payloads[mid] if mid is not None else None,
            "websocket_runs": payloads, **extra}


def hexes_runs(browser: Any, base: str, runs: int, case: str, *, draws: bool) -> dict[str, Any]:
    times, payloads = [], []
    for i in range(runs):
        context, page = new_page(browser)
        try:
            recorder = WsRecorder(page)
            recorder.arm()
            t0 = time.perf_counter()
            page.goto(f"{base}/x")
            if draws:
                drawn = wait_canvas(page, t0 + TIMEOUT_S)
                times.append(drawn - t0)
            else:  # until the websocket has been quiet for 2 s
                page.wait_for_timeout(3000)
                while recorder.frames and time.perf_counter() - recorder.frames[-1][0] < 2.0:
                    page.wait_for_timeout(250)
                drawn = time.perf_counter()
            payloads.append(recorder.until(drawn))
            shown = f"{times[-1]:.2f} s, " if draws else ""
            print(f"  {case} run {i + 1}: {shown}{payloads[-1]['mb']} MB "
                  f"({payloads[-1]['frames']} frames)", flush=True)
        finally:
            context.close()
    if not draws:
        return summarise(case, [], payloads) | {
            "websocket": payloads[len(payloads) // 2],
            "note": "payload only: deck.gl cannot draw numeric hex ids; bytes until the "
                    "websocket was quiet for 2 s"}
    return summarise(case, times, payloads)


def machine() -> dict[str, Any]:
    import bokeh
    import panel

    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip()
    return {"git_head": head, "platform": platform.platform(), "cpu": model,
            "cpu_count": os.cpu_count(),
            "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(), "panel": panel.__version__,
            "bokeh": bokeh.__version__, "chromium": version,
            "webgl": "SwiftShader (software, CPU)", "loadavg": os.getloadavg()}


def build_workspace(root: Path) -> Path:
    from dashboards.demo import prepare_demo
    from tests.conftest import fused_demo

    t0 = time.perf_counter()
    ws, _ = fused_demo(root, size="city")
    prepare_demo(ws, password=PASSWORD)
    print(f"built the city demo workspace in {time.perf_counter() - t0:.1f} s: {ws.root}",
          flush=True)
    return Path(ws.root)


def city_centre(ws_root: Path) -> tuple[float, float]:
    from twin import Workspace

    bbox = Workspace.open(ws_root).config.bbox or (121.30, 31.10, 121.65, 31.40)
    return (bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description="cockpit time to first render and payload")
    parser.add_argument("--workspace", type=Path, help="a prepared city demo workspace "
                        f"(viewer '{VIEWER}', password '{PASSWORD}')")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--screenshot-4k", type=Path)
    parser.add_argument("--skip-hexes", action="store_true")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    info = machine()
    print("machine:", json.dumps(info, ensure_ascii=False), flush=True)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cockpit-bench-") as tmp:
        ws_root = args.workspace or build_workspace(Path(tmp))
        lng0, lat0 = city_centre(ws_root)
        for shot in (args.screenshot, args.screenshot_4k):
            if shot:
                shot.parent.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
            try:
                cmd = [TWIN, "serve", str(ws_root), "--port", "{port}", "--address",
                       "127.0.0.1"]
                with served(cmd, ready_path="/login", timeout=120) as base:
                    results.append(cockpit_runs(browser, base, args.runs,
                                                {"hd": args.screenshot,
                                                 "4k": args.screenshot_4k}))
                if not args.skip_hexes:
                    app = [sys.executable, str(HERE / "cockpit_hexes_app.py"), "{port}",
                           "--center", f"{lng0},{lat0}"]
                    with served(app, ready_path="/x", timeout=120) as base:
                        results.append(hexes_runs(browser, base, args.runs, "hexes-60k",
                                                  draws=True))
                    with served([*app, "--numeric"], ready_path="/x", timeout=120) as base:
                        results.append(hexes_runs(browser, base, args.runs,
                                                  "hexes-60k-numeric", draws=False))
            finally:
                browser.close()

    print(f"\nmachine: {info['cpu']} ×{info['cpu_count']}, {info['ram_gb']} GB, "
          f"{info['chromium']}, WebGL {info['webgl']}")
    print(f"{'case':<22}{'first render (median s)':>26}{'websocket MB':>15}{'binary':>9}")
    for r in results:
        ws = r["websocket"] or {}
        t = r["first_render_median_s"]
        share = ws.get("binary_share")
        print(f"{r['case']:<22}{'-' if t is None else f'{t:.2f}':>26}"
              f"{ws.get('mb', float('nan')):>15.3f}"
              f"{'-' if share is None else f'{share:.0%}':>9}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "cockpit", "machine": info,
                                         "viewport": [1920, 1080], "runs": args.runs,
                                         "nonblank_threshold": NONBLANK, "results": results},
                                        ensure_ascii=False, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
