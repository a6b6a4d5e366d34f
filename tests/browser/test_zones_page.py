"""The planners' zone editor ``/zones`` in a real browser, as planners use it.

On the small demo served once for the module (``twin serve``), with the planners ``plan`` and
``plan2``, a GIS user ``gis`` and the demo viewer ``demo``:

1. accepting a proposal from the 待审建议 tab makes it active from the chosen day, and the
   cockpit open beside it shows its residents in the lockdown tile;
2. a polygon drawn with four clicks and a double-click becomes exactly its cells (checked
   against the outline stored in the workspace); undo and redo step the impact panel;
3. the hex brush adds cells without panning the map and removes them again;
4. two planners in two browsers edit different cells of one zone and both edits are kept; a
   real conflict (both change the tier) writes nothing until one side is chosen;
5. the viewer and the GIS user get the refusal page, and no map is built for them;
6. a 1920×1080 screenshot after drawing shows a drawn map.

Everything is checked where a person sees it (the impact panel ``.ct-impact``, the status line
``.ct-zone-status``, the tables, the map canvas) and then in the workspace through
``twin.zones.Zones``. Map positions come from the map's ``window.ctZoneMap.project()``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.browser.conftest import (
    _route_local_only,
    nonblank,
    requests_outside_localhost,
    served,
    watch_csp,
)
from tests.conftest import fused_demo
from twin import grid

pytestmark = pytest.mark.browser

TWIN = str(Path(sys.executable).with_name("twin"))
VIEWER, VIEWER_PASSWORD = "demo", "demo-password-2"
PASSWORD = "planner-pass-1"
#: How far (degrees) a clicked vertex may be from the intended lon/lat (a pixel is ~8e-5°).
VERTEX_DEGREES = 1e-4
LOCKDOWN, CONTROL, PREVENTION = "封控区", "管控区", "防范区"

_PANE_TEXT = """el => { const root = el.shadowRoot || el;
  return [...root.children].filter(c => !['STYLE', 'LINK', 'SCRIPT'].includes(c.tagName))
    .map(c => c.innerText || '').join('\\n'); }"""


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """The small demo, prepared like `twin demo` does, with planners and a GIS user, served
    once by `twin serve`."""
    from dashboards.demo import prepare_demo
    from twin.users import Users

    ws, _ = fused_demo(tmp_path_factory.mktemp("zones-page"))
    prepare_demo(ws, password=VIEWER_PASSWORD)
    users = Users(ws)
    for name, role in (("plan", "planner"), ("plan2", "planner"), ("gis", "gis")):
        users.add(name, role, PASSWORD, actor="test")
    _shared_zone(ws)  # before serving: every page lists it from the start
    with served([TWIN, "serve", str(ws.root), "--port", "{port}", "--address", "127.0.0.1"],
                ready_path="/login", timeout=90) as base:
        yield base, ws


def _shared_zone(ws: Any) -> Any:
    """The control zone two planners edit at once (test 4): a cell and its ring, south-east
    of the city centre."""
    from twin.situation import Situation
    from twin.zones import Zones

    cx, cy = _centre(ws)
    centre = _cell_at(ws, cx + 0.014, cy - 0.014)
    return Zones(ws).create(cells=np.unique(grid.grid_disk(np.array([centre], np.uint64), 1)),
                            tier="control", status="proposed",
                            valid_from=Situation(ws, cache=False).end, author="test",
                            reason="测试：两人同时编辑", name="两人同编")


def _context(chromium: Any, recorded: list[str]) -> Any:
    """A 1920×1080 context whose requests stay on this machine (recorded in ``recorded``)."""
    context = chromium.new_context(viewport={"width": 1920, "height": 1080},
                                   device_scale_factor=1, service_workers="block",
                                   locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(30_000)
    context.route("**/*", _route_local_only)
    context.on("request", lambda req: recorded.append(req.url))
    return context


@pytest.fixture(scope="module")
def planner(chromium: Any, app: tuple[str, Any]) -> Iterator[Any]:
    """The planner ``plan`` on /zones, one browser context for the module (logging in and the
    first render cost seconds); no request of it may leave the machine."""
    recorded: list[str] = []
    context = _context(chromium, recorded)
    violations = watch_csp(context)
    try:
        page = context.new_page()
        _open_zones(page, app[0], "plan")
        yield page
    finally:
        context.close()
    outside = requests_outside_localhost(recorded)
    assert not outside, f"requests left localhost: {outside}"
    assert not violations, f"the content security policy blocked: {violations}"


# -- helpers ----------------------------------------------------------------------------------
def _log_in(page: Any, base: str, user: str, password: str, target: str) -> None:
    page.goto(f"{base}/login?next={target}")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click(".ct-login-submit")
    page.wait_for_url(f"{base}{target}*", timeout=60_000)


def _open_zones(page: Any, base: str, user: str) -> float:
    """Log ``user`` in to /zones and wait for the map's first frame; the seconds it took."""
    start = time.monotonic()
    _log_in(page, base, user, PASSWORD, "/zones")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.locator(".ct-zone-map[data-ready='1']").wait_for(timeout=60_000)
    except Exception:
        print("DIAG", user, page.evaluate("document.visibilityState"),
              page.locator(".ct-zone-map").count(), errors)
        page.screenshot(path=f"/tmp/zt/fail-{user}.png")
        raise
    page.locator(".ct-impact").first.wait_for()
    return time.monotonic() - start


