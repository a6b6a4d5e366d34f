"""Fusion of layers into H3 cell facts: known answers, conservation, rollups, incrementality.

The expected facts are computed here independently of :mod:`twin.fuse`: cells with h3-py,
footprints with ``pyproj.Geod``, the raster split by hand (dasymetric pixels shared by floor
area, other pixels in ``k × k`` samples, k from the documented rule), admin units by testing
each cell centre against the unit rectangles.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from h3.api import basic_int as h3i
from pyproj import Geod, Transformer

from tests.conftest import run_twin
from twin import Workspace, grid
from twin.facts import Facts, FactsNotFoundError
from twin.fuse import FuseError, fuse
from twin.schema import BUILDING_USES, CASE_STATUSES, FACILITY_KINDS

BASE = 10
ROLLUPS = (9, 8, 7)
ADMIN = ("community", "street", "district")
GROUPS = ("age_65_plus", "children", "elderly_living_alone", "chronic_patients")
RESIDENTIAL = ("residential", "mixed")
#: H3's average edge length at resolution 10 (m): k = ceil(pixel / (edge / 2)).
EDGE_R10_M = 75.863783
GEOD = Geod(ellps="WGS84")


# == an independent reference =====================================================================
@dataclass
class City:
    """A small city described in plain numbers, to publish and to compute facts from by hand.

    ``units`` maps a level to rows ``(code, name, parent_code, (west, south, east, north))``;
    building ``corners`` are four (lng, lat) pairs; the raster is ``values`` (rows, cols) in
    ``raster_crs`` with ``transform``.
    """

    units: dict[str, list[tuple[str, str, str, tuple[float, float, float, float]]]]
    raster_path: Path
    raster_crs: str
    transform: rasterio.Affine
    values: np.ndarray
    nodata: float
    buildings: pd.DataFrame  # id, use, floors, height_m, corners
    facilities: pd.DataFrame  # id, kind, name, capacity, lng, lat
    stocks: pd.DataFrame  # facility_id, resource, quantity, unit, as_of
    groups: pd.DataFrame  # community_code, persons, age groups
    cases: pd.DataFrame  # id, report_date, status, lng, lat


def write_population(path: Path, values: np.ndarray, *, crs: str, centre: tuple[float, float],
                     pixel_m: float, nodata: float = -9999.0) -> rasterio.Affine:
    """A float32 GeoTIFF of counts centred on ``centre`` (lng, lat); returns its transform."""
    rows, cols = values.shape
    x, y = Transformer.from_crs(4326, crs, always_xy=True).transform(*centre)
    size = pixel_m / 111_320.0 if crs == "EPSG:4326" else pixel_m
    transform = Affine(size, 0, x - cols * size / 2, 0, -size, y + rows * size / 2)
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1,
                       dtype="float32", crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(values.astype("float32")[None])
    return transform


def publish_city(ws: Workspace, city: City) -> None:
    """Publish every layer of ``city`` straight into the workspace (no ingest)."""
    rows = [(level, code, name, parent, shapely.box(*box))
            for level, units in city.units.items() for code, name, parent, box in units]
    ws.publish("boundaries", "boundaries", gpd.GeoDataFrame(
        {"level": [r[0] for r in rows], "code": [r[1] for r in rows],
         "name": [r[2] for r in rows], "parent_code": [r[3] for r in rows]},
        geometry=[r[4] for r in rows], crs=4326))
    ws.publish_raster("population", "population", city.raster_path)
    ws.publish("population_groups", "population", city.groups)
    ws.publish("buildings", "buildings", buildings_frame(city.buildings))
    f = city.facilities
    ws.publish("facilities", "facilities", gpd.GeoDataFrame(
        f[["id", "kind", "name", "capacity"]], geometry=shapely.points(f["lng"], f["lat"]),
        crs=4326))
    ws.publish("stocks", "stocks", city.stocks)
    ws.publish("cases", "cases", cases_frame(city.cases))


def buildings_frame(b: pd.DataFrame) -> gpd.GeoDataFrame:
    """The buildings as a publishable GeoDataFrame."""
    return gpd.GeoDataFrame(b[["id", "use", "floors", "height_m"]],
                            geometry=[shapely.Polygon(c) for c in b["corners"]], crs=4326)


def cases_frame(c: pd.DataFrame) -> gpd.GeoDataFrame:
    """The cases as a publishable GeoDataFrame."""
    return gpd.GeoDataFrame(c[["id", "report_date", "status"]],
                            geometry=shapely.points(c["lng"], c["lat"]), crs=4326)


def h3_cells(lng: np.ndarray, lat: np.ndarray, res: int = BASE) -> np.ndarray:
    """h3-py's cell of each point."""
    return np.array([h3i.latlng_to_cell(float(b), float(a), res)
                     for a, b in zip(np.atleast_1d(lng), np.atleast_1d(lat), strict=True)],
                    dtype=np.uint64)


def geod_area_m2(corners: list[tuple[float, float]]) -> float:
    """Geodesic area of a polygon on the WGS84 ellipsoid (pyproj.Geod)."""
    area, _ = GEOD.geometry_area_perimeter(shapely.Polygon(corners))
    return abs(area)


def effective_floors(floors: float, height_m: float) -> float:
    """Floors as documented: the given number (at least 1), else height / 3 m, else 1."""
    if np.isfinite(floors):
        return max(float(floors), 1.0)
    if np.isfinite(height_m):
        return max(1.0, float(np.round(height_m / 3.0)))
    return 1.0


def unit_of(city: City, level: str, lng: float, lat: float) -> str:
    """The unit of ``level`` whose rectangle holds the point, else the nearest one."""
    units = city.units[level]
    for code, _, _, (w, s, e, n) in units:
        if w < lng < e and s < lat < n:
            return code
    point = shapely.Point(lng, lat)
    distances = [shapely.box(*box).distance(point) for _, _, _, box in units]
    return units[int(np.argmin(distances))][0]


