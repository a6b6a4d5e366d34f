"""Events on the grid: grid units, intake, duplicates, assignment, SLA, escalation, reports."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import fused_demo, run_twin
from twin import grid
from twin.errors import AuthError, EventInputError, EventTransitionError
from twin.events.intake import read_hotline_csv, submit
from twin.events.machine import replay
from twin.events.staff import import_staff, read_staff_csv, units_of_user
from twin.events.store import Events, iso

UTC = dt.UTC
DAY = dt.date(2026, 4, 30)


def _utc(hour: float, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 4, 30, tzinfo=UTC) + dt.timedelta(hours=hour, minutes=minute)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """The fused small demo with its zones activated (shared, read-mostly)."""
    from dashboards.demo import prepare_demo

    ws, manifest = fused_demo(tmp_path_factory.mktemp("events"))
    prepare_demo(ws, password="demo-pass-123")
    return ws, manifest


@pytest.fixture(scope="module")
def demo_events(demo) -> Events:
    """Events of the shared demo, its locator built once."""
    events = Events(demo[0])
    events.locator  # noqa: B018 - built here, once
    return events


@pytest.fixture
def fresh(tmp_path: Path):
    """A fused small demo of its own (for tests that write events), zones activated."""
    from dashboards.demo import prepare_demo

    ws, manifest = fused_demo(tmp_path)
    prepare_demo(ws, password="demo-pass-123")
    return ws, manifest


def _frame(rows: list[dict]) -> pd.DataFrame:
    base = {"ref": None, "priority": "normal", "channel": "hotline", "description": "",
            "address": "", "building_id": None, "reporter": "", "phone": ""}
    frame = pd.DataFrame([{**base, **r} for r in rows])
    frame["reported_at"] = pd.to_datetime(frame["reported_at"], utc=True)
    return frame


def _lockdown_cell(ws) -> int:
    from twin.zones import Zones

    zone = next(z for z in Zones(ws).list(status="active") if z.tier == "lockdown")
    return int(zone.cells[0])


def _outside_zones_cell(ws) -> int:
    from twin.facts import Facts
    from twin.zones import Zones

    zoned = set()
    for z in Zones(ws).list(status="active"):
        zoned |= {int(c) for c in grid.grid_disk(np.asarray(z.cells, np.uint64), 2)}
    cells = Facts(ws).read(10)["cell"].to_numpy(np.uint64)
    return int(next(c for c in cells if int(c) not in zoned))


def _centre(cell: int) -> tuple[float, float]:
    lng, lat = grid.cell_centres(np.array([cell], dtype=np.uint64))
    return float(lng[0]), float(lat[0])


# -- grid units in the demo city -----------------------------------------------------------
def test_demo_grid_units_tile_their_communities(demo) -> None:
    import geopandas as gpd

    ws, manifest = demo
    out = Path(ws.root).parent / "city"
    grids = gpd.read_file(out / "boundaries.gpkg", layer="grids")
    communities = gpd.read_file(out / "boundaries.gpkg", layer="communities")
    assert manifest["totals"]["grid_units"] == len(grids) >= 2 * len(communities)
    assert set(grids["上级代码"]) == set(communities["区划代码"])
    union = grids.dissolve("上级代码").geometry
    own = communities.set_index("区划代码").geometry
    for code, shape in union.items():
        assert abs(shape.area - own[code].area) <= 1e-9 * own[code].area + 1e-15
        assert shape.symmetric_difference(own[code]).area <= 1e-9 * own[code].area + 1e-14


def test_fusion_gives_every_cell_one_grid_unit_within_its_community(demo) -> None:
    from twin.facts import Facts

    ws, _ = demo
    cells = Facts(ws).read(10)
    assert cells["grid_code"].notna().all()
    parent = cells["grid_code"].str[:-2]
    assert (parent == cells["community_code"]).all()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(u=st.floats(0, 1), v=st.floats(0, 1))
def test_every_point_gets_exactly_one_grid_unit_and_it_holds_the_cell(
        demo_events: Events, u: float, v: float) -> None:
    """The unit of a point is the unit whose polygon holds its cell's centre, or, for a
    cell outside every unit, the nearest unit (an independent shapely check)."""
    events = demo_events
    frame = events.locator.units.frames["grid"]
    minx, miny, maxx, maxy = shapely.total_bounds(frame.geometry.to_numpy())
    lng, lat = minx + u * (maxx - minx), miny + v * (maxy - miny)
    located = events.locator.locate(np.array([lng]), np.array([lat]))
    assert len(located) == 1
    code = located.at[0, "grid_code"]
    cell = np.array([located.at[0, "cell"]], dtype=np.uint64)
    assert cell[0] == grid.points_to_cells(np.array([lng]), np.array([lat]), 10)[0]
    centre = shapely.points(*grid.cell_centres(cell))[0]
    holders = frame[frame.geometry.contains(centre)]["code"].tolist()
    if holders:
        assert code == holders[0] and not located.at[0, "outside"]
    else:
        # the nearest in degrees, as fusion's spatial index measures it
        distances = shapely.distance(frame.geometry.to_numpy(), centre)
        assert code == frame["code"].iloc[int(distances.argmin())]
        assert located.at[0, "outside"]
    assert code[:-2] == located.at[0, "community_code"]


# -- SLA and escalation on hand-worked times -------------------------------------------------
def test_due_times_by_category_priority_and_lockdown_then_escalation(fresh) -> None:
    ws, _ = fresh
    events = Events(ws)
    inside = _centre(_lockdown_cell(ws))
    outside = _centre(_outside_zones_cell(ws))
    t0 = "2026-04-30T00:00:00Z"  # 08:00 in Shanghai
    result = events.intake(_frame([
        {"reported_at": t0, "category": "medicine", "priority": "high", "lng": outside[0],
         "lat": outside[1]},
        {"reported_at": t0, "category": "medicine", "priority": "normal", "lng": inside[0],
         "lat": inside[1]},
        {"reported_at": t0, "category": "supply", "priority": "normal", "lng": outside[0],
         "lat": outside[1]},
        {"reported_at": t0, "category": "supply", "priority": "normal", "lng": inside[0],
         "lat": inside[1]},
    ]), actor="test", now=_utc(0))
    first = result.first_id
    e = [events.get(first + i) for i in range(4)]
    assert [x.due_at for x in e] == ["2026-04-30T02:00:00Z",  # medicine high: 2 h
                                     "2026-04-30T02:00:00Z",  # normal 6 h, lockdown 2 h
                                     "2026-04-30T12:00:00Z",  # supply normal: 12 h
                                     "2026-04-30T06:00:00Z"]  # lockdown: 6 h
    assert e[1].zone_tier == "lockdown" and e[0].zone_tier is None
    assert all(x.state == "assigned" and x.unit == x.grid_code and x.level == "grid" for x in e)
    # 02:30: the two medicine events are overdue and go to their street, due 4 h later.
    up = events.escalate_overdue(now=_utc(2, 30))
    assert sorted(x.id for x in up) == [first, first + 1]
    again = events.get(first)
    assert (again.level, again.unit, again.due_at) == ("street", again.street_code,
                                                       "2026-04-30T06:30:00Z")
    # 07:00: those two go to the district; the lockdown supply event (due 06:00) to the street.
    up = events.escalate_overdue(now=_utc(7))
    assert sorted((x.id, x.level) for x in up) == [(first, "district"), (first + 1, "district"),
                                                  (first + 3, "street")]
    assert events.get(first).unit == events.get(first).district_code
    # 12:00: the district is the top; nothing more escalates from there, it shows overdue.
    up = events.escalate_overdue(now=_utc(12, 30))
    assert {x.id for x in up} == {first + 2, first + 3}
    assert events.get(first).overdue(_utc(12, 30))
    steps = events.steps(first)
    assert [s.action for s in steps] == ["assign", "escalate", "escalate"]
    assert all(s.actor == "system" and "overdue" in s.note for s in steps[1:])


def test_the_loop_with_audit_illegal_steps_change_nothing_and_the_log_is_append_only(
        fresh) -> None:
    ws, _ = fresh
    events = Events(ws)
    lng, lat = _centre(_outside_zones_cell(ws))
    first = events.intake(_frame([{"reported_at": "2026-04-30T00:00:00Z", "category": "assistance",
                                   "lng": lng, "lat": lat}]), actor="hotline",
                          now=_utc(0)).first_id
    unit = events.get(first).unit
    with pytest.raises(AuthError, match="not by your unit"):
        events.act(first, "accept", actor="other", only_units=["nobody"], now=_utc(1))
    events.act(first, "accept", actor="grid", only_units=[unit], now=_utc(1))
    with pytest.raises(EventTransitionError, match="needs a note"):
        events.act(first, "resolve", actor="grid", now=_utc(2))
    with pytest.raises(EventTransitionError, match="not allowed"):
        events.act(first, "confirm", actor="grid", now=_utc(2))
    assert events.get(first).state == "accepted" and len(events.steps(first)) == 2
    events.act(first, "resolve", actor="grid", note="送餐上门 meals delivered", now=_utc(3))
    done = events.act(first, "confirm", actor="disp", now=_utc(4))
    assert (done.state, done.resolved_at, done.closed_at) == (
        "confirmed", "2026-04-30T03:00:00Z", "2026-04-30T04:00:00Z")
    assert replay(events.steps(first)).state == done.state
    log = ws.audit_log(action="event.resolve")
    assert log and log[0]["actor"] == "grid" and log[0]["target"] == f"event:{first}"
    with ws.connect() as conn, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE event_steps SET actor = 'x' WHERE event_id = ?", (first,))
    with ws.connect() as conn, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM event_steps WHERE event_id = ?", (first,))
    stats = events.stats(now=_utc(5))
    assert stats["closed_today"] == 1 and stats["median_hours_to_close"] == 4.0


def test_repeated_calls_are_linked_not_double_counted(fresh) -> None:
    ws, _ = fresh
    events = Events(ws)
    lng, lat = _centre(_outside_zones_cell(ws))
    near = lng + 0.0003  # ~30 m east
    far = lng + 0.01  # ~1 km
    rows = [
        {"reported_at": "2026-04-30T00:00:00Z", "category": "supply", "phone": "13800000001",
         "lng": lng, "lat": lat},
        {"reported_at": "2026-04-30T03:00:00Z", "category": "supply", "phone": "13800000001",
         "lng": near, "lat": lat},  # the same call again: linked
        {"reported_at": "2026-04-30T03:00:00Z", "category": "medicine", "phone": "13800000001",
         "lng": lng, "lat": lat},  # another need: its own event
        {"reported_at": "2026-04-30T03:00:00Z", "category": "supply", "phone": "13800000001",
         "lng": far, "lat": lat},  # another place: its own event
        {"reported_at": "2026-05-02T00:00:00Z", "category": "supply", "phone": "13800000001",
         "lng": lng, "lat": lat},  # after the 24 h window: its own event
    ]
    result = events.intake(_frame(rows), actor="t", now=_utc(60))
    first = result.first_id
    assert result.created == 5 and result.duplicates == 1
    assert [events.get(first + i).duplicate_of for i in range(5)] == [None, first, None, None,
                                                                      None]
    assert events.get(first + 1).state == "duplicate"
    # A later import finds the earlier event in the database too.
    later = events.intake(_frame([{**rows[0], "reported_at": "2026-04-30T05:00:00Z"}]),
                          actor="t", now=_utc(60))
    assert later.duplicates == 1 and events.get(later.first_id).duplicate_of == first
    with pytest.raises(EventInputError, match="duplicate of event"):
        events.act(later.first_id, "accept", actor="grid")
    report = events.report(by="category", day=DAY, now=_utc(60)).set_index("category")
    assert report.at["supply", "reported"] == 2 and report.at["supply", "duplicates"] == 2


# -- hotline CSV and the command line --------------------------------------------------------
def test_hotline_import_in_gbk_is_idempotent_and_reports(fresh, tmp_path: Path) -> None:
    ws, manifest = fresh
    source = Path(ws.root).parent / "city" / "hotline.csv"
    run = run_twin("events", str(ws.root), "import", str(source), "--json")
    assert run.returncode == 0, run.stderr
    import json

    data = json.loads(run.stdout)
    assert data["encoding"] == "GBK" and data["rows"] == manifest["totals"]["hotline_requests"]
    assert data["created"] == data["rows"] and data["duplicates"] >= 1
    assert data["skipped"] == [] and data["outside"] == 0
    again = json.loads(run_twin("events", str(ws.root), "import", str(source), "--json").stdout)
    assert again["created"] == 0 and again["already_known"] == data["rows"]
    report = run_twin("events", str(ws.root), "report", "--by", "community", "--date",
                      "2026-04-30", "--json")
    rows = json.loads(report.stdout)
    assert sum(r["reported"] + r["duplicates"] for r in rows) == data["rows"]
    text = run_twin("events", str(ws.root), "list", "--limit", "3")
    assert text.returncode == 0 and "assigned" in text.stdout


def test_a_bad_row_refuses_the_file_unless_skip_bad(fresh, tmp_path: Path) -> None:
    ws, _ = fresh
    bad = tmp_path / "bad.csv"
    bad.write_text("工单编号,受理时间,诉求类别,经度,纬度,联系电话\n"
                   "A1,2026-04-30 08:00:00,药品,121.47,31.23,139\n"
                   "A2,not a time,药品,121.47,31.23,139\n"
                   "A3,2026-04-30 08:10:00,物资,,,139\n"
                   "A4,2026-04-30 08:20:00,物资,116.40,39.90,139\n", encoding="utf-8")
    run = run_twin("events", str(ws.root), "import", str(bad))
    assert run.returncode == 1
    assert "3 of 4 rows are unusable, nothing imported" in run.stderr
    assert "line 3: time 'not a time'" in run.stderr and "line 4: no place" in run.stderr
    assert "line 5: place (116.40000, 39.90000) is outside the city" in run.stderr
    assert Events(ws).table().empty
    run = run_twin("events", str(ws.root), "import", str(bad), "--skip-bad")
    assert run.returncode == 0 and "1 events created" in run.stdout
    assert "skipped line 3" in run.stdout
    headerless = tmp_path / "x.csv"
    headerless.write_text("a,b\n1,2\n", encoding="utf-8")
    run = run_twin("events", str(ws.root), "import", str(headerless))
    assert run.returncode == 1 and "no column for reported_at, category" in run.stderr
    binary = tmp_path / "y.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81\x30" * 10)
    run = run_twin("events", str(ws.root), "import", str(binary))
    assert run.returncode == 1 and "neither UTF-8 nor GBK" in run.stderr


def test_building_ids_locate_and_gcj02_coordinates_convert(demo, tmp_path: Path) -> None:
    from twin.offsets import wgs84_to_gcj02

    ws, _ = demo
    events = Events(ws)
    lng, lat = _centre(_outside_zones_cell(ws))
    glng, glat = wgs84_to_gcj02(np.array([lng]), np.array([lat]))
    text = ("工单编号,受理时间,诉求类别,建筑编号,经度,纬度\n"
            f"B1,2026-04-30 08:00,发烧,B0000001,,\n"
            f"B2,2026-04-30 08:00,发烧,,{glng[0]:.7f},{glat[0]:.7f}\n")
    path = tmp_path / "h.csv"
    path.write_text(text, encoding="utf-8")
    parsed = read_hotline_csv(path, events.locator, events.categories, coords="gcj02",
                              now=_utc(48))
    assert parsed.problems == [] and list(parsed.frame["category"]) == ["medical", "medical"]
    blng, _ = events.locator.buildings(np.array(["B0000001"]))
    assert parsed.frame.at[0, "lng"] == blng[0]
    assert abs(parsed.frame.at[1, "lng"] - lng) < 1e-5
    assert abs(parsed.frame.at[1, "lat"] - lat) < 1e-5
    assert parsed.frame.at[0, "reported_at"] == pd.Timestamp("2026-04-30T00:00:00Z")


def test_submit_checks_one_request(fresh) -> None:
    ws, _ = fresh
    events = Events(ws)
    lng, lat = _centre(_outside_zones_cell(ws))
    event = submit(events, {"category": "medicine", "lng": str(lng), "lat": str(lat),
                            "description": "降压药"}, channel="online", actor="form",
                   source="form")
    assert event.state == "assigned" and event.channel == "online"
    with pytest.raises(EventInputError, match="not a category"):
        submit(events, {"category": "spaceship", "lng": str(lng), "lat": str(lat)},
               channel="online", actor="form", source="form")
    with pytest.raises(EventInputError, match="needs its place"):
        submit(events, {"category": "medicine"}, channel="online", actor="form",
               source="form")


# -- staff, needs, reports ---------------------------------------------------------------------
def test_staff_roster_is_checked_and_replaced(fresh, tmp_path: Path) -> None:
    ws, _ = fresh
    events = Events(ws)
    roster = read_staff_csv(Path(ws.root).parent / "city" / "grid_staff.csv", events.locator)
    assert set(roster["role"]) == {"grid_worker", "community_officer", "volunteer"}
    assert import_staff(ws, roster, actor="t") == len(roster)
    first_unit = roster[roster["user"] == "grid"]["unit"].tolist()
    assert units_of_user(ws, "grid") == first_unit and units_of_user(ws, "nobody") == []
    bad = tmp_path / "s.csv"
    bad.write_text("网格编码,姓名,角色\nNOPE,张三,网格员\n" + f"{first_unit[0]},李四,厨师\n",
                   encoding="utf-8")
    with pytest.raises(EventInputError, match="2 rows refused, nothing imported") as err:
        read_staff_csv(bad, events.locator)
    assert "line 2: grid unit 'NOPE'" in str(err.value) and "line 3: role '厨师'" in str(err.value)


def test_open_supply_and_medicine_requests_become_zone_demand(fresh) -> None:
    ws, _ = fresh
    events = Events(ws)
    inside = _centre(_lockdown_cell(ws))
    rows = [{"reported_at": "2026-04-30T00:00:00Z", "category": c, "lng": inside[0],
             "lat": inside[1], "phone": f"1390000000{i}"}
            for i, c in enumerate(["supply", "supply", "medicine", "breach"])]
    first = events.intake(_frame(rows), actor="t", now=_utc(1)).first_id
    zone = events.get(first).zone_id
    needs = events.open_needs().set_index(["zone_id", "need"])
    assert needs.at[(zone, "grain"), "requests"] == 2
    assert needs.at[(zone, "grain"), "quantity"] == 10.0
    assert needs.at[(zone, "medicine"), "quantity"] == 1.0
    events.act(first + 2, "reject", actor="disp", note="重复 already served")
    assert (zone, "medicine") not in events.open_needs().set_index(["zone_id", "need"]).index


def test_open_requests_add_to_zone_gaps_and_dispatch_targets_them(fresh) -> None:
    from twin.dispatch import dispatch
    from twin.store import Workspace
    from twin.supply import workspace_gaps
    from twin.zones import active_areas

    ws, _ = fresh
    # Each medicine request stands for a big order here, so that 30 of them open a gap.
    text = ws.config_path.read_text(encoding="utf-8")
    old = 'need = "medicine"\nneed_per_request = 1.0'
    assert old in text
    ws.config_path.write_text(text.replace(old, old + "e3"), encoding="utf-8")
    ws = Workspace.open(ws.root)
    zones = active_areas(ws)
    before = workspace_gaps(ws, level="zone", zones=zones).set_index(["area", "resource"])
    community_before = workspace_gaps(ws, zones=zones).set_index(["area", "resource"])
    events = Events(ws)
    cell = _lockdown_cell(ws)
    zone = next(z for z, (_, cells) in zones.items() if cell in set(map(int, cells)))
    lng, lat = _centre(cell)
    rows = [{"reported_at": "2026-04-30T00:00:00Z", "category": "medicine", "lng": lng,
             "lat": lat, "phone": f"1370000000{i}"} for i in range(30)]
    first = events.intake(_frame(rows), actor="t", now=_utc(1)).first_id
    after = workspace_gaps(ws, level="zone", zones=zones).set_index(["area", "resource"])
    assert after.at[(zone, "medicine"), "requests"] == 30
    assert after.at[(zone, "medicine"), "demand"] == pytest.approx(
        before.at[(zone, "medicine"), "demand"] + 30_000.0)
    assert after["requests"].sum() == 30  # nowhere else
    # Per community (what dispatch plans): the event's community needs 30,000 packs more,
    # and dispatch ships to it.
    community = events.get(first).community_code
    community_after = workspace_gaps(ws, zones=zones).set_index(["area", "resource"])
    key = (community, "medicine")
    assert community_after.at[key, "demand"] == pytest.approx(
        community_before.at[key, "demand"] + 30_000.0)
    assert community_after.at[key, "gap"] > 0
    sinks = dispatch(ws, "medicine", zones=zones).sinks
    assert community in set(sinks["id"])


def test_day_report_by_grid_counts_hand_checked(fresh) -> None:
    ws, _ = fresh
    events = Events(ws)
    lng, lat = _centre(_outside_zones_cell(ws))
    rows = [{"reported_at": f"2026-04-30T0{h}:00:00Z", "category": "other", "lng": lng,
             "lat": lat} for h in (1, 2, 3)]
    rows.append({"reported_at": "2026-04-30T20:00:00Z", "category": "other", "lng": lng,
                 "lat": lat})  # 04:00 on 1 May in Shanghai: another day
    first = events.intake(_frame(rows), actor="t", now=_utc(30)).first_id
    for action, note in (("accept", ""), ("resolve", "done"), ("close", "")):
        events.act(first, action, actor="g", note=note, now=_utc(5))
    report = events.report(by="grid", day=DAY, now=_utc(30))
    row = report.set_index("code").loc[events.get(first).grid_code]
    # 3 reported that day; one closed 4 h after; 2 open; "other" normal is due after 24 h:
    # at the end of the day (16:00 UTC) none is overdue yet.
    assert (row["reported"], row["closed"], row["open"], row["overdue"]) == (3, 1, 2, 0)
    assert row["median_hours_to_close"] == 4.0
    assert row["name"].endswith("网格")
    assert iso(pd.Timestamp("2026-04-30 08:00", tz="Asia/Shanghai")) == "2026-04-30T00:00:00Z"


def test_viewers_see_counts_per_grid_unit_with_small_counts_suppressed(fresh) -> None:
    from dashboards.state import CockpitState

    ws, _ = fresh
    events = Events(ws)
    lng, lat = _centre(_outside_zones_cell(ws))
    rows = [{"reported_at": "2026-04-30T00:00:00Z", "category": "assistance", "lng": lng,
             "lat": lat, "address": "秘密小区1号", "description": "独居老人"}] * 3
    events.intake(_frame(rows), actor="t", now=_utc(1))
    state = CockpitState(ws, role="viewer", layers_on=["events"])
    layer = next(m for m in state.map_layers() if m.id == "event_counts")
    features = layer.data["features"]
    assert [f["properties"]["n"] for f in features] == ["<10"]
    assert set(features[0]["properties"]) == {"name", "n", "fill"}
    text = str(layer.data) + str(layer.tooltip)
    assert "秘密小区" not in text and "独居老人" not in text
    tiles = state.kpis()
    # As every count a viewer sees: 1-9 shown as "<10" (a planner sees the number).
    assert tiles["open_events"]["value"] == 3 and tiles["open_events"]["display"] == "<10"
    planner = CockpitState(ws, role="planner").kpis()
    assert planner["open_events"]["display"] == "3"


def test_the_dispatchers_map_shows_the_zones_days_of_cover_beside_the_events(demo) -> None:
    from dashboards.events import _base_layers, _legend_html_for
    from dashboards.events_state import EventsState
    from twin.users import Users

    ws, _ = demo
    users = Users(ws)
    users.add("map-dispatcher", "dispatcher", "map-pass-123", actor="t")
    state = EventsState(ws, user=users.get("map-dispatcher"))
    base = _base_layers(state)
    ids = [layer.id for layer in base]
    cover = next(layer for layer in base if layer.id.startswith("cover_"))
    # Under the grid lines and the zone outlines, above the land.
    assert ids.index(cover.id) < min(i for i, name in enumerate(ids) if "zone" in name)
    assert len(cover.data["features"]) >= 1
    assert "保障天数" in _legend_html_for(base, state.lang)


def test_the_age_filter_keeps_overdue_and_old_events() -> None:
    from dashboards.events_state import by_age

    now = pd.Timestamp("2026-04-30T12:00:00Z")
    frame = pd.DataFrame({"id": [1, 2, 3],
                          "reported_at": ["2026-04-30T11:00:00Z", "2026-04-30T09:00:00Z",
                                          "2026-04-29T10:00:00Z"],
                          "due_at": ["2026-04-30T11:30:00Z", "2026-04-30T13:00:00Z",
                                     "2026-04-30T12:00:00Z"]})
    assert by_age(frame, "", now)["id"].tolist() == [1, 2, 3]
    assert by_age(frame, "overdue", now)["id"].tolist() == [1]  # due exactly now: not yet
    assert by_age(frame, "2h", now)["id"].tolist() == [2, 3]
    assert by_age(frame, "24h", now)["id"].tolist() == [3]


def test_the_dispatcher_reads_a_refusal_in_the_pages_language(demo) -> None:
    from dashboards.events_state import EventsState
    from twin.users import Users

    ws, _ = demo
    users = Users(ws)
    users.add("zh-dispatcher", "dispatcher", "zh-pass-1234", actor="t")
    user = users.get("zh-dispatcher")
    lng, lat = _centre(_outside_zones_cell(ws))
    zh = EventsState(ws, user=user)
    event_id = zh.submit({"category": "other", "lng": str(lng), "lat": str(lat),
                          "description": "门口堆放杂物"})
    assert event_id is not None
    assert not zh.act([event_id], "confirm")  # assigned, not resolved: refused
    assert zh.message.startswith("未执行：事件已派单，不能回访确认"), zh.message
    en = EventsState(ws, user=user, lang="en")
    assert not en.act([event_id], "confirm")
    assert en.message.startswith("not done: 'confirm' is not allowed"), en.message
    assert not zh.submit({"category": "nonsense", "description": "x"})
    assert zh.message.startswith("未登记：没有“nonsense”这一类别"), zh.message
