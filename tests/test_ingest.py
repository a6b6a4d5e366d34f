"""Ingest end to end: every format into a real workspace, the demo city via its manifest,
de-duplication, dry runs, refusals that leave the catalog untouched, and the CLI."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine

from ingest import Report, ingest_file, ingest_manifest
from tests.conftest import run_twin
from twin import Workspace
from twin.demo import generate_demo_city

CENTRE = (121.47, 31.23)


@pytest.fixture(scope="module", params=["small", "city"])
def demo(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The demo city of each size (``city``: one million residents, ~100k buildings)."""
    out = tmp_path_factory.mktemp("demo") / request.param
    return out, generate_demo_city(out, size=request.param, seed=7)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, demo) -> tuple[Workspace, list[Report]]:
    out, manifest = demo
    ws = Workspace.init(tmp_path_factory.mktemp("ws") / "ws", "示范市",
                        bbox=tuple(manifest["city"]["bbox"]))
    return ws, ingest_manifest(ws, out / "manifest.json")


def _facilities_frame(n: int = 5) -> gpd.GeoDataFrame:
    x = CENTRE[0] + np.arange(n) * 0.001
    return gpd.GeoDataFrame(
        {"名称": [f"药店{i}" for i in range(n)], "类型": ["药店"] * n,
         "编号": [f"F{i}" for i in range(n)], "容量": np.arange(n) * 10.0},
        geometry=gpd.points_from_xy(x, np.full(n, CENTRE[1])), crs=4326)


def _report_codes(report: Report) -> set[str]:
    return {p.code for p in report.problems}


# -- the demo city -----------------------------------------------------------------------------
def test_demo_city_ingests_without_errors(loaded) -> None:
    ws, reports = loaded
    assert [r.status for r in reports] == ["published"] * len(reports), "\n\n".join(
        r.to_text() for r in reports if r.status != "published")
    assert all(r.ok for r in reports)
    names = {layer.name for layer in ws.layers()}
    assert names >= {"districts", "streets", "communities", "buildings", "population",
                     "facilities", "stocks", "cases", "roads"}


def test_demo_city_counts_and_totals_match_the_generator(loaded, demo) -> None:
    ws, _ = loaded
    _, manifest = demo
    totals = manifest["totals"]
    by_name = {f["name"]: f for f in manifest["files"]}
    for layer in ws.layers():
        entry = by_name[layer.name]
        if entry["format"] != "geotiff":
            assert layer.current.row_count == entry["rows"], layer.name
    buildings = ws.read("buildings")
    assert len(buildings) == totals["buildings"]
    assert set(buildings["use"]) <= {"residential", "commercial", "office", "industrial",
                                     "public", "mixed", "other"}
    facilities = ws.read("facilities")
    assert len(facilities) == totals["facilities"]
    beds = facilities.loc[facilities["kind"] == "hospital", "capacity"].sum()
    assert beds == totals["hospital_beds"]
    cases = ws.read("cases")
    assert len(cases) == totals["cases"]
    assert cases["status"].value_counts().to_dict() == totals["cases_by_status"]
    assert pd.api.types.is_datetime64_any_dtype(cases["report_date"])
    assert ws.read("communities")["level"].eq("community").all()
    with rasterio.open(ws.raster_path("population")) as src:
        data = src.read(1, masked=True)
    assert float(data.sum()) == totals["residents"]
    groups = ws.read("population_groups")
    assert groups["persons"].sum() == totals["residents"]


def test_demo_facilities_lose_their_gcj02_offset(loaded, demo) -> None:
    ws, _ = loaded
    out, _ = demo
    raw = pd.read_csv(out / "facilities.csv", encoding="utf-8-sig", dtype={"编号": str})
    facilities = ws.read("facilities").set_index("id")
    merged = facilities.join(raw.set_index("编号")[["经度", "纬度"]])
    shift = np.hypot(merged.geometry.x - merged["经度"], merged.geometry.y - merged["纬度"])
    # GCJ-02 near Shanghai is a shift of a few hundred metres (~0.002-0.006 degrees)
    assert (shift > 0.001).all()
    assert (shift < 0.01).all()
    bbox = shapely.box(*ws.config.bbox)
    assert facilities.within(bbox).all()


def test_same_file_twice_publishes_nothing_new(loaded, demo) -> None:
    ws, _ = loaded
    out, _ = demo
    before = {layer.name: layer.versions for layer in ws.layers()}
    again = ingest_manifest(ws, out / "manifest.json")
    assert {r.status for r in again} == {"unchanged"}
    assert {layer.name: layer.versions for layer in ws.layers()} == before


