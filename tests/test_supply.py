"""Demand, supply, gaps (twin.supply) and dispatch (twin.dispatch), worked out by hand."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import click
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin import Workspace, grid
from twin.cli import supply as supply_cli
from twin.cli._common import TwinGroup
from twin.dispatch import Router, plan
from twin.supply import (
    active_cases,
    community_areas,
    demand,
    gaps,
    needs,
    supply,
)

CONFIG = {
    "supply": {"horizon_days": 7, "service_radius_m": 1500.0, "bed_share_of_active_cases": 0.05},
    "needs": {
        "water": {"unit": "L", "per_capita_daily": 15.0, "tiers": ["lockdown", "control"],
                  "population": "residents", "basis": "Sphere"},
        "grain": {"unit": "kg", "per_capita_daily": 0.25, "tiers": ["lockdown", "control"],
                  "population": "residents", "basis": "CDG 2022"},
        "antigen_tests": {"unit": "test", "per_capita_daily": 1.0, "tiers": ["lockdown"],
                          "population": "residents", "basis": "daily"},
        "masks": {"unit": "piece", "per_capita_daily": 1.0, "tiers": ["control", "prevention"],
                  "population": "residents", "basis": "one a day"},
        "medicine": {"unit": "pack", "per_capita_daily": 0.5, "tiers": ["lockdown", "control"],
                     "population": "chronic_patients", "basis": "test value"},
    },
}
LON0, LAT0 = 121.47, 31.23


# -- the hand-built city ------------------------------------------------------------------
# 37 base cells (a 3-ring disk). Community A: cells west of the centre, B: the rest. One cell
# of A holds all of A's 1000 residents (70 chronic patients); one of B, B's 2000 (140).
# A has a supermarket (water 30,000 L, grain 600 kg); B has a convenience store (water
# 15,000 L, no grain) and a pharmacy (masks 3,000, medicine 300). A warehouse 1 km east
# holds 50,000 L of water.

def _city() -> dict:
    centre = grid.points_to_cells(np.array([LON0]), np.array([LAT0]), 10)
    cells = grid.grid_disk(centre, 3)
    lon, _lat = grid.cell_centres(cells)
    west = lon < lon[cells == centre[0]][0] - 1e-9
    a_cells, b_cells = cells[west], cells[~west]
    base = pd.DataFrame({"cell": cells, "residents": 0.0, "chronic_patients": 0.0,
                         "community_code": np.where(west, "A", "B")})
    base.loc[base["cell"] == a_cells[0], ["residents", "chronic_patients"]] = [1000.0, 70.0]
    base.loc[base["cell"] == b_cells[0], ["residents", "chronic_patients"]] = [2000.0, 140.0]

    def at(cell: np.uint64) -> shapely.Point:
        x, y = grid.cell_centres(np.array([cell], dtype=np.uint64))
        return shapely.Point(float(x[0]), float(y[0]))

    wh = shapely.Point(LON0 + 0.0105, LAT0)  # ~1 km east, outside both communities
    facilities = gpd.GeoDataFrame(
        {"id": ["S1", "C1", "P1", "W1"],
         "kind": ["supermarket", "convenience_store", "pharmacy", "warehouse"],
         "name": ["supermarket", "store", "pharmacy", "warehouse"], "capacity": 0.0},
        geometry=[at(a_cells[1]), at(b_cells[1]), at(b_cells[2]), wh], crs=4326)
    stocks = pd.DataFrame(
        [("S1", "water", 30000, "L", "2026-04-30"), ("S1", "grain", 600, "kg", "2026-04-30"),
         ("S1", "water", 99999, "L", "2026-04-28"),  # stale: the latest as_of wins
         ("C1", "water", 15000, "L", "2026-04-30"), ("P1", "masks", 3000, "piece", "2026-04-30"),
         ("P1", "medicine", 300, "pack", "2026-04-30"),
         ("W1", "water", 50000, "L", "2026-04-30")],
        columns=["facility_id", "resource", "quantity", "unit", "as_of"])
    stocks["as_of"] = pd.to_datetime(stocks["as_of"])
    return {"cells": cells, "a": a_cells, "b": b_cells, "base": base,
            "facilities": facilities, "stocks": stocks, "warehouse": wh}


@pytest.fixture(scope="module")
def city() -> dict:
    return _city()


def test_needs_reads_the_table() -> None:
    table = {n.resource: n for n in needs(CONFIG)}
    assert table["medicine"].population == "chronic_patients"
    assert table["antigen_tests"].tiers == ("lockdown",)
    assert table["water"].per_capita_daily == 15.0


def test_community_tiers(city: dict) -> None:
    plain = community_areas(city["base"])
    assert {k: v[0] for k, v in plain.items()} == {"A": "control", "B": "control"}
    assert len(plain["A"][1]) + len(plain["B"][1]) == 37
    zoned = community_areas(city["base"], {"z1": ("lockdown", city["b"][:1]),
                                           "z2": ("control", city["b"])})
    assert {k: v[0] for k, v in zoned.items()} == {"A": "prevention", "B": "lockdown"}


def test_demand_by_hand(city: dict) -> None:
    areas = community_areas(city["base"])
    frame = demand(areas, city["base"], CONFIG, horizon_days=7).set_index(["area", "resource"])
    # control tier: water, grain, masks, medicine; no antigen tests (lockdown only)
    assert set(frame.loc["A"].index) == {"water", "grain", "masks", "medicine"}
    assert frame.loc[("A", "water"), "demand"] == pytest.approx(1000 * 15 * 7)
    assert frame.loc[("B", "water"), "daily_demand"] == pytest.approx(2000 * 15)
    assert frame.loc[("B", "grain"), "demand"] == pytest.approx(2000 * 0.25 * 7)
    assert frame.loc[("A", "medicine"), "demand"] == pytest.approx(70 * 0.5 * 7)
    locked = demand({"A": ("lockdown", city["a"])}, city["base"], CONFIG, horizon_days=3)
    locked = locked.set_index("resource")
    assert locked.loc["antigen_tests", "demand"] == pytest.approx(1000 * 1 * 3)
    assert "masks" not in locked.index


def test_supply_and_gaps_by_hand(city: dict) -> None:
    areas = community_areas(city["base"])
    frame = gaps(areas, city["base"], CONFIG, facilities=city["facilities"],
                 stocks=city["stocks"], active=200)
    frame = frame.set_index(["area", "resource"])
    # water: each community has a food shop inside holding water; no sharing.
    assert frame.loc[("A", "water"), "supply"] == pytest.approx(30000)
    assert frame.loc[("B", "water"), "supply"] == pytest.approx(15000)
    assert frame.loc[("A", "water"), "gap"] == pytest.approx(105000 - 30000)
    assert frame.loc[("A", "water"), "days_of_cover"] == pytest.approx(2.0)
    assert frame.loc[("B", "water"), "days_of_cover"] == pytest.approx(0.5)
    # grain: B has no grain-holding shop inside, so the supermarket (within 1500 m) serves
    # both and its 600 kg are split in proportion to demand (1750 : 3500).
    assert frame.loc[("A", "grain"), "supply"] == pytest.approx(200)
    assert frame.loc[("B", "grain"), "supply"] == pytest.approx(400)
    # masks and medicine: the pharmacy in B also serves A; split 1 : 2.
    assert frame.loc[("A", "masks"), "supply"] == pytest.approx(1000)
    assert frame.loc[("B", "medicine"), "supply"] == pytest.approx(200)
    assert frame.loc[("A", "medicine"), "gap"] == pytest.approx(70 * 0.5 * 7 - 100)
    assert frame.loc[("A", "medicine"), "days_of_cover"] == pytest.approx(100 / 35)
    # warehouse stock never counts as serving supply
    assert frame.xs("water", level="resource")["supply"].sum() == pytest.approx(45000)
    beds = frame.loc[("city", "beds")]
    assert beds["demand"] == pytest.approx(0.05 * 200)
    assert beds["supply"] == 0 and beds["gap"] == pytest.approx(10)


def test_days_of_cover_is_inf_without_demand(city: dict) -> None:
    base = city["base"].assign(residents=0.0, chronic_patients=0.0)
    frame = gaps(community_areas(base), base, CONFIG, facilities=city["facilities"],
                 stocks=city["stocks"])
    assert np.isinf(frame["days_of_cover"]).all()
    assert (frame["gap"] == 0).all()


def test_active_cases_counts_recent_infections() -> None:
    cases = pd.DataFrame({"cell": 1, "date": pd.to_datetime(
        ["2026-04-01", "2026-04-20", "2026-04-30", "2026-04-30"]),
        "status": ["confirmed", "asymptomatic", "confirmed", "close_contact"], "n": [5, 2, 3, 9]})
    assert active_cases(cases) == 5  # 2 + 3: April 1 is too old, contacts are not cases


def _sources_sinks(city: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    areas = community_areas(city["base"])
    frame = gaps(areas, city["base"], CONFIG, facilities=city["facilities"],
                 stocks=city["stocks"])
    water = frame[frame["resource"] == "water"].rename(columns={"area": "id"})
    centre = {"A": grid.cell_centres(city["a"][:1]), "B": grid.cell_centres(city["b"][:1])}
    water = water.assign(lon=[float(centre[i][0][0]) for i in water["id"]],
                         lat=[float(centre[i][1][0]) for i in water["id"]])
    wh = city["warehouse"]
    sources = pd.DataFrame({"id": ["W1"], "resource": ["water"], "quantity": [50000.0],
                            "lon": [wh.x], "lat": [wh.y]})
    return sources, water


def test_dispatch_by_hand_fills_the_worst_first(city: dict) -> None:
    sources, sinks = _sources_sinks(city)
    result = plan(sources, sinks, lockdown_cells=np.empty(0, dtype=np.uint64))
    shipped = result.rows.set_index("to")["quantity"]
    # Short of stock (50,000 L for gaps of 75,000 and 195,000): raise the lowest cover
    # first. Equal final cover t: (15000 + xB)/30000 = (30000 + xA)/15000, xA + xB = 50000
    # -> t = 95000/45000 = 2.111 days, xB = 48,333.3 L, xA = 1,666.7 L.
    assert shipped["B"] == pytest.approx(30000 * 95000 / 45000 - 15000, rel=1e-6)
    assert shipped["A"] == pytest.approx(15000 * 95000 / 45000 - 30000, rel=1e-6)
    assert shipped.sum() == pytest.approx(50000, rel=1e-6)
    cover = result.sinks.set_index("id")["cover_after"]
    assert cover["A"] == pytest.approx(cover["B"], rel=1e-6)
    row = result.rows.iloc[0]
    assert row["via"] == "straight" and 500 < row["distance_m"] < 2000


def test_dispatch_prefers_the_nearer_source(city: dict) -> None:
    sources, sinks = _sources_sinks(city)
    far = sources.assign(id="W2", lon=sources["lon"] + 0.03)
    both = pd.concat([sources.assign(quantity=1e6), far.assign(quantity=1e6)])
    result = plan(both, sinks, lockdown_cells=np.empty(0, dtype=np.uint64))
    assert set(result.rows["from"]) == {"W1"}
    assert result.rows.set_index("to")["quantity"].to_dict() == pytest.approx(
        sinks.set_index("id")["gap"].to_dict())


def _enters_lockdown(line: shapely.LineString, lockdown: np.ndarray) -> bool:
    """Sample the path every ~1 m and look up each point's cell."""
    coords = np.asarray(shapely.get_coordinates(line))
    points = []
    for p, q in itertools.pairwise(coords):
        n = max(2, int(np.hypot(*(q - p)) / 1e-5))
        t = np.linspace(0, 1, n)[:, None]
        points.append(p + t * (q - p))
    pts = np.vstack(points)
    return bool(np.isin(grid.points_to_cells(pts[:, 0], pts[:, 1], 10), lockdown).any())


