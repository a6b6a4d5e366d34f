"""The closed loop in real browsers: a hotline export, the dispatcher's /events page, a grid
worker's /tasks on a phone, and the cockpit's tiles.

On the small demo served once for the module (zones activated, the demo's grid staff
imported): a hotline CSV (GBK) is imported with `twin events import` while the dispatcher's
page is open; the new event appears in the queue, on the map and in the tiles by itself; the
dispatcher assigns it; the grid worker (390×844, touch) accepts and resolves it with a note;
the dispatcher confirms it; the viewer's cockpit tiles follow. Every step is in the event's
log with who did it. No request leaves the machine; screenshots at 1920×1080 and 390×844.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.browser.conftest import png_pixels, requests_outside_localhost, served, watch_csp
from tests.conftest import fused_demo

pytestmark = pytest.mark.browser

TWIN = str(Path(sys.executable).with_name("twin"))
PASSWORD = "events-pass-1"
_TEXT = """el => { const root = el.shadowRoot || el;
  return [...root.children].filter(c => !['STYLE', 'LINK', 'SCRIPT'].includes(c.tagName))
    .map(c => c.innerText || '').join('\\n'); }"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, str]]:
    from dashboards.demo import prepare_demo
    from twin.events.locate import Locator
    from twin.events.staff import import_staff, read_staff_csv
    from twin.users import Users

    root = tmp_path_factory.mktemp("events-pages")
    ws, _ = fused_demo(root)
    prepare_demo(ws, password=PASSWORD)
    roster = read_staff_csv(root / "city" / "grid_staff.csv", Locator(ws))
    import_staff(ws, roster, actor="test")
    unit = roster[roster["user"] == "grid"]["unit"].iloc[0]
    users = Users(ws)
    users.add("disp", "dispatcher", PASSWORD, actor="test")
    users.add("grid", "grid_worker", PASSWORD, actor="test")
    with served([TWIN, "serve", str(ws.root), "--port", "{port}", "--address", "127.0.0.1"],
                ready_path="/login", timeout=90) as base:
        yield base, ws, unit


def _context(chromium: Any, width: int, height: int, **extra: Any) -> tuple[Any, list, list]:
    recorded: list[str] = []
    context = chromium.new_context(viewport={"width": width, "height": height},
                                   locale="zh-CN", timezone_id="Asia/Shanghai",
                                   service_workers="block", **extra)
    context.set_default_timeout(30_000)
    context.on("request", lambda req: recorded.append(req.url))
    return context, recorded, watch_csp(context)


def _log_in(page: Any, base: str, user: str, target: str) -> None:
    page.goto(f"{base}/login?next={target}")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click(".ct-login-submit")
    page.wait_for_url(f"{base}{target}*", timeout=60_000)


#: The ids of the layers the page's (first) deck.gl map draws, from Bokeh's views.
_DECK_LAYER_IDS = """() => {
  const seen = new Set(), found = [];
  const walk = (v) => {
    if (!v || seen.has(v)) return;
    seen.add(v);
    if (v.deckGL) found.push(v.deckGL);
    for (const c of (v.child_views ?? [])) walk(c);
  };
  for (const root of Bokeh.index.values ? Bokeh.index.values() : Object.values(Bokeh.index)) {
    walk(root);
  }
  return found.length ? found[0].props.layers.map((layer) => layer.id) : [];
}"""


def _wait(what: str, probe: Callable[[], Any], ok: Callable[[Any], bool], page: Any,
          seconds: float = 45) -> Any:
    deadline = time.monotonic() + seconds
    value = None
    while time.monotonic() < deadline:
        value = probe()
        if ok(value):
            return value
        page.wait_for_timeout(500)
    raise AssertionError(f"{what}: still {value!r} after {seconds} s")


def _tile(page: Any, cls: str) -> str:
    return page.locator(f"{cls} b").first.inner_text().strip()


def _shadow_text(page: Any, selector: str) -> str:
    return page.locator(selector).first.evaluate(_TEXT)


def _shanghai_now() -> str:
    """Now as the hotline writes it: local time in the city, no zone."""
    import datetime as dt
    import zoneinfo

    return dt.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")


def _place_in(ws: Any, unit: str) -> tuple[float, float]:
    from twin import grid
    from twin.facts import Facts

    cells = Facts(ws).read(10)
    cell = cells[cells["grid_code"] == unit]["cell"].to_numpy(np.uint64)[:1]
    lng, lat = grid.cell_centres(cell)
    return float(lng[0]), float(lat[0])


