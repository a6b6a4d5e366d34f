"""A deterministic synthetic "demo city" (示范市) written as departments hand their data over.

:func:`generate_demo_city` writes boundaries (GeoPackage, CGCS2000), buildings (zipped GBK
Shapefile in a Gauss-Kruger CRS, or GeoParquet for the megacity), a population raster and a
per-community table, facilities with GCJ-02 offset coordinates, cases, stocks, roads and a
``manifest.json`` listing every file with its CRS, encoding and row count plus the totals a
correct ingest must reproduce.  The same size and seed always give byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from twin.demo import write
from twin.demo.buildings import BUILDINGS_CRS, USES_ZH, make_buildings
from twin.demo.cases import DAYS, LAST_DATE, STATUSES, make_cases
from twin.demo.facilities import make_facilities
from twin.demo.grid_units import make_grid_units, make_hotline, make_staff
from twin.demo.layout import (
    CENTRE_LONLAT,
    UTM_CRS,
    make_admin,
    make_centres,
    make_grid,
    make_outline,
    to_crs,
)
from twin.demo.population import (
    NODATA,
    RESIDENTIAL_USES,
    allocate_residents,
    assign_communities,
    community_table,
    population_raster,
)
from twin.demo.roads import make_roads
from twin.demo.sizes import SIZES, DemoSize
from twin.demo.stocks import make_stocks
from twin.errors import DemoDataError, os_reason

__all__ = ["GENERATOR_VERSION", "SIZES", "STEPS", "DemoSize", "generate_demo_city"]

GENERATOR_VERSION = 1
#: Steps reported to ``on_step``, in order.
STEPS = (
    "layout",
    "boundaries",
    "buildings",
    "population",
    "facilities",
    "stocks",
    "cases",
    "roads",
    "grid",
    "manifest",
)
FIRST_DATE = LAST_DATE - dt.timedelta(days=DAYS - 1)
_MANIFEST = "manifest.json"


def _rng(seed: int, step: str) -> np.random.Generator:
    """An independent stream per step, so changing one step leaves the others' data alone."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STEPS.index(step),)))