def test_detour_around_a_lockdown_wall(city: dict) -> None:
    sources, sinks = _sources_sinks(city)
    wh = city["warehouse"]
    # a north-south wall of lockdown cells halfway between the warehouse and the city
    lat = np.linspace(LAT0 - 0.004, LAT0 + 0.004, 40)
    wall = np.unique(grid.points_to_cells(np.full(40, wh.x - 0.005), lat, 10))
    straight = plan(sources, sinks, lockdown_cells=np.empty(0, dtype=np.uint64))
    result = plan(sources, sinks, lockdown_cells=wall)
    assert len(result.rows) == 2 and set(result.rows["via"]) == {"detour"}
    for line in result.routes.geometry:
        assert not _enters_lockdown(line, wall)
    longer = result.rows.set_index("to")["distance_m"]
    assert (longer > straight.rows.set_index("to")["distance_m"]).all()


def test_sink_inside_lockdown_is_served_at_its_gate(city: dict) -> None:
    sources, sinks = _sources_sinks(city)
    result = plan(sources, sinks, lockdown_cells=city["b"])
    assert result.sinks.set_index("id").loc["B", "planned"] > 0
    for line in result.routes.geometry:
        assert not _enters_lockdown(line, city["b"])


def test_source_inside_lockdown_ships_nothing(city: dict) -> None:
    sources, sinks = _sources_sinks(city)
    wh = city["warehouse"]
    cell = grid.points_to_cells(np.array([wh.x]), np.array([wh.y]), 10)
    result = plan(sources, sinks, lockdown_cells=cell)
    assert result.rows.empty and "inside a lockdown zone" in result.notes[0]