# -- formats ---------------------------------------------------------------------------------
def test_geojson_geopackage_geoparquet(tmp_path: Path, workspace: Workspace) -> None:
    frame = _facilities_frame()
    frame.to_file(tmp_path / "f.geojson")
    frame.to_parquet(tmp_path / "f.parquet")
    frame.to_file(tmp_path / "multi.gpkg", layer="shops")
    frame.to_crs(32651).to_file(tmp_path / "multi.gpkg", layer="shops_utm")
    for path, layer, name in ((tmp_path / "f.geojson", None, "a"),
                              (tmp_path / "f.parquet", None, "b"),
                              (tmp_path / "multi.gpkg", "shops_utm", "c")):
        report = ingest_file(workspace, path, kind="facilities", name=name, layer=layer)
        assert report.status == "published", report.to_text()
        read = workspace.read(name)
        assert list(read["kind"]) == ["pharmacy"] * 5
        assert np.allclose(read.geometry.x, frame.geometry.x, atol=1e-7)

    refused = ingest_file(workspace, tmp_path / "multi.gpkg", kind="facilities", name="d")
    assert refused.status == "refused"
    assert "shops, shops_utm" in refused.errors[0].message
    assert "--layer" in refused.errors[0].message


def test_loose_shapefile_without_cpg_is_decoded_as_gbk(tmp_path: Path,
                                                      workspace: Workspace) -> None:
    frame = _facilities_frame().to_crs(4549)
    frame.to_file(tmp_path / "shops.shp", encoding="GBK")
    (tmp_path / "shops.cpg").unlink(missing_ok=True)
    report = ingest_file(workspace, tmp_path / "shops.shp", kind="facilities")
    assert report.status == "published", report.to_text()
    assert report.info["encoding"] == "GB18030"
    assert workspace.read("facilities")["name"].tolist() == [f"药店{i}" for i in range(5)]


@pytest.mark.parametrize(("encoding", "header", "sep"), [
    ("utf-8", "编号,名称,类型,经度,纬度", ","),
    ("utf-8-sig", "id,name,kind,lng,lat", ","),
    ("gbk", "编号,名称,类型,经度,纬度", ","),
    ("gb18030", "编号;名称;类型;经度;纬度", ";"),
    ("utf-8", "id\tname\ttype\tlongitude\tlatitude", "\t"),
], ids=["utf8-zh", "utf8-bom-en", "gbk", "gb18030-semicolon", "tab"])
def test_csv_encodings_and_coordinate_columns(tmp_path: Path, workspace: Workspace,
                                              encoding: str, header: str, sep: str) -> None:
    rows = [sep.join(["F1", "一号药店", "药店", "121.47", "31.23"]),
            sep.join(["F2", "二号超市", "超市", "121.48", "31.24"])]
    path = tmp_path / ("f.tsv" if sep == "\t" else "f.csv")
    path.write_bytes("\n".join([header, *rows]).encode(encoding))
    report = ingest_file(workspace, path, kind="facilities")
    assert report.status == "published", report.to_text()
    read = workspace.read("facilities")
    assert read["kind"].tolist() == ["pharmacy", "supermarket"]
    assert read.geometry.x.tolist() == [121.47, 121.48]


def test_csv_with_wkt_and_declared_crs(tmp_path: Path, workspace: Workspace) -> None:
    utm = gpd.GeoSeries(gpd.points_from_xy([CENTRE[0]], [CENTRE[1]]), crs=4326).to_crs(32651)
    wkt = utm.iloc[0].buffer(50).wkt
    (tmp_path / "b.csv").write_text(f'id,use,wkt\nB1,住宅,"{wkt}"\n', encoding="utf-8")
    refused = ingest_file(workspace, tmp_path / "b.csv", kind="buildings")
    assert refused.status == "refused"
    assert "no_crs" in _report_codes(refused)
    report = ingest_file(workspace, tmp_path / "b.csv", kind="buildings", crs="EPSG:32651")
    assert report.status == "published", report.to_text()
    centroid = workspace.read("buildings").geometry.iloc[0].centroid
    assert centroid.distance(shapely.Point(CENTRE)) < 1e-5


def test_multiband_population_raster(tmp_path: Path, workspace: Workspace) -> None:
    path = tmp_path / "pop.tif"
    data = np.arange(2 * 20 * 30, dtype="float32").reshape(2, 20, 30)
    with rasterio.open(path, "w", driver="GTiff", width=30, height=20, count=2,
                       dtype="float32", crs="EPSG:32651", nodata=-1,
                       transform=Affine(100, 0, 350_000, 0, -100, 3_458_000)) as dst:
        dst.write(data)
        dst.set_band_description(1, "persons")
        dst.set_band_description(2, "age_65_plus")
    report = ingest_file(workspace, path, kind="population")
    assert report.status == "published", report.to_text()
    assert report.info["band_fields"] == ["persons", "age_65_plus"]
    with rasterio.open(workspace.raster_path("population")) as src:
        assert src.crs.to_epsg() == 32651
        assert src.descriptions == ("persons", "age_65_plus")
        assert float(src.read(1, masked=True).sum()) == float(data[0].sum())