def _text(page: Any, selector: str) -> str:
    """The rendered text of the first ``selector`` (inside its shadow root)."""
    return page.locator(selector).first.evaluate(_PANE_TEXT)


def _wait(what: str, get: Callable[[], Any], ok: Callable[[Any], bool], page: Any,
          timeout_s: float = 30.0) -> Any:
    """Poll ``get()`` until ``ok(value)``; the value (fails after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = get()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"{what}: still {value!r} after {timeout_s:.0f} s"
        page.wait_for_timeout(100)


def _status(page: Any) -> str:
    return _text(page, ".ct-zone-status").strip()


def _wait_status(page: Any, *parts: str, timeout_s: float = 30.0) -> str:
    return _wait(f"status line with {parts}", lambda: _status(page),
                 lambda text: all(p in text for p in parts), page, timeout_s)


def _impact_number(page: Any, kind: str) -> float | None:
    loc = page.locator(f".ct-impact .ct-{kind}")
    if not loc.count():
        return None
    value = loc.first.get_attribute("data-value")
    return None if value is None else float(value)


def _cells(page: Any) -> int | None:
    value = _impact_number(page, "cells")
    return None if value is None else int(value)


def _wait_cells(page: Any, ok: Callable[[int], bool], what: str = "cells",
                timeout_s: float = 30.0) -> int:
    return _wait(what, lambda: _cells(page), lambda n: n is not None and ok(n), page,
                 timeout_s)


def _settled_cells(page: Any, ok: Callable[[int], bool], quiet_s: float = 0.8) -> int:
    """The cell count once it satisfies ``ok`` and has not changed for ``quiet_s`` (a brush
    stroke arrives in several batches)."""
    n = _wait_cells(page, ok)
    since = time.monotonic()
    while time.monotonic() - since < quiet_s:
        page.wait_for_timeout(100)
        now = _cells(page)
        if now != n:
            n, since = now, time.monotonic()
    assert n is not None and ok(n), n
    return n


def _button(page: Any, group: str, text: str) -> Any:
    return page.locator(f"{group} button").filter(has_text=text).first


def _mode(page: Any, text: str, mode: str) -> None:
    _button(page, ".ct-mode", text).click()
    page.locator(f".ct-zone-map[data-mode='{mode}']").wait_for()


_T0 = [time.monotonic()]


def _t(what: str) -> None:
    now = time.monotonic()
    print(f"TIME {what}: {now - _T0[0]:.2f}")
    _T0[0] = now


def _tab(page: Any, text: str) -> None:
    page.locator(".ct-tabs .bk-tab").filter(has_text=text).first.click()


def _new_zone(page: Any) -> None:
    _tab(page, "编辑")
    page.locator(".ct-new button").click()
    _wait_status(page, "新建区域")
    _wait_cells(page, lambda n: n == 0, "a new zone's cells")
    page.locator(".ct-whole-city button").click()  # ticking a proposal zoomed the map to it
    _stable_view(page)


def _project(page: Any, lon: float, lat: float) -> tuple[float, float]:
    x, y = page.evaluate("p => window.ctZoneMap.project(p)", [lon, lat])
    return float(x), float(y)


def _pixel(page: Any, lon: float, lat: float) -> tuple[int, int]:
    x, y = _project(page, lon, lat)
    return round(x), round(y)


def _in_map(page: Any, pixels: list[tuple[int, int]]) -> None:
    box = page.locator(".ct-zone-map").first.bounding_box()
    for x, y in pixels:
        assert box["x"] + 5 < x < box["x"] + box["width"] - 5, (x, box)
        assert box["y"] + 5 < y < box["y"] + box["height"] - 5, (y, box)


def _map_idle(page: Any, frames: int = 6) -> None:
    """Until deck.gl has had nothing to redraw for ``frames`` animation frames in a row.

    After a save the zones are rebuilt and redrawn, which in software WebGL holds the page
    for a second or two; a click sent meanwhile can be lost by deck.gl's tap recogniser.
    """
    page.wait_for_function("""(frames) => new Promise((done) => {
        let calm = 0
        const tick = () => {
          const deck = window.ctZoneMap && window.ctZoneMap.deck
          calm = deck && !deck.needsRedraw({clearRedrawFlags: false}) ? calm + 1 : 0
          if (calm >= frames) { done(true) } else { requestAnimationFrame(tick) }
        }
        requestAnimationFrame(tick)
      })""", arg=frames, timeout=60_000)


def _draw(page: Any, corners: list[tuple[float, float]]) -> None:
    """Click the corners in "draw" mode (each waited for) and double-click the last."""
    pixels = [_pixel(page, lon, lat) for lon, lat in corners]
    _in_map(page, pixels)
    _map_idle(page)
    for count, (x, y) in enumerate(pixels, start=1):
        page.mouse.click(x, y)
        # Under software WebGL a click registers ~300 ms later; the next one must wait.
        page.wait_for_function("n => window.ctZoneMap.drawing().length === n", arg=count)
    page.mouse.dblclick(*pixels[-1])


def _drag(page: Any, start: tuple[float, float], end: tuple[float, float],
          moves: int = 20) -> None:
    """A brush stroke from ``start`` to ``end`` (lon/lat), about 0.5 s of dragging."""
    (x0, y0), (x1, y1) = _pixel(page, *start), _pixel(page, *end)
    _in_map(page, [(x0, y0), (x1, y1)])
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, moves + 1):
        page.mouse.move(x0 + (x1 - x0) * i / moves, y0 + (y1 - y0) * i / moves)
        page.wait_for_timeout(25)
    page.mouse.up()


def _save(page: Any, reason: str) -> None:
    page.locator(".ct-reason input").fill(reason)
    page.locator(".ct-reason input").press("Tab")  # the value reaches Python on change
    page.locator(".ct-save button").click()


def _centre(ws: Any) -> tuple[float, float]:
    west, south, east, north = ws.config.bbox
    return (west + east) / 2, (south + north) / 2


def _cell_at(ws: Any, lon: float, lat: float) -> int:
    return int(grid.points_to_cells(np.array([lon]), np.array([lat]),
                                    int(ws.config.base_resolution))[0])


def _residents(ws: Any, cells: Any) -> float:
    from twin.facts import Facts
    from twin.zones import impact

    return float(impact(Facts(ws), np.asarray(cells, dtype=np.uint64)).totals.get(
        "residents", 0.0))


def _number(text: str) -> int:
    return int(text.replace(",", "").strip())


def _open_picked(page: Any, zone_id: str) -> None:
    """Pick ``zone_id`` in the zone picker (waiting for it to be listed) and open it."""
    _tab(page, "编辑")
    select = page.locator(".ct-zone-picker select")
    labels = _wait(f"{zone_id} in the picker", lambda: select.locator("option").all_inner_texts(),
                   lambda texts: any(t.startswith(f"{zone_id} · ") for t in texts), page)
    select.select_option(label=next(t for t in labels if t.startswith(f"{zone_id} · ")))
    page.locator(".ct-open button").click()
    _wait_status(page, zone_id, "已打开")


def _stable_view(page: Any) -> None:
    """Until the map's view stops moving (opening a zone fits the view to it)."""
    last = page.evaluate("window.ctZoneMap.viewState()")
    for _ in range(50):
        page.wait_for_timeout(150)
        now = page.evaluate("window.ctZoneMap.viewState()")
        if now == last:
            return
        last = now