def test_roads_route_around_a_closed_road(city: dict) -> None:
    sources, sinks = _sources_sinks(city)
    sinks = sinks[sinks["id"] == "B"]
    wh = city["warehouse"]
    bx, by = float(sinks["lon"].iloc[0]), float(sinks["lat"].iloc[0])
    # two roads: straight west, and a detour north of it
    north = by + 0.006
    roads = gpd.GeoDataFrame({"class": ["local"] * 5, "speed_kmh": [30.0] * 5}, geometry=[
        shapely.LineString([(wh.x, wh.y), ((wh.x + bx) / 2, wh.y)]),
        shapely.LineString([((wh.x + bx) / 2, wh.y), (bx, by)]),
        shapely.LineString([(wh.x, wh.y), (wh.x, north)]),
        shapely.LineString([(wh.x, north), (bx, north)]),
        shapely.LineString([(bx, north), (bx, by)])], crs=4326)
    open_plan = plan(sources, sinks, lockdown_cells=np.empty(0, dtype=np.uint64), roads=roads)
    block = grid.points_to_cells(np.array([(wh.x + bx) / 2]), np.array([wh.y]), 10)
    closed = plan(sources, sinks, lockdown_cells=block, roads=roads)
    assert open_plan.rows["via"].iloc[0] == "road" and closed.rows["via"].iloc[0] == "road"
    assert closed.rows["distance_m"].iloc[0] > open_plan.rows["distance_m"].iloc[0] + 500
    assert not _enters_lockdown(closed.routes.geometry.iloc[0], block)


