"""The synthetic demo city: files, nesting, totals, encodings, offsets, determinism, safety."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import zipfile
from collections import Counter
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from pyproj import Transformer

import twin.demo
from twin.demo import SIZES, STEPS, generate_demo_city
from twin.errors import DemoDataError
from twin.offsets import gcj02_to_wgs84

SIZE = "small"
KINDS = {"boundaries", "buildings", "facilities", "population", "cases", "stocks", "roads"}
FACILITY_TYPES = {
    "医院", "发热门诊", "社区卫生服务中心", "药店", "超市", "农贸市场", "便利店", "仓库", "隔离点",
    "学校", "养老院", "核酸检测点",
}  # fmt: skip


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "city"
    manifest = generate_demo_city(out, size=SIZE, seed=0)
    return out, manifest


@pytest.fixture(scope="module")
def layers(city: tuple[Path, dict]) -> dict[str, gpd.GeoDataFrame]:
    out, _ = city
    return {
        name: gpd.read_file(out / "boundaries.gpkg", layer=name)
        for name in ("districts", "streets", "communities")
    }


@pytest.fixture(scope="module")
def city_union(layers: dict[str, gpd.GeoDataFrame]) -> shapely.Geometry:
    geom = shapely.union_all(layers["districts"].geometry.values)
    shapely.prepare(geom)
    return geom


def _sha256_tree(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def _to_utm(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True).transform(lon, lat)


# ------------------------------------------------------------------------------ manifest


def test_manifest_lists_every_file(city: tuple[Path, dict]) -> None:
    out, manifest = city
    on_disk = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == manifest
    paths = {e["path"] for e in manifest["files"]}
    records = {e["path"] for e in manifest["records"]}
    assert records == {"grid_staff.csv", "hotline.csv"}
    assert paths | records | {"manifest.json"} == {p.name for p in out.iterdir()}
    assert {e["kind"] for e in manifest["files"]} == KINDS
    c = manifest["city"]
    assert (c["name"], c["name_en"], c["size"], c["seed"]) == ("示范市", "Demo City", SIZE, 0)
    assert c["first_date"] == "2026-03-02"
    assert c["last_date"] == "2026-04-30"
    lon0, lat0, lon1, lat1 = c["bbox"]
    assert lon0 < 121.47 < lon1
    assert lat0 < 31.23 < lat1
    coords = {e["name"]: e["coords"] for e in manifest["files"]}
    assert coords["facilities"] == "gcj02"
    assert coords["cases"] == "wgs84"


def test_manifest_rows_match_files(city: tuple[Path, dict]) -> None:
    out, manifest = city
    for e in manifest["files"]:
        path = out / e["path"]
        if e["format"] == "gpkg":
            n = pyogrio.read_info(path, layer=e["layer"])["features"]
        elif e["format"] == "shapefile-zip":
            n = pyogrio.read_info(f"zip://{path}")["features"]
        elif e["format"] == "geojson":
            n = pyogrio.read_info(path)["features"]
        elif e["format"] == "csv":
            n = len(pd.read_csv(path, encoding=e["encoding"].lower(), dtype=str))
        else:
            assert e["format"] == "geotiff"
            continue
        assert n == e["rows"], e["path"]


def test_on_step_reports_every_step(tmp_path: Path) -> None:
    calls: list[tuple[int, int, str]] = []
    generate_demo_city(tmp_path / "c", on_step=lambda i, n, label: calls.append((i, n, label)))
    assert calls == [(i + 1, len(STEPS), s) for i, s in enumerate(STEPS)]


# ---------------------------------------------------------------------------- boundaries


def test_admin_counts_codes_and_names(
    city: tuple[Path, dict], layers: dict[str, gpd.GeoDataFrame]
) -> None:
    _, manifest = city
    t = manifest["totals"]
    for name, n_digits, level in (("districts", 6, "区"), ("streets", 9, "街道"),
                                  ("communities", 12, "社区")):  # fmt: skip
        gdf = layers[name]
        assert len(gdf) == t[name]
        assert gdf.crs.to_epsg() == 4490
        assert gdf["区划代码"].str.fullmatch(rf"99\d{{{n_digits - 2}}}").all()
        assert gdf["区划代码"].is_unique
        assert gdf["名称"].is_unique
        assert gdf["名称"].str.endswith(level).all()
        assert (gdf["级别"] == level).all()
        assert gdf.geometry.is_valid.all()
    assert (layers["districts"]["上级代码"].fillna("") == "").all()
    assert abs(t["communities"] - SIZES[SIZE].n_communities) <= 2


@pytest.mark.parametrize(("child", "parent"), [("streets", "districts"),
                                               ("communities", "streets")])  # fmt: skip
def test_children_nest_and_tile_parents(
    layers: dict[str, gpd.GeoDataFrame], child: str, parent: str
) -> None:
    kids, parents = layers[child], layers[parent].set_index("区划代码")
    assert kids["上级代码"].isin(parents.index).all()
    assert (kids.apply(lambda r: r["区划代码"].startswith(r["上级代码"]), axis=1)).all()
    for code, group in kids.groupby("上级代码"):
        pgeom = parents.loc[code, "geometry"]
        geoms = group.geometry.values
        outside = shapely.area(shapely.difference(geoms, pgeom))
        assert np.all(outside <= 1e-9 * shapely.area(geoms))
        total = shapely.area(geoms).sum()
        assert total == pytest.approx(pgeom.area, rel=1e-9)
        assert shapely.union_all(geoms).area == pytest.approx(total, rel=1e-9)  # no overlaps


def test_districts_tile_the_city(
    city: tuple[Path, dict], layers: dict[str, gpd.GeoDataFrame], city_union: shapely.Geometry
) -> None:
    _, manifest = city
    d = layers["districts"].geometry.values
    assert shapely.area(d).sum() == pytest.approx(city_union.area, rel=1e-9)
    assert city_union.geom_type == "Polygon"  # one piece ...
    assert len(city_union.interiors) == 0  # ... without holes
    area_km2 = gpd.GeoSeries([city_union], crs=4490).to_crs(32651).area.iloc[0] / 1e6
    assert area_km2 == pytest.approx(manifest["city"]["area_km2"], rel=1e-5)
    # An irregular outline, not a rectangle: it fills clearly less than its bounding box.
    minx, miny, maxx, maxy = city_union.bounds
    assert city_union.area < 0.9 * (maxx - minx) * (maxy - miny)


# ------------------------------------------------------------------------ buildings etc.


def test_shapefile_is_gbk_and_round_trips(city: tuple[Path, dict]) -> None:
    out, manifest = city
    with zipfile.ZipFile(out / "buildings.zip") as zf:
        names = sorted(zf.namelist())
        cpg = zf.read("buildings.cpg").decode("ascii").strip().upper()
        dbf = zf.read("buildings.dbf")
    assert names == sorted(f"buildings.{e}" for e in ("cpg", "dbf", "prj", "shp", "shx"))
    assert cpg in {"GBK", "936", "CP936"}
    assert "住宅".encode("gbk") in dbf
    assert "住宅".encode() not in dbf
    b = gpd.read_file(f"zip://{out / 'buildings.zip'}", encoding="gbk")
    assert b.crs.to_epsg() == 4549
    assert list(b.columns) == ["编号", "用途", "层数", "高度", "所属小区", "geometry"]
    assert set(b["用途"]) <= {"住宅", "商业", "办公", "工业", "公共", "混合", "其他"}
    assert {"住宅", "商业", "工业"} <= set(b["用途"])
    assert b["编号"].is_unique
    assert b["所属小区"].str.len().min() >= 2
    assert (b["层数"] >= 1).all()
    assert ((b["高度"] / b["层数"]).between(2.5, 9.0)).all()
    assert len(b) == manifest["totals"]["buildings"]
    res = b["用途"].isin(["住宅", "混合"])
    floor_area = (b.area * b["层数"])[res].sum()
    assert floor_area == pytest.approx(manifest["totals"]["residential_floor_area_m2"], rel=1e-6)


def test_building_footprints_do_not_overlap(city: tuple[Path, dict]) -> None:
    out, _ = city
    b = gpd.read_file(f"zip://{out / 'buildings.zip'}", encoding="gbk")
    geoms = b.geometry.values
    sample = np.random.default_rng(0).choice(len(geoms), size=min(3000, len(geoms)), replace=False)
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms[sample], predicate="intersects")
    other = sample[i] != j
    inter = shapely.area(shapely.intersection(geoms[sample[i[other]]], geoms[j[other]]))
    assert np.all(inter < 1e-6)


def test_population_raster_sums_exactly(
    city: tuple[Path, dict], city_union: shapely.Geometry
) -> None:
    out, manifest = city
    total = SIZES[SIZE].residents
    with rasterio.open(out / "population.tif") as src:
        data = src.read(1)
        nodata = src.nodata
        assert src.crs.to_epsg() == 32651
        assert src.dtypes[0] == "float32"
        assert src.compression.name.lower() == "deflate"
        assert src.res == (100.0, 100.0)
        transform = src.transform
    valid = data != nodata
    assert nodata == -9999
    assert np.isfinite(data[valid]).all()
    assert (data[valid] >= 0).all()
    assert np.array_equal(data[valid], np.round(data[valid]))  # integer persons
    assert int(data[valid].astype(np.int64).sum()) == total == manifest["totals"]["residents"]

    groups = pd.read_csv(out / "population_groups.csv", encoding="gbk", dtype={"社区代码": str})
    assert list(groups.columns) == [
        "社区代码", "社区名称", "常住人口", "65岁以上", "0-14岁", "独居老人", "慢性病患者"
    ]  # fmt: skip
    assert groups["常住人口"].sum() == total
    pop = groups["常住人口"].to_numpy()
    assert (groups["65岁以上"] <= pop).all()
    assert (groups["独居老人"] <= groups["65岁以上"]).all()
    busy = pop > 500
    share = groups["65岁以上"].to_numpy()[busy] / pop[busy]
    assert share.min() >= 0.11
    assert share.max() <= 0.31
    assert share.std() > 0.01  # varies by community

    # Pixel centres inside the city are valid, those far outside are nodata.
    rows, cols = np.indices(data.shape)
    xs, ys = rasterio.transform.xy(transform, rows.ravel(), cols.ravel())
    lon, lat = Transformer.from_crs(32651, 4490, always_xy=True).transform(xs, ys)
    inside = shapely.contains_xy(city_union, lon, lat)
    far_out = ~shapely.contains_xy(city_union.buffer(0.003), lon, lat)
    assert valid.ravel()[inside].all()
    assert not valid.ravel()[far_out].any()
    assert far_out.any()


def test_facilities_gcj02_inside_city_after_unoffsetting(
    city: tuple[Path, dict], city_union: shapely.Geometry
) -> None:
    out, manifest = city
    raw = (out / "facilities.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    fac = pd.read_csv(out / "facilities.csv", encoding="utf-8-sig", dtype={"编号": str})
    assert list(fac.columns) == ["编号", "名称", "类型", "经度", "纬度", "容量", "容量单位", "地址"]
    assert set(fac["类型"]) == FACILITY_TYPES
    assert fac["编号"].is_unique
    assert fac["名称"].is_unique
    assert fac["地址"].str.startswith("示范市").all()
    beds = fac.loc[fac["类型"] == "医院", "容量"]
    assert beds.between(100, 1500).all()
    assert beds.sum() == manifest["totals"]["hospital_beds"]
    assert (fac.loc[fac["类型"] == "隔离点", "容量单位"] == "间").all()
    # Six decimals in the file.
    first_line = raw.decode("utf-8-sig").splitlines()[1]
    assert re.search(r",\d{3}\.\d{6},\d{2}\.\d{6},", first_line)

    glon, glat = fac["经度"].to_numpy(), fac["纬度"].to_numpy()
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    assert shapely.contains_xy(city_union, wlon, wlat).all()
    gx, gy = _to_utm(glon, glat)
    wx, wy = _to_utm(wlon, wlat)
    shift = np.hypot(gx - wx, gy - wy)
    assert shift.min() > 100
    assert shift.max() < 1000


def test_cases_inside_city_and_shaped_like_an_outbreak(
    city: tuple[Path, dict], city_union: shapely.Geometry
) -> None:
    out, manifest = city
    cases = pyogrio.read_dataframe(out / "cases.geojson")
    assert cases.crs.to_epsg() == 4326
    assert len(cases) == manifest["totals"]["cases"]
    assert 300 <= len(cases) <= 1000
    x, y = shapely.get_coordinates(cases.geometry.values).T
    assert shapely.contains_xy(city_union, x, y).all()
    assert cases["id"].is_unique
    assert cases["id"].astype(str).str.fullmatch(r"P[0-9a-f]{12}").all()

    report = pd.to_datetime(cases["report_date"])
    assert report.min() == pd.Timestamp("2026-03-02")
    assert report.max() == pd.Timestamp("2026-04-30")
    daily = report.value_counts().reindex(pd.date_range(report.min(), report.max()), fill_value=0)
    weekly = daily.rolling(7).sum().dropna().to_numpy()  # 7-day windows ending each day
    peak = int(np.argmax(weekly)) + 6  # day the busiest week ends
    assert 25 <= peak <= 55
    assert weekly[0] * 5 < weekly.max()  # exponential growth first ...
    assert weekly[-1] < 0.8 * weekly.max()  # ... then control takes hold

    status = Counter(cases["status"])
    assert set(status) <= {"confirmed", "asymptomatic", "suspected", "close_contact"}
    assert status["confirmed"] + status["asymptomatic"] > 0.85 * len(cases)
    assert dict(status) == {k: v for k, v in manifest["totals"]["cases_by_status"].items() if v}
    onset = pd.to_datetime(cases["onset_date"])
    lag = (report - onset).dt.days
    assert lag.dropna().between(0, 6).all()
    assert onset[cases["status"] == "asymptomatic"].isna().all()
    assert cases.loc[cases["status"] == "asymptomatic", "severity"].isna().all()
    sev = cases["severity"].dropna()
    assert set(sev) <= {"mild", "moderate", "severe", "critical"}
    assert (sev == "mild").mean() > 0.6
    assert set(cases["age_band"]) == {"0-14", "15-34", "35-64", "65+"}

    # Spatially clustered: the cases are much more concentrated than the residents.
    cx, cy = _to_utm(x, y)
    assert np.hypot(cx - cx.mean(), cy - cy.mean()).mean() < 2500


def test_stocks_refer_to_facilities(city: tuple[Path, dict]) -> None:
    out, manifest = city
    st = pd.read_csv(out / "stocks.csv", encoding="utf-8", dtype={"设施编号": str})
    fac = pd.read_csv(out / "facilities.csv", encoding="utf-8-sig", dtype={"编号": str})
    assert list(st.columns) == ["设施编号", "物资", "数量", "单位", "日期"]
    assert len(st) == manifest["totals"]["stock_rows"]
    assert st["设施编号"].isin(fac["编号"]).all()
    units = {"粮食": "kg", "蔬菜": "kg", "肉禽蛋": "kg", "饮用水": "L", "口罩": "个",
             "抗原试剂": "人份",
             "药品包": "份", "床位": "张"}  # fmt: skip
    assert set(st["物资"]) == set(units)
    assert (st["单位"] == st["物资"].map(units)).all()
    assert (st["数量"] >= 0).all()
    age = (dt.date(2026, 4, 30) - pd.to_datetime(st["日期"]).dt.date).map(lambda d: d.days)
    assert age.between(0, 3).all()
    assert (age == 0).mean() > 0.7
    kind = st["设施编号"].map(fac.set_index("编号")["类型"])
    assert set(kind[st["物资"] == "床位"]) == {"医院", "隔离点"}
    assert set(kind[st["物资"] == "粮食"]) <= {"仓库", "超市", "农贸市场", "便利店"}
    # City-wide grain covers a few days of 0.25 kg per resident.
    days = st.loc[st["物资"] == "粮食", "数量"].sum() / (manifest["totals"]["residents"] * 0.25)
    assert 2 < days < 8


def test_roads_form_a_graph_inside_the_city(
    city: tuple[Path, dict], city_union: shapely.Geometry
) -> None:
    out, manifest = city
    roads = gpd.read_file(out / "roads.gpkg", layer="roads")
    assert roads.crs.to_epsg() == 4490
    assert len(roads) == manifest["totals"]["roads"]
    assert (roads.geom_type == "LineString").all()
    assert set(roads["等级"]) == {"快速路", "主干路", "次干路", "支路"}
    speed = dict(zip(roads["等级"], roads["限速"], strict=True))
    assert speed["快速路"] > speed["主干路"] > speed["次干路"] > speed["支路"]
    assert roads["道路名称"].str.len().min() >= 3
    assert city_union.buffer(1e-7).contains(shapely.union_all(roads.geometry.values))
    # Split at intersections: almost every segment end is shared with another segment.
    ends = np.round(np.concatenate([
        shapely.get_coordinates(shapely.get_point(roads.geometry.values, 0)),
        shapely.get_coordinates(shapely.get_point(roads.geometry.values, -1)),
    ]), 7)  # fmt: skip
    _, counts = np.unique(ends, axis=0, return_counts=True)
    assert (counts >= 2).mean() > 0.8


# ------------------------------------------------------------------ determinism, safety


def test_same_seed_gives_identical_bytes_and_other_seed_differs(
    city: tuple[Path, dict], tmp_path: Path
) -> None:
    out, _ = city
    again = tmp_path / "again"
    generate_demo_city(again, size=SIZE, seed=0)
    assert _sha256_tree(again) == _sha256_tree(out)
    other = tmp_path / "other"
    generate_demo_city(other, size=SIZE, seed=1)
    a, b = _sha256_tree(out), _sha256_tree(other)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)


def test_bad_size_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DemoDataError, match=r"'huge'.*small, city, megacity"):
        generate_demo_city(tmp_path / "x", size="huge")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed_is_rejected(tmp_path: Path, seed: object) -> None:
    with pytest.raises(DemoDataError, match="seed"):
        generate_demo_city(tmp_path / "x", seed=seed)  # type: ignore[arg-type]


def test_refuses_non_empty_foreign_directory(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(DemoDataError, match=r"not empty.*manifest\.json") as err:
        generate_demo_city(out, overwrite=True)
    assert str(out) in str(err.value)
    assert (out / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_empty_directory_is_fine(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    generate_demo_city(out)
    assert (out / "manifest.json").exists()


def test_existing_demo_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    generate_demo_city(out, seed=0)
    before = _sha256_tree(out)
    with pytest.raises(DemoDataError, match="overwrite=True"):
        generate_demo_city(out, seed=1)
    assert _sha256_tree(out) == before
    generate_demo_city(out, seed=1, overwrite=True)
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["city"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temp or old dirs left


def test_failure_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(twin.demo, "make_roads", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_demo_city(tmp_path / "new")
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_previous_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "demo"
    generate_demo_city(out)
    before = _sha256_tree(out)

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(twin.demo, "make_cases", boom)
    with pytest.raises(RuntimeError, match="out of memory"):
        generate_demo_city(out, seed=3, overwrite=True)
    assert _sha256_tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_gdal_date_option_is_restored(tmp_path: Path) -> None:
    before = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    generate_demo_city(tmp_path / "d")
    assert pyogrio.get_gdal_config_option("OGR_CURRENT_DATE") == before
