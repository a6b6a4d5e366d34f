"""The shared situation: one snapshot per data version, shared by sessions, dated zones,
the privacy policy from twin.toml, and the on-disk cache the server processes share."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import fused_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    from dashboards.demo import prepare_demo

    ws, _ = fused_demo(tmp_path_factory.mktemp("situation"))
    prepare_demo(ws, password="situation-password-1")
    return ws


def _shared(ws):
    from dashboards.situation import SharedSituation

    return SharedSituation(ws.root, check_s=0, background=False)


def test_two_sessions_share_the_same_objects(demo) -> None:
    from dashboards.state import CockpitState

    shared = _shared(demo)
    a = CockpitState(demo, shared, role="viewer", lang="zh")
    b = CockpitState(demo, shared, role="viewer", lang="zh")
    assert a.situation is b.situation
    layers_a, layers_b = a.map_layers(), b.map_layers()
    assert [x.id for x in layers_a] == [y.id for y in layers_b]
    assert all(x is y for x, y in zip(layers_a, layers_b, strict=True))
    assert a.risk_table("community") is b.risk_table("community")
    # a planner sees other case counts: not the viewer's layer
    planner = CockpitState(demo, shared, role="planner", lang="zh")
    cases = {x.id: x for x in layers_a}["cases"]
    assert {x.id: x for x in planner.map_layers()}["cases"] is not cases


def test_new_data_gives_a_new_snapshot(demo) -> None:
    from dashboards.state import CockpitState
    from twin.alerts import Alert, raise_alerts

    shared = _shared(demo)
    state = CockpitState(demo, shared, lang="en")
    before = state.situation
    layer = state.map_layers()[0]
    assert shared.current() is state.snapshot  # nothing new: the same snapshot
    raise_alerts(demo, [Alert(rule="beds", severity="warning", place="situation-test",
                              date=state.date.isoformat(), message_zh="测试",
                              message_en="situation test alert", data={})])
    assert state.refresh() is True
    assert state.situation is not before
    assert state.map_layers()[0] is not layer  # rebuilt from the new snapshot
    assert any(a["text"] == "situation test alert" for a in state.alerts())


def test_zones_follow_the_date(demo) -> None:
    """A zone exists from its valid_from; a later version lifting it ends it on its day."""
    from twin.situation import Situation
    from twin.zones import Zones

    zones = Zones(demo)
    sit = Situation(demo, cache=False)
    cells = sit.facts.static(sit.facts.base, ["residents"]).nlargest(5, "residents")["cell"]
    day1, day2 = sit.start + dt.timedelta(days=10), sit.start + dt.timedelta(days=20)
    made = zones.create(cells=cells.to_numpy(np.uint64), tier="lockdown", status="active",
                        valid_from=day1, author="test", reason="dated zone", name="dated")
    zones.save(made.zone_id, made.version, status="lifted", valid_from=day2, author="test",
               reason="lifted")
    sit = Situation(demo, cache=False)
    on = {d: {z.zone_id for z in sit.zones_on(d)} for d in
          (day1 - dt.timedelta(days=1), day1, day2 - dt.timedelta(days=1), day2)}
    assert made.zone_id not in on[day1 - dt.timedelta(days=1)]
    assert made.zone_id in on[day1] and made.zone_id in on[day2 - dt.timedelta(days=1)]
    assert made.zone_id not in on[day2]
    # the residents inside follow: worked out from the cells' own residents
    residents = float(sit.facts.static(sit.facts.base, ["residents"]).set_index("cell")
                      .loc[cells, "residents"].sum())
    inside = sit.day(day1)["lockdown"]["residents"] - sit.day(
        day1 - dt.timedelta(days=1))["lockdown"]["residents"]
    assert inside == pytest.approx(residents)


def test_viewer_reasons_follow_the_privacy_policy(demo, tmp_path: Path) -> None:
    from dashboards.state import CockpitState

    config = demo.config_path.read_text(encoding="utf-8")
    shared = _shared(demo)
    try:
        viewer = CockpitState(demo, shared, role="viewer", lang="zh")
        planner = CockpitState(demo, shared, role="planner", lang="zh")
        small = r"(?<![\d<.])[1-9](\.\d)? 例"  # a count or an expected count under 10
        text = " ".join(viewer.top10()["reason"])
        assert not re.search(small, text), text
        fine = " ".join(planner.top10()["reason"])
        assert "<10" in text  # the small demo's top ten has small counts ...
        assert re.search(small, fine)  # ... which planners see exactly
        demo.config_path.write_text(config.replace("suppress_below = 10",
                                                   "suppress_below = 1000"), encoding="utf-8")
        viewer.refresh()
        text = " ".join(viewer.top10()["reason"])
        assert "<1000" in text and "<10 " not in text
        assert all(v in ("0", "<1000") or int(v.replace(",", "")) >= 1000
                   for v in viewer.case_counts()["display"])
    finally:
        demo.config_path.write_text(config, encoding="utf-8")


def test_the_cache_on_disk_is_shared_between_processes(demo) -> None:
    """A second Situation of the same data (another server process) reads what the first
    wrote instead of computing it."""
    from twin.situation import Situation

    first = Situation(demo)
    day = first.day(first.end)
    files = sorted(p.name for p in (demo.root / "cache" / "situation" / first.key.digest)
                   .iterdir())
    assert f"day-{first.end}.json" in files and f"risk-community-{first.end}.parquet" in files
    second = Situation(demo)
    # planted marker: the second reads the file, it does not recompute
    path = demo.root / "cache" / "situation" / first.key.digest / f"day-{first.end}.json"
    path.write_text(path.read_text(encoding="utf-8").replace(
        '"high_risk_communities": ', '"high_risk_communities": 1000 + 0 * '), encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    with pytest.raises(ValueError):  # not JSON any more: recomputed, not trusted
        json.loads(text)
    assert second.day(second.end)["high_risk_communities"] == day["high_risk_communities"]
    path.write_text('{"date": "x", "high_risk_communities": 1234}', encoding="utf-8")
    third = Situation(demo)
    assert third.day(third.end)["high_risk_communities"] == 1234


def test_small_counts_and_small_expected_counts_are_not_shown_to_viewers() -> None:
    """2 recent cases and 1.4 expected from them would give the cases away (by hand)."""
    from twin.risk import reason

    row = {"main_reason": "own", "own": 1.4, "own_contrib": 0.2, "cases_recent": 2,
           "cases_previous": 0}
    fine = reason(row, "zh")
    viewer = reason(row, "zh", suppress_below=10)
    assert "近7天 2 例" in fine and "预计 1.4 例" in fine
    assert "1.4" not in viewer and "近7天 <10 例" in viewer and "预计 <10 例" in viewer
    big = {**row, "own": 25.0, "cases_recent": 30}
    assert "预计 25.0 例" in reason(big, "zh", suppress_below=10)
    trend = {"main_reason": "trend", "trend": -1.5, "trend_contrib": -0.1,
             "reproduction": 0.8}
    assert "-1.5 expected" in reason(trend, "en")
    assert "−<10 expected" in reason(trend, "en", suppress_below=10)


def test_3d_buildings_only_when_zoomed_in_and_only_those_in_view(demo) -> None:
    from dashboards.state import BUILDINGS_MIN_ZOOM, CockpitState

    state = CockpitState(demo, _shared(demo), role="viewer", lang="zh",
                         layers_on=["buildings"])
    assert "buildings" not in [x.id for x in state.map_layers()]  # the whole city: none
    every = demo.read("buildings")
    centre = every.geometry.union_all().centroid
    state.param.update(zoom=BUILDINGS_MIN_ZOOM + 1.5, centre=(centre.x, centre.y))
    drawn = {x.id: x for x in state.map_layers()}["buildings"]
    west, south, east, north = state.buildings_box()
    assert west < centre.x < east and south < centre.y < north
    inside = every.cx[west:east, south:north]
    assert 0 < len(drawn) == len(inside) < len(every)