# -- properties -----------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(residents=st.lists(st.floats(0, 5000), min_size=37, max_size=37),
       factor=st.floats(0.1, 10), horizon=st.floats(0.5, 30))
def test_demand_scales_linearly(residents: list[float], factor: float, horizon: float) -> None:
    city = _CITY
    base = city["base"].assign(residents=residents)
    areas = community_areas(base)
    one = demand(areas, base, CONFIG, horizon_days=horizon)["demand"].to_numpy()
    scaled = demand(areas, base.assign(residents=base["residents"] * factor), CONFIG,
                    horizon_days=horizon)
    longer = demand(areas, base, CONFIG, horizon_days=horizon * factor)
    water = (one, scaled["demand"].to_numpy(), longer["demand"].to_numpy())
    mask = (scaled["resource"] != "medicine").to_numpy()  # medicine counts chronic patients
    assert water[1][mask] == pytest.approx(water[0][mask] * factor, rel=1e-9, abs=1e-9)
    assert water[2] == pytest.approx(water[0] * factor, rel=1e-9, abs=1e-9)


_CITY = _city()
_DISK = grid.grid_disk(grid.points_to_cells(np.array([LON0]), np.array([LAT0]), 10), 8)
_LON, _LAT = grid.cell_centres(_DISK)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_dispatch_is_feasible(data: st.DataObject) -> None:
    n_src = data.draw(st.integers(1, 3))
    n_snk = data.draw(st.integers(1, 5))
    picks = data.draw(st.lists(st.integers(0, len(_DISK) - 1), min_size=n_src + n_snk,
                               max_size=n_src + n_snk, unique=True))
    src, snk = picks[:n_src], picks[n_src:]
    sources = pd.DataFrame({"id": [f"W{i}" for i in range(n_src)], "resource": "water",
                            "quantity": data.draw(st.lists(st.floats(0, 1e5), min_size=n_src,
                                                           max_size=n_src)),
                            "lon": _LON[src], "lat": _LAT[src]})
    sinks = pd.DataFrame({"id": [f"K{i}" for i in range(n_snk)], "resource": "water",
                          "gap": data.draw(st.lists(st.floats(0, 1e5), min_size=n_snk,
                                                    max_size=n_snk)),
                          "supply": data.draw(st.lists(st.floats(0, 1e4), min_size=n_snk,
                                                       max_size=n_snk)),
                          "daily_demand": data.draw(st.lists(st.floats(1, 1e4), min_size=n_snk,
                                                             max_size=n_snk)),
                          "lon": _LON[snk], "lat": _LAT[snk]})
    free = [i for i in range(len(_DISK)) if i not in src]
    locked = data.draw(st.lists(st.sampled_from(free), max_size=40, unique=True))
    lockdown = _DISK[locked]
    result = plan(sources, sinks, lockdown_cells=lockdown)
    rows = result.rows
    sent = rows.groupby("from")["quantity"].sum()
    for sid, q in sources.set_index("id")["quantity"].items():
        assert sent.get(sid, 0.0) <= q * (1 + 1e-9) + 1e-9
    got = rows.groupby("to")["quantity"].sum()
    for kid, gap in sinks.set_index("id")["gap"].items():
        assert got.get(kid, 0.0) <= gap * (1 + 1e-9) + 1e-9
    assert (rows["quantity"] > 0).all()
    for line in result.routes.geometry:
        assert not _enters_lockdown(line, lockdown)