def expected_static(city: City) -> pd.DataFrame:
    """Per base cell: every static fact, computed by hand. Index ``cell``, codes as columns."""
    records: list[tuple[int, str, float]] = []
    b = city.buildings
    centroid = np.array([np.mean(np.asarray(c), axis=0) for c in b["corners"]]).reshape(-1, 2)
    b_cells = h3_cells(centroid[:, 0], centroid[:, 1])
    footprint = np.array([geod_area_m2(c) for c in b["corners"]], dtype=float)
    floors = np.array([effective_floors(f, h) for f, h in zip(b["floors"], b["height_m"],
                                                               strict=True)], dtype=float)
    floor_area = footprint * floors
    for cell, use, fp, fa in zip(b_cells.tolist(), b["use"], footprint, floor_area,
                                 strict=True):
        records += [(cell, "buildings_n", 1.0), (cell, "footprint_m2", fp),
                    (cell, "floor_m2", fa), (cell, f"buildings_{use}_n", 1.0),
                    (cell, f"floor_m2_{use}", fa)]

    # Residents: dasymetric pixels by residential floor area, the others in k × k samples.
    values = np.where(np.isfinite(city.values) & (city.values != city.nodata)
                      & (city.values > 0), city.values, 0.0).astype(np.float32).astype(float)
    rows, cols = values.shape
    weight = np.where(np.isin(b["use"], RESIDENTIAL), floor_area, 0.0)
    bx, by = Transformer.from_crs(4326, city.raster_crs, always_xy=True).transform(
        centroid[:, 0], centroid[:, 1])
    bcol, brow = ~city.transform @ (np.asarray(bx), np.asarray(by))
    bcol, brow = np.floor(bcol).astype(int), np.floor(brow).astype(int)
    if city.raster_crs == "EPSG:4326":  # degrees to metres at the raster's middle latitude
        middle = city.transform.f + city.transform.e * rows / 2
        pixel_m = max(abs(city.transform.a) * 111_320.0 * math.cos(math.radians(middle)),
                      abs(city.transform.e) * 111_320.0)
    else:
        pixel_m = abs(city.transform.a)
    k = max(1, math.ceil(pixel_m / (EDGE_R10_M / 2)))
    to_wgs84 = Transformer.from_crs(city.raster_crs, 4326, always_xy=True)
    for r in range(rows):
        for c in range(cols):
            v = values[r, c]
            if v <= 0:
                continue
            here = np.flatnonzero((brow == r) & (bcol == c) & (weight > 0))
            if len(here):
                for i in here:
                    records.append((int(b_cells[i]), "residents",
                                    v * weight[i] / weight[here].sum()))
                continue
            offsets = (np.arange(k) + 0.5) / k
            du, dv = np.meshgrid(offsets, offsets)
            x, y = city.transform @ (c + du.ravel(), r + dv.ravel())
            lng, lat = to_wgs84.transform(x, y)
            records += [(cell, "residents", v / k**2) for cell in h3_cells(lng, lat).tolist()]

    f = city.facilities
    f_cells = h3_cells(f["lng"].to_numpy(), f["lat"].to_numpy())
    for cell, kind, cap in zip(f_cells.tolist(), f["kind"], f["capacity"], strict=True):
        records += [(cell, f"fac_{kind}_n", 1.0),
                    (cell, f"fac_{kind}_capacity", 0.0 if pd.isna(cap) else float(cap))]
    facility_cell = dict(zip(f["id"], f_cells.tolist(), strict=True))
    latest = (city.stocks.sort_values("as_of", kind="stable")
              .groupby(["facility_id", "resource"]).tail(1))
    for fid, resource, quantity in zip(latest["facility_id"], latest["resource"],
                                       latest["quantity"], strict=True):
        if fid in facility_cell:
            records.append((facility_cell[fid], f"stock_{resource}", float(quantity)))

    table = (pd.DataFrame(records, columns=["cell", "column", "value"])
             .pivot_table(index="cell", columns="column", values="value", aggfunc="sum",
                          fill_value=0.0))
    table.columns.name = None
    if "residents" not in table:
        table["residents"] = 0.0
    _add_codes(city, table)

    # Age groups: each community's totals in proportion to the residents of its cells.
    spread: list[tuple[int, str, float]] = []
    for row in city.groups.itertuples(index=False):
        code = row.community_code
        if code not in {u[0] for u in city.units["community"]}:
            continue
        mine = table[(table["community_code"] == code) & (table["residents"] > 0)]
        if len(mine):
            shares = mine["residents"] / mine["residents"].sum()
        else:
            # No residents: evenly over the community's own cells (centre inside it), else
            # over the cells whose centre lies in its polygon, else the cell at a point in it.
            box = shapely.box(*next(u[3] for u in city.units["community"] if u[0] == code))
            own = [int(c) for c in table.index[table["community_code"] == code]]
            if not own:
                own = [h3i.str_to_int(c) if isinstance(c, str) else int(c)
                       for c in h3.geo_to_cells(box, BASE)]
            if not own:
                p = shapely.point_on_surface(box)
                own = [int(h3_cells(p.x, p.y)[0])]
            shares = pd.Series(1.0 / len(own), index=own)
        for cell, share in shares.items():
            spread += [(int(cell), g, getattr(row, g) * share) for g in GROUPS]
    groups = (pd.DataFrame(spread, columns=["cell", "column", "value"])
              .pivot_table(index="cell", columns="column", values="value", aggfunc="sum",
                           fill_value=0.0))
    new = groups.index.difference(table.index)
    if len(new):
        extra = pd.DataFrame(0.0, index=new, columns=[c for c in table if not
                                                      c.endswith("_code")])
        _add_codes(city, extra)
        table = pd.concat([table, extra]).sort_index()
    for g in GROUPS:
        table[g] = groups[g].reindex(table.index).fillna(0.0) if g in groups else 0.0
    table.index = table.index.astype(np.uint64)
    table.index.name = "cell"
    return table


