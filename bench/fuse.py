"""Benchmark fusion: a full fuse, an incremental day of cases, reads, and "the usual way".

Generates the demo city (default size ``megacity``), ingests it into a fresh workspace, then
runs every measurement in its own fresh process (so that one step's memory and caches do not
leak into the next):

1. a full ``fuse(ws, force=True)``: wall time per step (``FuseResult.seconds``) and memory per
   step (the largest RSS sampled every 10 ms during the step, and the process's high-water mark
   VmHWM when the step ends);
2. the incremental case update: publish a new version of the cases layer with 30,000 extra cases
   on a new day (publish timed separately), then ``fuse(ws)``, which must say "cases-updated";
3. reading one day's city-wide facts at resolution 8, cold (first read in a fresh process) and
   warm (median of 20);
4. "the usual way" on the same data (geopandas spatial joins, zonal statistics per hexagon, a
   Python loop over h3-py), on measured subsets extrapolated linearly (the subset sizes are
   printed), with the ratio to ours.

Usage::

    python bench/fuse.py [--size megacity|city|small] [--workdir DIR] [--keep] [--json FILE]
                         [--profile] [--skip-usual]

With ``--workdir DIR`` holding a workspace loaded by an earlier run (``DIR/ws``), generation and
ingest are skipped. Without ``--keep`` a temporary work directory is removed at the end (a given
``--workdir`` is always kept). For the megacity the workspace's ``[ingest] memory_mb`` is raised
to 16384 before ingest (the 2.4 M-building shapefile needs more than the default 6144 MB of
address space).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
INGEST_MEMORY_MB = 16384
NEW_CASES = 30_000
POINT_SUBSET = 200_000
ZONAL_SUBSET = 2_000
WARM_READS = 20
RESULT_TAG = "RESULT "


# -- memory sampling (in the measured process) --------------------------------------------------
def _status_mb(*fields: str) -> dict[str, float]:
    out = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in fields:
                out[key] = int(value.split()[0]) / 1024
    return out


class _Sampler(threading.Thread):
    """Samples VmRSS every ``interval`` s; ``mark()`` returns the largest since the last mark."""

    def __init__(self, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = 0.0
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            rss = _status_mb("VmRSS")["VmRSS"]
            with self.lock:
                self.peak = max(self.peak, rss)

    def mark(self) -> dict[str, float]:
        now = _status_mb("VmRSS", "VmHWM")
        with self.lock:
            peak = max(self.peak, now["VmRSS"])
            self.peak = now["VmRSS"]
        return {"step_peak_rss_mb": round(peak), "hwm_mb": round(now["VmHWM"]),
                "rss_end_mb": round(now["VmRSS"])}


def _timed_fuse(ws_path: str, force: bool) -> dict[str, Any]:
    """Run fuse with per-step times and memory; steps are delimited by fuse's own laps."""
    started = time.perf_counter()
    import twin.fuse as fuse_module
    from twin import Workspace

    imported = time.perf_counter() - started
    ws = Workspace.open(ws_path)
    sampler = _Sampler()
    sampler.start()
    base = sampler.mark()
    marks: list[dict[str, float]] = []
    original_lap = fuse_module._lap

    def lap(start: float) -> float:  # fuse calls _lap at the end of every step, in order
        value = original_lap(start)
        marks.append(sampler.mark())
        return value

    fuse_module._lap = lap
    try:
        clock = time.perf_counter()
        result = fuse_module.fuse(ws, force=force)
        wall = time.perf_counter() - clock
    finally:
        fuse_module._lap = original_lap
        sampler.stopped.set()
    import resource

    steps = []
    for (name, seconds), memory in zip(result.seconds.items(), marks, strict=True):
        steps.append({"step": name, "seconds": seconds, **memory})
    accounted = sum(s["seconds"] for s in steps if s["step"] != "total")
    return {"status": result.status, "facts_id": result.facts_id, "wall_s": round(wall, 3),
            "import_s": round(imported, 3), "rss_before_mb": base["rss_end_mb"],
            "steps": steps, "publish_and_other_s": round(result.seconds["total"] - accounted, 3),
            "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "cells": result.summary.get("cells"), "cases": result.summary.get("cases")}


# -- the child phases -------------------------------------------------------------------------
def child_fuse(ws_path: str, _: dict[str, Any]) -> dict[str, Any]:
    return {"loadavg": os.getloadavg(), **_timed_fuse(ws_path, force=True)}


def child_profile(ws_path: str, params: dict[str, Any]) -> dict[str, Any]:
    from pyinstrument import Profiler

    import twin.fuse
    from twin import Workspace

    ws = Workspace.open(ws_path)
    profiler = Profiler(interval=0.002)
    profiler.start()
    result = twin.fuse.fuse(ws, force=True)
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    Path(params["out"]).write_text(text, encoding="utf-8")
    Path(params["out"]).with_suffix(".html").write_text(profiler.output_html(), encoding="utf-8")
    profiler.last_session.save(str(Path(params["out"]).with_suffix(".pyisession")))
    return {"seconds": result.seconds, "profile": params["out"]}


def child_cases_update(ws_path: str, _: dict[str, Any]) -> dict[str, Any]:
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import shapely

    import twin.fuse
    from twin import Workspace

    ws = Workspace.open(ws_path)
    entry = twin.fuse._sources(ws)["cases"][0]
    clock = time.perf_counter()
    frame = ws.read(entry.layer, entry.version)
    read_s = time.perf_counter() - clock
    rng = np.random.default_rng(20260501)
    clock = time.perf_counter()
    pick = rng.choice(len(frame), size=NEW_CASES, replace=len(frame) < NEW_CASES)
    new = frame.iloc[pick].copy()
    xy = shapely.get_coordinates(new.geometry.to_numpy())
    # Near existing cases: within ~50 m (σ) of a case picked at random.
    xy = xy + rng.normal(0.0, 0.0005, size=xy.shape)
    new = new.set_geometry(gpd.GeoSeries(shapely.points(xy), index=new.index, crs=frame.crs))
    dates = pd.to_datetime(frame["report_date"])
    day = (dates.max() + pd.Timedelta(days=1)).normalize()
    new["report_date"] = (day if frame["report_date"].dtype.kind == "M"
                          else day.date() if not isinstance(frame["report_date"].iloc[0], str)
                          else day.strftime("%Y-%m-%d"))
    if "onset_date" in new and new["onset_date"].dtype.kind == "M":
        new["onset_date"] = day - pd.to_timedelta(rng.integers(0, 6, len(new)), unit="D")
    new["id"] = [f"bench-{day:%Y%m%d}-{i:06d}" for i in range(len(new))]
    combined = gpd.GeoDataFrame(pd.concat([frame, new], ignore_index=True), crs=frame.crs)
    build_s = time.perf_counter() - clock
    clock = time.perf_counter()
    version = ws.publish(entry.layer, "cases", combined, note="bench/fuse.py: +30k cases")
    publish_s = time.perf_counter() - clock
    del frame, new, combined
    # The fuse itself, in a fresh process like the full fuse.
    update = _run_child("fuse_update", ws_path, {})
    return {"layer": entry.layer, "old_version": entry.version, "new_version": version.version,
            "new_rows": len(pick), "new_day": f"{day:%Y-%m-%d}", "read_s": round(read_s, 3),
            "build_rows_s": round(build_s, 3), "publish_s": round(publish_s, 3),
            "fuse": update}


def child_fuse_update(ws_path: str, _: dict[str, Any]) -> dict[str, Any]:
    return {"loadavg": os.getloadavg(), **_timed_fuse(ws_path, force=False)}


def child_restore(ws_path: str, params: dict[str, Any]) -> dict[str, Any]:
    from twin import Workspace

    ws = Workspace.open(ws_path)
    ws.rollback(params["layer"], params["version"], note="bench/fuse.py: restore")
    return _run_child("fuse_update", ws_path, {})


def child_read(ws_path: str, params: dict[str, Any]) -> dict[str, Any]:
    clock = time.perf_counter()
    from twin import Workspace
    from twin.facts import Facts

    import_s = time.perf_counter() - clock
    clock = time.perf_counter()
    facts = Facts(Workspace.open(ws_path))
    open_s = time.perf_counter() - clock
    day = params["day"]
    clock = time.perf_counter()
    table = facts.read(8, start=day, end=day)
    cold = time.perf_counter() - clock
    warm = []
    for _ in range(WARM_READS):
        clock = time.perf_counter()
        facts.read(8, start=day, end=day)
        warm.append(time.perf_counter() - clock)
    return {"day": day, "rows": len(table), "cases": int(table["cases"].sum()),
            "import_s": round(import_s, 3), "open_s": round(open_s, 4),
            "cold_ms": round(cold * 1000, 1),
            "warm_median_ms": round(statistics.median(warm) * 1000, 2),
            "warm_min_ms": round(min(warm) * 1000, 2), "warm_max_ms": round(max(warm) * 1000, 2)}


def _hexes(cells):
    import geopandas as gpd
    import shapely

    from twin import grid

    return gpd.GeoDataFrame({"cell": cells},
                            geometry=shapely.from_wkb(grid.cell_boundaries_wkb(cells)),
                            crs="EPSG:4326")


def _sjoin_points(lng, lat, base: int, label: str) -> dict[str, Any]:
    """Spatial join of a subset of points to the hexagons around them, vs points_to_cells."""
    import geopandas as gpd
    import h3
    import numpy as np

    from twin import grid

    n = len(lng)
    rng = np.random.default_rng(7)
    sub = np.sort(rng.choice(n, size=min(POINT_SUBSET, n), replace=False))
    slng, slat = lng[sub], lat[sub]
    ours_all = []
    for _ in range(3):
        clock = time.perf_counter()
        cells_all = grid.points_to_cells(lng, lat, base)
        ours_all.append(time.perf_counter() - clock)
    ours_s = statistics.median(ours_all)
    clock = time.perf_counter()
    own = grid.points_to_cells(slng, slat, base)
    ring = grid.grid_disk(own, 1)
    hexes = _hexes(ring)
    grid_s = time.perf_counter() - clock
    clock = time.perf_counter()
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(slng, slat), crs="EPSG:4326")
    joined = gpd.sjoin(points, hexes, predicate="within", how="left")
    joined = joined[~joined.index.duplicated(keep="first")]
    sjoin_s = time.perf_counter() - clock
    right = joined["index_right"].to_numpy(dtype=np.float64)  # NaN where no hexagon held it
    found = np.isfinite(right)
    cell_of = np.zeros(len(right), dtype=np.uint64)
    cell_of[found] = ring[right[found].astype(np.int64)]
    agree = float(np.mean(cell_of == own)) if len(own) else 1.0
    loop_n = min(POINT_SUBSET, n)
    clock = time.perf_counter()
    _ = [h3.latlng_to_cell(la, lo, base) for la, lo in zip(slat[:loop_n].tolist(),
                                                             slng[:loop_n].tolist(),
                                                             strict=True)]
    loop_s = time.perf_counter() - clock
    factor = n / len(sub)
    return {"what": label, "points": n, "subset": len(sub), "ours_points_to_cells_s":
            round(ours_s, 4), "hex_grid_cells": len(ring), "hex_grid_build_s": round(grid_s, 3),
            "sjoin_subset_s": round(sjoin_s, 3), "sjoin_extrapolated_s":
            round(sjoin_s * factor, 2), "sjoin_agreement": round(agree, 6),
            "h3py_loop_subset": loop_n, "h3py_loop_subset_s": round(loop_s, 3),
            "h3py_loop_extrapolated_s": round(loop_s * n / loop_n, 2),
            "cells_found": len(np.unique(cells_all))}