def _is_demo_output(path: Path) -> bool:
    try:
        m = json.loads((path / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and isinstance(m.get("city"), dict) and "files" in m


def _check_args(out: Path, size: str, seed: int, overwrite: bool) -> DemoSize:
    if size not in SIZES:
        raise DemoDataError(f"unknown demo city size {size!r}; choose one of: {', '.join(SIZES)}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DemoDataError(f"seed must be a non-negative integer, got {seed!r}; e.g. seed=0")
    if out.exists() and not out.is_dir():
        raise DemoDataError(
            f"output path {str(out)!r} exists and is a file; choose a directory path"
        )
    if out.is_dir() and any(out.iterdir()):
        if not _is_demo_output(out):
            raise DemoDataError(
                f"output directory {str(out)!r} is not empty and does not hold an earlier demo "
                f"city (no valid {_MANIFEST}); refusing to touch it, choose a new or empty "
                "directory"
            )
        if not overwrite:
            raise DemoDataError(
                f"output directory {str(out)!r} already holds a demo city; pass "
                "overwrite=True (--overwrite on the command line) to replace it"
            )
    return SIZES[size]


def generate_demo_city(
    out: Path | str,
    *,
    size: str = "small",
    seed: int = 0,
    overwrite: bool = False,
    on_step: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Generate the demo city into directory ``out``.

    Parameters
    ----------
    out
        Output directory.  It must not exist, be empty, or hold an earlier demo city (then
        ``overwrite=True`` is needed).  Its parent is created if missing.
    size
        One of :data:`SIZES`: ``"small"`` (~60k residents, seconds), ``"city"`` (~1M) or
        ``"megacity"`` (~25M, a few minutes and several GB of RAM).
    seed
        Non-negative integer; the same size and seed give byte-identical files.
    overwrite
        Replace an earlier demo city in ``out``.
    on_step
        Called as ``on_step(i, n, label)`` at the start of each step, ``i`` counting from 1
        to ``n`` (see :data:`STEPS` for the labels).

    Returns
    -------
    dict
        The manifest (also written to ``out/manifest.json``).

    Raises
    ------
    twin.errors.DemoDataError
        Bad size or seed, or ``out`` is unsuitable.

    Notes
    -----
    Files are generated in a hidden sibling directory and moved into place at the end, so
    ``out`` is never left half-written; on failure the temporary directory is removed.
    """
    out = Path(out)
    params = _check_args(out, size, seed, overwrite)
    seed = int(seed)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoDataError(f"cannot create {out}: {os_reason(exc)}; choose a directory "
                            "path in a folder you may write to") from None
    tmp = out.parent / f".{out.name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        manifest = _generate(tmp, params, seed, on_step)
        _install(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _install(tmp: Path, out: Path) -> None:
    """Move the finished directory into place (replacing an earlier demo, if any)."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if out.exists():
        old = out.parent / f".{out.name}.old-{secrets.token_hex(4)}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def _entry(path: str, name: str, kind: str, fmt: str, rows: int | None, **kw: Any) -> dict:
    e = {
        "path": path,
        "layer": kw.pop("layer", None),
        "name": name,
        "kind": kind,
        "format": fmt,
        "crs": kw.pop("crs", None),
        "encoding": kw.pop("encoding", "UTF-8"),
        "coords": kw.pop("coords", "wgs84"),
        "description": kw.pop("description", ""),
        "rows": rows,
    }
    e.update(kw)
    return e


def _generate(
    tmp: Path, p: DemoSize, seed: int, on_step: Callable[[int, int, str], None] | None
) -> dict[str, Any]:
    n_steps = len(STEPS)
    step_iter = iter(range(1, n_steps + 1))

    def step(label: str) -> np.random.Generator:
        i = next(step_iter)
        assert STEPS[i - 1] == label  # keeps STEPS and the code below in sync
        if on_step is not None:
            on_step(i, n_steps, label)
        return _rng(seed, label)

    files: list[dict[str, Any]] = []
    totals: dict[str, Any] = {}
    last = LAST_DATE

    # 1. Layout ---------------------------------------------------------------------------
    rng = step("layout")
    outline = make_outline(rng, p)
    centres = make_centres(rng, p, outline)
    grid = make_grid(rng, p, outline)
    admin = make_admin(rng, p, outline, centres)

    # 2. Boundaries -----------------------------------------------------------------------
    step("boundaries")
    s_parent = [admin.district_code[d] for d in admin.street_district]
    c_parent = [admin.street_code[s] for s in admin.community_street]
    levels = [
        (
            "districts",
            admin.district_code,
            admin.district_name,
            [""] * len(admin.district_code),
            "区",
            admin.district_4490,
        ),
        ("streets", admin.street_code, admin.street_name, s_parent, "街道", admin.street_4490),
        (
            "communities",
            admin.community_code,
            admin.community_name,
            c_parent,
            "社区",
            admin.community_4490,
        ),
    ]
    units = make_grid_units(admin)
    levels.append(("grids", units.code, units.name, units.parent, "网格", units.geometry_4490))
    layers = []
    for name, codes, names, parents, level, geoms in levels:
        gdf = gpd.GeoDataFrame(
            {"区划代码": codes, "名称": names, "上级代码": parents, "级别": level},
            geometry=geoms,
            crs="EPSG:4490",
        )
        layers.append((name, gdf))
        files.append(
            _entry(
                "boundaries.gpkg",
                name,
                "boundaries",
                "gpkg",
                len(gdf),
                layer=name,
                crs="EPSG:4490",
                description=f"{level}级行政区划 ({name}): 区划代码 code, 名称 name, "
                "上级代码 parent code, 级别 level; children tile their parent exactly",
            )
        )
    write.write_gpkg(tmp / "boundaries.gpkg", layers, last)
    totals.update(
        districts=len(admin.district_code),
        streets=len(admin.street_code),
        communities=len(admin.community_code),
        grid_units=len(units.code),
    )

    # 3. Buildings ------------------------------------------------------------------------
    rng = step("buildings")
    b = make_buildings(rng, grid, outline, centres, p)
    b.community = assign_communities(admin, b.x, b.y)
    if np.any(b.community < 0):  # every building is inside the outline, hence a community
        raise RuntimeError("building outside every community")
    n_b = len(b)
    ids = np.char.add("B", np.char.zfill(np.arange(1, n_b + 1).astype(str), 7))
    bgdf = gpd.GeoDataFrame(
        {
            "编号": ids.astype(object),
            "用途": np.array(USES_ZH, dtype=object)[b.use],
            "层数": b.floors.astype(np.int32),
            "高度": b.height,
            "所属小区": b.block_name[b.block],
        },
        geometry=shapely.polygons(b.coords),
        crs=BUILDINGS_CRS,
    )
    if p.buildings_format == "geoparquet":
        bpath = "buildings.parquet"
        write.write_geoparquet(tmp / bpath, bgdf)
        benc, blayer = "UTF-8", None
    else:
        bpath = "buildings.zip"
        write.write_shapefile_zip(tmp / bpath, bgdf, "buildings", "GBK", last)
        benc, blayer = "GBK", "buildings"
    del bgdf
    res_mask = np.isin(b.use, RESIDENTIAL_USES)
    files.append(
        _entry(
            bpath,
            "buildings",
            "buildings",
            p.buildings_format,
            n_b,
            layer=blayer,
            crs=BUILDINGS_CRS,
            encoding=benc,
            description="建筑轮廓: 编号 id, 用途 use (住宅/商业/办公/工业/公共/混合/其他), "
            "层数 floors, 高度 height m, 所属小区 compound",
        )
    )
    totals["buildings"] = n_b
    totals["residential_floor_area_m2"] = round(float(b.floor_area[res_mask].sum()), 1)

    # 4. Population -----------------------------------------------------------------------
    rng = step("population")
    residents = allocate_residents(b, p.residents)
    raster, transform = population_raster(outline, b.x, b.y, residents)
    write.write_geotiff(
        tmp / "population.tif",
        raster,
        transform,
        UTM_CRS,
        NODATA,
        {"UNITS": "persons per 100 m pixel", "SOURCE": "twin.demo synthetic city"},
    )
    cx, cy = shapely.get_coordinates(shapely.centroid(admin.community_utm)).T
    groups = community_table(rng, admin, b.community, residents, centres.distance(cx, cy))
    write.write_csv(tmp / "population_groups.csv", groups, "gbk")
    files.append(
        _entry(
            "population.tif",
            "population",
            "population",
            "geotiff",
            None,
            crs=UTM_CRS,
            encoding=None,
            description="常住人口 persons per 100 m pixel (integers stored as "
            "float32), nodata -9999 outside the city",
            width=int(raster.shape[1]),
            height=int(raster.shape[0]),
            nodata=NODATA,
            sum=int(p.residents),
        )
    )
    files.append(
        _entry(
            "population_groups.csv",
            "population_groups",
            "population",
            "csv",
            len(groups),
            encoding="GBK",
            coords=None,
            key="community_code",
            description="社区人口与重点人群: 社区代码, 社区名称, 常住人口, 65岁以上, 0-14岁, "
            "独居老人, 慢性病患者",
        )
    )
    totals["residents"] = int(residents.sum())
    totals["vulnerable"] = {
        c: int(groups[c].sum()) for c in ("65岁以上", "0-14岁", "独居老人", "慢性病患者")
    }

    # 5. Facilities -----------------------------------------------------------------------
    rng = step("facilities")
    fac = make_facilities(rng, b, admin, grid, p.residents)
    fac_cols = ["编号", "名称", "类型", "经度", "纬度", "容量", "容量单位", "地址"]
    write.write_csv(tmp / "facilities.csv", fac[fac_cols], "utf-8-sig", float_format="%.6f")
    files.append(
        _entry(
            "facilities.csv",
            "facilities",
            "facilities",
            "csv",
            len(fac),
            crs="EPSG:4326",
            encoding="UTF-8-SIG",
            coords="gcj02",
            lon_field="经度",
            lat_field="纬度",
            description="重点设施 (医院, 发热门诊, 药店, 超市, 仓库, 隔离点, ...); "
            "经度/纬度 in GCJ-02",
        )
    )
    totals["facilities"] = len(fac)
    totals["facilities_by_type"] = {k: int(v) for k, v in fac["类型"].value_counts().items()}
    totals["hospital_beds"] = int(fac.loc[fac["类型"] == "医院", "容量"].sum())

    # 6. Stocks ---------------------------------------------------------------------------
    rng = step("stocks")
    stocks = make_stocks(rng, fac, p.residents, last)
    write.write_csv(tmp / "stocks.csv", stocks, "utf-8")
    files.append(
        _entry(
            "stocks.csv",
            "stocks",
            "stocks",
            "csv",
            len(stocks),
            coords=None,
            key="facility_id",
            description="物资库存: 设施编号 facility id, 物资 resource, 数量 quantity, 单位 unit, "
            "日期 as-of date",
        )
    )
    totals["stock_rows"] = len(stocks)

    # 7. Cases ----------------------------------------------------------------------------
    rng = step("cases")
    cases = make_cases(rng, b, residents, p.n_clusters, p.cases_target, seed)
    x, y = grid.to_xy(cases["u"].to_numpy(), cases["v"].to_numpy())
    lon, lat = to_crs(x, y, "EPSG:4326")
    case_cols = ["id", "report_date", "onset_date", "status", "age_band", "severity"]
    cgdf = gpd.GeoDataFrame(
        {c: cases[c].to_numpy(dtype=object) for c in case_cols},
        geometry=shapely.points(lon, lat),
        crs="EPSG:4326",
    )
    if p.cases_format == "geoparquet":
        cpath = "cases.parquet"
        write.write_geoparquet(tmp / cpath, cgdf)
    else:
        cpath = "cases.geojson"
        write.write_geojson(tmp / cpath, cgdf)
    del cgdf
    files.append(
        _entry(
            cpath,
            "cases",
            "cases",
            p.cases_format,
            len(cases),
            crs="EPSG:4326",
            description="病例 (personal data, pseudonymous id): report_date, onset_date, status, "
            "age_band, severity; point at the residence",
        )
    )
    totals["cases"] = len(cases)
    counts = cases["status"].value_counts()
    totals["cases_by_status"] = {s: int(counts.get(s, 0)) for s in STATUSES}

    # 8. Roads ----------------------------------------------------------------------------
    step("roads")
    rgeom, rname, rclass, rspeed = make_roads(grid, outline)
    tr_geom = shapely.transform(
        rgeom, lambda xy: np.column_stack(to_crs(xy[:, 0], xy[:, 1], "EPSG:4490"))
    )
    rgdf = gpd.GeoDataFrame(
        {"道路名称": rname, "等级": rclass, "限速": rspeed.astype(np.int32)},
        geometry=tr_geom,
        crs="EPSG:4490",
    )
    write.write_gpkg(tmp / "roads.gpkg", [("roads", rgdf)], last)
    files.append(
        _entry(
            "roads.gpkg",
            "roads",
            "roads",
            "gpkg",
            len(rgdf),
            layer="roads",
            crs="EPSG:4490",
            description="道路: 道路名称 name, 等级 class (快速路/主干路/次干路/支路), 限速 km/h; "
            "split at intersections",
        )
    )
    totals["roads"] = len(rgdf)

    # 9. Grid staff and a day of hotline requests -------------------------------------------
    rng = step("grid")
    records = []
    staff = make_staff(rng, units, admin)
    write.write_csv(tmp / "grid_staff.csv", staff, "utf-8-sig")
    records.append({"path": "grid_staff.csv", "kind": "grid_staff", "encoding": "UTF-8",
                    "rows": len(staff), "description": "网格人员: 网格编码 grid unit, 姓名 name, "
                    "联系电话 phone, 角色 role (网格员/社区干部/志愿者), 登录账号 login"})
    recent = cases["day"].to_numpy() >= DAYS - 14
    weights = np.bincount(cases["building"].to_numpy()[recent], minlength=n_b) * 20.0
    weights += np.where(res_mask, 1.0, 0.0)
    blon, blat = to_crs(b.x, b.y, "EPSG:4326")
    address = np.char.add(np.array(admin.community_name, dtype=str)[b.community],
                          b.block_name[b.block].astype(str))
    hotline = make_hotline(rng, last, n=max(50, p.residents // 400), building_ids=ids,
                           lon=np.asarray(blon), lat=np.asarray(blat), weights=weights,
                           address=address.astype(object))
    write.write_csv(tmp / "hotline.csv", hotline, "gbk")
    records.append({"path": "hotline.csv", "kind": "events", "encoding": "GBK",
                    "rows": len(hotline), "coords": "wgs84",
                    "description": "12345热线工单导出 (personal data): 工单编号, 受理时间, "
                    "诉求类别, 紧急程度, 来源渠道, 诉求地址, 建筑编号 or 经度/纬度 (WGS84), "
                    "诉求内容, 来电人, 联系电话; on the last day"})
    totals.update(grid_staff=len(staff), hotline_requests=len(hotline))

    # 10. Manifest -------------------------------------------------------------------------
    step("manifest")
    olon, olat = to_crs(*shapely.get_coordinates(outline).T, "EPSG:4326")
    manifest = {
        "city": {
            "name": "示范市",
            "name_en": "Demo City",
            # Rounded outwards with a ~100 m margin, so that every feature lies inside it.
            "bbox": [math.floor((olon.min() - 0.001) * 1e4) / 1e4,
                     math.floor((olat.min() - 0.001) * 1e4) / 1e4,
                     math.ceil((olon.max() + 0.001) * 1e4) / 1e4,
                     math.ceil((olat.max() + 0.001) * 1e4) / 1e4],
            "centre": list(CENTRE_LONLAT),
            "size": p.name,
            "seed": seed,
            "generator_version": GENERATOR_VERSION,
            "first_date": FIRST_DATE.isoformat(),
            "last_date": LAST_DATE.isoformat(),
            "area_km2": round(outline.area / 1e6, 6),
        },
        "files": files,
        "records": records,
        "totals": totals,
    }
    write.write_json(tmp / _MANIFEST, manifest)
    return manifest