def _add_codes(city: City, table: pd.DataFrame) -> None:
    centres = [h3i.cell_to_latlng(int(c)) for c in table.index]
    for level in ADMIN:
        table[f"{level}_code"] = [unit_of(city, level, lng, lat) for lat, lng in centres]


def expected_cases(city: City, static: pd.DataFrame) -> pd.DataFrame:
    """One row per case: its base cell, parents, admin codes (through the cell), date, status."""
    c = city.cases
    cells = h3_cells(c["lng"].to_numpy(), c["lat"].to_numpy())
    frame = pd.DataFrame({"cell": cells, "date": pd.to_datetime(c["report_date"]).dt.floor("D"),
                          "status": c["status"].to_numpy()})
    for res in ROLLUPS:
        frame[f"r{res}"] = [h3i.cell_to_parent(int(x), res) for x in cells]
    for level in ADMIN:
        known = static[f"{level}_code"]
        frame[level] = [known[x] if x in known.index else
                        unit_of(city, level, *reversed(h3i.cell_to_latlng(int(x))))
                        for x in cells.tolist()]
    return frame


def value_columns(frame: pd.DataFrame) -> list[str]:
    """The numeric fact columns of a static table (not keys, names or codes)."""
    return [c for c in frame.columns if c not in ("cell", "code", "name", "parent_code")
            and not c.endswith("_code")]


def assert_same_values(got: pd.DataFrame, want: pd.DataFrame, where: str) -> None:
    """Same rows (index) and, for every fact column of either, the same values.

    Counts (``*_n``) must be equal; areas within the documented 0.01 % of ``pyproj.Geod``;
    everything else (residents, groups, capacities, stocks) within 1e-6 relative.
    """
    assert sorted(got.index.tolist()) == sorted(want.index.tolist()), where
    got = got.loc[want.index]
    for col in sorted(set(value_columns(got)) | set(value_columns(want))):
        a = got[col].to_numpy(float) if col in got else np.zeros(len(got))
        b = want[col].to_numpy(float) if col in want else np.zeros(len(want))
        if col.endswith("_n"):
            assert a.tolist() == b.tolist(), f"{where}: {col}"
            continue
        rtol = 1e-4 if col.startswith(("footprint_m2", "floor_m2")) else 1e-6
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6, err_msg=f"{where}: {col}")


def check_static(facts: Facts, city: City, expected: pd.DataFrame) -> None:
    """Compare the fact set with the hand-computed facts at every level."""
    base = facts.static(BASE).set_index("cell")
    assert_same_values(base, expected, f"r{BASE}")
    for level in ADMIN:
        assert base[f"{level}_code"].loc[expected.index].tolist() == \
            expected[f"{level}_code"].tolist(), level
    numeric = value_columns(expected)
    for res in ROLLUPS:
        parents = [h3i.cell_to_parent(int(c), res) for c in expected.index]
        want = expected[numeric].groupby(np.array(parents, dtype=np.uint64)).sum()
        assert_same_values(facts.static(res).set_index("cell"), want, f"r{res}")
    for level in ADMIN:
        want = expected.groupby(f"{level}_code")[numeric].sum()
        want = want.reindex([u[0] for u in city.units[level]], fill_value=0.0)
        got = facts.static(level).set_index("code")
        assert_same_values(got, want, level)
        names = {u[0]: (u[1], u[2]) for u in city.units[level]}
        assert {c: (n, p) for c, n, p in zip(got.index, got["name"], got["parent_code"],
                                              strict=True)} == names


def check_cases(facts: Facts, cases: pd.DataFrame) -> None:
    """The case series at every level equals counting the case points by hand."""
    for level, key in ((BASE, "cell"), *((r, f"r{r}") for r in ROLLUPS),
                       *((lv, lv) for lv in ADMIN)):
        want = (cases.groupby([key, "date", "status"]).size().rename("n").reset_index()
                .rename(columns={key: "key"}))
        got = facts.cases(level)
        got = got.rename(columns={got.columns[0]: "key"})
        want_set = {(k, pd.Timestamp(d), s, n) for k, d, s, n in want.itertuples(index=False)}
        got_set = {(k, pd.Timestamp(d), s, n) for k, d, s, n in
                   got[["key", "date", "status", "n"]].itertuples(index=False)}
        assert got_set == want_set, level


# == the tiny hand-made city ======================================================================
WEST, SOUTH, EAST, NORTH = 121.460, 31.225, 121.472, 31.233
MID_LNG, MID_LAT = 121.466, 31.229
DAYS = [dt.date(2026, 4, 28), dt.date(2026, 4, 29), dt.date(2026, 4, 30)]


def _box_m(lng: float, lat: float, width_m: float, height_m: float) -> list[tuple[float, float]]:
    """Corners of a lng/lat rectangle of about ``width_m × height_m`` centred on the point."""
    dx = width_m / 2 / (111_320.0 * math.cos(math.radians(lat)))
    dy = height_m / 2 / 110_574.0
    return [(lng - dx, lat - dy), (lng + dx, lat - dy), (lng + dx, lat + dy),
            (lng - dx, lat + dy)]


def _straddling_centre(lng: float, lat: float) -> tuple[float, float, int, int]:
    """A point 5 m inside the cell at (lng, lat), next to the edge with a neighbour.

    Returns the point and the two cells (the point's, the neighbour's).
    """
    a = h3i.latlng_to_cell(lat, lng, BASE)
    b = sorted(h3i.grid_ring(a, 1))[0]
    edge = np.array(h3i.directed_edge_to_boundary(h3i.cells_to_directed_edge(a, b)))
    mid_lat, mid_lng = edge.mean(axis=0)
    c_lat, c_lng = h3i.cell_to_latlng(a)
    t = 5.0 / GEOD.inv(mid_lng, mid_lat, c_lng, c_lat)[2]
    return mid_lng + t * (c_lng - mid_lng), mid_lat + t * (c_lat - mid_lat), a, b


