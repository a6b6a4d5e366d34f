"""Benchmark the cockpit in a browser: start-up, first render, payload, date steps, concurrency.

Parts (``--parts``, comma-separated; default ``startup,render,step,concurrency``):

* ``startup``: seconds from launching ``twin serve WORKSPACE`` until ``/login`` answers HTTP
  200 (polled every 50 ms), median of 3 launches (each a fresh process).
* ``render``: on one fresh ``twin serve``, the first cockpit (login click until drawn) is
  reported as ``cold_first_load_s``; it also warms the server. Then, at 1920×1080 and at
  3840×2160, ``--runs`` fresh browser contexts each: the clock runs from the click on the
  login button until every ``.ct-kpi .ct-kpi-value`` is visible with text AND a screenshot of
  the ``.ct-map`` canvas is non-blank (``nonblank > 0.05``; screenshots polled every ~100 ms,
  each screenshot itself takes some 0.2-0.5 s: that is the resolution). Medians reported.
  Websocket bytes: every frame received on the websockets the page opened after the click,
  until first render (text frames as UTF-8 bytes, binary frames are Bokeh's buffers).
* ``step`` (same server, after ``render``): a page at 1920×1080, the date slider's handle
  (``.ct-date .noUi-handle``) focused and ArrowLeft pressed; the clock runs until a KPI
  value's text changed AND the map canvas screenshot differs from the one before the key
  (``--runs`` steps, one day back each, median). Then "play keeps up": a click on
  ``.ct-play``, the new-cases tile and the slider's date watched for 12 s (a tick is 1.5 s,
  so 8 are expected), a click on pause and the time until the button shows ▶ again.
* ``concurrency``: for ``twin serve --num-procs 1`` and ``2``, and N = 10 and 25: a fresh
  server (after its start-up warm-up has gone quiet), one browser (Playwright's async API),
  one login over HTTP whose cookies (``storage_state``) seed N contexts, then
  ``goto(/cockpit)`` in all N at once; per session the seconds until all 6 KPI values are
  visible with text (p50, p95, max). The server's RSS (VmRSS summed over its process group)
  idle before, peak during (sampled every 0.2 s) and 2 minutes (``--settle``) after the
  contexts are closed, compared with the idle figure (within 20 %?). Also per session: when
  the websocket frame with the document (>= 100 kB) arrived (``doc_frame_*``: the server's
  share of the wait), and the CPU seconds the server group and the browser used meanwhile.
  The 2-minute watch of one server runs in a thread while the next configuration is measured,
  and the server's CPU time during it is recorded (an idle server uses ~0 s).
* ``hexes`` (not in the default): ``hexes-60k``, a minimal Panel page
  (``bench/cockpit_hexes_app.py``) with one H3HexagonLayer of 60,000 res-10 hexes (string hex
  ids), timed from ``page.goto`` until the canvas is non-blank; and ``hexes-60k-numeric``
  (payload only): the same data with the hex id as two ``uint32`` columns; deck.gl cannot draw
  that, so only the bytes until the websocket has been quiet for 2 s are measured.

Headless Debian Chromium (``tests/browser/conftest.py``'s ``CHROMIUM_ARGS``: WebGL on
SwiftShader, i.e. the CPU), requests for other hosts aborted. The browser and the server share
the machine's cores: ``os.getloadavg()`` is recorded at the start and end of every part.

Usage::

    python bench/cockpit.py [--workspace PATH] [--parts startup,render,step,concurrency,hexes]
                            [--runs 5] [--json FILE] [--screenshot FILE]
                            [--screenshot-4k FILE] [--sessions 10,25] [--num-procs 1,2]
                            [--settle 120] [--user NAME --password PW]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
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
    free_port,
    is_local,
    nonblank,
    png_pixels,
    served,
)

TWIN = str(Path(sys.executable).with_name("twin"))
DEMO_USER, PASSWORD = "demo", "bench-password-1"  # the account build_workspace() creates
NONBLANK = 0.05
TIMEOUT_S = 120.0
PLAY_WATCH_S = 12.0
PLAY_TICK_S = 1.5
KPI_COUNT = 6
ALL_PARTS = ("startup", "render", "step", "concurrency", "hexes")
DEFAULT_PARTS = ("startup", "render", "step", "concurrency")
TARGETS = {"first_render_s": 3.0, "date_step_s": 1.0, "initial_payload_bytes": 500_000,
           "sessions_10_p95_s": 5.0, "sessions_25_p95_s": 10.0, "memory_back_within": 0.20,
           "startup_s": 3.0}
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- the server process ------------------------------------------------------------------------
def group_pids(pgid: int) -> list[int]:
    """Every live process of the process group ``pgid`` (read from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_s(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def browser_cpu_s() -> float:
    """CPU seconds of the live Chromium processes descended from this process."""
    parent, comm = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        pid = int(entry.name)
        comm[pid] = stat[stat.index("(") + 1:stat.rindex(")")]
        parent[pid] = int(stat[stat.rindex(")") + 2:].split()[1])
    me, total = os.getpid(), 0.0
    for pid, name in comm.items():
        if not name.startswith("chrom"):
            continue
        up = parent.get(pid)
        while up and up != me:
            up = parent.get(up)
        if up == me:
            total += _cpu_s(pid)
    return total


class Server:
    """``twin serve`` in its own process group, with its RSS and CPU time from /proc."""

    def __init__(self, ws_root: Path, *, num_procs: int = 1) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.argv = [TWIN, "serve", str(ws_root), "--port", str(self.port), "--address",
                     "127.0.0.1"] + (["--num-procs", str(num_procs)] if num_procs > 1 else [])
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy")}
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.ready_s: float | None = None
        self.launched = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env,
                                     start_new_session=True)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def wait_ready(self, timeout: float = TIMEOUT_S) -> float:
        """Seconds from the launch until ``/login`` answered HTTP 200."""
        deadline = self.launched + timeout
        while True:
            try:
                with NO_PROXY.open(self.base + "/login", timeout=2) as response:
                    if response.status == 200:
                        self.ready_s = time.perf_counter() - self.launched
                        return self.ready_s
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv} exited with {self.proc.returncode}:\n"
                                   f"{self.output()}")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"/login did not answer 200 within {timeout:.0f} s:\n"
                                   f"{self.output()}")
            time.sleep(0.05)

    def pids(self) -> list[int]:
        return group_pids(self.proc.pid)

    def rss_mb(self) -> float:
        return sum(rss_kb(p) for p in self.pids()) / 1024

    def cpu_s(self) -> float:
        return sum(_cpu_s(p) for p in self.pids())

    def wait_quiet(self, timeout: float = 90.0, quiet_cpu_s: float = 0.05) -> float:
        """Wait until the group used < ``quiet_cpu_s`` CPU in each of 2 consecutive seconds
        (its start-up warm-up done); seconds waited."""
        t0 = time.perf_counter()
        last, calm = self.cpu_s(), 0
        while time.perf_counter() - t0 < timeout and calm < 2:
            time.sleep(1.0)
            now = self.cpu_s()
            calm = calm + 1 if now - last < quiet_cpu_s else 0
            last = now
        return time.perf_counter() - t0

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.log.close()


