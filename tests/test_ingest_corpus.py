"""A bad-input corpus through the whole ingest pipeline (staging, sandbox, mapping, CRS).

Each case is generated here, with its expected outcome: refused with a given problem code (and
the catalog untouched), or published with a given warning.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine

from ingest import ingest_file
from ingest.errors import UnsafeFileError
from twin import Workspace

X, Y = 121.47, 31.23  # inside the test workspace's bbox


def _points(n: int = 4, **columns) -> gpd.GeoDataFrame:
    data = {"编号": [f"F{i}" for i in range(n)], "名称": [f"药店{i}" for i in range(n)],
            "类型": ["药店"] * n, **columns}
    return gpd.GeoDataFrame(data, geometry=gpd.points_from_xy(X + np.arange(n) * 1e-3,
                                                              np.full(n, Y)), crs=4326)


def _buildings(geometries: list, crs: int | None = 4326) -> gpd.GeoDataFrame:
    n = len(geometries)
    return gpd.GeoDataFrame({"编号": [f"B{i}" for i in range(n)], "用途": ["住宅"] * n},
                            geometry=geometries, crs=crs)


def _box(dx: float = 0.0) -> shapely.Polygon:
    return shapely.box(X + dx, Y, X + dx + 2e-4, Y + 1e-4)


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _write(frame: gpd.GeoDataFrame, path: Path, **kwargs) -> Path:
    frame.to_file(path, **kwargs)
    return path


# -- the cases: (id, make(tmp) -> (path, ingest kwargs), expected status, expected code) -------
def _huge_raster(tmp: Path):
    path = tmp / "huge.tif"
    with rasterio.open(path, "w", driver="GTiff", width=200_000, height=200_000, count=1,
                       dtype="float32", crs="EPSG:32651", tiled=True, sparse_ok=True,
                       transform=Affine(1, 0, 350_000, 0, -1, 3_458_000)) as dst:
        dst.write(np.ones((1, 256, 256), "float32"), window=((0, 256), (0, 256)))
    assert path.stat().st_size < 10_000_000  # declared 40 G pixels in a small file
    return path, {"kind": "population"}


def _truncated_tiff(tmp: Path):
    path = tmp / "pop.tif"
    with rasterio.open(path, "w", driver="GTiff", width=300, height=300, count=1,
                       dtype="float32", crs="EPSG:32651",
                       transform=Affine(100, 0, 350_000, 0, -100, 3_458_000)) as dst:
        dst.write(np.random.default_rng(0).random((1, 300, 300), dtype="float32"))
    return _truncate(path), {"kind": "population"}


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _shapefile_members(tmp: Path, frame: gpd.GeoDataFrame) -> dict[str, bytes]:
    folder = tmp / "shp"
    folder.mkdir()
    frame.to_file(folder / "b.shp")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _bomb(tmp: Path):
    path = tmp / "bomb.zip"
    path.write_bytes(_zip_bytes({**_shapefile_members(tmp, _buildings([_box()])),
                                 "padding.dbf": b"\0" * 300_000_000}))
    return path, {"kind": "buildings"}


def _nested(tmp: Path):
    path = tmp / "nested.zip"
    inner = _zip_bytes(_shapefile_members(tmp, _buildings([_box()])))
    path.write_bytes(_zip_bytes({"inner.zip": inner}))
    return path, {"kind": "buildings"}


def _disguised(tmp: Path):
    path = tmp / "cases.geojson"
    path.write_bytes(_zip_bytes({"a.txt": b"hello"}))
    return path, {"kind": "cases"}


def _vrt(tmp: Path):
    path = tmp / "layer.geojson"
    path.write_text('<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>'
                    "/etc/passwd</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>")
    return path, {"kind": "facilities"}


def _mixed_encoding(tmp: Path):
    path = tmp / "f.csv"
    path.write_bytes("编号,名称,类型,经度,纬度\n".encode() + "F1,一号药店,药店,121.47,31.23\n"
                     .encode() + "F2,二号药店,药店,121.48,31.23\n".encode("gbk"))
    return path, {"kind": "facilities"}


def _wrong_encoding(tmp: Path):
    path = tmp / "f.csv"
    path.write_bytes("编号,名称,类型,经度,纬度\nF1,一号药店,药店,121.47,31.23\n".encode("gbk"))
    return path, {"kind": "facilities", "encoding": "utf-8"}


def _swapped(tmp: Path):
    path = tmp / "f.csv"
    path.write_text("编号,名称,类型,经度,纬度\nF1,一号药店,药店,31.23,121.47\n"
                    "F2,二号药店,药店,31.24,121.48\n", encoding="utf-8")
    return path, {"kind": "facilities"}


def _no_crs(tmp: Path):
    path = _write(_buildings([_box()]).to_crs(4549), tmp / "b.shp")
    path.with_suffix(".prj").unlink()
    return path, {"kind": "buildings"}


def _zone_prefix(tmp: Path):
    frame = _buildings([_box()]).to_crs(4528)  # eastings carry the zone number 40
    frame = frame.set_crs(4549, allow_override=True)
    return _write(frame, tmp / "b.gpkg"), {"kind": "buildings"}


def _all_outside(tmp: Path):
    frame = _points()
    frame.geometry = gpd.points_from_xy(np.full(4, 116.4), np.full(4, 39.9))  # Beijing
    return _write(frame, tmp / "f.geojson"), {"kind": "facilities"}


def _no_geometry(tmp: Path):
    frame = _buildings([None, None])
    return _write(frame, tmp / "b.geojson"), {"kind": "buildings"}


def _missing_field(tmp: Path):
    return _write(_points().drop(columns="类型"), tmp / "f.geojson"), {"kind": "facilities"}


def _ambiguous_dates(tmp: Path):
    path = tmp / "cases.csv"
    path.write_text("id,report_date,status,lon,lat\nP1,03/05/2026,confirmed,121.47,31.23\n"
                    "P2,04/05/2026,confirmed,121.47,31.23\n", encoding="utf-8")
    return path, {"kind": "cases"}


def _memory(tmp: Path):
    return _write(_points(), tmp / "f.geojson"), {"kind": "facilities"}


def _bow_tie(tmp: Path):
    bow = shapely.Polygon([(X, Y), (X + 1e-3, Y + 1e-3), (X + 1e-3, Y), (X, Y + 1e-3)])
    return _write(_buildings([bow, _box(0.01)]), tmp / "b.geojson"), {"kind": "buildings"}


def _empty_geometry(tmp: Path):
    return (_write(_buildings([_box(), shapely.Polygon()]), tmp / "b.gpkg"),
            {"kind": "buildings"})


def _mixed_types(tmp: Path):
    frame = _buildings([_box(), shapely.Point(X, Y), _box(0.01)])
    return _write(frame, tmp / "b.gpkg"), {"kind": "buildings"}


def _non_finite(tmp: Path):
    path = tmp / "f.csv"
    path.write_text("编号,名称,类型,经度,纬度\nF1,一号药店,药店,121.47,31.23\n"
                    "F2,二号药店,药店,inf,31.23\nF3,三号药店,药店,NaN,31.23\n",
                    encoding="utf-8")
    return path, {"kind": "facilities"}


def _duplicate_ids(tmp: Path):
    frame = _points(3)
    frame["编号"] = ["F1", "F1", "F2"]
    return _write(frame, tmp / "f.geojson"), {"kind": "facilities"}


def _markup(tmp: Path):
    frame = _points(2)
    frame.loc[1, "名称"] = '<img src=x onerror="alert(1)">'
    return _write(frame, tmp / "f.geojson"), {"kind": "facilities"}


def _truncated(fmt: str) -> Callable[[Path], tuple[Path, dict]]:
    def make(tmp: Path):
        frame = _buildings([_box(i * 1e-3) for i in range(200)])
        if fmt == "parquet":
            path = tmp / "b.parquet"
            frame.to_parquet(path)
        elif fmt == "zip":
            path = tmp / "b.zip"
            path.write_bytes(_zip_bytes(_shapefile_members(tmp, frame)))
        else:
            path = _write(frame, tmp / f"b.{fmt}")
        return _truncate(path), {"kind": "buildings"}
    return make


def _empty(suffix: str, kind: str) -> Callable[[Path], tuple[Path, dict]]:
    def make(tmp: Path):
        path = tmp / f"empty{suffix}"
        path.write_bytes(b"")
        return path, {"kind": kind}
    return make


REFUSED = [
    ("huge-declared-raster", _huge_raster, "limit_exceeded", "max_raster_pixels"),
    ("truncated-geotiff", _truncated_tiff, None, ""),
    ("zip-bomb", _bomb, "unsafe_file", "compression"),
    ("nested-archive", _nested, "unsafe_file", "nested"),
    ("zip-named-geojson", _disguised, "unsafe_file", "ZIP"),
    ("vrt-named-geojson", _vrt, "unsafe_file", "VRT"),
    ("mixed-encodings", _mixed_encoding, "unreadable_file", "mixes encodings"),
    ("wrong-encoding-given", _wrong_encoding, "unreadable_file", "not valid utf-8"),
    ("swapped-lon-lat", _swapped, "swapped_axes", "swapped"),
    ("no-crs", _no_crs, "no_crs", "--crs"),
    ("gauss-kruger-zone-prefix", _zone_prefix, "outside_city", "zone"),
    ("another-city", _all_outside, "outside_city", "city area"),
    ("no-usable-geometry", _no_geometry, None, ""),
    ("missing-required-field", _missing_field, "missing_field", "kind"),
    ("ambiguous-dates", _ambiguous_dates, "ambiguous_date", "%d/%m/%Y"),
    *[(f"truncated-{fmt}", _truncated(fmt), None, "") for fmt in
      ("geojson", "gpkg", "parquet", "zip")],
    *[(f"empty-{suffix[1:]}", _empty(suffix, kind), None, "") for suffix, kind in
      ((".geojson", "facilities"), (".gpkg", "facilities"), (".csv", "facilities"),
       (".tif", "population"), (".zip", "buildings"), (".parquet", "facilities"),
       (".osm.pbf", "roads"))],
]

PUBLISHED = [
    ("invalid-geometry-repaired", _bow_tie, "geometry_repaired"),
    ("empty-geometry-dropped", _empty_geometry, "empty_geometry"),
    ("mixed-geometry-types", _mixed_types, "wrong_geometry_type"),
    ("nan-inf-coordinates", _non_finite, "bad_coordinates"),
    ("duplicate-ids", _duplicate_ids, "duplicate_id"),
    ("xss-like-text", _markup, "markup_in_text"),
]


@pytest.mark.parametrize(("make", "code", "fragment"), [c[1:] for c in REFUSED],
                         ids=[c[0] for c in REFUSED])
def test_refused(tmp_path: Path, workspace: Workspace, make, code: str | None,
                 fragment: str) -> None:
    workspace.publish("keep", "buildings", _buildings([_box()]).rename(
        columns={"编号": "id", "用途": "use"}).assign(use="residential"))
    before = (json.dumps([layer.to_dict() for layer in workspace.layers()]),
              sorted(p.name for p in workspace.root.rglob("*") if p.is_file()))
    path, kwargs = make(tmp_path)
    report = ingest_file(workspace, path, **kwargs)
    assert report.status == "refused", report.to_text()
    codes = {p.code for p in report.errors}
    if code is not None:
        assert code in codes, report.to_text()
        assert fragment.lower() in " ".join(p.message for p in report.errors).lower()
    after = (json.dumps([layer.to_dict() for layer in workspace.layers()]),
             sorted(p.name for p in workspace.root.rglob("*") if p.is_file()))
    assert after == before  # the catalog and the files are exactly as they were


@pytest.mark.parametrize("path", [
    "/vsicurl/http://127.0.0.1:9/a.geojson", "/vsizip//etc/x.zip/a.shp", "GPKG:/etc/passwd:x",
    "http://example.com/a.geojson", "ok\x00.geojson"], ids=["vsicurl", "vsizip",
                                                          "driver-prefix", "url", "nul-byte"])
def test_gdal_trick_paths_are_refused_before_anything_reads_them(workspace: Workspace,
                                                                path: str) -> None:
    with pytest.raises(UnsafeFileError):
        ingest_file(workspace, path, kind="facilities")


def test_a_file_merely_named_like_a_driver_prefix_is_just_a_file(tmp_path: Path,
                                                                 workspace: Workspace) -> None:
    """GDAL only sees our own names, so a colon in the user's file name is harmless."""
    path = _write(_points(), tmp_path / "GPKG:shops.geojson")
    assert ingest_file(workspace, path, kind="facilities").status == "published"