def make_tiny_city(folder: Path) -> City:
    """2 districts, 2 streets, 3 communities; a 3×3 raster; 4 buildings; 3 facilities."""
    units = {
        "district": [("D1", "东区", "", (WEST, SOUTH, MID_LNG, NORTH)),
                     ("D2", "西区", "", (MID_LNG, SOUTH, EAST, NORTH))],
        "street": [("S1", "东街道", "D1", (WEST, SOUTH, MID_LNG, NORTH)),
                   ("S2", "西街道", "D2", (MID_LNG, SOUTH, EAST, NORTH))],
        "community": [("C1", "南社区", "S1", (WEST, SOUTH, MID_LNG, MID_LAT)),
                      ("C2", "北社区", "S1", (WEST, MID_LAT, MID_LNG, NORTH)),
                      ("C3", "西社区", "S2", (MID_LNG, SOUTH, EAST, NORTH))],
    }
    values = np.array([[100.0, 20.0, 30.0], [40.0, 0.0, 60.0], [70.0, 80.0, -9999.0]])
    path = folder / "population.tif"
    transform = write_population(path, values, crs="EPSG:32651", centre=(MID_LNG, MID_LAT),
                                 pixel_m=100.0)
    # R1 and R2 stand in pixel (0, 0), with equal footprints and 1 and 3 floors.
    to_wgs84 = Transformer.from_crs("EPSG:32651", 4326, always_xy=True)
    (r1_lng, r2_lng), (r1_lat, r2_lat) = to_wgs84.transform(
        *(transform @ (np.array([0.3, 0.7]), np.array([0.3, 0.7]))))
    s_lng, s_lat, _, _ = _straddling_centre(121.4630, 31.2315)
    buildings = pd.DataFrame({
        "id": ["R1", "R2", "B3", "B4"],
        "use": ["residential", "mixed", "commercial", "industrial"],
        "floors": [1.0, 3.0, 2.0, np.nan],
        "height_m": [3.0, np.nan, 7.0, 10.0],  # B4: no floors, 10 m -> 3 floors
        "corners": [_box_m(r1_lng, r1_lat, 16, 10), _box_m(r2_lng, r2_lat, 16, 10),
                    _box_m(s_lng, s_lat, 30, 20), _box_m(121.4695, 31.2265, 160, 60)],
    })
    facilities = pd.DataFrame({
        "id": ["F1", "F2", "F3"], "kind": ["hospital", "pharmacy", "warehouse"],
        "name": ["第一医院", "药店", "中心仓库"], "capacity": [500.0, np.nan, 10000.0],
        "lng": [121.4615, 121.4625, 121.4700], "lat": [31.2265, 31.2315, 31.2300]})
    d = pd.to_datetime
    stocks = pd.DataFrame({
        "facility_id": ["F1", "F1", "F1", "F3", "F3", "F3", "F2"],
        "resource": ["beds", "beds", "masks", "water", "water", "grain", "medicine"],
        "quantity": [450.0, 480.0, 1000.0, 5000.0, 3000.0, 2000.0, 300.0],
        "unit": ["bed", "bed", "piece", "L", "L", "kg", "pack"],
        "as_of": d(["2026-04-28", "2026-04-30", "2026-04-30", "2026-04-29", "2026-04-27",
                    "2026-04-30", "2026-04-30"])})
    groups = pd.DataFrame({
        "community_code": ["C1", "C2", "C3"], "persons": [150.0, 200.0, 50.0],
        "age_65_plus": [30.0, 40.0, 10.0], "children": [20.0, 25.0, 5.0],
        "elderly_living_alone": [5.0, 8.0, 2.0], "chronic_patients": [12.0, 20.0, 4.0]})
    lng = [121.4615, 121.4616, 121.4652, 121.4668, 121.4631, 121.4700, 121.4702, 121.4645,
           121.4712, 121.4612]
    lat = [31.2265, 31.2266, 31.2290, 31.2283, 31.2316, 31.2300, 31.2261, 31.2321,
           31.2326, 31.2262]
    status = ["confirmed", "confirmed", "asymptomatic", "suspected", "close_contact",
              "confirmed", "asymptomatic", "confirmed", "asymptomatic", "confirmed"]
    day = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    cases = pd.DataFrame({"id": [f"P{i:03d}" for i in range(10)],
                          "report_date": pd.to_datetime([DAYS[i] for i in day]),
                          "status": status, "lng": lng, "lat": lat})
    return City(units, path, "EPSG:32651", transform, values, -9999.0, buildings, facilities,
                stocks, groups, cases)


@pytest.fixture
def tiny(workspace: Workspace, tmp_path: Path) -> tuple[Workspace, City]:
    """The tiny city published into a fresh workspace (not fused yet)."""
    city = make_tiny_city(tmp_path)
    publish_city(workspace, city)
    return workspace, city


# -- known answers ---------------------------------------------------------------------------------
def test_tiny_city_construction_is_as_intended(tmp_path: Path) -> None:
    """The test data itself: straddling buildings span two cells, R1/R2 share one pixel."""
    city = make_tiny_city(tmp_path)
    for corners in city.buildings["corners"][2:]:
        centroid = np.mean(np.asarray(corners), axis=0)
        own = h3_cells(*centroid)[0]
        corner_cells = set(h3_cells(*np.asarray(corners).T).tolist())
        assert len(corner_cells | {int(own)}) >= 2, "building should straddle a cell border"
    expected = expected_static(city)
    # Every community has residents, so age groups follow residents everywhere.
    assert (expected.groupby("community_code")["residents"].sum() > 0).all()
    assert set(expected["community_code"]) == {"C1", "C2", "C3"}