@contextlib.contextmanager
def running(ws_root: Path, *, num_procs: int = 1) -> Iterator[Server]:
    server = Server(ws_root, num_procs=num_procs)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


# -- browser helpers (sync API) -----------------------------------------------------------------
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
            return  # a websocket opened before arm()
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
                "text_bytes": total - binary, "binary_bytes": binary,
                "binary_share": round(binary / total, 3) if total else None}


def context_options(width: int, height: int) -> dict[str, Any]:
    return {"viewport": {"width": width, "height": height}, "device_scale_factor": 1,
            "service_workers": "block", "locale": "zh-CN", "timezone_id": "Asia/Shanghai"}


def new_page(browser: Any, width: int = 1920, height: int = 1080) -> tuple[Any, Any]:
    context = browser.new_context(**context_options(width, height))
    context.set_default_timeout(TIMEOUT_S * 1000)
    context.route("**/*", _route_local_only)
    return context, context.new_page()


def map_canvas(page: Any) -> Any:
    return page.locator(".ct-map canvas, canvas").first


def wait_canvas(page: Any, deadline: float) -> float:
    """Poll the map canvas until non-blank; the perf_counter time it was seen drawn."""
    canvas = map_canvas(page)
    canvas.wait_for(state="visible", timeout=max(1.0, deadline - time.perf_counter()) * 1000)
    while True:
        png = canvas.screenshot(timeout=60_000)
        now = time.perf_counter()
        if nonblank(png) > NONBLANK:
            return now
        if now > deadline:
            raise TimeoutError("the map canvas stayed blank")
        page.wait_for_timeout(100)


def kpi_texts(page: Any) -> list[str]:
    return [t.strip() for t in page.locator(".ct-kpi .ct-kpi-value").all_inner_texts()]


