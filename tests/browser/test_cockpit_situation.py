"""The cockpit on the shared situation, in a real browser (Debian's Chromium via Playwright).

What a leader sees, checked on the small demo served once for the module:

- the whole city fits the map at 1920×1080 and at 3840×2160;
- a date before a zone's ``valid_from`` shows neither the zone nor its residents;
- a layer toggle sends only a little (not the whole document again) and changes only the map;
- a viewer never sees a case count from 1 to ``privacy.suppress_below - 1``, and an edited
  ``twin.toml`` changes the threshold on the next page load;
- the alert ticker shows every alert of the history up to the shown date, and moves;
- ``twin serve --num-procs 2`` serves two browsers at once.

Map checks work from screenshots of the deck.gl canvas only (its background colour is
measured in a corner, never hard-coded). Waits poll explicit conditions; the page's own
periodic callbacks (play 1.5 s, poll 3 s) keep sending tiny "busy" frames, so "the websocket is
quiet" means "no frame over :data:`TINY_FRAME` bytes".
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dashboards.labels import KPI_NAMES
from tests.browser.conftest import (
    _route_local_only,
    nonblank,
    png_pixels,
    requests_outside_localhost,
    served,
)
from tests.conftest import fused_demo

pytestmark = pytest.mark.browser

TWIN = str(Path(sys.executable).with_name("twin"))
VIEWER, PASSWORD = "demo", "demo-password-2"
#: Websocket frames up to this size are protocol headers, ``{}`` buffers and Panel's
#: ``busy`` flag flipping around every periodic callback: they say nothing about the page.
TINY_FRAME = 100
#: A channel difference above this counts as "drawn" / "changed" (antialiasing stays below).
COLOUR_TOLERANCE = 12
#: Pixels kept free round the drawn city (each side).
MARGIN_PX = 4


# -- fixtures and helpers ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def cockpit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """The small demo, prepared like `twin demo` does, served once by `twin serve`."""
    from dashboards.demo import prepare_demo

    ws, _ = fused_demo(tmp_path_factory.mktemp("situation"))
    prepare_demo(ws, password=PASSWORD)
    with served([TWIN, "serve", str(ws.root), "--port", "{port}", "--address", "127.0.0.1"],
                ready_path="/login", timeout=90) as base:
        yield base, ws


class WsBytes:
    """Frames the page receives on its websockets: ``(arrival time, bytes)``.

    Attach before the page opens its websocket (see bench/cockpit.py's ``WsRecorder``).
    """

    def __init__(self, page: Any) -> None:
        self.frames: list[tuple[float, int]] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._on_frame))

    def _on_frame(self, payload: str | bytes) -> None:
        size = len(payload) if isinstance(payload, bytes) else len(payload.encode("utf-8"))
        self.frames.append((time.monotonic(), size))

    def mark(self) -> int:
        return len(self.frames)

    def bytes_since(self, mark: int = 0) -> int:
        return sum(size for _, size in self.frames[mark:])

    def wait_quiet(self, page: Any, quiet_s: float = 1.5, timeout_s: float = 30.0) -> None:
        """Until no frame over :data:`TINY_FRAME` bytes has arrived for ``quiet_s``."""
        start = time.monotonic()
        while True:
            big = [t for t, size in self.frames if size > TINY_FRAME]
            last = max(big[-1] if big else start, start)
            now = time.monotonic()
            if now - last >= quiet_s:
                return
            assert now - start < timeout_s, f"the websocket never went quiet for {quiet_s} s"
            page.wait_for_timeout(100)


def _log_in(page: Any, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", VIEWER)
    page.fill("#password", PASSWORD)
    page.click(".ct-login-submit")
    page.wait_for_url(f"{base}/cockpit*", timeout=60_000)


def _map_png(page: Any) -> bytes:
    """A screenshot of the deck.gl canvas.

    Panel's DeckGL view replaces its canvas when the pane's tooltips change (every toggle
    that adds or removes a layer with a tooltip does), so the element can go away under a
    screenshot: take it again from the new one.
    """
    from playwright.sync_api import Error

    for attempt in range(20):
        try:
            return page.locator(".ct-map canvas").first.screenshot(timeout=60_000)
        except Error as exc:
            if "not attached" not in str(exc) and "not visible" not in str(exc):
                raise
            if attempt == 19:
                raise
            page.wait_for_timeout(250)
    raise AssertionError("unreachable")


def _kpis(page: Any) -> dict[str, str]:
    return {name: page.locator(f".ct-kpi-{name} .ct-kpi-value").first.inner_text(
        timeout=60_000).strip() for name in KPI_NAMES}


def _changed(a: bytes, b: bytes) -> float:
    """Share of pixels whose colour differs (beyond antialiasing) between two screenshots;
    1.0 when the canvas changed size (a legend appearing or going shrinks or grows the map)."""
    pa, pb = png_pixels(a).astype(np.int16), png_pixels(b).astype(np.int16)
    if pa.shape != pb.shape:
        return 1.0
    return float((np.abs(pa - pb).max(axis=-1) > COLOUR_TOLERANCE).mean())


def _stable_map(page: Any, timeout_s: float = 30.0) -> bytes:
    """The map once drawn and unchanged between two screenshots 0.4 s apart."""
    deadline = time.monotonic() + timeout_s
    last = _map_png(page)
    while True:
        page.wait_for_timeout(400)
        png = _map_png(page)
        if png == last and nonblank(png) > 0.05:
            return png
        assert time.monotonic() < deadline, "the map never settled"
        last = png


def _wait_map_change(page: Any, before: bytes, timeout_s: float = 30.0) -> bytes:
    """The map after it has changed from ``before`` and settled again."""
    deadline = time.monotonic() + timeout_s
    while _changed(_map_png(page), before) < 0.001:
        assert time.monotonic() < deadline, f"the map did not change within {timeout_s:.0f} s"
        page.wait_for_timeout(250)
    return _stable_map(page)


def _open_cockpit(page: Any, base: str) -> tuple[WsBytes, bytes]:
    """Log in as the viewer; wait for every tile and a settled, drawn map."""
    rec = WsBytes(page)
    _log_in(page, base)
    _wait_kpis(page)
    rec.wait_quiet(page)
    return rec, _stable_map(page)


def _wait_kpis(page: Any, timeout_s: float = 60.0) -> dict[str, str]:
    values = page.locator(".ct-kpi .ct-kpi-value")
    values.first.wait_for(timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    while True:
        texts = [t.strip() for t in values.all_inner_texts()]
        if len(texts) == len(KPI_NAMES) and all(texts):
            return _kpis(page)
        assert time.monotonic() < deadline, f"KPI values not all shown: {texts}"
        page.wait_for_timeout(200)


def _wait_kpi(page: Any, name: str, want: Any, timeout_s: float = 30.0) -> str:
    """Poll the tile ``name`` until ``want(text)`` holds (or it equals ``want``)."""
    check = want if callable(want) else (lambda text: text == want)
    deadline = time.monotonic() + timeout_s
    while True:
        text = _kpis(page)[name]
        if check(text):
            return text
        assert time.monotonic() < deadline, f"{name} stayed {text!r}"
        page.wait_for_timeout(250)


def _toggle(page: Any, text: str) -> Any:
    return page.locator(".ct-layers button").filter(has_text=re.compile(f"^{text}$")).first


def _is_on(button: Any) -> bool:
    return "bk-active" in (button.get_attribute("class") or "").split()


def _press_date(page: Any, key: str) -> None:
    handle = page.locator(".ct-date .noUi-handle").first
    handle.focus()
    handle.press(key)


_PANE_TEXT = """el => { const root = el.shadowRoot || el;
  return [...root.children].filter(c => !['STYLE', 'LINK', 'SCRIPT'].includes(c.tagName))
    .map(c => c.innerText || '').join('\\n'); }"""


def _texts(page: Any, selector: str) -> list[str]:
    """The rendered text of every element matching ``selector`` (inside its shadow root when
    it is a pane's host: ``document.body.innerText`` does not reach there)."""
    return [loc.evaluate(_PANE_TEXT) for loc in page.locator(selector).all()]


def _visible_text(page: Any) -> str:
    return "\n".join(t for sel in (".ct-kpi", ".ct-top10", ".ct-alerts", ".ct-legend")
                     for t in _texts(page, sel))


def _city_box(png: bytes) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """The bounding box ``(left, top, right, bottom)`` of what differs from the canvas's
    background (the colour of most of its corners) and the canvas size ``(w, h)``."""
    px = png_pixels(png).astype(np.int16)
    h, w = px.shape[:2]
    corners = [tuple(px[y, x]) for y in (0, h - 1) for x in (0, w - 1)]
    background = np.asarray(Counter(corners).most_common(1)[0][0], dtype=np.int16)
    drawn = np.abs(px - background).max(axis=-1) > COLOUR_TOLERANCE
    ys, xs = np.nonzero(drawn)
    if not len(xs):
        return (0, 0, -1, -1), (w, h)
    return (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())), (w, h)


def _fits(png: bytes) -> tuple[bool, str]:
    (x0, y0, x1, y1), (w, h) = _city_box(png)
    margins = (x0, y0, w - 1 - x1, h - 1 - y1)
    span = max((x1 - x0 + 1) / w, (y1 - y0 + 1) / h)
    ok = min(margins) >= MARGIN_PX and span >= 0.5
    return ok, (f"drawn box {(x0, y0, x1, y1)} in a {w}×{h} canvas: margins (l, t, r, b) "
                f"{margins} px, spans {span:.0%} of the canvas")


# -- 1. the city fits -------------------------------------------------------------------------
@pytest.mark.parametrize("page", [(1920, 1080), (3840, 2160)], indirect=True,
                         ids=["1080p", "4k"])
def test_whole_city_fits_the_map(cockpit, page) -> None:
    base, _ = cockpit
    _open_cockpit(page, base)
    # The view is refitted once the page has reported its size: allow for that round trip.
    deadline, why = time.monotonic() + 10, ""
    while time.monotonic() < deadline:
        png = _stable_map(page)
        ok, why = _fits(png)
        if ok:
            break
        page.wait_for_timeout(500)
    assert ok, f"the city does not fit the map: {why}"


# -- 2. zones follow the date -----------------------------------------------------------------
def _same_size(a: bytes, b: bytes) -> bool:
    return png_pixels(a).shape == png_pixels(b).shape


def test_a_date_before_a_zone_shows_neither_it_nor_its_residents(cockpit, page) -> None:
    """Only zones (and roads) on: the first day's map is the map without zones; the last
    day's is not.

    Roads stay on throughout: their legend is taller than the zones' one, so the map keeps its
    size whether or not zones are drawn (a legend appearing shrinks the map and shifts the
    whole picture, which would make any two screenshots differ).
    """
    from twin.situation import Situation

    base, ws = cockpit
    situation = Situation(ws, cache=False)
    first, last = situation.start, situation.end
    # What the demo gives: zones activated from the last case date, none before.
    assert not situation.zones_on(first) and situation.zones_on(last)
    assert {z.valid_from[:10] for z in situation.zones_on(last)} == {last.isoformat()}

    _open_cockpit(page, base)
    assert _kpis(page)["lockdown_residents"] != "0", "the demo's last day has a lockdown"
    for name in ("风险", "病例", "道路"):  # risk and cases off, roads on
        before = _map_png(page)
        _toggle(page, name).click()
        _wait_map_change(page, before)
    on = [n for n in ("风险", "病例", "管控区域", "道路") if _is_on(_toggle(page, n))]
    assert on == ["管控区域", "道路"], on
    last_zones_on = _map_png(page)
    assert "封控区" in "\n".join(_texts(page, ".ct-legend")), "no zones legend on the last day"

    # The first day: no zone is valid yet, so nobody lives in one and none is drawn.
    _press_date(page, "Home")
    _wait_kpi(page, "lockdown_residents", "0")
    assert _kpis(page)["control_residents"] == "0"
    first_zones_on = _wait_map_change(page, last_zones_on)
    assert "封控区" not in "\n".join(_texts(page, ".ct-legend")), "a zones legend on day one"

    # Switching zones off changes nothing on that day (watch past the page's 3 s poll, which
    # flushes any late patch).
    _toggle(page, "管控区域").click()
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        page.wait_for_timeout(500)
        first_zones_off = _map_png(page)
        assert _same_size(first_zones_on, first_zones_off)
        diff = _changed(first_zones_on, first_zones_off)
        assert diff < 0.0005, f"zones off changed {diff:.2%} of the first day's map"
    assert not _is_on(_toggle(page, "管控区域"))

    # On the last day, the map without zones is that same picture, and differs from the map
    # with them by the zones.
    _press_date(page, "End")
    _wait_kpi(page, "lockdown_residents", lambda text: text != "0")
    last_zones_off = _stable_map(page)
    assert _same_size(last_zones_off, last_zones_on), "the map changed size"
    assert _changed(first_zones_off, last_zones_off) < 0.0005
    diff = _changed(last_zones_on, last_zones_off)
    assert diff > 0.002, f"the zones make only {diff:.2%} of the last day's map"


# -- 3. a toggle changes only its layer -------------------------------------------------------
def test_a_toggle_sends_little_and_changes_only_the_map(cockpit, page) -> None:
    base, _ = cockpit
    rec, before = _open_cockpit(page, base)
    initial = rec.bytes_since(0)
    assert initial > 50_000, f"the initial document was only {initial} bytes?"
    tiles = _kpis(page)
    facilities = _toggle(page, "设施")
    assert not _is_on(facilities)

    mark = rec.mark()
    facilities.click()
    after = _wait_map_change(page, before)
    rec.wait_quiet(page, 1.5)
    sent = rec.bytes_since(mark)
    assert _is_on(facilities)
    assert sent < 0.4 * initial, (f"the facilities toggle received {sent:,d} bytes, "
                                  f"{sent / initial:.0%} of the initial {initial:,d}")
    assert _changed(before, after) > 0.0005
    assert _kpis(page) == tiles, "a layer toggle changed the KPI tiles"


# -- 4. the alert ticker ------------------------------------------------------------------------
def _norm(text: str) -> str:
    return " ".join(text.split())


def test_the_ticker_shows_every_alert_and_moves(cockpit, page) -> None:
    from twin.alerts import alert_history
    from twin.situation import Situation

    base, ws = cockpit
    last = Situation(ws, cache=False).end
    rows = [r for r in alert_history(ws) if r["data_date"][:10] <= last.isoformat()]
    assert rows, "the demo raises alerts"
    _open_cockpit(page, base)
    expected = []
    for r in rows:
        day = dt.date.fromisoformat(r["data_date"][:10])
        expected.append(_norm(f"⚠ {day.month}月{day.day}日 {r['message_zh']}"))
    shown = [_norm(t) for t in page.locator(".ct-alerts .ct-alert").all_inner_texts()]
    assert len(shown) == len(rows), f"{len(shown)} ticker items for {len(rows)} alerts"
    assert shown == expected

    ticker = page.locator(".ct-alerts .ct-ticker").first
    assert ticker.evaluate("e => getComputedStyle(e).animationName") not in ("", "none")
    item = page.locator(".ct-alerts .ct-alert").first
    x0 = item.bounding_box()["x"]
    page.wait_for_timeout(1000)
    x1 = item.bounding_box()["x"]
    assert x1 < x0 - 1, f"the ticker did not move left in 1 s (x {x0:.1f} -> {x1:.1f})"


# -- 5. privacy: no count from 1 to N-1 -------------------------------------------------------
def _small_counts(text: str, below: int) -> list[str]:
    """Case counts from 1 to ``below - 1`` written out in ``text`` (zh).

    "N 例" (not part of a range such as "1–9 例" or of a larger number), and "近7天 N" (the
    new-cases tile's detail line).
    """
    n = r"(?<![\d–\-<.])(\d+)"
    found = re.findall(n + r"\s*例", text) + re.findall(r"近\d+天\s+(\d+)(?![\d.])", text)
    return [v for v in found if 0 < int(v) < below]


def test_a_viewer_never_sees_a_small_count(cockpit, page) -> None:
    from twin.situation import Situation

    base, ws = cockpit
    situation = Situation(ws, cache=False)
    assert situation.privacy.suppress_below == 10
    _open_cockpit(page, base)

    text = _visible_text(page)
    assert not _small_counts(text, 10), _small_counts(text, 10)
    top10 = "\n".join(_texts(page, ".ct-top10"))
    assert "<10" in top10, top10
    assert not re.fullmatch(r"[1-9]", _kpis(page)["new_cases"])

    # A day with a handful of cases: the tile reads "<10", not the number.
    small = next((d for d in situation.dates() if 0 < situation.new_cases(d)["today"] < 10),
                 None)
    assert small == situation.start, "the demo's first day has 1-9 new cases"
    _press_date(page, "Home")
    _wait_kpi(page, "lockdown_residents", "0")
    assert _kpis(page)["new_cases"] == "<10"
    text = _visible_text(page)
    assert not _small_counts(text, 10), _small_counts(text, 10)

    # A stricter threshold in twin.toml shows on the next page load.
    path = Path(ws.config_path)
    original = path.read_text(encoding="utf-8")
    assert original.count("suppress_below = 10") == 1
    try:
        path.write_text(original.replace("suppress_below = 10", "suppress_below = 50"),
                        encoding="utf-8")
        page.reload()
        _wait_kpis(page)
        # The reloaded page may first show the server's previous snapshot; it follows the
        # new one (new twin.toml) within a few seconds: wait for the whole page to have.
        deadline = time.monotonic() + 30
        while ("<50" not in (text := _visible_text(page)) or "<10" in text
               or _kpis(page)["new_cases"] != "<50"):
            assert time.monotonic() < deadline, f"the page never showed '<50' alone:\n{text}"
            page.wait_for_timeout(500)
        top10 = "\n".join(_texts(page, ".ct-top10"))
        assert "<50" in top10, top10
        assert "<10" not in text, [line for line in text.splitlines() if "<10" in line]
        assert not _small_counts(text, 50), _small_counts(text, 50)
        assert _kpis(page)["new_cases"] == "<50"  # 11 on the last day
    finally:
        path.write_text(original, encoding="utf-8")


# -- 5b. the forecast -------------------------------------------------------------------------
#: The forecast fan's 50 % band (#c792ea at 45 % over the chart's #111726).
FAN50 = (99, 78, 126)


def _fan_columns(page: Any) -> np.ndarray:
    """The x positions (pixels) of the chart where the 50 % band of the forecast shows (the
    legend's swatch, in the left fifth, aside)."""
    png = page.locator(".ct-trend-plot").first.screenshot(timeout=60_000)
    pixels = png_pixels(png)[..., :3].astype(np.int16)
    near = np.all(np.abs(pixels - np.asarray(FAN50, dtype=np.int16)) <= 14, axis=-1)
    columns = np.flatnonzero(near.sum(axis=0) >= 2)
    return columns[columns > pixels.shape[1] // 5]


def test_the_forecast_fan_follows_the_date_and_the_top_ten_sorts_by_expected(
        cockpit, page) -> None:
    """After the chosen date the chart shows the forecast's band; back on an earlier date it
    moves left with it. A planner sorts the top ten by expected new infections."""
    import subprocess

    base, ws = cockpit
    subprocess.run([TWIN, "users", str(ws.root), "add", "plan", "--role", "planner",
                    "--password-stdin"], input="planner-password-3\n", text=True,
                   check=False, capture_output=True)
    page.goto(f"{base}/login")
    page.fill("#username", "plan")
    page.fill("#password", "planner-password-3")
    page.click(".ct-login-submit")
    page.wait_for_url(f"{base}/cockpit*", timeout=60_000)
    _wait_kpis(page)
    deadline = time.monotonic() + 30
    while not len(last := _fan_columns(page)):
        assert time.monotonic() < deadline, "no forecast band on the chart"
        page.wait_for_timeout(500)
    chart_width = page.locator(".ct-trend-plot").first.bounding_box()["width"]
    assert last.min() > chart_width * 0.7  # after the last date, at the right end

    for _ in range(15):
        _press_date(page, "ArrowLeft")
    deadline = time.monotonic() + 30
    while not len(earlier := _fan_columns(page)) or earlier.min() >= last.min() - 10:
        assert time.monotonic() < deadline, "the band did not follow the date"
        page.wait_for_timeout(500)

    top10 = "\n".join(_texts(page, ".ct-top10"))
    assert "风险最高的十个社区" in top10 and "未来7天预计" in top10
    page.locator(".ct-sort button").filter(has_text="按预计新增").first.click()
    deadline = time.monotonic() + 30
    while "预计新增最多的十个社区" not in (top10 := "\n".join(_texts(page, ".ct-top10"))):
        assert time.monotonic() < deadline, top10
        page.wait_for_timeout(300)
    cells = page.locator(".ct-top10 .ct-expected").all_inner_texts()
    values = [float(c.split()[0]) for c in cells]
    assert len(values) == 10 and values == sorted(values, reverse=True), values
    assert all(re.fullmatch(r"[\d.]+ \(\d+–\d+\)", c.strip()) for c in cells), cells


# -- 6. several server processes --------------------------------------------------------------
def _new_page(chromium: Any, urls: list[str]) -> tuple[Any, Any]:
    """A context and page like conftest's ``page`` (local requests only, every URL kept)."""
    context = chromium.new_context(viewport={"width": 1920, "height": 1080},
                                   device_scale_factor=1, service_workers="block",
                                   locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(60_000)
    context.route("**/*", _route_local_only)
    page = context.new_page()
    page.on("request", lambda req: urls.append(req.url))
    return context, page


def test_two_browsers_on_two_server_processes(cockpit, chromium) -> None:
    from dashboards.state import CockpitState

    _, ws = cockpit
    expected = CockpitState(ws, role="viewer").kpis()
    urls: list[list[str]] = [[], []]
    with served([TWIN, "serve", str(ws.root), "--port", "{port}", "--address", "127.0.0.1",
                 "--num-procs", "2"], ready_path="/login", timeout=90) as base:
        opened = [_new_page(chromium, u) for u in urls]
        try:
            pages = [p for _, p in opened]
            for p in pages:  # both log in and load at the same time
                p.goto(f"{base}/login")
                p.fill("#username", VIEWER)
                p.fill("#password", PASSWORD)
                p.click(".ct-login-submit", no_wait_after=True)
            for p in pages:
                p.wait_for_url(f"{base}/cockpit*", timeout=60_000)
                shown = _wait_kpis(p)
                assert shown == {n: expected[n]["display"] for n in KPI_NAMES}, shown
                assert nonblank(_stable_map(p)) > 0.05, "the map stayed blank"
        finally:
            for context, _ in opened:
                context.close()
    # A session whose websocket reaches the other process is built there: its stylesheets
    # must still come from this server, not Panel's CDN.
    outside = [requests_outside_localhost(u) for u in urls]
    assert not any(outside), f"requests left localhost: {outside}"