def test_tiny_city_facts_match_hand_computation(tiny: tuple[Workspace, City]) -> None:
    """Every static fact at resolution 10, every rollup and every admin level, by hand."""
    ws, city = tiny
    result = fuse(ws)
    assert result.status == "fused"
    facts = Facts(ws)
    assert facts.levels == [10, 9, 8, 7, "community", "street", "district"]
    expected = expected_static(city)
    check_static(facts, city, expected)
    check_cases(facts, expected_cases(city, expected))


def test_tiny_city_key_numbers(tiny: tuple[Workspace, City]) -> None:
    """The headline numbers of the tiny city, written out."""
    ws, city = tiny
    summary = fuse(ws).summary
    facts = Facts(ws)
    base = facts.static(BASE).set_index("cell")
    # Residents: 400 in the raster; nodata counts nothing; 25 % / 75 % to R1 / R2 by floor area.
    assert base["residents"].sum() == pytest.approx(400.0, rel=1e-12)
    corners = city.buildings["corners"]
    r1, r2 = (int(h3_cells(*np.mean(np.asarray(corners[i]), axis=0))[0]) for i in (0, 1))
    without = expected_static(replace(city, values=np.where(
        np.arange(9).reshape(3, 3) == 0, 0.0, city.values)))["residents"]
    assert r1 != r2, "R1 and R2 should stand in different cells"
    gained = {c: base.loc[c, "residents"] - without.get(c, 0.0) for c in (r1, r2)}
    assert gained == pytest.approx({r1: 25.0, r2: 75.0}, rel=1e-6)
    assert summary["dasymetric_share"] == pytest.approx(100 / 400, abs=1e-4)
    # Footprints: within 0.01 % of pyproj.Geod; B4 has 3 floors from its 10 m height.
    geod = np.array([geod_area_m2(c) for c in corners])
    assert base["footprint_m2"].sum() == pytest.approx(geod.sum(), rel=1e-4)
    assert base["floor_m2_industrial"].sum() == pytest.approx(3 * geod[3], rel=1e-4)
    assert base["floor_m2"].sum() == pytest.approx(geod @ [1, 3, 2, 3], rel=1e-4)
    # The summary counts buildings assumed to have 1 floor (no floors, no height): none; and
    # those whose floors came from their height: B4.
    assert summary["buildings_floors_defaulted"] == 0
    assert summary["buildings_floors_from_height"] == 1
    # Stocks: only the latest snapshot of each facility and resource.
    totals = base[["stock_beds", "stock_water", "stock_masks", "stock_grain",
                   "stock_medicine"]].sum().to_dict()
    assert totals == {"stock_beds": 480.0, "stock_water": 5000.0, "stock_masks": 1000.0,
                      "stock_grain": 2000.0, "stock_medicine": 300.0}
    assert summary["stock_rows_unmatched"] == 0
    # Facilities and capacities (a missing capacity counts 0).
    assert base["fac_hospital_capacity"].sum() == 500.0
    assert base["fac_warehouse_capacity"].sum() == 10000.0
    assert base[[f"fac_{k}_n" for k in FACILITY_KINDS]].to_numpy().sum() == 3
    # Age groups: the table's totals, per community.
    communities = facts.static("community").set_index("code")
    assert communities["age_65_plus"].to_dict() == pytest.approx(
        {"C1": 30.0, "C2": 40.0, "C3": 10.0}, rel=1e-12)
    assert communities["chronic_patients"].sum() == pytest.approx(36.0, rel=1e-12)
    # Cases per day and status.
    daily = facts.daily()
    assert daily.sum(axis=1).tolist() == [3, 4, 3]
    assert daily["confirmed"].sum() == 5


def test_buildings_straddling_cell_borders_count_once(tiny: tuple[Workspace, City]) -> None:
    """Each building counts once, in the cell of its centroid, at every level."""
    ws, city = tiny
    fuse(ws)
    facts = Facts(ws)
    for level in (BASE, *ROLLUPS, *ADMIN):
        table = facts.static(level)
        assert table["buildings_n"].sum() == len(city.buildings), level
        assert table[[f"buildings_{u}_n" for u in BUILDING_USES]].to_numpy().sum() == 4
    base = facts.static(BASE).set_index("cell")
    for corners in city.buildings["corners"]:
        centroid = np.mean(np.asarray(corners), axis=0)
        assert base.loc[h3_cells(*centroid)[0], "buildings_n"] >= 1
    assert base["buildings_n"].max() <= 2


def test_read_window_of_cases(tiny: tuple[Workspace, City]) -> None:
    """Facts.read joins static columns with the cases of one day or a window."""
    ws, _ = tiny
    fuse(ws)
    facts = Facts(ws)
    for level in (BASE, 8, "community", "district"):
        one = facts.read(level, columns=["residents"], start=DAYS[1], end=DAYS[1])
        assert one["cases"].sum() == 4, level
        assert one["cases_close_contact"].sum() == 1
        both = facts.read(level, columns=["residents"], start=DAYS[0], end=DAYS[1])
        assert both["cases"].sum() == 7
        everything = facts.read(level)
        assert everything["cases"].sum() == 10
        assert sum(everything[f"cases_{s}"].sum() for s in CASE_STATUSES) == 10


def test_read_fills_cells_that_hold_only_cases(tiny: tuple[Workspace, City]) -> None:
    """A cell with cases but no static facts reads as zeros, with its admin codes."""
    ws, city = tiny
    fuse(ws)
    facts = Facts(ws)
    static_cells = set(facts.static(BASE)["cell"].tolist())
    case_cells = set(h3_cells(city.cases["lng"].to_numpy(), city.cases["lat"].to_numpy())
                     .tolist())
    assert case_cells - static_cells, "the tiny city should have a case-only cell"
    table = facts.read(BASE)
    assert not table["residents"].isna().any()
    assert not table["community_code"].isna().any()
    assert table["buildings_n"].dtype == np.int64