def child_usual_points(ws_path: str, _: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    import twin.fuse
    from twin import Workspace

    ws = Workspace.open(ws_path)
    entry = twin.fuse._sources(ws)["cases"][0]
    table = pq.read_table(ws.root / entry.file, columns=["geometry"])
    from twin.geoarrow import point_coordinates

    x, y = point_coordinates(table.column("geometry"))
    base = ws.config.base_resolution
    out = _sjoin_points(x, y, base, "case points")
    # The rest of the usual way for the case step: read the layer with geopandas, and count
    # cases per cell, date and status with pandas, once per level (base, rollups, admin).
    from twin import grid

    clock = time.perf_counter()
    frame = ws.read(entry.layer, entry.version)
    read_s = time.perf_counter() - clock
    cells = grid.points_to_cells(frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy(), base)
    clock = time.perf_counter()
    frame.assign(cell=cells).groupby(["cell", "report_date", "status"]).size()
    group_s = time.perf_counter() - clock
    levels = 1 + len(ws.config.rollups) + 3
    out.update(read_s=round(read_s, 3), groupby_one_level_s=round(group_s, 3), levels=levels,
               usual_total_s=round(read_s + out["sjoin_extrapolated_s"] + group_s * levels, 2))
    return out


def child_usual_buildings(ws_path: str, _: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    import twin.fuse
    from twin import Workspace, grid

    ws = Workspace.open(ws_path)
    base = ws.config.base_resolution
    entry = twin.fuse._sources(ws)["buildings"][0]
    clock = time.perf_counter()
    frame = ws.read(entry.layer, entry.version)
    read_s = time.perf_counter() - clock
    clock = time.perf_counter()
    centroids = frame.geometry.centroid  # warns (geographic CRS): that is the usual way too
    centroid_s = time.perf_counter() - clock
    lng, lat = centroids.x.to_numpy(), centroids.y.to_numpy()
    out = _sjoin_points(lng, lat, base, "building centroids")
    # The rest of the usual way on the subset: footprint areas in a projected CRS and sums.
    n = len(frame)
    rng = np.random.default_rng(7)
    sub = np.sort(rng.choice(n, size=min(POINT_SUBSET, n), replace=False))
    part = frame.iloc[sub]
    clock = time.perf_counter()
    utm = part.estimate_utm_crs()
    area = part.to_crs(utm).area.to_numpy()
    area_s = time.perf_counter() - clock
    cells = grid.points_to_cells(lng[sub], lat[sub], base)
    clock = time.perf_counter()
    import pandas as pd

    pd.DataFrame({"cell": cells, "footprint_m2": area, "n": 1,
                  "use": part["use"].to_numpy()}).groupby(["cell", "use"]).sum()
    group_s = time.perf_counter() - clock
    factor = n / len(sub)
    out.update(read_s=round(read_s, 3), centroid_s=round(centroid_s, 3),
               area_subset_s=round(area_s, 3), groupby_subset_s=round(group_s, 3),
               usual_total_s=round(read_s + centroid_s + (out["sjoin_subset_s"] + area_s
                                                          + group_s) * factor, 2))
    return out


def child_usual_raster(ws_path: str, _: dict[str, Any]) -> dict[str, Any]:
    import h3
    import numpy as np
    import rasterio
    import rasterio.mask
    import shapely
    from pyproj import Transformer

    import twin.fuse
    from twin import Workspace, grid
    from twin.rasters import allocate_raster

    ws = Workspace.open(ws_path)
    base = ws.config.base_resolution
    entry = twin.fuse._sources(ws)["population"][0]
    path = ws.raster_path(entry.layer, entry.version)
    clock = time.perf_counter()
    alloc = allocate_raster(path, base)  # sampling only, no buildings
    ours_s = time.perf_counter() - clock
    with rasterio.open(path) as src:
        data = src.read(1, masked=True).astype(np.float64).filled(0.0)
        data[~np.isfinite(data) | (data < 0)] = 0.0
        true_total = float(data.sum())
        transform, crs = src.transform, src.crs
        to_raster = Transformer.from_crs(4326, crs, always_xy=True)
        pixel_area = abs(transform.a * transform.e)
        rng = np.random.default_rng(11)
        cells = alloc.cells
        pick = np.sort(rng.choice(len(cells), size=min(ZONAL_SUBSET, len(cells)), replace=False))
        sub = cells[pick]
        clock = time.perf_counter()
        hexes = shapely.from_wkb(grid.cell_boundaries_wkb(sub))
        hexes = shapely.transform(hexes, lambda xy: np.column_stack(
            to_raster.transform(xy[:, 0], xy[:, 1])))
        prep_s = time.perf_counter() - clock
        zonal = np.zeros(len(sub))
        clock = time.perf_counter()
        for i, hexagon in enumerate(hexes):
            try:
                values, _ = rasterio.mask.mask(src, [hexagon], crop=True, filled=False)
                zonal[i] = float(values.sum()) if values.count() else 0.0
            except ValueError:  # the hexagon misses the raster
                zonal[i] = 0.0
        zonal_s = time.perf_counter() - clock
        touched = np.zeros(len(sub))
        for i, hexagon in enumerate(hexes):
            try:
                values, _ = rasterio.mask.mask(src, [hexagon], crop=True, filled=False,
                                               all_touched=True)
                touched[i] = float(values.sum()) if values.count() else 0.0
            except ValueError:
                touched[i] = 0.0
    # Exact area-weighted share of each subset hexagon (uniform density within a pixel).
    exact = np.zeros(len(sub))
    inverse = ~transform
    height, width = data.shape
    for i, hexagon in enumerate(hexes):
        x0, y0, x1, y1 = hexagon.bounds
        c0, r0 = inverse * (x0, y1)
        c1, r1 = inverse * (x1, y0)
        cols = np.arange(max(0, int(np.floor(min(c0, c1)))), min(width, int(np.ceil(max(c0, c1)))))
        rows = np.arange(max(0, int(np.floor(min(r0, r1)))), min(height, int(np.ceil(max(r0, r1)))))
        if not len(cols) or not len(rows):
            continue
        cc, rr = np.meshgrid(cols, rows)
        xa, ya = transform * (cc.ravel(), rr.ravel())
        xb, yb = transform * (cc.ravel() + 1, rr.ravel() + 1)
        boxes = shapely.box(np.minimum(xa, xb), np.minimum(ya, yb), np.maximum(xa, xb),
                            np.maximum(ya, yb))
        share = shapely.area(shapely.intersection(boxes, hexagon)) / pixel_area
        exact[i] = float((share * data[rr.ravel(), cc.ravel()]).sum())
    ours_sub = alloc.values["band_1"][pick]

    def rel_err(values: np.ndarray) -> float:  # sum of per-cell |error| over the exact total
        return float(np.abs(values - exact).sum() / exact.sum()) if exact.sum() else 0.0

    # h3ronpy-style: every cell of the city takes the pixel under its centre.
    clock = time.perf_counter()
    to_wgs = Transformer.from_crs(crs, 4326, always_xy=True)
    left, bottom, right, top = rasterio.transform.array_bounds(height, width, transform)
    ring_x = np.r_[np.linspace(left, right, 50), np.full(50, right), np.linspace(right, left, 50),
                   np.full(50, left)]
    ring_y = np.r_[np.full(50, bottom), np.linspace(bottom, top, 50), np.full(50, top),
                   np.linspace(top, bottom, 50)]
    rlng, rlat = to_wgs.transform(ring_x, ring_y)
    city = np.array(h3.api.basic_int.polygon_to_cells(
        h3.LatLngPoly(list(zip(rlat, rlng, strict=True))), base), dtype=np.uint64)
    clng, clat = grid.cell_centres(city)
    cx, cy = to_raster.transform(clng, clat)
    col, row = ~transform * (np.asarray(cx), np.asarray(cy))
    col, row = np.floor(col).astype(np.int64), np.floor(row).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    centre_total = float(data[row[inside], col[inside]].sum())
    centre_s = time.perf_counter() - clock
    factor = len(cells) / len(sub)
    return {"raster_pixels_nonzero": int((data > 0).sum()), "pixel_m2": round(pixel_area),
            "cell_m2": round(grid.average_cell_area_m2(base)),
            "true_total": round(true_total), "ours_allocate_raster_s": round(ours_s, 3),
            "ours_total": round(float(alloc.values["band_1"].sum())),
            "cells_nonzero": len(cells), "subset": len(sub),
            "hex_prepare_subset_s": round(prep_s, 3), "zonal_subset_s": round(zonal_s, 3),
            "zonal_extrapolated_s": round((zonal_s + prep_s) * factor, 1),
            "subset_exact_total": round(float(exact.sum())),
            "subset_zonal_centre_total": round(float(zonal.sum())),
            "subset_zonal_all_touched_total": round(float(touched.sum())),
            "subset_ours_total": round(float(ours_sub.sum())),
            "zonal_centre_vs_exact": round(float(zonal.sum() / exact.sum()), 4),
            "zonal_all_touched_vs_exact": round(float(touched.sum() / exact.sum()), 4),
            "ours_vs_exact": round(float(ours_sub.sum() / exact.sum()), 4),
            "cell_abs_error_share": {"zonal_centre": round(rel_err(zonal), 4),
                                     "zonal_all_touched": round(rel_err(touched), 4),
                                     "ours_sampling": round(rel_err(ours_sub), 4)},
            "zonal_centre_cells_zero_but_exact_positive": int(((zonal == 0)
                                                               & (exact > 0)).sum()),
            "centre_sample_cells": len(city), "centre_sample_total": round(centre_total),
            "centre_sample_vs_true": round(centre_total / true_total, 4) if true_total else None,
            "centre_sample_s": round(centre_s, 3)}


def child_usual_admin(ws_path: str, _: dict[str, Any]) -> dict[str, Any]:
    import geopandas as gpd
    import numpy as np
    import pyarrow.parquet as pq

    import twin.fuse
    from twin import Workspace, grid

    ws = Workspace.open(ws_path)
    roles = twin.fuse._sources(ws)
    clock = time.perf_counter()
    units = twin.fuse._load_units(ws, roles["boundaries"])
    load_s = time.perf_counter() - clock
    facts = ws.current_facts()
    cells = pq.read_table(facts.path / f"cells_r{ws.config.base_resolution}.parquet",
                          columns=["cell"]).column("cell").to_numpy()
    clock = time.perf_counter()
    lng, lat = grid.cell_centres(cells)
    centres_s = time.perf_counter() - clock
    clock = time.perf_counter()
    # Ours works on the cells themselves (polygon fill + lookup); it needs no centres.
    ours, _ = units.assign(cells.astype(np.uint64), ws.config.base_resolution)
    ours_s = time.perf_counter() - clock
    per_level = {}
    agree = {}
    clock_all = time.perf_counter()
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lng, lat), crs="EPSG:4326")
    for level, frame in units.frames.items():
        clock = time.perf_counter()
        polygons = gpd.GeoDataFrame(frame[["code"]], geometry=frame["geometry"].to_numpy(),
                                    crs="EPSG:4326")
        joined = gpd.sjoin(points, polygons, predicate="within", how="left")
        joined = joined[~joined.index.duplicated(keep="first")]
        per_level[level] = round(time.perf_counter() - clock, 3)
        codes = joined["code"].to_numpy(dtype=object)
        matched = ~joined["code"].isna().to_numpy()
        agree[level] = {"sjoin_unmatched": int((~matched).sum()),
                        "agree_where_matched": round(float(np.mean(
                            codes[matched] == ours[level][matched])), 6)}
    usual_s = time.perf_counter() - clock_all
    return {"cells": len(cells), "units": {k: len(v) for k, v in units.frames.items()},
            "load_units_s": round(load_s, 3), "cell_centres_s": round(centres_s, 3),
            "ours_assign_s": round(ours_s, 3), "sjoin_s": round(usual_s, 3),
            "sjoin_per_level_s": per_level, "agreement": agree}