def test_osm_pbf_buildings_facilities_roads(tmp_path: Path, workspace: Workspace) -> None:
    osmium = pytest.importorskip("osmium")
    path = tmp_path / "extract.osm.pbf"
    writer = osmium.SimpleWriter(str(path))
    node = osmium.osm.mutable.Node
    square = [(121.470, 31.230), (121.471, 31.230), (121.471, 31.231), (121.470, 31.231)]
    for i, xy in enumerate(square, start=1):
        writer.add_node(node(id=i, location=xy, version=1))
    writer.add_node(node(id=10, location=(121.472, 31.232), version=1,
                         tags={"amenity": "pharmacy", "name": "一号药房"}))
    writer.add_node(node(id=11, location=(121.473, 31.232), version=1,
                         tags={"amenity": "bench"}))
    writer.add_node(node(id=12, location=(121.474, 31.233), version=1))
    writer.add_node(node(id=13, location=(121.476, 31.233), version=1))
    writer.add_way(osmium.osm.mutable.Way(id=100, nodes=[1, 2, 3, 4, 1], version=1, tags={
        "building": "apartments", "building:levels": "6"}))
    writer.add_way(osmium.osm.mutable.Way(id=101, nodes=[12, 13], version=1, tags={
        "highway": "primary", "name": "人民路", "maxspeed": "50"}))
    writer.close()

    for kind in ("buildings", "facilities", "roads"):
        report = ingest_file(workspace, path, kind=kind)
        assert report.status == "published", report.to_text()
    buildings = workspace.read("buildings")
    assert buildings[["id", "use", "floors"]].values.tolist() == [["way/100", "residential", 6]]
    facilities = workspace.read("facilities")
    assert facilities[["id", "kind", "name"]].values.tolist() == [
        ["node/10", "pharmacy", "一号药房"]]
    roads = workspace.read("roads")
    assert roads[["id", "class", "name", "speed_kmh"]].values.tolist() == [
        ["way/101", "arterial", "人民路", 50.0]]  # a road is a way, not a node


# -- behaviour -------------------------------------------------------------------------------
def test_dry_run_publishes_nothing(tmp_path: Path, workspace: Workspace) -> None:
    _facilities_frame().to_file(tmp_path / "f.geojson")
    report = ingest_file(workspace, tmp_path / "f.geojson", kind="facilities", dry_run=True)
    assert report.status == "validated" and report.ok
    assert workspace.layers() == []


def test_refused_file_leaves_the_catalog_untouched(tmp_path: Path,
                                                    workspace: Workspace) -> None:
    _facilities_frame().to_file(tmp_path / "good.geojson")
    assert ingest_file(workspace, tmp_path / "good.geojson",
                       kind="facilities").status == "published"
    before = [v.to_dict() for v in workspace.versions("facilities")]
    bad = _facilities_frame().drop(columns="类型")
    bad.to_file(tmp_path / "bad.geojson")
    report = ingest_file(workspace, tmp_path / "bad.geojson", kind="facilities")
    assert report.status == "refused"
    assert "missing_field" in _report_codes(report)
    assert [v.to_dict() for v in workspace.versions("facilities")] == before
    assert list(workspace.tmp_dir.iterdir()) == []


def test_changed_options_are_a_new_version(tmp_path: Path, workspace: Workspace) -> None:
    """The same bytes read with another coordinate offset are different content."""
    _facilities_frame().to_file(tmp_path / "f.geojson")
    first = ingest_file(workspace, tmp_path / "f.geojson", kind="facilities")
    second = ingest_file(workspace, tmp_path / "f.geojson", kind="facilities", coords="gcj02")
    assert (first.status, second.status) == ("published", "published")
    assert [v.version for v in workspace.versions("facilities")] == [1, 2]
    restored = ingest_file(workspace, tmp_path / "f.geojson", kind="facilities")
    assert restored.status == "published"
    assert restored.info["restored_version"] == 1
    assert [v.version for v in workspace.versions("facilities")] == [1, 2]
    assert workspace.version("facilities").version == 1


def test_markup_is_stored_verbatim(tmp_path: Path, workspace: Workspace) -> None:
    frame = _facilities_frame(2)
    frame.loc[0, "名称"] = "<script>alert('x')</script>"
    frame.to_file(tmp_path / "f.geojson")
    report = ingest_file(workspace, tmp_path / "f.geojson", kind="facilities")
    assert report.status == "published"
    assert "markup_in_text" in _report_codes(report)
    assert workspace.read("facilities")["name"].iloc[0] == "<script>alert('x')</script>"


# -- command line ----------------------------------------------------------------------------
def test_cli_exit_codes_and_json(tmp_path: Path, workspace: Workspace) -> None:
    _facilities_frame().to_file(tmp_path / "f.geojson")
    ok = run_twin("ingest", str(workspace.root), str(tmp_path / "f.geojson"), "--kind",
                  "facilities", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "published"
    text = run_twin("ingest", str(workspace.root), str(tmp_path / "f.geojson"), "--kind",
                    "facilities")
    assert text.returncode == 0 and "unchanged" in text.stdout

    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("../../escape.shp", b"x")
    bad = run_twin("ingest", str(workspace.root), str(tmp_path / "evil.zip"), "--kind",
                   "buildings")
    assert bad.returncode == 1
    assert "refused" in bad.stdout and "path traversal" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr

    usage = run_twin("ingest", str(workspace.root))
    assert usage.returncode == 2