def test_stock_row_of_unknown_facility_is_skipped(tiny: tuple[Workspace, City]) -> None:
    """A stock row naming no known facility is reported and skipped; the others still count."""
    ws, city = tiny
    unknown = pd.DataFrame({"facility_id": ["F9"], "resource": ["water"], "quantity": [99.0],
                            "unit": ["L"], "as_of": pd.to_datetime(["2026-04-30"])})
    ws.publish("stocks", "stocks", pd.concat([city.stocks, unknown], ignore_index=True))
    result = fuse(ws)
    assert result.summary["stock_rows_unmatched"] == 1
    base = Facts(ws).static(BASE).set_index("cell")
    assert base["stock_water"].sum() == 5000.0
    f3 = h3_cells(121.4700, 31.2300)[0]
    assert base.loc[f3, "stock_water"] == 5000.0


def test_groups_of_a_community_without_residents_stay_in_it(workspace: Workspace,
                                                            tmp_path: Path) -> None:
    """A narrow community (30 m) with no residents in the raster keeps its own age groups."""
    city = make_tiny_city(tmp_path)
    units = city.units["community"]
    units[2] = ("C3", "西社区", "S2", (MID_LNG, SOUTH, 121.4690, NORTH))
    units += [("C4", "窄社区", "S2", (121.4690, SOUTH, 121.4693, NORTH)),
              ("C5", "东社区", "S2", (121.4693, SOUTH, EAST, NORTH))]
    city.groups = pd.concat([city.groups, pd.DataFrame({
        "community_code": ["C4"], "persons": [10.0], "age_65_plus": [7.0], "children": [1.0],
        "elderly_living_alone": [1.0], "chronic_patients": [1.0]})], ignore_index=True)
    publish_city(workspace, city)
    summary = fuse(workspace).summary
    assert summary["group_communities_without_residents"] == 1
    communities = Facts(workspace).static("community").set_index("code")
    assert communities["age_65_plus"].sum() == pytest.approx(87.0)  # conserved city-wide
    assert communities.loc["C4", "age_65_plus"] == pytest.approx(7.0)


# -- conservation on the small demo city -----------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict]:
    """The `small` demo city, generated, ingested and fused once."""
    from tests.conftest import fused_demo

    return fused_demo(tmp_path_factory.mktemp("demo"))


ALL_LEVELS = (BASE, *ROLLUPS, *ADMIN)
ZH_GROUPS = {"65岁以上": "age_65_plus", "0-14岁": "children", "独居老人": "elderly_living_alone",
             "慢性病患者": "chronic_patients"}


def test_demo_conserves_every_total_at_every_level(demo: tuple[Workspace, dict]) -> None:
    """Residents, buildings, areas, facilities, stocks, groups, cases: same at every level."""
    ws, manifest = demo
    totals = manifest["totals"]
    facts = Facts(ws)
    sums = {level: facts.read(level).pipe(lambda t: t[value_columns(t)].sum())
            for level in ALL_LEVELS}
    base = sums[BASE]
    with rasterio.open(ws.raster_path("population")) as src:
        raster_total = float(src.read(1, masked=True).astype(float).sum())
    assert raster_total == totals["residents"]
    assert base["residents"] == pytest.approx(raster_total, rel=1e-9)
    assert base["buildings_n"] == totals["buildings"]
    groups = ws.read("population_groups")
    for zh, column in ZH_GROUPS.items():
        assert base[column] == pytest.approx(totals["vulnerable"][zh], rel=1e-9)
        assert base[column] == pytest.approx(groups[column].sum(), rel=1e-9)
    assert sum(base[f"fac_{k}_n"] for k in FACILITY_KINDS) == totals["facilities"]
    assert base["fac_hospital_capacity"] == totals["hospital_beds"]
    assert base["cases"] == totals["cases"]
    for status, n in totals["cases_by_status"].items():
        assert base[f"cases_{status}"] == n
    for level, s in sums.items():
        assert s.index.tolist() == base.index.tolist(), level
        np.testing.assert_allclose(s.to_numpy(float), base.to_numpy(float), rtol=1e-9,
                                   err_msg=str(level))


def test_demo_totals_match_the_layers(demo: tuple[Workspace, dict]) -> None:
    """City-wide facts equal the layers: footprints (pyproj.Geod), kinds, latest stocks."""
    ws, manifest = demo
    base = Facts(ws).static(BASE)
    buildings = ws.read("buildings")
    geod = sum(abs(GEOD.geometry_area_perimeter(g)[0]) for g in buildings.geometry)
    assert base["footprint_m2"].sum() == pytest.approx(geod, rel=1e-4)
    for use, n in buildings["use"].value_counts().items():
        assert base[f"buildings_{use}_n"].sum() == n
    residential = base[[f"floor_m2_{u}" for u in RESIDENTIAL]].to_numpy().sum()
    assert residential == pytest.approx(manifest["totals"]["residential_floor_area_m2"],
                                        rel=2e-3)  # the generator measures in a projection
    facilities = ws.read("facilities")
    for kind, n in facilities["kind"].value_counts().items():
        assert base[f"fac_{kind}_n"].sum() == n
    stocks = ws.read("stocks").sort_values("as_of")
    latest = stocks.groupby(["facility_id", "resource"]).tail(1)
    assert set(latest["facility_id"]) <= set(facilities["id"])
    for resource, quantity in latest.groupby("resource")["quantity"].sum().items():
        assert base[f"stock_{resource}"].sum() == pytest.approx(quantity, rel=1e-12)