CHILDREN = {name.removeprefix("child_"): fn for name, fn in globals().items()
            if name.startswith("child_")}


def _run_child(phase: str, ws_path: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run a phase in a fresh interpreter; return its result with wall time and peak RSS."""
    clock = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(HERE), "--child", phase, "--workdir", ws_path,
                             "--params", json.dumps(params)], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - clock
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"phase {phase} failed (exit {os.waitstatus_to_exitcode(status)})")
    lines = [ln for ln in out.splitlines() if ln.startswith(RESULT_TAG)]
    result = json.loads(lines[-1].removeprefix(RESULT_TAG))
    result["process_wall_s"] = round(wall, 2)
    result["process_maxrss_mb"] = round(usage.ru_maxrss / 1024)
    return result


# -- setup --------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    import hashlib

    import geopandas
    import h3
    import h3ronpy
    import numpy
    import pandas
    import pyarrow
    import pyogrio
    import rasterio
    import shapely

    root = HERE.parent.parent
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "twin"],
                           capture_output=True, text=True).stdout.split("\n")
    code = {"git_head": head, "twin_modified": [ln[3:] for ln in dirty if ln.strip()],
            "twin_fuse_sha256": hashlib.sha256((root / "twin" / "fuse.py").read_bytes())
            .hexdigest()[:16]}
    return {"code": code, "platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(), "numpy": numpy.__version__,
            "pandas": pandas.__version__, "pyarrow": pyarrow.__version__,
            "shapely": shapely.__version__, "geopandas": geopandas.__version__,
            "pyogrio": pyogrio.__version__, "gdal": pyogrio.__gdal_version_string__,
            "rasterio": rasterio.__version__, "h3": h3.__version__,
            "h3ronpy": getattr(h3ronpy, "__version__", "?"), "loadavg": os.getloadavg()}


_INGEST = """
import json, sys, time
from ingest import ingest_manifest
from twin import Workspace
ws = Workspace.open(sys.argv[1])
rows = []
def on_file(i, n, label):
    rows.append({"file": label, "start": time.perf_counter()})
reports = ingest_manifest(ws, sys.argv[2], on_file=on_file)
end = time.perf_counter()
for row, nxt, rep in zip(rows, [r["start"] for r in rows[1:]] + [end], reports):
    row.update(seconds=round(nxt - row.pop("start"), 2), status=rep.status,
               errors=len(rep.errors))
print("RESULT " + json.dumps(rows))
"""


def setup(workdir: Path, size: str) -> dict[str, Any]:
    """Generate and ingest the demo city unless ``workdir/ws`` already holds it."""
    from twin import Workspace

    source, ws_path = workdir / "source", workdir / "ws"
    info: dict[str, Any] = {"workdir": str(workdir)}
    if (ws_path / "twin.toml").exists() and Workspace.open(ws_path).layers():
        manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
        if manifest["city"]["size"] != size:
            raise SystemExit(f"{workdir} holds the {manifest['city']['size']} city, not {size}")
        print(f"reusing the workspace in {ws_path} (generation and ingest skipped)")
        info["reused"] = True
        earlier = workdir / "setup_info.json"
        if earlier.exists():
            info["earlier_setup"] = json.loads(earlier.read_text(encoding="utf-8"))
        return info
    if not (source / "manifest.json").exists():
        clock = time.perf_counter()
        proc = subprocess.Popen([str(Path(sys.executable).with_name("twin")), "demo-data",
                                 str(source), "--size", size, "--overwrite"],
                                stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status):
            raise SystemExit("demo-data failed")
        info["generate_s"] = round(time.perf_counter() - clock, 1)
        info["generate_peak_mb"] = round(usage.ru_maxrss / 1024)
        print(f"generated the {size} demo city in {info['generate_s']} s "
              f"(peak {info['generate_peak_mb']} MB)")
    manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    if ws_path.exists():
        shutil.rmtree(ws_path)
    ws = Workspace.init(ws_path, "bench", bbox=tuple(manifest["city"]["bbox"]))
    if size == "megacity":
        text = ws.config_path.read_text(encoding="utf-8")
        ws.config_path.write_text(text.replace("memory_mb = 6144",
                                               f"memory_mb = {INGEST_MEMORY_MB}"),
                                  encoding="utf-8")
        info["ingest_memory_mb"] = INGEST_MEMORY_MB
        print(f"raised [ingest] memory_mb to {INGEST_MEMORY_MB} in {ws.config_path}")
    clock = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _INGEST, str(ws_path),
                             str(source / "manifest.json")], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    info["ingest_s"] = round(time.perf_counter() - clock, 1)
    info["ingest_peak_mb"] = round(usage.ru_maxrss / 1024)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit("ingest failed")
    info["ingest_files"] = json.loads([ln for ln in out.splitlines()
                                       if ln.startswith(RESULT_TAG)][-1][len(RESULT_TAG):])
    print(f"ingested in {info['ingest_s']} s (peak {info['ingest_peak_mb']} MB, parent and "
          "sandboxed children):")
    for row in info["ingest_files"]:
        print(f"  {row['file']:<28} {row['seconds']:>7} s  {row['status']}"
              f"{'  errors ' + str(row['errors']) if row['errors'] else ''}")
    bad = [r for r in info["ingest_files"] if r["status"] not in ("published", "unchanged")]
    if bad:
        print(f"  note: {len(bad)} file(s) not loaded cleanly: "
              + ", ".join(f"{r['file']} ({r['status']})" for r in bad))
    (workdir / "setup_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


# -- report ---------------------------------------------------------------------------------------
def _from(subset: int, total: int) -> str:
    return f"extrapolated from {subset:,}" if subset < total else f"all {total:,} measured"


def _ratio(usual: float, ours: float) -> str:
    return f"{usual / ours:,.1f}x" if ours > 0 else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="megacity", choices=["small", "city", "megacity"])
    parser.add_argument("--workdir", type=Path, help="work directory (kept); reused if loaded")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--profile", action="store_true",
                        help="also profile a full fuse with pyinstrument (WORKDIR/profile_fuse.*)")
    parser.add_argument("--skip-usual", action="store_true", help="skip 'the usual way'")
    parser.add_argument("--setup-only", action="store_true",
                        help="only generate and ingest (into --workdir)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = CHILDREN[args.child](str(args.workdir), json.loads(args.params))
        print(RESULT_TAG + json.dumps(result, default=str), flush=True)
        return

    report: dict[str, Any] = {"benchmark": "fuse", "size": args.size, "machine": machine()}
    m = report["machine"]
    print(f"machine: {m['platform']}, {m['cpu_count']} CPUs, {m['ram_gb']} GiB RAM, load "
          f"{' '.join(f'{x:.2f}' for x in m['loadavg'])}")
    print(f"python {m['python']}, numpy {m['numpy']}, pandas {m['pandas']}, pyarrow "
          f"{m['pyarrow']}, shapely {m['shapely']}, geopandas {m['geopandas']}, pyogrio "
          f"{m['pyogrio']}, GDAL {m['gdal']}, rasterio {m['rasterio']}, h3 {m['h3']}, "
          f"h3ronpy {m['h3ronpy']}")
    temporary = args.workdir is None
    workdir = (Path(tempfile.mkdtemp(prefix="fusebench-")) if temporary
               else args.workdir.absolute())
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        report["setup"] = setup(workdir, args.size)
        ws_path = str(workdir / "ws")
        if args.setup_only:
            return
        run(report, ws_path, workdir, args)
    finally:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2, default=str) + "\n",
                                 encoding="utf-8")
            print(f"wrote {args.json}")
        if temporary and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif temporary:
            print(f"kept the work directory {workdir}")


def run(report: dict[str, Any], ws_path: str, workdir: Path, args: argparse.Namespace) -> None:
    # 1. Full fuse in a fresh process.
    full = report["full_fuse"] = _run_child("fuse", ws_path, {})
    print(f"\nfull fuse (force=True), fresh process: {full['wall_s']} s wall "
          f"(imports {full['import_s']} s before it), {full['cells']:,} base cells, "
          f"{full['cases']:,} cases; load at start {full['loadavg'][0]:.2f}")
    print(f"  {'step':<18} {'s':>7} {'peak RSS MB':>12} {'HWM MB':>8} {'RSS end MB':>11}")
    print(f"  {'(before)':<18} {'':>7} {'':>12} {'':>8} {full['rss_before_mb']:>11}")
    for s in full["steps"]:
        print(f"  {s['step']:<18} {s['seconds']:>7.3f} {s['step_peak_rss_mb']:>12} "
              f"{s['hwm_mb']:>8} {s['rss_end_mb']:>11}")
    print(f"  publish+other      {full['publish_and_other_s']:>7.3f}   (total minus the steps)")
    print(f"  ru_maxrss {full['ru_maxrss_mb']} MB")
    if args.profile:
        out = workdir / "profile_fuse.txt"
        report["profile"] = _run_child("profile", ws_path, {"out": str(out)})
        print(f"  profile (pyinstrument, separate run): {out} and {out.with_suffix('.html')}")

    # 2. Incremental: a new day of 30,000 cases.
    update = report["cases_update"] = _run_child("cases_update", ws_path, {})
    fu = update["fuse"]
    print(f"\nincremental case update: +{update['new_rows']:,} cases on {update['new_day']}")
    print(f"  read cases layer {update['read_s']} s, build rows {update['build_rows_s']} s, "
          f"publish new version {update['publish_s']} s (not part of the fuse)")
    print(f"  fuse -> {fu['status']}: {fu['wall_s']} s wall (" + ", ".join(
        f"{s['step']} {s['seconds']} s" for s in fu["steps"]) + f"), peak RSS "
          f"{max(s['step_peak_rss_mb'] for s in fu['steps'])} MB")
    if fu["status"] != "cases-updated":
        print("  WARNING: expected status cases-updated")

    # 3. Reads: one day, city-wide, resolution 8.
    read = report["read"] = _run_child("read", ws_path, {"day": update["new_day"]})
    print(f"\nread one day ({read['day']}) city-wide at resolution 8: {read['rows']:,} rows, "
          f"{read['cases']:,} cases")
    print(f"  cold (first read in a fresh process, after imports {read['import_s']} s and "
          f"Facts() {read['open_s']} s): {read['cold_ms']} ms; warm median of {WARM_READS}: "
          f"{read['warm_median_ms']} ms (min {read['warm_min_ms']}, max {read['warm_max_ms']})")

    # Put the cases layer back (a second cases-only fuse, of the original 1M-row layer).
    restore = report["cases_restore"] = _run_child(
        "restore", ws_path, {"layer": update["layer"], "version": update["old_version"]})
    print(f"  restored cases v{update['old_version']}: fuse -> {restore['status']} in "
          f"{restore['wall_s']} s")

    if args.skip_usual:
        return
    # 4. The usual way.
    usual = report["usual"] = {}
    usual["points"] = _run_child("usual_points", ws_path, {})
    usual["buildings"] = _run_child("usual_buildings", ws_path, {})
    usual["raster"] = _run_child("usual_raster", ws_path, {})
    usual["admin"] = _run_child("usual_admin", ws_path, {})
    step = {s["step"]: s["seconds"] for s in full["steps"]}
    p, b, r, a = usual["points"], usual["buildings"], usual["raster"], usual["admin"]
    rows = [
        (f"case points -> cells ({p['points']:,})", p["ours_points_to_cells_s"],
         p["sjoin_extrapolated_s"], f"gpd.sjoin within, {_from(p['subset'], p['points'])}"),
        (f"case points -> cells ({p['points']:,})", p["ours_points_to_cells_s"],
         p["h3py_loop_extrapolated_s"],
         f"h3-py latlng_to_cell loop, {_from(p['h3py_loop_subset'], p['points'])}"),
        ("fused step 'cases'", step.get("cases", 0), p["usual_total_s"],
         f"gpd read (full) + sjoin (extrap. from {p['subset']:,}) + groupby size x "
         f"{p['levels']} levels (1 measured)"),
        (f"building centroids -> cells ({b['points']:,})", b["ours_points_to_cells_s"],
         b["sjoin_extrapolated_s"], f"gpd.sjoin within, {_from(b['subset'], b['points'])}"),
        ("fused step 'buildings'", step.get("buildings", 0), b["usual_total_s"],
         f"read+centroid (full) + sjoin, UTM area, groupby extrapolated from {b['subset']:,}"),
        (f"raster -> cells ({r['cells_nonzero']:,} cells)", r["ours_allocate_raster_s"],
         r["zonal_extrapolated_s"],
         f"rasterio.mask per hexagon, {_from(r['subset'], r['cells_nonzero'])}"),
        ("fused step 'population'", step.get("population", 0), r["zonal_extrapolated_s"],
         f"zonal stats, {_from(r['subset'], r['cells_nonzero'])}"),
        (f"admin: cell centres -> units ({a['cells']:,} x {len(a['units'])} levels)",
         a["ours_assign_s"], a["sjoin_s"], "gpd.sjoin within per level, all cells (measured)"),
        ("fused step 'admin'", step.get("admin", 0), a["sjoin_s"] + a["cell_centres_s"],
         "cell centres + gpd.sjoin per level (measured)"),
    ]
    report["table"] = [{"step": s, "ours_s": o, "usual_s": u, "ratio": round(u / o, 1) if o else
                        None, "usual_how": how} for s, o, u, how in rows]
    print("\nours vs the usual way (same data)")
    print(f"  {'step':<52} {'ours s':>8} {'usual s':>9} {'ratio':>8}  usual way")
    for s, o, u, how in rows:
        print(f"  {s:<52} {o:>8.3f} {u:>9.2f} {_ratio(u, o):>8}  {how}")
    print(f"\n  sjoin agreement with points_to_cells: cases {p['sjoin_agreement']:.4%}, "
          f"buildings {b['sjoin_agreement']:.4%}; admin sjoin agreement "
          + ", ".join(f"{k} {v['agree_where_matched']:.4%} ({v['sjoin_unmatched']} cell "
                      "centres in no polygon: ours takes the nearest)"
                      for k, v in a["agreement"].items()))
    print(f"  hex grid for the sjoin (cells of the subset + neighbours): {p['hex_grid_cells']:,} "
          f"hexagons built in {p['hex_grid_build_s']} s (not counted above)")
    print(f"  raster: true total {r['true_total']:,}; ours {r['ours_total']:,}. On the "
          f"{r['subset']:,}-cell subset, against the exact area-weighted share "
          f"({r['subset_exact_total']:,}): zonal (pixel centre in hexagon) "
          f"{r['zonal_centre_vs_exact']:.4f}, zonal all_touched "
          f"{r['zonal_all_touched_vs_exact']:.4f}, ours {r['ours_vs_exact']:.4f}; per-cell "
          f"absolute error / total: zonal {r['cell_abs_error_share']['zonal_centre']:.1%}, "
          f"all_touched {r['cell_abs_error_share']['zonal_all_touched']:.1%}, ours "
          f"{r['cell_abs_error_share']['ours_sampling']:.1%}; "
          f"{r['zonal_centre_cells_zero_but_exact_positive']} populated cells got 0 by zonal")
    print(f"  h3ronpy-style centre sampling: {r['centre_sample_cells']:,} res-"
          f"{'10'} cells over the raster, sum {r['centre_sample_total']:,} = "
          f"{r['centre_sample_vs_true']:.3f} of the true total (pixel {r['pixel_m2']} m², cell "
          f"{r['cell_m2']} m²)")


if __name__ == "__main__":
    main()