def test_a_hotline_call_goes_round_the_whole_loop(chromium: Any, app: Any,
                                                   tmp_path: Path) -> None:
    from twin.events.store import Events

    base, ws, unit = app
    contexts = []
    try:
        # The dispatcher's page, open before the call comes in.
        desk, desk_requests, desk_csp = _context(chromium, 1920, 1080, device_scale_factor=1)
        contexts.append((desk, desk_requests, desk_csp))
        page = desk.new_page()
        _log_in(page, base, "disp", "/events")
        page.wait_for_selector(".ct-event-tiles .ct-tile-open", timeout=60_000)
        page.wait_for_selector(".ct-events-map canvas", state="attached", timeout=60_000)
        page.wait_for_timeout(3_000)
        assert _tile(page, ".ct-tile-open") == "0"
        pager = page.locator(".ct-queue .tabulator-paginator").first.inner_text()
        assert "下一页" in pager and "Next" not in pager, pager  # the page's language
        map_box = page.locator(".ct-events-map").bounding_box()
        box = (int(map_box["x"]), int(map_box["y"]), int(map_box["x"] + map_box["width"]),
               int(map_box["y"] + map_box["height"]))
        before = png_pixels(page.screenshot(), box)

        # The viewer's cockpit beside it.
        wall, wall_requests, wall_csp = _context(chromium, 1920, 1080, device_scale_factor=1)
        contexts.append((wall, wall_requests, wall_csp))
        cockpit = wall.new_page()
        _log_in(cockpit, base, "demo", "/cockpit")
        open_tile = cockpit.locator(".ct-kpi-open_events .ct-kpi-value").first
        _wait("cockpit open events", lambda: open_tile.inner_text().strip(),
              lambda t: t == "0", cockpit, 60)

        # A hotline export with one call from the grid worker's unit, in GBK.
        lng, lat = _place_in(ws, unit)
        export = tmp_path / "hotline.csv"
        export.write_text("工单编号,受理时间,诉求类别,紧急程度,诉求地址,经度,纬度,诉求内容,来电人,"
                          "联系电话\n"
                          f"RX-T1,{_shanghai_now()},药品需求,紧急,测试小区3号楼,"
                          f"{lng:.6f},{lat:.6f},独居老人降压药断了,王女士,13900002222\n",
                          encoding="gbk")
        run = subprocess.run([TWIN, "events", str(ws.root), "import", str(export)],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        event = Events(ws).table().iloc[0]
        event_id = int(event["id"])
        assert event["unit"] == unit and event["state"] == "assigned"
        assert not Events(ws).get(event_id).overdue()  # medicine, high: 2 hours from now

        # It appears on the dispatcher's page by itself: the queue, the tile, the map.
        page.bring_to_front()
        row = page.locator(".ct-queue .tabulator-row").first
        _wait("queue row", lambda: row.locator("[tabulator-field='id']").inner_text().strip()
              if row.count() else "", lambda t: t == str(event_id), page)
        assert "药品需求" in row.inner_text() and "测试小区3号楼" in row.inner_text()
        assert _tile(page, ".ct-tile-open") == "1"
        page.wait_for_timeout(1_500)
        after = png_pixels(page.screenshot(), box)
        changed = np.abs(after.astype(int) - before.astype(int)).max(axis=2) > 40
        assert changed.sum() > 30, "the new event did not appear on the map"
        page.screenshot(path=str(tmp_path / "events-1920x1080.png"))

        # Filtered to the overdue ones, the queue is empty (due in 2 hours); then all again.
        page.select_option(".ct-age select", label="仅超时")
        _wait("overdue-only queue", lambda: page.locator(".ct-queue .tabulator-row").count(),
              lambda n: n == 0, page)
        page.select_option(".ct-age select", label="全部时长")
        _wait("queue row again", lambda: page.locator(".ct-queue .tabulator-row").count(),
              lambda n: n == 1, page)
        row = page.locator(".ct-queue .tabulator-row").first

        # The dispatcher assigns it (again) to the grid unit, with a note.
        row.locator("input[type=checkbox]").check()
        from twin.events.locate import Locator

        name = Locator(ws).unit_names("grid")[unit]
        page.locator(".ct-unit select").select_option(label=f"{name} {unit}")
        page.locator(".ct-note input").fill("请尽快送药")
        page.locator(".ct-do-assign button").click()
        _wait("assigned message", lambda: page.locator(".ct-msg").first.evaluate(_TEXT),
              lambda t: f"#{event_id}" in t, page)

        # The cockpit's tile has followed (a viewer reads small counts as "<10").
        _wait("cockpit open events", lambda: open_tile.inner_text().strip(),
              lambda t: t == "<10", cockpit, 30)

        # The grid worker, on a phone.
        phone, phone_requests, phone_csp = _context(
            chromium, 390, 844, device_scale_factor=2, is_mobile=True, has_touch=True)
        contexts.append((phone, phone_requests, phone_csp))
        mobile = phone.new_page()
        _log_in(mobile, base, "grid", "/tasks")
        mobile.wait_for_selector(".ct-open-task", timeout=60_000)
        assert mobile.evaluate("() => window.innerWidth") == 390
        mobile.screenshot(path=str(tmp_path / "tasks-390x844.png"))
        assert "药品需求" in _shadow_text(mobile, ".ct-task .bk-panel-models-markup-HTML")
        mobile.locator(".ct-open-task button").first.tap()
        mobile.wait_for_selector(".ct-t-accept button", timeout=30_000)
        detail = _shadow_text(mobile, ".ct-task-detail")
        assert "测试小区3号楼" in detail and "13900002222" in detail
        # The small map shows the streets and buildings round the door, not just a dot.
        drawn = _wait("the task map's layers", lambda: mobile.evaluate(_DECK_LAYER_IDS),
                      lambda ids: "task" in ids, mobile)
        assert {"roads", "buildings"} <= set(drawn), drawn
        mobile.locator(".ct-t-accept button").tap()
        mobile.wait_for_selector(".ct-t-resolve button", timeout=30_000)
        mobile.locator(".ct-task-note textarea").fill("已送药上门")
        mobile.screenshot(path=str(tmp_path / "task-390x844.png"))
        mobile.locator(".ct-t-resolve button").tap()
        _wait("resolved", lambda: Events(ws).get(event_id).state, lambda s: s == "resolved",
              mobile)

        # The cockpit: no open event left, one resolved; the dispatcher confirms.
        _wait("cockpit open events", lambda: open_tile.inner_text().strip(),
              lambda t: t == "0", cockpit, 30)
        page.bring_to_front()
        _wait("resolved in the queue", lambda: row.inner_text(), lambda t: "已办结" in t, page)
        row.locator("input[type=checkbox]").check()
        page.locator(".ct-do-confirm button").click()
        _wait("confirmed", lambda: Events(ws).get(event_id).state, lambda s: s == "confirmed",
              page)
        close_tile = cockpit.locator(".ct-kpi-event_close_time .ct-kpi-value").first
        _wait("cockpit time to close", lambda: close_tile.inner_text().strip(),
              lambda t: t not in ("", "–"), cockpit, 30)

        steps = Events(ws).steps(event_id)
        assert [(s.action, s.actor) for s in steps] == [
            ("assign", "system"), ("assign", "disp"), ("accept", "grid"), ("resolve", "grid"),
            ("confirm", "disp")]
        assert steps[1].note == "请尽快送药" and steps[3].note == "已送药上门"
        audit = ws.audit_log(action="event.")
        assert {(a["action"], a["actor"]) for a in audit} >= {
            ("event.assign", "disp"), ("event.accept", "grid"), ("event.resolve", "grid")}
    finally:
        for context, recorded, violations in contexts:
            context.close()
            outside = requests_outside_localhost(recorded)
            assert not outside, f"requests left localhost: {outside}"
            assert not violations, f"the content security policy blocked: {violations}"


def test_roles_open_only_their_pages(chromium: Any, app: Any) -> None:
    base, _, _ = app
    context, recorded, violations = _context(chromium, 1280, 800)
    try:
        page = context.new_page()
        _log_in(page, base, "demo", "/cockpit")
        assert page.goto(f"{base}/events").status == 403
        assert page.goto(f"{base}/tasks").status == 403
        page.goto(f"{base}/logout")
        page.click(".ct-logout-submit")  # a GET only asks; the button posts
        page.get_by_text("已退出").first.wait_for(timeout=30_000)
        _log_in(page, base, "grid", "/tasks")
        assert page.goto(f"{base}/events").status == 403
    finally:
        context.close()
    assert not requests_outside_localhost(recorded)
    assert not violations
