"""Geometry cleaning: null, empty, non-finite, wrong types, collections, repairs and limits."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.errors import IngestError, LimitExceededError
from ingest.geometry import clean_geometries, count_vertices
from ingest.report import Report
from twin.grid import average_cell_area_m2
from twin.schema import get_kind

LIMITS = {"max_features": 10_000_000, "max_vertices": 200_000_000,
          "max_polygon_cells": 2_000_000}
BUILDINGS = get_kind("buildings")
ROADS = get_kind("roads")
POPULATION = get_kind("population")

# A metre-sized grid near People's Square in EPSG:4549 (CGCS2000 Gauss-Kruger CM 120E).
X0, Y0 = 640_000.0, 3_457_000.0
BOW_TIE = shapely.Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)])


def box(i: int = 0, size: float = 10.0) -> shapely.Polygon:
    return shapely.box(X0 + 20 * i, Y0, X0 + 20 * i + size, Y0 + size)


def frame(geoms: list, *, crs: object = 4549, start: int = 1) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"id": [f"B{i}" for i in range(len(geoms))]},
                            geometry=gpd.GeoSeries(geoms, crs=crs).values, crs=crs,
                            index=pd.RangeIndex(start, start + len(geoms)))


def clean(data: gpd.GeoDataFrame, kind=BUILDINGS, limits=LIMITS,
          **kwargs) -> tuple[gpd.GeoDataFrame, Report]:
    report = Report(source="t", kind=kind.name)
    out = clean_geometries(data, kind, report, limits=limits, base_resolution=10, **kwargs)
    return out, report


def problem(report: Report, code: str):
    return next(p for p in report.problems if p.code == code)


def codes(report: Report) -> dict[str, str]:
    return {p.code: str(p.severity) for p in report.problems}


def test_clean_layer_passes_unchanged() -> None:
    data = frame([box(i) for i in range(5)])
    out, report = clean(data)
    assert not report.problems
    assert out.geometry.equals(data.geometry)
    assert out.crs == data.crs and report.info["rows_kept"] == 5


def test_bow_tie_is_repaired_with_its_row() -> None:
    out, report = clean(frame([box(0), BOW_TIE, box(2)]))
    assert list(out.index) == [1, 2, 3]
    repaired = out.geometry.loc[2]
    assert repaired.is_valid and repaired.area == pytest.approx(50.0)
    assert repaired.geom_type in {"Polygon", "MultiPolygon"}
    assert codes(report) == {"geometry_repaired": "warning"}
    assert problem(report, "geometry_repaired").rows == [2]


def test_collapsed_polygon_is_dropped() -> None:
    flat = shapely.Polygon([(X0, Y0), (X0 + 5, Y0), (X0 + 10, Y0), (X0, Y0)])
    out, report = clean(frame([box(0), flat]))
    assert list(out.index) == [1]
    assert problem(report, "unrepairable_geometry").rows == [2]


def test_null_and_empty_are_dropped_with_rows() -> None:
    out, report = clean(frame([box(0), None, shapely.Polygon(), box(3), shapely.MultiPolygon()]))
    assert list(out.index) == [1, 4]
    p = problem(report, "empty_geometry")
    assert p.count == 3 and p.rows == [2, 3, 5] and str(p.severity) == "warning"


def test_non_finite_coordinates_are_dropped() -> None:
    with np.errstate(invalid="ignore"):
        nan_poly = shapely.Polygon([(X0, Y0), (np.nan, Y0), (X0, Y0 + 5), (X0, Y0)])
    inf_poly = shapely.Polygon([(X0, Y0), (np.inf, Y0), (X0, Y0 + 5), (X0, Y0)])
    out, report = clean(frame([nan_poly, box(1), inf_poly]))
    assert list(out.index) == [2]
    assert problem(report, "non_finite_coordinates").rows == [1, 3]


def test_mixed_types_in_a_polygon_layer() -> None:
    point = shapely.Point(X0, Y0)
    line = shapely.LineString([(X0, Y0), (X0 + 1, Y0 + 1)])
    multi = shapely.MultiPolygon([box(5), box(7)])
    out, report = clean(frame([box(0), point, line, point, multi]))
    assert list(out.index) == [1, 5]
    assert out.geometry.loc[5].geom_type == "MultiPolygon"  # multis of the family are fine
    p = problem(report, "wrong_geometry_type")
    assert p.count == 3 and p.rows == [2, 3, 4] and str(p.severity) == "warning"
    assert "found 2 Point, 1 LineString" in p.message and "polygon" in p.message
    assert report.ok


def test_all_wrong_types_is_an_error() -> None:
    out, report = clean(frame([shapely.Point(X0, Y0), shapely.Point(X0 + 1, Y0)]))
    assert out.empty
    assert codes(report) == {"wrong_geometry_type": "warning", "no_usable_geometry": "error"}
    assert not report.ok


def test_geometry_collection_parts_are_extracted() -> None:
    collection = shapely.GeometryCollection(
        [box(0), shapely.LineString([(X0, Y0), (X0 + 50, Y0 + 50)]), box(3),
         shapely.GeometryCollection([box(6), shapely.Point(X0, Y0)])])
    only_lines = shapely.GeometryCollection([shapely.LineString([(X0, Y0), (X0 + 1, Y0)])])
    out, report = clean(frame([collection, only_lines]))
    assert list(out.index) == [1]
    kept = out.geometry.loc[1]
    assert kept.geom_type == "MultiPolygon" and len(kept.geoms) == 3 and kept.is_valid
    assert problem(report, "geometry_collection").rows == [1]
    assert "found 1 GeometryCollection" in problem(report, "wrong_geometry_type").message


def test_overlapping_collection_parts_become_valid() -> None:
    collection = shapely.GeometryCollection([box(0, 30), box(1, 30)])  # overlapping squares
    out, report = clean(frame([collection]))
    assert out.geometry.iloc[0].is_valid
    assert out.geometry.iloc[0].area == pytest.approx(30 * 30 + 20 * 30)
    assert {"geometry_collection", "geometry_repaired"} <= set(codes(report))


def test_line_layer_keeps_lines_and_turns_rings_into_linestrings() -> None:
    ring = shapely.LinearRing([(X0, Y0), (X0 + 1, Y0), (X0 + 1, Y0 + 1)])
    line = shapely.LineString([(X0, Y0), (X0 + 100, Y0)])
    out, report = clean(frame([line, ring, box(0)]), kind=ROADS)
    assert list(out.index) == [1, 2]
    assert list(out.geom_type) == ["LineString", "LineString"]
    assert "found 1 Polygon" in problem(report, "wrong_geometry_type").message


def test_kind_with_several_families_keeps_both() -> None:
    out, report = clean(frame([box(0), shapely.Point(X0, Y0), shapely.LineString(
        [(X0, Y0), (X0 + 1, Y0)])]), kind=POPULATION)
    assert list(out.index) == [1, 2]
    assert problem(report, "wrong_geometry_type").rows == [3]


def test_z_is_dropped_and_noted() -> None:
    poly3d = shapely.Polygon([(X0, Y0, 5), (X0 + 10, Y0, 5), (X0 + 10, Y0 + 10, 5), (X0, Y0, 5)])
    out, report = clean(frame([poly3d, box(1)]))
    assert not out.has_z.any()
    assert report.info["z_dropped"] == 1 and not report.problems


def test_too_many_features_names_the_limit() -> None:
    with pytest.raises(LimitExceededError, match="max_features") as info:
        clean(frame([box(i) for i in range(6)]), limits={**LIMITS, "max_features": 5})
    assert isinstance(info.value, IngestError) and "twin.toml" in str(info.value)


def test_too_many_vertices_names_the_limit() -> None:
    data = frame([box(i) for i in range(3)])
    assert count_vertices(data) == 15
    with pytest.raises(LimitExceededError, match="max_vertices"):
        clean(data, limits={**LIMITS, "max_vertices": 14})
    clean(data, limits={**LIMITS, "max_vertices": 15})


def huge_and_small_cells() -> float:
    """The area limit with max_polygon_cells = 100 at resolution 10 (about 1.5 km²)."""
    return 100 * average_cell_area_m2(10)


@pytest.mark.parametrize("crs", [4549, 32651], ids=["gauss-kruger", "utm"])
def test_huge_projected_polygon_is_an_error_with_its_row(crs: int) -> None:
    side = np.sqrt(huge_and_small_cells()) * 1.2  # 1.44 x the limit
    x0, y0 = (X0, Y0) if crs == 4549 else (354_000.0, 3_456_000.0)
    polygons = [shapely.box(x0, y0, x0 + 10, y0 + 10),
                shapely.box(x0, y0, x0 + side, y0 + side),
                shapely.box(x0, y0, x0 + side * 0.8, y0 + side * 0.8)]  # 0.64 x: fine
    out, report = clean(frame(polygons, crs=crs), limits={**LIMITS, "max_polygon_cells": 100})
    p = problem(report, "polygon_too_large")
    assert str(p.severity) == "error" and p.rows == [2] and p.count == 1
    assert "about 144 H3 cells" in p.message and "max_polygon_cells" in p.message
    assert len(out) == 3  # kept: the error refuses the file with the rows named


def test_huge_geographic_polygon_is_an_error() -> None:
    rows = [shapely.box(121.4, 31.2, 121.401, 31.201), shapely.box(100.0, 20.0, 130.0, 45.0)]
    _, report = clean(frame(rows, crs=4490))
    p = problem(report, "polygon_too_large")
    assert p.rows == [2]
    # 30 x 25 degrees at 20-45 N is about 7.6 million km²: hundreds of millions of cells.
    cells = float(p.message.split("about ")[1].split(" H3")[0].replace(",", ""))
    assert 4.5e8 < cells < 5.5e8


def test_polygon_size_uses_the_given_crs_when_the_frame_has_none() -> None:
    big = shapely.box(X0, Y0, X0 + 2000, Y0 + 2000)
    data = frame([big], crs=None)
    limits = {**LIMITS, "max_polygon_cells": 100}
    _, report = clean(data, limits=limits)
    assert report.ok and "skipped" in report.info["polygon_size_check"]
    _, report = clean(data, limits=limits, crs=pyproj.CRS.from_epsg(4549))
    assert "polygon_too_large" in codes(report)


def test_record_numbers_survive() -> None:
    data = frame([box(0), None, BOW_TIE, shapely.Point(X0, Y0), box(4)], start=101)
    data = data.drop(index=[102])  # an earlier stage dropped a record: numbers keep gaps
    out, report = clean(data)
    assert list(out.index) == [101, 103, 105]
    assert list(out["id"]) == ["B0", "B2", "B4"]
    assert problem(report, "wrong_geometry_type").rows == [104]
    assert problem(report, "geometry_repaired").rows == [103]
    assert out.geometry.name == "geometry" and out.crs.to_epsg() == 4549


# -- property: cleaning only removes, and leaves valid geometries of the family -----------------
coordinate = st.floats(min_value=-50, max_value=50, allow_nan=False, allow_infinity=False)
special = st.sampled_from([np.nan, np.inf, -np.inf])
point_xy = st.tuples(coordinate, coordinate)


@st.composite
def geometries(draw: st.DrawFn) -> shapely.Geometry | None:
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return None
    if choice == 1:
        return draw(st.sampled_from([shapely.Polygon(), shapely.Point(), shapely.LineString()]))
    if choice == 2:
        return shapely.Point(draw(point_xy))
    if choice == 3:
        return shapely.LineString(draw(st.lists(point_xy, min_size=2, max_size=6)))
    if choice == 4:
        xy = draw(st.lists(point_xy, min_size=2, max_size=4))
        bad = draw(special)
        with np.errstate(invalid="ignore"):
            return shapely.LineString([*xy, (bad, 0.0)])
    if choice in (5, 6, 7):  # arbitrary rings: often self-intersecting or collapsed
        ring = draw(st.lists(point_xy, min_size=3, max_size=8))
        return shapely.Polygon(ring)
    if choice == 8:
        parts = draw(st.lists(st.lists(point_xy, min_size=3, max_size=5), min_size=1,
                              max_size=3))
        return shapely.MultiPolygon([shapely.Polygon(p) for p in parts])
    parts = [shapely.Polygon(draw(st.lists(point_xy, min_size=3, max_size=5))),
             shapely.Point(draw(point_xy))]
    return shapely.GeometryCollection(parts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(geometries(), min_size=0, max_size=12),
       st.sampled_from(["buildings", "roads", "facilities", "population"]))
def test_cleaning_only_removes_and_leaves_valid_geometries(geoms: list, kind_name: str) -> None:
    kind = get_kind(kind_name)
    with np.errstate(invalid="ignore"):
        data = frame(geoms, crs=3857, start=1)
    out, report = clean(data, kind=kind)
    assert len(out) <= len(data)
    assert set(out.index) <= set(data.index) and out.index.is_monotonic_increasing
    values = np.asarray(out.geometry.values, dtype=object)
    assert not shapely.is_missing(values).any() and not shapely.is_empty(values).any()
    assert shapely.is_valid(values).all()
    assert np.isfinite(shapely.get_coordinates(values)).all()
    families = {"Point": "point", "MultiPoint": "point", "LineString": "line",
                "MultiLineString": "line", "Polygon": "polygon", "MultiPolygon": "polygon"}
    assert {families[t] for t in out.geom_type} <= set(kind.geometry)
    assert report.info["rows_kept"] == len(out)
    dropped = len(data) - len(out)
    dropping = ("empty_geometry", "non_finite_coordinates", "wrong_geometry_type",
                "unrepairable_geometry")
    assert sum(p.count for p in report.problems if p.code in dropping) == dropped