def wait_kpis(page: Any, deadline: float) -> None:
    values = page.locator(".ct-kpi .ct-kpi-value")
    values.first.wait_for(state="visible",
                          timeout=max(1.0, deadline - time.perf_counter()) * 1000)
    while True:
        texts = values.all_inner_texts()
        if len(texts) >= KPI_COUNT and all(t.strip() for t in texts) and all(
                v.is_visible() for v in values.all()):
            return
        if time.perf_counter() > deadline:
            raise TimeoutError(f"KPI values not all shown: {texts}")
        page.wait_for_timeout(50)


def rendered_cockpit(page: Any) -> float:
    deadline = time.perf_counter() + TIMEOUT_S
    wait_kpis(page, deadline)
    return wait_canvas(page, deadline)


def fill_login(page: Any, base: str, user: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", user)
    page.fill("#password", password)


def click_login(page: Any, base: str) -> None:
    page.click(".ct-login-submit")
    page.wait_for_url(f"{base}/cockpit*", timeout=TIMEOUT_S * 1000)


def log_in(page: Any, base: str, user: str, password: str) -> None:
    fill_login(page, base, user, password)
    click_login(page, base)


def first_render(browser: Any, base: str, creds: tuple[str, str], width: int, height: int,
                 shot: Path | None = None) -> tuple[float, dict[str, Any]]:
    """One fresh context: login click until drawn (seconds) and the websocket bytes."""
    context, page = new_page(browser, width, height)
    try:
        recorder = WsRecorder(page)
        fill_login(page, base, *creds)
        recorder.arm()
        t0 = time.perf_counter()
        click_login(page, base)
        drawn = rendered_cockpit(page)
        payload = recorder.until(drawn)
        if shot:
            page.wait_for_timeout(2000)
            page.screenshot(path=str(shot))
            dims = page.evaluate("[document.documentElement.scrollWidth,"
                                 " document.documentElement.scrollHeight]")
            payload["document_scroll_size"] = dims
        return drawn - t0, payload
    finally:
        context.close()


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def part_render(browser: Any, base: str, creds: tuple[str, str], runs: int,
                shots: dict[str, Path | None]) -> dict[str, Any]:
    cold, cold_payload = first_render(browser, base, creds, 1920, 1080)
    print(f"  cold first cockpit (fresh server, 1920x1080): {cold:.2f} s, "
          f"{cold_payload['mb']} MB", flush=True)
    out: dict[str, Any] = {"cold_first_load_s": round(cold, 3),
                           "cold_websocket": cold_payload}
    for width, height, key in ((1920, 1080, "hd"), (3840, 2160, "4k")):
        times, payloads = [], []
        for i in range(runs):
            took, payload = first_render(browser, base, creds, width, height,
                                         shots.get(key) if i == 0 else None)
            times.append(took)
            payloads.append(payload)
            print(f"  {width}x{height} run {i + 1}: {took:.2f} s, {payload['mb']} MB "
                  f"({payload['frames']} frames, {payload['binary_bytes']} B binary)",
                  flush=True)
        order = sorted(range(len(times)), key=lambda k: times[k])
        mid = order[len(order) // 2]
        bytes_med = statistics.median([p["bytes"] for p in payloads])
        out[f"{width}x{height}"] = {
            "first_render_median_s": median(times),
            "first_render_s": [round(t, 3) for t in times],
            "websocket_median_bytes": bytes_med,
            "websocket_median_text_bytes": statistics.median([p["text_bytes"]
                                                              for p in payloads]),
            "websocket_median_binary_bytes": statistics.median([p["binary_bytes"]
                                                                for p in payloads]),
            "websocket_of_median_run": payloads[mid], "websocket_runs": payloads}
    return out


def _differs(a: bytes, b: bytes, share: float = 0.001) -> bool:
    """Whether two PNG screenshots differ in more than ``share`` of their pixels."""
    if a == b:
        return False
    pa, pb = png_pixels(a), png_pixels(b)
    if pa.shape != pb.shape:
        return True
    return float((pa != pb).any(axis=-1).mean()) > share


def _slider_value(page: Any) -> str | None:
    return page.locator(".ct-date .noUi-handle").first.get_attribute("aria-valuenow")


def _ms_date(value: str | None) -> str | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(float(value) / 1000, dt.UTC).date().isoformat()


def part_step(browser: Any, base: str, creds: tuple[str, str], runs: int) -> dict[str, Any]:
    context, page = new_page(browser, 1920, 1080)
    out: dict[str, Any] = {"viewport": [1920, 1080]}
    try:
        log_in(page, base, *creds)
        rendered_cockpit(page)
        canvas = map_canvas(page)
        handle = page.locator(".ct-date .noUi-handle").first
        steps = []
        for i in range(runs):
            page.wait_for_timeout(1500)  # settle
            before_png, before_kpi = canvas.screenshot(), kpi_texts(page)
            before_date = _slider_value(page)
            handle.focus()
            t0 = time.perf_counter()
            page.keyboard.press("ArrowLeft")
            kpi_t = map_t = None
            while time.perf_counter() - t0 < TIMEOUT_S and (kpi_t is None or map_t is None):
                if kpi_t is None and kpi_texts(page) != before_kpi:
                    kpi_t = time.perf_counter() - t0
                if map_t is None and _differs(canvas.screenshot(), before_png):
                    map_t = time.perf_counter() - t0
                page.wait_for_timeout(20)
            both = None if kpi_t is None or map_t is None else max(kpi_t, map_t)
            step = {"from": _ms_date(before_date), "to": _ms_date(_slider_value(page)),
                    "kpi_changed_s": None if kpi_t is None else round(kpi_t, 3),
                    "map_changed_s": None if map_t is None else round(map_t, 3),
                    "step_s": None if both is None else round(both, 3),
                    "kpis_before": before_kpi, "kpis_after": kpi_texts(page)}
            steps.append(step)
            print(f"  step {i + 1} {step['from']} -> {step['to']}: KPI {step['kpi_changed_s']}"
                  f" s, map {step['map_changed_s']} s", flush=True)
        done = [s["step_s"] for s in steps if s["step_s"] is not None]
        out |= {"date_step_median_s": median(done) if len(done) == len(steps) else None,
                "date_step_s": [s["step_s"] for s in steps],
                "kpi_changed_median_s": median([s["kpi_changed_s"] for s in steps
                                                if s["kpi_changed_s"] is not None]),
                "map_changed_median_s": median([s["map_changed_s"] for s in steps
                                                if s["map_changed_s"] is not None]),
                "steps": steps}
        out["play"] = play_keeps_up(page)
    finally:
        context.close()
    return out


def play_keeps_up(page: Any) -> dict[str, Any]:
    button = page.locator(".ct-play button").first
    tile = page.locator(".ct-kpi-new_cases .ct-kpi-value").first
    page.wait_for_timeout(1500)
    shown = [(0.0, _ms_date(_slider_value(page)), tile.inner_text().strip())]
    button.click()
    t0 = time.perf_counter()
    label_playing = None
    while (now := time.perf_counter() - t0) < PLAY_WATCH_S:
        date, value = _ms_date(_slider_value(page)), tile.inner_text().strip()
        if (date, value) != shown[-1][1:]:
            shown.append((round(now, 3), date, value))
        if label_playing is None and "▶" not in button.inner_text():
            label_playing = round(now, 3)
        page.wait_for_timeout(100)
    button.click()
    t1 = time.perf_counter()
    paused_s = None
    while time.perf_counter() - t1 < TIMEOUT_S:
        if "▶" in button.inner_text():
            paused_s = time.perf_counter() - t1
            break
        page.wait_for_timeout(50)
    # does it keep stepping after the pause showed? (watch 3 s)
    after = [_ms_date(_slider_value(page))]
    t2 = time.perf_counter()
    while time.perf_counter() - t2 < 3.0:
        date = _ms_date(_slider_value(page))
        if date != after[-1]:
            after.append(date)
        page.wait_for_timeout(100)
    dates = [d for _, d, _ in shown[1:]]
    values = [v for _, _, v in shown[1:]]
    expected = int(PLAY_WATCH_S / PLAY_TICK_S)
    result = {"watch_s": PLAY_WATCH_S, "tick_s": PLAY_TICK_S, "ticks_expected": expected,
              "distinct_dates_shown": len(set(dates)),
              "distinct_new_cases_values_shown": len(set(values)),
              "changes": shown, "button_showed_pause_after_s": label_playing,
              "pause_reflected_s": None if paused_s is None else round(paused_s, 3),
              "dates_after_pause_shown": after[1:]}
    print(f"  play: {result['distinct_dates_shown']} dates / "
          f"{result['distinct_new_cases_values_shown']} values shown in {PLAY_WATCH_S:.0f} s "
          f"({expected} ticks expected); pause shown after {result['pause_reflected_s']} s; "
          f"steps after pause: {after[1:]}", flush=True)
    return result


# -- concurrency (async API: many pages at once) ------------------------------------------------
async def _route_local_only_async(route: Any) -> None:
    if is_local(route.request.url):
        await route.continue_()
    else:
        await route.abort("blockedbyclient")


#: A websocket frame at least this big is the document (Bokeh's PULL-DOC-REPLY).
DOC_FRAME_BYTES = 100_000


async def _session(page: Any, base: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    doc_at: list[float] = []

    def on_frame(payload: str | bytes) -> None:
        if not doc_at and len(payload) >= DOC_FRAME_BYTES:
            doc_at.append(time.perf_counter() - t0)

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
    try:
        await page.goto(f"{base}/cockpit", timeout=TIMEOUT_S * 1000)
        values = page.locator(".ct-kpi .ct-kpi-value")
        while True:
            left = t0 + TIMEOUT_S - time.perf_counter()
            if left <= 0:
                raise TimeoutError("KPI values not all shown")
            await values.nth(KPI_COUNT - 1).wait_for(state="visible", timeout=left * 1000)
            texts = await values.all_inner_texts()
            if len(texts) >= KPI_COUNT and all(t.strip() for t in texts):
                break
            await asyncio.sleep(0.05)
        return {"s": round(time.perf_counter() - t0, 3),
                "doc_frame_s": round(doc_at[0], 3) if doc_at else None}
    except Exception as exc:  # a timeout or a broken page counts as not delivered
        return {"s": None, "error": f"{type(exc).__name__}: {str(exc)[:200]}",
                "after_s": round(time.perf_counter() - t0, 3),
                "doc_frame_s": round(doc_at[0], 3) if doc_at else None}


async def _sessions_at_once(base: str, n: int, creds: tuple[str, str], width: int,
                            height: int) -> tuple[list[dict[str, Any]], float, float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            login = await browser.new_context()
            from tests.logins import form_token

            form = await (await login.request.get(f"{base}/login")).text()
            response = await login.request.post(
                f"{base}/login", form={"username": creds[0], "password": creds[1],
                                       "_xsrf": form_token(form)},
                max_redirects=0)
            state = await login.storage_state()
            await login.close()
            if response.status != 302 or not state["cookies"]:
                raise RuntimeError(f"login over HTTP failed: {response.status}")
            contexts, pages = [], []
            for _ in range(n):
                context = await browser.new_context(storage_state=state,
                                                    **context_options(width, height))
                await context.route("**/*", _route_local_only_async)
                contexts.append(context)
                pages.append(await context.new_page())
            t0, cpu0 = time.perf_counter(), browser_cpu_s()
            results = await asyncio.gather(*(_session(p, base) for p in pages))
            wall, cpu = time.perf_counter() - t0, browser_cpu_s() - cpu0
            for context in contexts:
                await context.close()
            return list(results), wall, cpu
        finally:
            await browser.close()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


class RssSampler(threading.Thread):
    """RSS of a server sampled every ``period`` s until stopped."""

    def __init__(self, server: Server, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.server, self.period = server, period
        self.samples: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append(self.server.rss_mb())
            self.halt.wait(self.period)


class Settle(threading.Thread):
    """After the sessions closed: the RSS every 10 s for ``settle`` s, then stop the server."""

    def __init__(self, server: Server, settle: float, entry: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.server, self.settle, self.entry = server, settle, entry

    def run(self) -> None:
        try:
            t0, cpu0 = time.perf_counter(), self.server.cpu_s()
            curve = []
            while (left := t0 + self.settle - time.perf_counter()) > 0:
                time.sleep(min(10.0, left))
                curve.append((round(time.perf_counter() - t0, 1),
                              round(self.server.rss_mb(), 1)))
            after = curve[-1][1] if curve else self.server.rss_mb()
            idle = self.entry["rss_idle_mb"]
            ratio = after / idle if idle else None
            self.entry |= {
                "rss_after_mb": round(after, 1), "rss_after_s": self.settle,
                "rss_after_curve": curve,
                "server_cpu_s_during_settle": round(self.server.cpu_s() - cpu0, 2),
                "rss_after_over_idle": None if ratio is None else round(ratio, 3),
                "rss_after_over_ready": round(after / self.entry["rss_ready_mb"], 3),
                "memory_back_within_20pct": None if ratio is None
                else ratio <= 1 + TARGETS["memory_back_within"]}
        finally:
            self.server.stop()


def part_concurrency(ws_root: Path, creds: tuple[str, str], sessions: list[int],
                     procs: list[int], settle: float) -> list[dict[str, Any]]:
    entries, settling = [], []
    try:
        for num_procs in procs:
            for n in sessions:
                entry: dict[str, Any] = {"num_procs": num_procs, "sessions": n,
                                         "viewport": [1920, 1080],
                                         "loadavg_start": os.getloadavg()}
                server = Server(ws_root, num_procs=num_procs)
                try:
                    entry["ready_s"] = round(server.wait_ready(), 3)
                    entry["rss_ready_mb"] = round(server.rss_mb(), 1)
                    entry["warm_up_quiet_after_s"] = round(server.wait_quiet(), 1)
                    entry["processes"] = len(server.pids())
                    entry["rss_idle_mb"] = round(server.rss_mb(), 1)
                    sampler = RssSampler(server)
                    sampler.start()
                    cpu0 = server.cpu_s()
                    try:
                        results, wall, client_cpu = asyncio.run(_sessions_at_once(
                            server.base, n, creds, 1920, 1080))
                    finally:
                        sampler.halt.set()
                        sampler.join()
                except BaseException:
                    server.stop()
                    raise
                times = [r["s"] for r in results if r["s"] is not None]
                failed = [r for r in results if r["s"] is None]
                # a session that never delivered counts as the cap for the percentiles
                padded = times + [TIMEOUT_S] * len(failed)
                docs = [r["doc_frame_s"] for r in results if r["doc_frame_s"] is not None]
                entry |= {"delivered": len(times), "failed": len(failed),
                          "errors": sorted({r["error"] for r in failed})[:5],
                          "p50_s": round(percentile(padded, 50), 3),
                          "p95_s": round(percentile(padded, 95), 3),
                          "max_s": round(max(padded), 3),
                          "per_session_s": [r["s"] for r in results],
                          "wall_s": round(wall, 3),
                          "server_cpu_s_during": round(server.cpu_s() - cpu0, 2),
                          "browser_cpu_s_during": round(client_cpu, 2),
                          "doc_frame_p50_s": None if not docs else round(
                              percentile(docs, 50), 3),
                          "doc_frame_p95_s": None if not docs else round(
                              percentile(docs, 95), 3),
                          "rss_peak_mb": round(max(sampler.samples or [0.0]), 1),
                          "loadavg_end": os.getloadavg()}
                print(f"  --num-procs {num_procs}, {n} sessions: p50 {entry['p50_s']} s, p95 "
                      f"{entry['p95_s']} s, max {entry['max_s']} s, {len(failed)} failed; RSS "
                      f"idle {entry['rss_idle_mb']} MB, peak {entry['rss_peak_mb']} MB; document "
                      f"frame p95 {entry['doc_frame_p95_s']} s; CPU server "
                      f"{entry['server_cpu_s_during']} s, browser "
                      f"{entry['browser_cpu_s_during']} s in {entry['wall_s']} s", flush=True)
                entries.append(entry)
                watch = Settle(server, settle, entry)
                watch.start()
                settling.append(watch)
    finally:
        for watch in settling:
            watch.join(timeout=settle + 30)
    for entry in entries:
        print(f"  --num-procs {entry['num_procs']}, {entry['sessions']} sessions: RSS "
              f"{entry.get('rss_after_mb')} MB {settle:.0f} s after closing "
              f"(x{entry.get('rss_after_over_idle')} of idle)", flush=True)
    return entries


# -- hexes (unchanged cases) --------------------------------------------------------------------
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


def part_hexes(browser: Any, ws_root: Path, runs: int) -> list[dict[str, Any]]:
    lng0, lat0 = city_centre(ws_root)
    app = [sys.executable, str(HERE / "cockpit_hexes_app.py"), "{port}",
           "--center", f"{lng0},{lat0}"]
    out = []
    with served(app, ready_path="/x", timeout=TIMEOUT_S) as base:
        out.append(hexes_runs(browser, base, runs, "hexes-60k", draws=True))
    with served([*app, "--numeric"], ready_path="/x", timeout=TIMEOUT_S) as base:
        out.append(hexes_runs(browser, base, runs, "hexes-60k-numeric", draws=False))
    return out


# -- machine, workspace -------------------------------------------------------------------------
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


def load_note(load: tuple[float, float, float]) -> str | None:
    cores = os.cpu_count() or 1
    if load[0] > cores:
        return (f"high: 1-min load {load[0]:.2f} > {cores} cores (other work was running; "
                "timings are pessimistic)")
    return None


@contextlib.contextmanager
def part(parts: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
    load = os.getloadavg()
    print(f"\n== {name} (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})",
          flush=True)
    record: dict[str, Any] = {"loadavg_start": load, "load_note": load_note(load)}
    parts[name] = record
    t0 = time.perf_counter()
    try:
        yield record
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        print(f"  {name} failed: {record['error']}", flush=True)
    finally:
        record["loadavg_end"] = os.getloadavg()
        record["wall_s"] = round(time.perf_counter() - t0, 1)


# -- summary -----------------------------------------------------------------------------------
def verdicts(parts: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(figure: str, value: Any, target: Any, unit: str, *, lower: bool = True,
            load: Any = None) -> None:
        met = None if value is None else (value <= target if lower else value >= target)
        rows.append({"figure": figure, "value": value, "target": target, "unit": unit,
                     "met": met, "loadavg_1min": None if load is None else round(load[0], 2)})

    if (p := parts.get("startup")) and "median_s" in p:
        row("twin serve start-up to /login 200 (median of 3)", p["median_s"],
            TARGETS["startup_s"], "s", load=p["loadavg_start"])
    if (p := parts.get("render")) and "1920x1080" in p:
        load = p["loadavg_start"]
        row("cold first cockpit (fresh server, login click, 1080p)", p["cold_first_load_s"],
            TARGETS["first_render_s"], "s", load=load)
        for res in ("1920x1080", "3840x2160"):
            if res in p:
                row(f"first render {res} (median)", p[res]["first_render_median_s"],
                    TARGETS["first_render_s"], "s", load=load)
                row(f"initial websocket payload {res} (median)",
                    p[res]["websocket_median_bytes"], TARGETS["initial_payload_bytes"], "B",
                    load=load)
    if (p := parts.get("step")) and "date_step_s" in p:
        row("date step, KPI and map changed (median)", p["date_step_median_s"],
            TARGETS["date_step_s"], "s", load=p["loadavg_start"])
        if play := p.get("play"):
            row(f"play: dates shown in {play['watch_s']:.0f} s", play["distinct_dates_shown"],
                play["ticks_expected"], "dates", lower=False, load=p["loadavg_start"])
            row("pause reflected (button shows ▶)", play["pause_reflected_s"],
                TARGETS["date_step_s"], "s", load=p["loadavg_start"])
    for entry in (parts.get("concurrency") or {}).get("runs", []):
        target = TARGETS.get(f"sessions_{entry['sessions']}_p95_s")
        tag = f"--num-procs {entry['num_procs']}, {entry['sessions']} sessions"
        if target is not None:
            row(f"{tag}: p95 KPIs shown (p50 {entry['p50_s']}, max {entry['max_s']})",
                entry["p95_s"], target, "s", load=entry["loadavg_start"])
        if "rss_after_over_idle" in entry:
            row(f"{tag}: RSS {entry['rss_after_s']:.0f} s after / idle "
                f"({entry['rss_idle_mb']} -> peak {entry['rss_peak_mb']} -> "
                f"{entry['rss_after_mb']} MB)", entry["rss_after_over_idle"],
                1 + TARGETS["memory_back_within"], "x", load=entry["loadavg_start"])
    return rows


def print_table(info: dict[str, Any], rows: list[dict[str, Any]],
                hexes: list[dict[str, Any]]) -> None:
    print(f"\nmachine: {info['cpu']} ×{info['cpu_count']}, {info['ram_gb']} GB, "
          f"{info['platform']}, {info['chromium']}, WebGL {info['webgl']}")
    print(f"{'figure':<84}{'value':>11}{'target':>10}  {'met':<6}{'load':>6}")
    for r in rows:
        value = r["value"]
        unit = "" if r["unit"] == "dates" else " " + r["unit"]
        shown = "-" if value is None else (f"{value / 1e3:.0f} kB" if r["unit"] == "B"
                                           else f"{value}{unit}")
        target = (f"{r['target'] / 1e3:.0f} kB" if r["unit"] == "B" else
                  f"{'≥' if r['unit'] == 'dates' else '≤'}{r['target']}")
        met = {True: "met", False: "MISSED", None: "n/a"}[r["met"]]
        print(f"{r['figure']:<84}{shown:>11}{target:>10}  {met:<6}"
              f"{'' if r['loadavg_1min'] is None else r['loadavg_1min']:>6}")
    for r in hexes:
        ws = r["websocket"] or {}
        t = r["first_render_median_s"]
        print(f"{r['case']:<22} first render {'-' if t is None else f'{t:.2f} s'}, "
              f"websocket {ws.get('mb', float('nan')):.3f} MB, "
              f"{ws.get('binary_share') or 0:.0%} binary")


def main() -> None:
    parser = argparse.ArgumentParser(description="cockpit start-up, render, step, concurrency")
    parser.add_argument("--workspace", type=Path, help="a prepared city demo workspace "
                        "(default: build one in a temporary directory)")
    parser.add_argument("--parts", default=",".join(DEFAULT_PARTS),
                        help=f"comma-separated, of {','.join(ALL_PARTS)}")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--sessions", default="10,25")
    parser.add_argument("--num-procs", default="1,2")
    parser.add_argument("--settle", type=float, default=120.0,
                        help="seconds after closing the sessions before the RSS is read")
    parser.add_argument("--user", help=f"viewer account (default 'bench' with --workspace, "
                        f"else '{DEMO_USER}')")
    parser.add_argument("--password", default=PASSWORD)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--screenshot-4k", type=Path)
    parser.add_argument("--skip-hexes", action="store_true", help="(hexes are off by default)")
    args = parser.parse_args()
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := set(wanted) - set(ALL_PARTS):
        parser.error(f"unknown parts {sorted(unknown)}; choose from {ALL_PARTS}")
    if args.skip_hexes and "hexes" in wanted:
        wanted.remove("hexes")
    creds = (args.user or ("bench" if args.workspace else DEMO_USER), args.password)

    from playwright.sync_api import sync_playwright

    info = machine()
    print("machine:", json.dumps(info, ensure_ascii=False), flush=True)
    parts: dict[str, Any] = {}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cockpit-bench-") as tmp:
        ws_root = args.workspace or build_workspace(Path(tmp))
        for shot in (args.screenshot, args.screenshot_4k):
            if shot:
                shot.parent.mkdir(parents=True, exist_ok=True)
        if "startup" in wanted:
            with part(parts, "startup") as rec:
                runs = []
                for i in range(args.startup_runs):
                    with running(ws_root) as server:
                        runs.append(round(server.ready_s or 0.0, 3))
                        rss = round(server.rss_mb(), 1)
                    print(f"  launch {i + 1}: /login 200 after {runs[-1]:.2f} s "
                          f"(RSS then {rss} MB)", flush=True)
                rec |= {"runs_s": runs, "median_s": median(runs)}
        if {"render", "step", "hexes"} & set(wanted):
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM,
                                             args=list(CHROMIUM_ARGS))
                try:
                    if {"render", "step"} & set(wanted):
                        with running(ws_root) as server:
                            if "render" in wanted:
                                with part(parts, "render") as rec:
                                    rec |= part_render(browser, server.base, creds, args.runs,
                                                       {"hd": args.screenshot,
                                                        "4k": args.screenshot_4k})
                            if "step" in wanted:
                                with part(parts, "step") as rec:
                                    rec |= part_step(browser, server.base, creds, args.runs)
                    if "hexes" in wanted:
                        with part(parts, "hexes") as rec:
                            rec["results"] = part_hexes(browser, ws_root, min(args.runs, 3))
                finally:
                    browser.close()
        if "concurrency" in wanted:
            with part(parts, "concurrency") as rec:
                rec["settle_s"] = args.settle
                rec["runs"] = part_concurrency(
                    ws_root, creds, [int(n) for n in args.sessions.split(",")],
                    [int(n) for n in args.num_procs.split(",")], args.settle)

    rows = verdicts(parts)
    print_table(info, rows, (parts.get("hexes") or {}).get("results", []))
    print(f"total {time.perf_counter() - t_start:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {"benchmark": "cockpit", "machine": info,
               "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               "workspace": str(ws_root) if args.workspace else "built (city demo)",
               "user": creds[0], "parts_run": wanted, "runs": args.runs,
               "nonblank_threshold": NONBLANK, "timeout_s": TIMEOUT_S, "targets": TARGETS,
               "summary": rows, "parts": parts}
        if "hexes" not in wanted and args.json.exists():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                old = json.loads(args.json.read_text())
                prev = (old.get("parts", {}).get("hexes", {}).get("results")
                        or [r for r in old.get("results", [])
                            if str(r.get("case", "")).startswith("hexes")])
                if prev:
                    doc["hexes_previous"] = {"note": "not re-run; from the previous file",
                                             "machine": old.get("machine"), "results": prev}
        args.json.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
