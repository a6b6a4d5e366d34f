"""The cockpit in a real browser (Debian's Chromium through Playwright), on the small demo.

A viewer logs in; the map canvas draws; the KPI tiles show what the twin computes for the
date; moving the date control changes the map and the tiles; a planner-only page is refused
to the viewer; and no request leaves localhost from login to logout (the ``page`` fixture
records every request and fails the test on one that does).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import nonblank, served
from tests.conftest import fused_demo

pytestmark = pytest.mark.browser

TWIN = str(Path(sys.executable).with_name("twin"))
VIEWER, PASSWORD = "demo", "demo-password-1"


@pytest.fixture(scope="module")
def cockpit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """The small demo, prepared like `twin demo` does, served by `twin serve`."""
    from dashboards.demo import prepare_demo

    ws, _ = fused_demo(tmp_path_factory.mktemp("cockpit"))
    prepare_demo(ws, password=PASSWORD)
    with served([TWIN, "serve", str(ws.root), "--port", "{port}", "--address", "127.0.0.1"],
                ready_path="/login", timeout=90) as base:
        yield base, ws


def _log_in(page, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", VIEWER)
    page.fill("#password", PASSWORD)
    page.click(".ct-login-submit")
    page.wait_for_url(f"{base}/cockpit*", timeout=30_000)


def _kpi(page, name: str) -> str:
    return page.locator(f".ct-kpi-{name} .ct-kpi-value").first.inner_text(timeout=60_000)


def _map_png(page) -> bytes:
    return page.locator(".ct-map canvas").first.screenshot(timeout=60_000)


def _scrolls(page) -> bool:
    return page.evaluate("() => { const e = document.scrollingElement; "
                         "return e.scrollHeight > window.innerHeight + 2 "
                         "|| e.scrollWidth > window.innerWidth + 2; }")


def _wait_drawn(page, min_share: float = 0.05) -> bytes:
    """deck.gl draws a few frames after the canvas appears: poll until the map is drawn."""
    png = b""
    for _ in range(40):
        png = _map_png(page)
        if nonblank(png) > min_share:
            return png
        page.wait_for_timeout(500)
    return png


def test_viewer_sees_the_cockpit_offline(cockpit, page, recorded, tmp_path: Path) -> None:
    from dashboards.state import CockpitState

    base, ws = cockpit
    _log_in(page, base)
    page.locator(".ct-kpi").first.wait_for(timeout=60_000)
    # The map draws from our own boundaries, roads and layers.
    first = _wait_drawn(page)
    assert nonblank(first) > 0.05, "the map canvas stayed blank"

    # The tiles show what the twin computes for the cockpit's date, as a viewer sees it.
    state = CockpitState(ws, role="viewer")
    expected = state.kpis()
    for name in ("new_cases", "high_risk_communities", "lockdown_residents"):
        assert _kpi(page, name) == expected[name]["display"], name

    # A screenshot at 1920 x 1080, to look at (the README's comes from bench/cockpit.py).
    page.screenshot(path=str(tmp_path / "cockpit-1920x1080.png"), full_page=False)
    assert not _scrolls(page), "the cockpit scrolls at 1920 x 1080"

    # Moving the one date control changes the tiles and the map.
    handle = page.locator(".ct-date .noUi-handle").first
    handle.focus()
    for _ in range(12):
        handle.press("ArrowLeft")
    page.wait_for_timeout(3_000)
    names = ("new_cases", "high_risk_communities", "lockdown_residents")
    shown = {name: _kpi(page, name) for name in names}
    last = state.date
    matches = []
    for back in range(30):
        state.date = last - dt.timedelta(days=back)
        kpis = state.kpis()
        if {name: kpis[name]["display"] for name in names} == shown:
            matches.append(back)
    assert matches, f"the tiles {shown} match no date the twin computes"
    assert 0 not in matches, "the tiles did not follow the date control"
    assert _map_png(page) != first, "the map did not follow the date control"

    # A planner-only page is refused to a viewer, on the server.
    page.goto(f"{base}/detail")
    page.locator(".ct-refused").first.wait_for(timeout=30_000)
    page.goto(f"{base}/logout")
    page.click(".ct-logout-submit")  # a GET only asks; the button posts
    page.get_by_text("已退出").first.wait_for(timeout=30_000)


def test_kiosk_hides_the_controls(cockpit, page) -> None:
    base, _ = cockpit
    _log_in(page, base)
    page.goto(f"{base}/cockpit?kiosk=1")
    page.locator(".ct-kpi").first.wait_for(timeout=60_000)
    assert page.locator(".ct-kiosk").count() == 1
    # What a person sees: no date control, no play button, no logout link; the map draws.
    assert not page.locator(".ct-date").first.is_visible()
    assert not page.locator(".ct-play").first.is_visible()
    assert page.get_by_text("logout").count() + page.get_by_text("退出").count() == 0
    assert nonblank(_wait_drawn(page)) > 0.05


@pytest.mark.parametrize("page", [(3840, 2160)], indirect=True, ids=["4k"])
def test_4k_wall_screen_fits_without_scrolling(cockpit, page, tmp_path: Path) -> None:
    base, _ = cockpit
    _log_in(page, base)
    page.locator(".ct-kpi").first.wait_for(timeout=60_000)
    assert nonblank(_wait_drawn(page)) > 0.05
    page.screenshot(path=str(tmp_path / "cockpit-3840x2160.png"))
    assert not _scrolls(page), "the cockpit scrolls at 3840 x 2160"


def test_new_data_appears_without_a_reload(cockpit, page) -> None:
    """A new day of cases is published and fused while the page is open: it shows up."""
    import geopandas as gpd
    import pandas as pd

    from twin.fuse import fuse

    base, ws = cockpit
    _log_in(page, base)
    page.locator(".ct-kpi").first.wait_for(timeout=60_000)
    _wait_drawn(page)
    cases = ws.read("cases")
    new_day = pd.Timestamp(cases["report_date"].max()) + pd.Timedelta(days=1)
    extra = cases.head(23).copy()
    extra["id"] = [f"NEW{i:05d}" for i in range(len(extra))]
    extra["report_date"] = new_day
    extra["status"] = "confirmed"
    ws.publish("cases", "cases", gpd.GeoDataFrame(pd.concat([cases, extra], ignore_index=True),
                                                  crs=cases.crs), note="one more day")
    assert fuse(ws).status == "cases-updated"
    # The page polls the workspace every few seconds and follows the newest day.
    for _ in range(40):
        if _kpi(page, "new_cases") == "23":
            break
        page.wait_for_timeout(500)
    assert _kpi(page, "new_cases") == "23"