def test_demo_rollup_of_rollups_equals_direct_rollup(demo: tuple[Workspace, dict]) -> None:
    """r10 → r9 → r8 equals r10 → r8; r9 rows grouped to r8 equal the r8 rows."""
    ws, _ = demo
    facts = Facts(ws)
    tables = {r: facts.static(r).set_index("cell") for r in (BASE, *ROLLUPS)}
    columns = value_columns(tables[8])
    for fine, coarse in ((BASE, 9), (9, 8), (8, 7), (BASE, 8), (BASE, 7)):
        table = tables[fine]
        parents = np.array([h3i.cell_to_parent(int(c), coarse) for c in table.index],
                           dtype=np.uint64)
        assert (grid.cell_parents(table.index.to_numpy(np.uint64), coarse) == parents).all()
        grouped = table[columns].groupby(parents).sum().sort_index()
        want = tables[coarse][columns].sort_index()
        assert grouped.index.tolist() == want.index.tolist(), (fine, coarse)
        for col in columns:
            if col.endswith("_n"):
                assert grouped[col].tolist() == want[col].tolist(), (fine, coarse, col)
            else:
                np.testing.assert_allclose(grouped[col], want[col], rtol=1e-12, atol=1e-9)
    # The same for the case series.
    series = {r: facts.cases(r) for r in (BASE, 9, 8)}
    for fine in (BASE, 9):
        s = series[fine]
        s = s.assign(cell=grid.cell_parents(s["cell"].to_numpy(np.uint64), 8))
        grouped = s.groupby(["cell", "date", "status"])["n"].sum()
        want = series[8].groupby(["cell", "date", "status"])["n"].sum()
        pd.testing.assert_series_equal(grouped.sort_index(), want.sort_index())


def test_demo_points_lie_in_their_cells(demo: tuple[Workspace, dict]) -> None:
    """grid.points_to_cells agrees with h3-py, and the r10 case counts count the points."""
    ws, _ = demo
    cases, facilities = ws.read("cases"), ws.read("facilities")
    for frame in (cases, facilities):
        x, y = frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy()
        assert (grid.points_to_cells(x, y, BASE) == h3_cells(x, y)).all()
    cells = h3_cells(cases.geometry.x.to_numpy(), cases.geometry.y.to_numpy())
    want = pd.Series(cells).value_counts().sort_index()
    got = Facts(ws).cases(BASE).groupby("cell")["n"].sum().sort_index()
    assert got.index.tolist() == want.index.tolist()
    assert got.tolist() == want.tolist()
    # And each point lies in (or on the edge of) its cell's hexagon.
    for point, cell in zip(cases.geometry[:200], cells[:200].tolist(), strict=True):
        hexagon = shapely.Polygon([(b, a) for a, b in h3i.cell_to_boundary(cell)])
        assert hexagon.distance(point) < 1e-9
    fac = Facts(ws).static(BASE).set_index("cell")
    f_cells = h3_cells(facilities.geometry.x.to_numpy(), facilities.geometry.y.to_numpy())
    for cell, kind in zip(f_cells.tolist(), facilities["kind"], strict=True):
        assert fac.loc[cell, f"fac_{kind}_n"] >= 1


def test_demo_admin_levels_nest(demo: tuple[Workspace, dict]) -> None:
    """Communities summed by parent give the streets; streets give the districts."""
    ws, _ = demo
    facts = Facts(ws)
    for child, parent in (("community", "street"), ("street", "district")):
        kids = facts.static(child)
        columns = value_columns(kids)
        grouped = kids.groupby("parent_code")[columns].sum()
        want = facts.static(parent).set_index("code")[columns].loc[grouped.index]
        np.testing.assert_allclose(grouped.to_numpy(float), want.to_numpy(float), rtol=1e-9,
                                   atol=1e-9)


# -- incremental and atomic ------------------------------------------------------------------------
def _more_cases(city: City) -> pd.DataFrame:
    extra = pd.DataFrame({"id": ["P100", "P101", "P102"],
                          "report_date": pd.to_datetime([dt.date(2026, 5, 1)] * 3),
                          "status": ["confirmed", "confirmed", "suspected"],
                          "lng": [121.4615, 121.4690, 121.4630],
                          "lat": [31.2265, 31.2270, 31.2300]})
    return pd.concat([city.cases, extra], ignore_index=True)


def test_incremental_fuse(tiny: tuple[Workspace, City]) -> None:
    """unchanged → cases-updated (static hard-linked) → fused after new buildings."""
    ws, city = tiny
    first = fuse(ws)
    again = fuse(ws)
    assert (again.status, again.facts_id) == ("unchanged", first.facts_id)
    old_set = ws.current_facts()
    assert old_set is not None and old_set.id == first.facts_id

    ws.publish("cases", "cases", cases_frame(_more_cases(city)))
    updated = fuse(ws)
    assert updated.status == "cases-updated"
    assert updated.facts_id != first.facts_id
    new_set = ws.current_facts()
    static_files = sorted(p.name for p in old_set.path.iterdir()
                          if p.name.startswith(("cells_", "units_")))
    assert len(static_files) == 7
    for name in static_files:
        assert (old_set.path / name).stat().st_ino == (new_set.path / name).stat().st_ino
    facts = Facts(ws)
    day = facts.read(BASE, start="2026-05-01", end="2026-05-01")
    assert day["cases"].sum() == 3 and day["cases_suspected"].sum() == 1
    assert facts.read("district")["cases"].sum() == 13
    assert facts.read("community", start=DAYS[0], end=DAYS[-1])["cases"].sum() == 10
    # The previous set stays readable while the new one is current.
    old = Facts(ws, old_set)
    assert old.read("district")["cases"].sum() == 10
    assert old.static(BASE)["residents"].sum() == pytest.approx(400.0)

    b = pd.concat([city.buildings, pd.DataFrame({
        "id": ["R5"], "use": ["residential"], "floors": [6.0], "height_m": [np.nan],
        "corners": [_box_m(121.4690, 31.2300, 20, 20)]})], ignore_index=True)
    ws.publish("buildings", "buildings", buildings_frame(b))
    full = fuse(ws)
    assert full.status == "fused"
    latest = ws.current_facts()
    assert (latest.path / "cells_r10.parquet").stat().st_ino != \
        (new_set.path / "cells_r10.parquet").stat().st_ino
    facts = Facts(ws)
    assert facts.static("district")["buildings_n"].sum() == 5
    assert facts.read("district")["cases"].sum() == 13
    assert facts.static(BASE)["residents"].sum() == pytest.approx(400.0, rel=1e-12)