def test_router_blocked_is_exact() -> None:
    router = Router(_DISK[:1])
    x, y = grid.cell_centres(_DISK[:1])
    inside = shapely.LineString([(x[0] - 0.01, y[0]), (x[0] + 0.01, y[0])])
    away = shapely.LineString([(x[0] - 0.01, y[0] + 0.01), (x[0] + 0.01, y[0] + 0.01)])
    assert router.blocked([inside, away]).tolist() == [True, False]


# -- the small demo city --------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    from tests.conftest import fused_demo

    return fused_demo(tmp_path_factory.mktemp("supply"))[0]


@pytest.mark.slow
def test_demo_gaps_and_plan_are_plausible(demo_ws: Workspace) -> None:
    from twin.dispatch import dispatch
    from twin.facts import Facts
    from twin.supply import workspace_gaps

    table = workspace_gaps(demo_ws)
    assert (table["gap"] > 0).any()
    assert set(table["resource"]) >= {"water", "grain", "masks", "medicine", "beds"}
    # shared stock is not double counted: supply per resource ≤ non-warehouse stock
    stocks = demo_ws.read("stocks")
    total = stocks.groupby("resource")["quantity"].sum()
    per = table[table["area"] != "city"].groupby("resource")["supply"].sum()
    assert (per <= total.reindex(per.index).fillna(0) + 1e-6).all()

    base = Facts(demo_ws).static(10, ["residents", "community_code"])
    wh = demo_ws.read("facilities").query("kind == 'warehouse'").geometry.iloc[0]
    wh_cell = grid.points_to_cells(np.array([wh.x]), np.array([wh.y]), 10)[0]
    busiest = base.groupby("community_code")["residents"].sum().idxmax()
    lock = base.loc[(base["community_code"] == busiest) & (base["cell"] != wh_cell), "cell"]
    zones = {"z1": ("lockdown", lock.to_numpy())}
    result = dispatch(demo_ws, zones=zones)
    assert len(result.rows) > 0
    assert set(result.rows["via"]) <= {"road", "off-road"}
    sent = result.rows.groupby(["from", "resource"])["quantity"].sum()
    held = stocks.groupby(["facility_id", "resource"])["quantity"].sum()
    for key, q in sent.items():
        assert q <= held[key] * (1 + 1e-9)
    for line in result.routes.geometry:
        assert not _enters_lockdown(line, lock.to_numpy())