def test_parser_out_of_memory_is_refused_cleanly(tmp_path: Path,
                                                 workspace: Workspace) -> None:
    toml = workspace.config_path
    toml.write_text(toml.read_text(encoding="utf-8").replace("memory_mb = 6144",
                                                             "memory_mb = 300"), encoding="utf-8")
    ws = Workspace.open(workspace.root)
    path, kwargs = _memory(tmp_path)
    report = ingest_file(ws, path, **kwargs)
    assert report.status == "refused"
    assert [p.code for p in report.errors] == ["parser_stopped"]
    assert "memory" in report.errors[0].message
    assert ws.layers() == []


@pytest.mark.parametrize(("make", "code"), [c[1:] for c in PUBLISHED],
                         ids=[c[0] for c in PUBLISHED])
def test_published_with_warning(tmp_path: Path, workspace: Workspace, make, code: str) -> None:
    path, kwargs = make(tmp_path)
    report = ingest_file(workspace, path, **kwargs)
    assert report.status == "published", report.to_text()
    assert code in {p.code for p in report.warnings}, report.to_text()
    problem = next(p for p in report.warnings if p.code == code)
    assert problem.rows, "warnings name the records they concern"
    layer = workspace.read(report.layer)
    assert layer.geometry.is_valid.all()
    assert not layer.geometry.is_empty.any()