# -- 1. accept a proposal ---------------------------------------------------------------------
def test_accepting_a_proposal_shows_in_the_cockpit(app, planner) -> None:
    from twin.situation import Situation
    from twin.zones import Zones

    base, ws = app
    page = planner
    zones = Zones(ws)
    situation = Situation(ws, cache=False)
    day = situation.end
    locked = np.concatenate([z.cells for z in situation.zones_on(day) if z.tier == "lockdown"])

    _tab(page, "待审建议")
    rows = page.locator(".ct-proposals .tabulator-row")
    rows.first.wait_for()
    # The first lockdown proposal (the table lists lockdown first, most residents first)
    # that shares no cell with an active lockdown: its residents all join the tile.
    chosen = None
    for i in range(min(rows.count(), 20)):
        zone_id = rows.nth(i).locator("[tabulator-field='id']").inner_text().strip()
        zone = zones.get(zone_id)
        if zone.tier == "lockdown" and not np.isin(zone.cells, locked).any():
            chosen = i, zone
            break
    assert chosen is not None, "no lockdown proposal apart from the active zones"
    index, zone = chosen
    shown_residents = _number(rows.nth(index).locator("[tabulator-field='常住人口']").inner_text())
    proposed_on = rows.nth(index).locator("[tabulator-field='建议日期']").inner_text().strip()
    assert zone.status == "proposed" and proposed_on == zone.valid_from[:10]
    want_day = dt.date.fromisoformat(proposed_on)
    assert want_day == day, "the demo proposes for its last day"

    # The cockpit beside it, on that day (its default: the last day), before the decision.
    cockpit = page.context.new_page()
    cockpit.goto(f"{base}/cockpit")
    tile = cockpit.locator(".ct-kpi-lockdown_residents .ct-kpi-value").first
    before = _wait("lockdown tile", lambda: tile.inner_text().strip(), bool, cockpit, 60)
    assert _number(before) == round(_residents(ws, np.unique(locked)))

    page.bring_to_front()
    page.locator(".ct-accept-from input.form-control").click()
    calendar = page.locator(".ct-accept-from .flatpickr-calendar.open")
    calendar.locator(f".flatpickr-day[aria-label='{want_day:%B} {want_day.day}, "
                     f"{want_day.year}']").click()
    assert page.locator(".ct-accept-from input.form-control").input_value() == proposed_on
    rows.nth(index).locator("input[type=checkbox]").check()
    started = time.monotonic()
    page.locator(".ct-accept button").click()
    _wait_status(page, "已采纳", zone.zone_id, proposed_on)
    accept_s = time.monotonic() - started

    now = Zones(ws).get(zone.zone_id)
    assert now.status == "active" and now.valid_from[:10] == proposed_on
    assert now.version == zone.version + 1 and now.author == "plan"
    # The proposal left the list (the tab title counts one fewer).
    _wait("proposals list", lambda: rows.locator("[tabulator-field='id']").all_inner_texts(),
          lambda ids: zone.zone_id not in [t.strip() for t in ids] and len(ids) > 0, page)

    # The open cockpit picks it up by itself (its 3 s poll): the tile grew by its residents.
    cockpit.bring_to_front()
    after = _wait("lockdown tile after accepting", lambda: tile.inner_text().strip(),
                  lambda text: text != before, cockpit, 30)
    assert _number(after) == round(_residents(ws, np.union1d(locked, zone.cells)))
    assert abs(_number(after) - _number(before) - shown_residents) <= 1, (
        before, after, shown_residents)
    cockpit.close()
    assert accept_s < 10, f"accepting took {accept_s:.1f} s to show"


