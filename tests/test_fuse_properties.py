"""Properties of fusion on random small cities built in code, each fused for real.

Each example lays out districts, streets and communities as nested rectangles, a random count
raster (UTM 51N or WGS84), random buildings (some straddling cell borders), facilities, stocks,
age groups and cases, publishes them into a fresh workspace and fuses it. Then:

- the facts equal the independent hand computation of ``tests/test_fuse.py`` at every level;
- totals are conserved at every resolution and admin level;
- every case point lies in the cell it was assigned (h3-py and the hexagon itself);
- rolling up 10 → 9 → 8 equals rolling up 10 → 8;
- each building is counted exactly once.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from h3.api import basic_int as h3i
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_fuse import (
    ADMIN,
    BASE,
    ROLLUPS,
    City,
    _box_m,
    check_cases,
    check_static,
    expected_cases,
    expected_static,
    h3_cells,
    publish_city,
    value_columns,
    write_population,
)
from twin import Workspace, grid
from twin.facts import Facts
from twin.fuse import fuse
from twin.schema import BUILDING_USES, CASE_STATUSES, FACILITY_KINDS

RESOURCES = ("water", "grain", "masks", "beds", "medicine")
FIRST_DAY = dt.date(2026, 4, 20)


def split(lo: float, hi: float, parts: int, rng: np.random.Generator) -> list[float]:
    """``parts`` intervals covering [lo, hi] exactly, cut at random places."""
    cuts = np.sort(rng.uniform(0.3, 0.7, parts - 1) * (hi - lo) / 1 + lo) if parts > 1 else []
    return [lo, *map(float, cuts), hi]


def random_city(folder: Path, *, seed: int, districts: int, crs: str, pixel_m: float,
                shape: tuple[int, int], n_buildings: int, n_facilities: int,
                n_cases: int) -> City:
    """A random city whose units nest exactly: district → streets → communities."""
    rng = np.random.default_rng(seed)
    lng0, lat0 = 121.40 + rng.uniform(0, 0.15), 31.15 + rng.uniform(0, 0.15)
    width, height = rng.uniform(0.006, 0.015), rng.uniform(0.005, 0.012)
    west, south, east, north = lng0, lat0, lng0 + width, lat0 + height
    units: dict[str, list] = {"district": [], "street": [], "community": []}
    xs = split(west, east, districts, rng)
    for d in range(districts):
        d_code = f"D{d}"
        units["district"].append((d_code, f"区{d}", "", (xs[d], south, xs[d + 1], north)))
        n_streets = int(rng.integers(1, 3))
        ys = split(south, north, n_streets, rng)
        for s in range(n_streets):
            s_code = f"{d_code}S{s}"
            units["street"].append((s_code, f"街道{d}{s}", d_code,
                                    (xs[d], ys[s], xs[d + 1], ys[s + 1])))
            n_comm = int(rng.integers(1, 3))
            cx = split(xs[d], xs[d + 1], n_comm, rng)
            for c in range(n_comm):
                units["community"].append((f"{s_code}C{c}", f"社区{d}{s}{c}", s_code,
                                           (cx[c], ys[s], cx[c + 1], ys[s + 1])))

    def inside(n: int, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        return (rng.uniform(west + margin, east - margin, n),
                rng.uniform(south + margin, north - margin, n))

    values = rng.gamma(0.7, 80.0, shape).round(1)
    values[rng.random(shape) < 0.2] = 0.0
    values[rng.random(shape) < 0.1] = -9999.0
    centre = tuple(float(v[0]) for v in inside(1, 0.001))
    path = folder / "population.tif"
    transform = write_population(path, values, crs=crs, centre=centre, pixel_m=pixel_m)

    b_lng, b_lat = inside(n_buildings, 0.0005)
    floors = rng.integers(1, 30, n_buildings).astype(float)
    floors[rng.random(n_buildings) < 0.3] = np.nan
    heights = np.where(rng.random(n_buildings) < 0.5, rng.uniform(3.5, 80.0, n_buildings),
                       np.nan)
    buildings = pd.DataFrame({
        "id": [f"B{i}" for i in range(n_buildings)],
        "use": rng.choice(BUILDING_USES, n_buildings),
        "floors": floors, "height_m": heights,
        "corners": [_box_m(x, y, w, h) for x, y, w, h in zip(
            b_lng, b_lat, rng.uniform(8, 120, n_buildings), rng.uniform(8, 60, n_buildings),
            strict=True)]})
    f_lng, f_lat = inside(n_facilities)
    facilities = pd.DataFrame({
        "id": [f"F{i}" for i in range(n_facilities)],
        "kind": rng.choice(FACILITY_KINDS, n_facilities),
        "name": [f"设施{i}" for i in range(n_facilities)],
        "capacity": np.where(rng.random(n_facilities) < 0.2, np.nan,
                             rng.integers(0, 500, n_facilities).astype(float)),
        "lng": f_lng, "lat": f_lat})
    n_stocks = int(rng.integers(0, 3 * n_facilities + 1)) if n_facilities else 0
    stocks = pd.DataFrame({
        "facility_id": rng.choice(facilities["id"], n_stocks) if n_stocks else [],
        "resource": rng.choice(RESOURCES, n_stocks),
        "quantity": rng.integers(0, 10_000, n_stocks).astype(float),
        "unit": ["unit"] * n_stocks,
        "as_of": pd.to_datetime(FIRST_DAY) + pd.to_timedelta(
            rng.permutation(60)[:n_stocks], unit="D")})  # distinct dates: a clear latest
    codes = [u[0] for u in units["community"]]
    listed = [c for c in codes if rng.random() < 0.9]
    groups = pd.DataFrame({"community_code": listed,
                           "persons": rng.integers(0, 5000, len(listed)).astype(float),
                           **{g: rng.integers(0, 500, len(listed)).astype(float) for g in
                              ("age_65_plus", "children", "elderly_living_alone",
                               "chronic_patients")}})
    c_lng, c_lat = inside(n_cases)
    cases = pd.DataFrame({
        "id": [f"P{i}" for i in range(n_cases)],
        "report_date": pd.to_datetime(FIRST_DAY) + pd.to_timedelta(
            rng.integers(0, 5, n_cases), unit="D"),
        "status": rng.choice(CASE_STATUSES, n_cases), "lng": c_lng, "lat": c_lat})
    return City(units, path, crs, transform, values, -9999.0, buildings, facilities, stocks,
                groups, cases)


@st.composite
def cities(draw: st.DrawFn) -> dict:
    """Parameters of a random city (the details come from a seeded generator)."""
    return {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "districts": draw(st.integers(1, 2)),
        "crs": draw(st.sampled_from(["EPSG:32651", "EPSG:4326"])),
        "pixel_m": draw(st.sampled_from([40.0, 100.0, 180.0])),
        "shape": (draw(st.integers(1, 6)), draw(st.integers(1, 6))),
        "n_buildings": draw(st.integers(1, 15)),
        "n_facilities": draw(st.integers(1, 5)),
        "n_cases": draw(st.integers(1, 30)),
    }


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=cities())
def test_random_city_properties(tmp_path_factory: pytest.TempPathFactory,
                                params: dict) -> None:
    """Hand computation, conservation, point-in-cell, rollups and single counting."""
    folder = tmp_path_factory.mktemp("city")
    city = random_city(folder, **params)
    ws = Workspace.init(folder / "ws", "随机市", bbox=(121.30, 31.10, 121.65, 31.40))
    publish_city(ws, city)
    result = fuse(ws)
    assert result.status == "fused"
    facts = Facts(ws)

    # 1. The facts equal the hand computation at every level.
    expected = expected_static(city)
    check_static(facts, city, expected)
    check_cases(facts, expected_cases(city, expected))

    # 2. Totals are conserved at every resolution and admin level.
    valid = np.where(city.values > 0, city.values, 0.0).astype(np.float32).astype(float)
    listed = set(city.groups["community_code"])
    for level in (BASE, *ROLLUPS, *ADMIN):
        table = facts.read(level)
        assert table["residents"].sum() == pytest.approx(valid.sum(), rel=1e-9, abs=1e-9)
        assert table["buildings_n"].sum() == len(city.buildings)  # each building once
        for g in ("age_65_plus", "chronic_patients"):
            want = city.groups[city.groups["community_code"].isin(listed)][g].sum()
            assert table[g].sum() == pytest.approx(want, rel=1e-9, abs=1e-9)
        assert sum(table[f"fac_{k}_n"].sum() for k in FACILITY_KINDS) == len(city.facilities)
        for status in CASE_STATUSES:
            assert table[f"cases_{status}"].sum() == (city.cases["status"] == status).sum()

    # 3. Every case point lies in its assigned cell.
    lng, lat = city.cases["lng"].to_numpy(), city.cases["lat"].to_numpy()
    cells = grid.points_to_cells(lng, lat, BASE)
    assert (cells == h3_cells(lng, lat)).all()
    for x, y, cell in zip(lng, lat, cells.tolist(), strict=True):
        hexagon = shapely.Polygon([(b, a) for a, b in h3i.cell_to_boundary(cell)])
        assert hexagon.distance(shapely.Point(x, y)) < 1e-9
    counted = facts.cases(BASE).groupby("cell")["n"].sum()
    assert counted.to_dict() == pd.Series(cells).value_counts().to_dict()

    # 4. Rolling up 10 → 9 → 8 equals 10 → 8.
    r10, r9, r8 = (facts.static(r).set_index("cell") for r in (BASE, 9, 8))
    columns = value_columns(r8)
    via9 = r9[columns].groupby(grid.cell_parents(r9.index.to_numpy(np.uint64), 8)).sum()
    direct = r10[columns].groupby(grid.cell_parents(r10.index.to_numpy(np.uint64), 8)).sum()
    pd.testing.assert_frame_equal(via9.sort_index(), r8[columns].sort_index(),
                                  check_names=False, check_dtype=False, rtol=1e-12)
    pd.testing.assert_frame_equal(direct.sort_index(), r8[columns].sort_index(),
                                  check_names=False, check_dtype=False, rtol=1e-12)

    # 5. Each building counted exactly once, in the cell of its centroid.
    centroids = np.array([np.mean(np.asarray(c), axis=0)
                          for c in city.buildings["corners"]]).reshape(-1, 2)
    want = pd.Series(h3_cells(centroids[:, 0], centroids[:, 1])).value_counts()
    got = r10["buildings_n"][r10["buildings_n"] > 0]
    assert got.to_dict() == want.to_dict()
