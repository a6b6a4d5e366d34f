"""Centroids, areas and points straight from GeoArrow buffers agree with shapely."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.geoarrow import centroids_and_areas, point_coordinates


def _column(frame: gpd.GeoDataFrame, path: Path, encoding: str):
    frame.to_parquet(path, geometry_encoding=encoding)
    return pq.read_table(path, columns=["geometry"]).column("geometry")


@st.composite
def polygons(draw: st.DrawFn) -> shapely.Geometry:
    """A small polygon near Shanghai: a box, perhaps with a hole, rotated, or a multipolygon."""
    x = draw(st.floats(121.0, 122.0))
    y = draw(st.floats(30.8, 31.8))
    w = draw(st.floats(1e-5, 2e-3))
    h = draw(st.floats(1e-5, 2e-3))
    shape = shapely.box(x, y, x + w, y + h)
    if draw(st.booleans()):
        shape = shape.difference(shapely.box(x + w / 4, y + h / 4, x + w / 2, y + h / 2))
    angle = draw(st.floats(0, 90))
    from shapely import affinity

    shape = affinity.rotate(shape, angle, origin="centroid")
    if draw(st.booleans()):
        shape = shapely.MultiPolygon([shape, shapely.box(x + 3 * w, y, x + 4 * w, y + h)])
    if draw(st.booleans()):  # either ring orientation
        shape = shapely.orient_polygons(shape, exterior_cw=True)
    return shape


@settings(max_examples=40, deadline=None)
@given(shapes=st.lists(polygons(), min_size=1, max_size=12))
def test_centroids_and_areas_match_shapely(tmp_path_factory: pytest.TempPathFactory,
                                           shapes: list) -> None:
    frame = gpd.GeoDataFrame({"i": range(len(shapes))}, geometry=shapes, crs=4326)
    expected = shapely.centroid(frame.geometry.values)
    for encoding in ("geoarrow", "WKB"):
        column = _column(frame, tmp_path_factory.mktemp("g") / "g.parquet", encoding)
        cx, cy, area = centroids_and_areas(column)
        assert np.allclose(cx, shapely.get_x(expected), rtol=0, atol=1e-10)
        assert np.allclose(cy, shapely.get_y(expected), rtol=0, atol=1e-10)
        assert np.allclose(area, shapely.area(frame.geometry.values), rtol=1e-9, atol=0)


def test_points(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame({"i": [1, 2]}, geometry=gpd.points_from_xy([121.5, 121.6],
                                                                         [31.2, 31.3]), crs=4326)
    for encoding in ("geoarrow", "WKB"):
        x, y = point_coordinates(_column(frame, tmp_path / f"{encoding}.parquet", encoding))
        assert x.tolist() == [121.5, 121.6]
        assert y.tolist() == [31.2, 31.3]


def test_other_columns_are_refused(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame({"i": [1]}, geometry=[shapely.LineString([(0, 0), (1, 1)])],
                             crs=4326)
    with pytest.raises(ValueError, match="not a GeoArrow polygon column"):
        centroids_and_areas(_column(frame, tmp_path / "l.parquet", "geoarrow"))


def test_store_writes_geoarrow(workspace) -> None:
    from tests.conftest import make_buildings

    entry = workspace.publish("buildings", "buildings", make_buildings(5))
    schema = pq.read_schema(workspace.root / entry.file)
    assert str(schema.field("geometry").type).startswith("list<")  # not WKB binary
    assert workspace.read("buildings").geometry.equals(make_buildings(5).geometry)
