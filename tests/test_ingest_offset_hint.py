"""A web map's export loaded without --coords gets a hint; a right one gets none."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from ingest import ingest_file
from twin import Workspace
from twin.offsets import wgs84_to_bd09, wgs84_to_gcj02

BBOX = (121.40, 31.18, 121.52, 31.28)


def _roads() -> gpd.GeoDataFrame:
    """A street grid every 400 m or so."""
    lines, xs, ys = [], np.arange(121.41, 121.51, 0.004), np.arange(31.19, 31.27, 0.0036)
    lines += [shapely.LineString([(x, ys[0]), (x, ys[-1])]) for x in xs]
    lines += [shapely.LineString([(xs[0], y), (xs[-1], y)]) for y in ys]
    return gpd.GeoDataFrame({"id": [f"R{i}" for i in range(len(lines))],
                             "class": "local"}, geometry=lines, crs=4326)


def _districts(shift=None) -> gpd.GeoDataFrame:
    """Districts whose edges run along the grid's streets, optionally offset."""
    cells = []
    for i, x in enumerate(np.arange(121.41, 121.50, 0.02)):
        for j, y in enumerate(np.arange(31.19, 31.26, 0.018)):
            cells.append((f"D{i}{j}", shapely.box(x, y, x + 0.02, y + 0.018)))
    geoms = shapely.segmentize(np.array([g for _, g in cells]), 0.001)
    if shift is not None:
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(shift(xy[:, 0], xy[:, 1])))
    return gpd.GeoDataFrame({"code": [c for c, _ in cells], "name": [c for c, _ in cells],
                             "level": "district"}, geometry=list(geoms), crs=4326)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    tmp = tmp_path_factory.mktemp("offset")
    ws = Workspace.init(tmp / "ws", "offset", bbox=BBOX)
    _roads().to_file(tmp / "roads.geojson")
    assert ingest_file(ws, tmp / "roads.geojson", kind="roads").status == "published"
    return ws


def _hint(report):
    return [p for p in report.problems if p.code == "offset_suspected"]


@pytest.mark.parametrize(("shift", "coords"), [(wgs84_to_gcj02, "gcj02"),
                                               (wgs84_to_bd09, "bd09")])
def test_an_offset_export_loaded_as_wgs84_gets_the_hint(ws: Workspace, tmp_path: Path,
                                                         shift, coords) -> None:
    path = tmp_path / "districts.geojson"
    _districts(shift).to_file(path)
    report = ingest_file(ws, path, kind="boundaries", dry_run=True)
    assert report.ok
    hint = _hint(report)
    assert hint, (report.to_text(), report.info.get("offset_check"))
    assert f"--coords {coords}" in hint[0].message
    facts = report.info["offset_check"]
    assert facts[coords] < 5 < 20 < facts["wgs84"], facts
    # Loaded with the right --coords, the same file gets no hint.
    right = ingest_file(ws, path, kind="boundaries", coords=coords, dry_run=True)
    assert right.ok and not _hint(right), right.to_text()


def test_a_true_wgs84_file_gets_no_hint(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "districts.geojson"
    _districts().to_file(path)
    report = ingest_file(ws, path, kind="boundaries", dry_run=True)
    assert report.ok and not _hint(report), report.to_text()
    assert report.info["offset_check"]["wgs84"] < 5


def test_facilities_among_streets_get_the_hint(ws: Workspace, tmp_path: Path) -> None:
    """Points sit on the streets (shops front them); offset, they sit between them."""
    rng = np.random.default_rng(1)
    lines = _roads().geometry.to_numpy()
    points = shapely.line_interpolate_point(lines[rng.integers(0, len(lines), 300)],
                                            rng.random(300), normalized=True)
    lon, lat = wgs84_to_gcj02(shapely.get_x(points), shapely.get_y(points))
    frame = gpd.GeoDataFrame({"id": [f"F{i}" for i in range(300)], "name": "药店",
                              "kind": "pharmacy"}, geometry=gpd.points_from_xy(lon, lat),
                             crs=4326)
    path = tmp_path / "pharmacies.geojson"
    frame.to_file(path)
    report = ingest_file(ws, path, kind="facilities", dry_run=True)
    assert _hint(report), report.to_text()