# -- 2. draw a polygon ------------------------------------------------------------------------
def _square(ws: Any, dx: float, dy: float, half: float) -> list[tuple[float, float]]:
    cx, cy = _centre(ws)
    cx, cy = cx + dx, cy + dy
    return [(cx - half, cy - half), (cx + half, cy - half * 0.9), (cx + half * 1.1, cy + half),
            (cx - half * 0.95, cy + half)]


def test_a_drawn_polygon_is_saved_as_exactly_its_cells(app, planner) -> None:
    import shapely

    from twin.zones import Zones

    _, ws = app
    page = planner
    res = int(ws.config.base_resolution)
    before_ids = {z.zone_id for z in Zones(ws).list()}
    _new_zone(page)
    _mode(page, "画多边形", "draw")
    corners = _square(ws, 0.0, 0.0, 0.004)
    _draw(page, corners)
    n = _wait_cells(page, lambda k: k > 0, "cells after drawing")
    residents = _impact_number(page, "residents")
    assert residents is not None and residents > 0
    assert "未保存" in _text(page, ".ct-impact")
    _mode(page, "浏览", "view")

    started = time.monotonic()
    _save(page, "测试：手绘多边形")
    status = _wait_status(page, "已创建")
    save_s = time.monotonic() - started
    made = [z for z in Zones(ws).list() if z.zone_id not in before_ids]
    assert len(made) == 1 and made[0].zone_id in status, (status, made)
    zone = made[0]
    assert zone.author == "plan" and zone.reason == "测试：手绘多边形" and zone.tier == "lockdown"
    assert len(zone.cells) == n
    assert round(_residents(ws, zone.cells)) == round(residents)
    # The cells are exactly the stored outline's cells ...
    assert zone.outline is not None
    outline = shapely.from_wkb(zone.outline)
    assert np.array_equal(np.unique(grid.polygon_to_cells(outline, res)), zone.cells)
    # ... whose vertices are the clicked points (up to the pixel they landed on) ...
    ring = list(outline.exterior.coords)
    assert len(ring) == 5, ring
    for (lon, lat), (want_lon, want_lat) in zip(ring[:-1], corners, strict=True):
        assert abs(lon - want_lon) < VERTEX_DEGREES and abs(lat - want_lat) < VERTEX_DEGREES
    # ... so they are the intended polygon's cells but for cells whose centre lies within
    # that rounding of its edge.
    intended = shapely.Polygon(corners)
    want = np.unique(grid.polygon_to_cells(intended, res))
    differ = np.setxor1d(want, zone.cells)
    if len(differ):
        lon, lat = grid.cell_centres(differ)
        gaps = [intended.exterior.distance(shapely.Point(x, y)) for x, y in zip(lon, lat,
                                                                              strict=True)]
        assert max(gaps) < VERTEX_DEGREES, (differ, gaps)

    # Undo and redo step the impact panel (the saved zone is the undo base).
    page.locator(".ct-undo button").click()
    _wait_cells(page, lambda k: k == 0, "cells after undo")
    page.locator(".ct-redo button").click()
    _wait_cells(page, lambda k: k == n, "cells after redo")
    assert "未保存" not in _text(page, ".ct-impact")  # back to what is saved
    assert save_s < 10, f"saving took {save_s:.1f} s to show"