def test_failed_fuse_leaves_previous_set(tiny: tuple[Workspace, City],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A fuse that fails midway keeps the previous set current and leaves nothing behind."""
    ws, _ = tiny
    first = fuse(ws)
    before = sorted(p.name for p in ws.facts_dir.iterdir())

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("twin.fuse._cases", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        fuse(ws, force=True)
    assert ws.current_facts().id == first.facts_id
    assert sorted(p.name for p in ws.facts_dir.iterdir()) == before
    assert list(ws.tmp_dir.iterdir()) == []
    assert Facts(ws).static("district")["residents"].sum() == pytest.approx(400.0)
    monkeypatch.undo()
    assert fuse(ws).status == "unchanged"


def test_config_change_refuses_stale_facts(tiny: tuple[Workspace, City]) -> None:
    """Editing grid.base_resolution and fusing again rebuilds the facts at the new resolution."""
    ws, _ = tiny
    fuse(ws)
    config = ws.config_path.read_text(encoding="utf-8")
    config = config.replace("base_resolution = 10", "base_resolution = 9").replace(
        "rollups = [9, 8, 7]", "rollups = [8, 7]")
    assert "base_resolution = 9" in config
    ws.config_path.write_text(config, encoding="utf-8")
    ws = Workspace.open(ws.root)
    assert ws.config.base_resolution == 9
    result = fuse(ws)
    assert result.status == "fused"
    assert Facts(ws).levels[0] == 9


def test_raster_band_description_does_not_lose_residents(tiny: tuple[Workspace, City],
                                                         tmp_path: Path) -> None:
    """A single-band population raster counts as residents whatever its band is called."""
    ws, city = tiny
    path = tmp_path / "described.tif"
    with rasterio.open(city.raster_path) as src:
        profile, data = src.profile, src.read()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.set_band_description(1, "population")
    ws.publish_raster("population", "population", path)
    result = fuse(ws)
    assert result.summary["totals"]["residents"] == pytest.approx(400.0)


# -- errors ----------------------------------------------------------------------------------------
def test_fuse_without_boundaries_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    """No boundaries: a FuseError that says what is missing and how to load it."""
    city = make_tiny_city(tmp_path)
    workspace.publish("buildings", "buildings", buildings_frame(city.buildings))
    with pytest.raises(FuseError, match="no boundaries layer") as info:
        fuse(workspace)
    assert "twin ingest" in str(info.value)
    assert workspace.current_facts() is None


def test_two_buildings_layers_need_a_choice(tiny: tuple[Workspace, City]) -> None:
    """Two buildings layers: an error naming both and the twin.toml fix, which works."""
    ws, city = tiny
    ws.publish("buildings_old", "buildings", buildings_frame(city.buildings.iloc[:2]))
    with pytest.raises(FuseError) as info:
        fuse(ws)
    message = str(info.value)
    assert "buildings" in message and "buildings_old" in message
    assert "twin.toml" in message and "[fuse] buildings =" in message
    config = ws.config_path.read_text(encoding="utf-8")
    ws.config_path.write_text(config.replace('buildings = ""', 'buildings = "buildings_old"'),
                              encoding="utf-8")
    ws = Workspace.open(ws.root)
    fuse(ws)
    assert Facts(ws).static("district")["buildings_n"].sum() == 2


def test_facts_errors(tiny: tuple[Workspace, City]) -> None:
    """No facts yet; unknown level; unknown column: clear errors."""
    ws, _ = tiny
    with pytest.raises(FactsNotFoundError, match=r"no fused facts yet.*twin fuse"):
        Facts(ws)
    fuse(ws)
    facts = Facts(ws)
    with pytest.raises(FactsNotFoundError, match=r"unknown level 'county'.*community"):
        facts.static("county")
    with pytest.raises(FactsNotFoundError, match=r"no level 12.*10, 9, 8, 7"):
        facts.read(12)
    with pytest.raises(FactsNotFoundError, match=r"no column 'resident'.*Facts.columns"):
        facts.static(8, ["resident"])
    with pytest.raises(LookupError):  # also catchable as the builtin
        facts.cases("county")


# -- command line ----------------------------------------------------------------------------------
def test_cli_fuse_and_facts(tiny: tuple[Workspace, City]) -> None:
    """`twin fuse WS --json` and `twin facts WS --level 8 --date D --json`."""
    ws, _ = tiny
    done = run_twin("fuse", str(ws.root), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "fused"
    assert result["summary"]["totals"]["residents"] == pytest.approx(400.0)
    again = json.loads(run_twin("fuse", str(ws.root), "--json").stdout)
    assert (again["status"], again["facts_id"]) == ("unchanged", result["facts_id"])

    shown = run_twin("facts", str(ws.root), "--level", "8", "--date", DAYS[1].isoformat(),
                     "--json")
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    want = Facts(ws).read(8, columns=["residents"], start=DAYS[1], end=DAYS[1])
    assert sum(r["cases"] for r in rows) == want["cases"].sum() == 4
    assert sum(r["residents"] or 0 for r in rows) == pytest.approx(400.0)
    assert {r["cell"] for r in rows} == set(grid.cells_to_strings(want["cell"].to_numpy()))

    missing = run_twin("facts", str(ws.root), "--level", "county", "--json")
    assert missing.returncode == 1
    assert "unknown level" in json.loads(missing.stdout)["error"]["message"]