def _cli() -> click.Group:
    group = TwinGroup()
    supply_cli.register(group)
    return group


@pytest.mark.slow
def test_cli(demo_ws: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(_cli(), ["gaps", str(demo_ws.root), "--json", "--horizon", "3",
                                 "--csv", str(tmp_path / "g.csv")])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert any(r["gap"] > 0 for r in rows)
    assert len(pd.read_csv(tmp_path / "g.csv")) == len(rows)
    water = next(r for r in rows if r["resource"] == "water")
    assert water["demand"] == pytest.approx(water["daily_demand"] * 3)
    text = runner.invoke(_cli(), ["gaps", str(demo_ws.root)])
    assert text.exit_code == 0 and "water" in text.output
    zone = runner.invoke(_cli(), ["gaps", str(demo_ws.root), "--level", "zone"])
    assert zone.exit_code == 1 and "no zones yet" in zone.output

    out = runner.invoke(_cli(), ["dispatch", str(demo_ws.root), "--resource", "water",
                                 "--json", "--csv", str(tmp_path / "d.csv"),
                                 "--geojson", str(tmp_path / "d.geojson")])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["routes"] and {r["resource"] for r in data["routes"]} == {"water"}
    lines = gpd.read_file(tmp_path / "d.geojson")
    assert len(lines) == len(data["routes"]) and (lines.geom_type == "LineString").all()
    assert math.isclose(pd.read_csv(tmp_path / "d.csv")["quantity"].sum(),
                        sum(r["quantity"] for r in data["routes"]), rel_tol=1e-9)
    text = runner.invoke(_cli(), ["dispatch", str(demo_ws.root)])
    assert text.exit_code == 0, text.output
    assert "water" in text.output and "road" in text.output


def test_supply_alone_splits_in_proportion(city: dict) -> None:
    areas = community_areas(city["base"])
    want = demand(areas, city["base"], CONFIG, horizon_days=7)
    have = supply(areas, want, city["facilities"], city["stocks"], service_radius_m=1500)
    grain = have[have["resource"] == "grain"].set_index("area")
    assert grain["facilities"].to_dict() == {"A": ["S1"], "B": ["S1"]}
    # with a radius too small to reach, B gets nothing
    none = supply(areas, want, city["facilities"], city["stocks"], service_radius_m=1)
    assert none.set_index(["area", "resource"]).loc[("B", "grain"), "supply"] == 0