# -- 3. the hex brush -------------------------------------------------------------------------
def test_the_brush_adds_and_removes_cells_and_the_map_stays(app, planner) -> None:
    from twin.zones import Zones

    _, ws = app
    page = planner
    cx, cy = _centre(ws)
    y = cy + 0.015
    start, end = (cx - 0.022, y), (cx - 0.006, y)
    _new_zone(page)
    _mode(page, "刷子 加", "brush_add")
    fixed = _project(page, cx, cy)
    _drag(page, start, end)
    added = _settled_cells(page, lambda n: n > 0)
    assert added >= 10, f"a {0.016}° stroke should cross many cells, got {added}"
    assert np.hypot(*np.subtract(_project(page, cx, cy), fixed)) < 0.5, "the map panned"

    _mode(page, "刷子 减", "brush_remove")
    middle = (cx - 0.016, y), (cx - 0.012, y)
    _drag(page, *middle, moves=10)
    left = _settled_cells(page, lambda n: n < added)
    assert 0 < left < added
    assert np.hypot(*np.subtract(_project(page, cx, cy), fixed)) < 0.5, "the map panned"
    _mode(page, "浏览", "view")

    before_ids = {z.zone_id for z in Zones(ws).list()}
    _save(page, "测试：刷子")
    _wait_status(page, "已创建")
    made = [z for z in Zones(ws).list() if z.zone_id not in before_ids]
    assert len(made) == 1
    cells = set(map(int, made[0].cells))
    assert len(cells) == left and made[0].outline is None
    assert _cell_at(ws, *start) in cells and _cell_at(ws, *end) in cells
    assert _cell_at(ws, cx - 0.014, y) not in cells  # brushed away


# -- 6. a screenshot --------------------------------------------------------------------------
def test_screenshot_after_drawing_shows_the_map(planner, tmp_path: Path) -> None:
    page = planner
    assert page.viewport_size == {"width": 1920, "height": 1080}
    _new_zone(page)
    _mode(page, "画多边形", "draw")
    # Near the middle of the map as it is (an opened zone would have zoomed it in).
    box = page.locator(".ct-zone-map").first.bounding_box()
    mx, my = box["x"] + box["width"] * 0.42, box["y"] + box["height"] * 0.55
    corners = [page.evaluate("p => window.ctZoneMap.unproject(p)", [mx + dx, my + dy])
               for dx, dy in ((-160, -120), (170, -110), (150, 130), (-140, 120))]
    _draw(page, [(float(lon), float(lat)) for lon, lat in corners])
    _wait_cells(page, lambda k: k > 0, "cells after drawing")
    _mode(page, "浏览", "view")
    assert "draft" in page.evaluate("window.ctZoneMap.layerIds()")
    box = page.locator(".ct-zone-map").first.bounding_box()
    region = (int(box["x"]), int(box["y"]), int(box["x"] + box["width"]),
              int(box["y"] + box["height"]))
    assert box["width"] > 900 and box["height"] > 600, box
    path = tmp_path / "zones-1920x1080.png"
    deadline = time.monotonic() + 10
    while True:
        page.wait_for_timeout(300)
        shot = page.screenshot(type="png")
        drawn = nonblank(shot, region)
        if drawn > 0.2 or time.monotonic() > deadline:
            break
    path.write_bytes(shot)
    assert drawn > 0.2, f"only {drawn:.1%} of the map drawn; see {path}"
    shutil.copyfile(path, "/tmp/zones-1920x1080.png")
    # The drawing was never saved: the page keeps it (opening another zone is refused with
    # a warning) until it is undone.
    page.locator(".ct-new button").click()
    _wait_status(page, "未保存")
    page.locator(".ct-undo button").click()
    _wait_cells(page, lambda k: k == 0, "cells after undoing the drawing")


# -- 4. two planners --------------------------------------------------------------------------
def test_two_planners_merge_and_settle_a_real_conflict(app, planner, chromium) -> None:
    from twin.zones import Zones

    base, ws = app
    a = planner
    zone = next(z for z in Zones(ws).list() if z.name == "两人同编")
    start_cells = zone.cells
    lons, lats = grid.cell_centres(start_cells)
    zx, zy = float(lons.mean()), float(lats.mean())
    # A stroke a cell beyond the zone's outermost centres on each side (the opened zone
    # fills the map at the editor's closest zoom, so not much further).
    east_x, west_x = lons.max() + 0.0015, lons.min() - 0.0015
    zid = zone.zone_id
    recorded: list[str] = []
    context = _context(chromium, recorded)
    try:
        b = context.new_page()
        _open_zones(b, base, "plan2")
        _open_picked(a, zid)
        _open_picked(b, zid)
        for page in (a, b):
            assert _cells(page) == len(start_cells)
            assert f"{zid} · v1" in _text(page, ".ct-impact")
            _stable_view(page)

        # A brushes cells east of the zone and saves.
        _mode(a, "刷子 加", "brush_add")
        _drag(a, (east_x, zy - 0.0008), (east_x, zy + 0.0008), moves=10)
        _settled_cells(a, lambda n: n > len(start_cells))
        _mode(a, "浏览", "view")
        _save(a, "A 东侧加")
        _wait_status(a, "✓", "版本 2")
        v2 = Zones(ws).get(zid)
        east = np.setdiff1d(v2.cells, start_cells)
        assert v2.version == 2 and len(east) and v2.author == "plan"

        # B, still on version 1, brushes cells west of it and saves: merged.
        _mode(b, "刷子 加", "brush_add")
        _drag(b, (west_x, zy - 0.0008), (west_x, zy + 0.0008), moves=10)
        _settled_cells(b, lambda n: n > len(start_cells))
        _mode(b, "浏览", "view")
        assert f"{zid} · v1" in _text(b, ".ct-impact")
        _save(b, "B 西侧加")
        merged_status = _wait_status(b, "✓", "合并", "版本 3")
        assert "plan" in merged_status
        v3 = Zones(ws).get(zid)
        west = np.setdiff1d(v3.cells, v2.cells)
        assert v3.version == 3 and len(west) and v3.author == "plan2"
        assert set(map(int, east)) <= set(map(int, v3.cells))
        assert set(map(int, start_cells)) <= set(map(int, v3.cells))
        lon_east, _ = grid.cell_centres(east)
        lon_west, _ = grid.cell_centres(west)
        assert lon_east.min() > zx > lon_west.max(), "each planner's cells on their side"
        _wait_cells(b, lambda n: n == len(v3.cells), "B's cells after the merge")

        # A real conflict: both change the tier of version 3, to different values.
        _open_picked(a, zid)
        assert f"{zid} · v3" in _text(a, ".ct-impact") and f"{zid} · v3" in _text(b, ".ct-impact")
        _button(a, ".ct-tier", PREVENTION).click()
        _wait(" A's tier", lambda: _text(a, ".ct-impact"), lambda t: PREVENTION in t, a)
        _button(b, ".ct-tier", LOCKDOWN).click()
        _wait("B's tier", lambda: _text(b, ".ct-impact"), lambda t: LOCKDOWN in t, b)
        _save(a, "A 改为防范区")
        _wait_status(a, "✓", "版本 4")
        assert Zones(ws).get(zid).tier == "prevention"
        started = time.monotonic()
        _save(b, "B 改为封控区")
        _wait_status(b, "冲突", "未写入")
        conflict_s = time.monotonic() - started
        pane = b.locator(".ct-conflict-pane").first
        pane.wait_for(state="visible")
        text = _wait("conflict pane", lambda: _text(b, ".ct-conflict-pane"),
                     lambda t: "我的" in t, b)
        assert f"我的: {LOCKDOWN}" in text and f"对方: {PREVENTION}" in text, text
        assert "v4 plan" in text, text
        assert b.locator(".ct-keep-mine button").is_visible()
        assert Zones(ws).get(zid).version == 4  # nothing written
        assert Zones(ws).get(zid).tier == "prevention"

        b.locator(".ct-keep-mine button").click()
        _wait_status(b, "✓", "版本 5")
        pane.wait_for(state="hidden")
        v5 = Zones(ws).get(zid)
        assert v5.version == 5 and v5.tier == "lockdown" and v5.author == "plan2"
        assert set(map(int, v3.cells)) <= set(map(int, v5.cells)), "merged cells were lost"
        assert conflict_s < 10, f"the conflict took {conflict_s:.1f} s to show"
    finally:
        context.close()
    outside = requests_outside_localhost(recorded)
    assert not outside, f"requests left localhost: {outside}"


# -- 5. refusals ------------------------------------------------------------------------------
def test_viewer_and_gis_are_refused_and_get_no_map(app, page) -> None:
    base, _ = app
    for user, password in ((VIEWER, VIEWER_PASSWORD), ("gis", PASSWORD)):
        _log_in(page, base, user, password, "/zones")
        page.locator(".ct-refused").first.wait_for()
        text = page.locator(".ct-refused").first.inner_text()
        # Refused over HTTP (403) before anything is built, saying which roles may.
        assert "无权访问" in text and "403" in text and user in text, text
        assert "/zones\t管理员 admin、防控规划 planner" in text, text
        page.wait_for_timeout(500)  # whatever else the page would build
        assert page.locator(".ct-zone-map").count() == 0
        assert page.locator(".ct-zones-map").count() == 0
        assert page.evaluate("window.ctZoneMap === undefined")
        page.goto(f"{base}/logout")
        page.click(".ct-logout-submit")  # a GET only asks; the button posts
        page.get_by_text("已退出").first.wait_for(timeout=30_000)
