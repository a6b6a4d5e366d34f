"""Fusion: every layer, whatever its geometry, becomes facts about H3 cells.

``fuse(workspace)`` builds a fact set (see :mod:`twin.facts` for reading it):

- per base cell (resolution 10 by default), for every cell that has anything: residents from
  the population raster (mass-preserving, dasymetric; :mod:`twin.rasters`), age groups
  distributed from their community totals in proportion to residents, buildings (count,
  footprint and floor area in m², by use), facilities (count and capacity by kind), stocks
  (quantity by resource, through each stock row's facility), and the community, street and
  district whose polygon holds the cell's centre;
- the same rolled up to the coarser resolutions (parents by bit arithmetic) and to every
  admin unit, all conserving totals;
- a daily case series per cell, date and status, rolled up the same way.

Fusion is incremental: a fact set records the layer versions it came from; fusing again with
nothing changed does nothing, and a new version of only the cases layer recomputes only the
case series (the other tables are hard-linked from the previous set). Sets are published
atomically (:meth:`twin.store.Workspace.publish_facts`).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from twin import grid
from twin.errors import FuseError
from twin.geoarrow import centroids_and_areas, point_coordinates
from twin.schema import BUILDING_USES, CASE_STATUSES, FACILITY_KINDS
from twin.store import LayerVersion, Workspace

__all__ = ["ADMIN_LEVELS", "AdminUnits", "FuseError", "FuseResult", "admin_units", "fuse"]

ADMIN_LEVELS = ("district", "street", "community")
GROUPS = ("age_65_plus", "children", "elderly_living_alone", "chronic_patients")
RESOURCES = ("water", "grain", "vegetables", "protein", "antigen_tests", "masks", "medicine",
             "beds")
STATIC_ROLES = ("boundaries", "population", "population_groups", "buildings", "facilities",
                "stocks")
#: Residential uses whose floor area hosts residents (mixed-use buildings count in full).
RESIDENTIAL_USES = ("residential", "mixed")
_STOREY_M = 3.0
_ROW_GROUP = 65_536


@dataclass
class FuseResult:
    """What a fuse run did."""

    status: str  # "fused", "cases-updated" or "unchanged"
    facts_id: int | None
    seconds: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {"status": self.status, "facts_id": self.facts_id, "seconds": self.seconds,
                "summary": self.summary}


# -- choosing the layers ---------------------------------------------------------------------
def _columns(ws: Workspace, entry: LayerVersion) -> list[str]:
    return pq.read_schema(ws.root / entry.file).names


def _choose(ws: Workspace, role: str, candidates: list[LayerVersion], *,
            required: bool) -> LayerVersion | None:
    configured = ws.config["fuse"].get(role, "")
    if configured:
        chosen = [c for c in candidates if c.layer == configured]
        if not chosen:
            raise FuseError(f"fuse.{role} in twin.toml names layer {configured!r}, which is not "
                            f"a {role} layer; candidates: "
                            f"{', '.join(c.layer for c in candidates) or 'none'}")
        return chosen[0]
    if len(candidates) > 1:
        raise FuseError(f"the workspace has several {role} layers "
                        f"({', '.join(c.layer for c in candidates)}); name the one to fuse "
                        f"in twin.toml: [fuse] {role} = \"{candidates[0].layer}\"")
    if not candidates and required:
        raise FuseError(f"the workspace has no {role} layer to fuse; load one with "
                        "`twin ingest`")
    return candidates[0] if candidates else None


def _sources(ws: Workspace) -> dict[str, list[LayerVersion]]:
    current = [layer.current for layer in ws.layers()]
    by_kind: dict[str, list[LayerVersion]] = {}
    for entry in current:
        by_kind.setdefault(entry.kind, []).append(entry)
    population = by_kind.get("population", [])
    rasters = [e for e in population if e.format == "geotiff"]
    tables = [e for e in population if e.format != "geotiff"
              and "community_code" in _columns(ws, e)]
    roles: dict[str, list[LayerVersion]] = {"boundaries": by_kind.get("boundaries", [])}
    for role, candidates, required in (
            ("population", rasters, False), ("population_groups", tables, False),
            ("buildings", by_kind.get("buildings", []), False),
            ("facilities", by_kind.get("facilities", []), False),
            ("stocks", by_kind.get("stocks", []), False),
            ("cases", by_kind.get("cases", []), False)):
        chosen = _choose(ws, role, candidates, required=required)
        roles[role] = [chosen] if chosen else []
    if not roles["boundaries"]:
        raise FuseError("the workspace has no boundaries layer; fusion needs the communities, "
                        "streets and districts to roll facts up to (load them with "
                        "`twin ingest … --kind boundaries`)")
    return roles


def _fingerprint(ws: Workspace, roles: dict[str, list[LayerVersion]]) -> dict[str, Any]:
    """What a fact set is made from: the layer versions and the settings that shape it."""
    prints: dict[str, Any] = {role: sorted([e.layer, e.version, e.file_sha256] for e in entries)
                              for role, entries in roles.items()}
    prints["config"] = {"base_resolution": ws.config.base_resolution,
                        "rollups": list(ws.config.rollups),
                        "raster_samples": int(ws.config["fuse"]["raster_samples"])}
    return prints


# -- small array helpers -----------------------------------------------------------------------
def _sum_by(keys: np.ndarray, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    """Unique keys (sorted) and each column summed per key."""
    unique, inverse = np.unique(keys, return_inverse=True)
    return unique, {name: np.bincount(inverse, weights=values, minlength=len(unique))
                    for name, values in columns.items()}


def _merge(parts: list[tuple[np.ndarray, dict[str, np.ndarray]]]) -> pd.DataFrame:
    """Outer-join per-cell columns from several sources into one table (zeros elsewhere)."""
    cells = np.unique(np.concatenate([p[0] for p in parts])) if parts else np.empty(0, np.uint64)
    data: dict[str, np.ndarray] = {"cell": cells}
    for part_cells, columns in parts:
        position = np.searchsorted(cells, part_cells)  # unique within a part: plain indexing
        for name, values in columns.items():
            data.setdefault(name, np.zeros(len(cells)))[position] += values
    return pd.DataFrame(data)


def _geodesic_area_m2(area_deg2: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Areas in m² of small WGS84 polygons from their areas in degrees² and latitudes.

    The local scale (meridian radius M and prime-vertical radius N of the WGS84 ellipsoid at
    each polygon's centroid latitude) is exact to well below 0.01 % for polygons of building
    size (checked against pyproj.Geod in the tests), and needs no projection of millions of
    polygons.
    """
    lat = np.radians(lat_deg)
    a, e2 = 6378137.0, 0.00669437999014
    w = np.sqrt(1 - e2 * np.sin(lat) ** 2)
    m, n = a * (1 - e2) / w**3, a / w
    return area_deg2 * (math.pi / 180) ** 2 * m * n * np.cos(lat)


def _float_column(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)


# -- admin units -------------------------------------------------------------------------------
@dataclass
class AdminUnits:
    """The admin units of each level, with a spatial index."""

    frames: dict[str, pd.DataFrame]  # level -> code, name, parent_code, geometry
    _filled: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def assign(self, cells: np.ndarray,
               resolution: int) -> tuple[dict[str, np.ndarray], int]:
        """The unit of each level holding each cell's centre; returns codes and how many cells
        fell outside every unit of the finest level (those take the nearest unit).

        The finest level is found by filling its polygons with the cells whose centre they
        hold (one vectorised H3 call), then point-in-polygon and nearest unit for the rest;
        coarser levels follow the declared parent codes, so that every level rolls up
        consistently. Where a parent code is missing or unknown, that level falls back to
        point-in-polygon.
        """
        levels = [lv for lv in _FINEST_FIRST if lv in self.frames]
        codes: dict[str, np.ndarray] = {}
        finest, outside = self._fill(levels[0], cells, resolution)
        codes[levels[0]] = finest
        for child, level in itertools.pairwise(levels):
            frame = self.frames[child]
            parent_of = dict(zip(frame["code"], frame["parent_code"], strict=True))
            known = set(self.frames[level]["code"])
            chained = np.array([parent_of.get(c) for c in codes[child]], dtype=object)
            broken = np.flatnonzero([c not in known for c in chained])
            if len(broken):
                chained[broken], _ = self._locate(level, cells[broken])
            codes[level] = chained
        return codes, outside

    def _fill(self, level: str, cells: np.ndarray, resolution: int) -> tuple[np.ndarray, int]:
        key = (level, resolution)
        if key not in self._filled and len(cells) < _FILL_FROM:
            return self._locate(level, cells)  # a few cells: point-in-polygon is cheaper
        if key not in self._filled:
            self._filled[key] = grid.fill_polygons(self.frames[level].geometry.to_numpy(),
                                                   resolution)
        filled, owner = self._filled[key]
        position = np.searchsorted(filled, cells)
        position = np.minimum(position, max(len(filled) - 1, 0))
        found = (filled[position] == cells) if len(filled) else np.zeros(len(cells), bool)
        result = np.empty(len(cells), dtype=object)
        codes = self.frames[level]["code"].to_numpy(dtype=object)
        result[found] = codes[owner[position[found]]]
        missing = np.flatnonzero(~found)
        outside = 0
        if len(missing):
            result[missing], outside = self._locate(level, cells[missing])
        return result, outside

    def _locate(self, level: str, cells: np.ndarray) -> tuple[np.ndarray, int]:
        """Point-in-polygon of the cells' centres; the nearest unit when none holds one."""
        import shapely

        points = shapely.points(*grid.cell_centres(cells))
        frame = self.frames[level]
        tree = shapely.STRtree(frame.geometry.to_numpy())
        point_idx, unit_idx = tree.query(points, predicate="within")
        chosen = np.full(len(points), -1, dtype=np.int64)
        # On overlapping (broken) data the first unit wins, deterministically.
        order = np.lexsort((unit_idx, point_idx))
        point_idx, unit_idx = point_idx[order], unit_idx[order]
        if len(point_idx):
            first = np.r_[True, point_idx[1:] != point_idx[:-1]]
            chosen[point_idx[first]] = unit_idx[first]
        missing = np.flatnonzero(chosen < 0)
        if len(missing):
            near_point, near_unit = tree.query_nearest(points[missing], all_matches=False)
            chosen[missing[near_point]] = near_unit
        return frame["code"].to_numpy(dtype=object)[chosen], len(missing)


_FINEST_FIRST = ("grid", "community", "street", "district")
# Filling every polygon with cells costs about as much as point-in-polygon for ~50k cells.
_FILL_FROM = 50_000


def admin_units(ws: Workspace) -> AdminUnits:
    """The admin units (district to grid) of the workspace's current boundaries layers.

    The same units, chosen the same way, as :func:`fuse` assigns cells to; use
    :meth:`AdminUnits.assign` to locate cells that arrive later (events, reports).
    """
    return _load_units(ws, _sources(ws)["boundaries"])


def _load_units(ws: Workspace, entries: list[LayerVersion]) -> AdminUnits:
    frames = [ws.read(e.layer, e.version) for e in entries]
    allb = pd.concat(frames, ignore_index=True)
    units = {}
    for level in (*ADMIN_LEVELS, "grid"):
        part = allb[allb["level"] == level]
        if len(part):
            part = part.drop_duplicates("code")
            units[level] = part[["code", "name", "geometry"]].assign(
                parent_code=part.get("parent_code")
            ).reset_index(drop=True)
    if not units:
        raise FuseError("the boundaries layers hold no district, street or community")
    return AdminUnits(units)


# -- static facts ------------------------------------------------------------------------------
def _buildings(ws: Workspace, entry: LayerVersion, base: int,
               summary: dict[str, Any]) -> tuple[tuple, dict[str, np.ndarray]]:
    path = ws.root / entry.file
    wanted = [c for c in ("geometry", "use", "floors", "height_m")
              if c in pq.read_schema(path).names]
    # Only the columns needed, the use as a dictionary, geometry as coordinate buffers.
    table = pq.read_table(path, columns=wanted, read_dictionary=["use"])
    lng, lat, area_deg2 = centroids_and_areas(table.column("geometry"))
    cells = grid.points_to_cells(lng, lat, base)
    footprint = _geodesic_area_m2(area_deg2, lat)
    floors = _float_column(table, "floors")
    from_height = np.maximum(1, np.round(_float_column(table, "height_m") / _STOREY_M))
    estimated = np.isnan(floors) & np.isfinite(from_height)
    summary["buildings_floors_from_height"] = int(estimated.sum())
    floors = np.where(estimated, from_height, floors)
    missing = np.isnan(floors)
    summary["buildings_floors_defaulted"] = int(missing.sum())  # neither floors nor height
    floors = np.where(missing, 1.0, np.maximum(floors, 1.0))
    floor_area = footprint * floors
    use = table.column("use").combine_chunks()
    dictionary = use.dictionary.to_pylist()
    codes = use.indices.to_numpy(zero_copy_only=False)
    columns = {"buildings_n": np.ones(len(cells)), "footprint_m2": footprint,
               "floor_m2": floor_area}
    for u in BUILDING_USES:
        mask = codes == dictionary.index(u) if u in dictionary else np.zeros(len(cells), bool)
        columns[f"buildings_{u}_n"] = mask.astype(float)
        columns[f"floor_m2_{u}"] = np.where(mask, floor_area, 0.0)
    residential = np.isin(codes, [dictionary.index(u) for u in RESIDENTIAL_USES
                                  if u in dictionary])
    dasymetric = (lng, lat, np.where(residential, floor_area, 0.0), cells)
    return dasymetric, _sum_by(cells, columns)


def _facilities(ws: Workspace, entry: LayerVersion, base: int) -> tuple[pd.DataFrame, tuple]:
    frame = ws.read(entry.layer, entry.version)
    points = frame.geometry.representative_point()
    cells = grid.points_to_cells(points.x.to_numpy(), points.y.to_numpy(), base)
    capacity = pd.to_numeric(frame.get("capacity", pd.Series(0.0, index=frame.index)),
                             errors="coerce").fillna(0.0).to_numpy(dtype=float)
    kind = frame["kind"].to_numpy(dtype=object)
    columns = {}
    for k in FACILITY_KINDS:
        mask = kind == k
        columns[f"fac_{k}_n"] = mask.astype(float)
        columns[f"fac_{k}_capacity"] = np.where(mask, capacity, 0.0)
    lookup = pd.DataFrame({"facility_id": frame["id"].astype(str).to_numpy(), "cell": cells})
    return lookup, _sum_by(cells, columns)


def _stocks(ws: Workspace, entry: LayerVersion, facilities: pd.DataFrame | None,
            summary: dict[str, Any]) -> tuple | None:
    frame = ws.read(entry.layer, entry.version)
    frame = frame.assign(facility_id=frame["facility_id"].astype(str))
    # Stocks are snapshots: the latest report per facility and resource counts, not their sum.
    frame = (frame.sort_values("as_of", kind="stable")
             .drop_duplicates(["facility_id", "resource"], keep="last"))
    if facilities is None:
        summary["stock_rows_unmatched"] = len(frame)
        return None
    # An index lookup, not a merge: a merge with unmatched rows would turn the uint64 cells
    # into floats and round them.
    lookup = facilities.drop_duplicates("facility_id")
    position = pd.Index(lookup["facility_id"]).get_indexer(frame["facility_id"])
    matched = position >= 0
    summary["stock_rows_unmatched"] = int((~matched).sum())
    joined = frame[matched]
    cells = lookup["cell"].to_numpy(dtype=np.uint64)[position[matched]]
    resource = joined["resource"].to_numpy(dtype=object)
    quantity = pd.to_numeric(joined["quantity"], errors="coerce").fillna(0.0).to_numpy(float)
    columns = {f"stock_{r}": np.where(resource == r, quantity, 0.0) for r in
               sorted(set(RESOURCES) | set(resource))}
    return _sum_by(cells, columns)


def _groups(ws: Workspace, entry: LayerVersion, cells_table: pd.DataFrame,
            units: AdminUnits, base: int, summary: dict[str, Any]) -> pd.DataFrame:
    """Spread each community's group totals over its cells in proportion to residents."""
    table = ws.read(entry.layer, entry.version)
    table = table.assign(community_code=table["community_code"].astype(str))
    groups = [g for g in GROUPS if g in table]
    totals = table.groupby("community_code")[groups].sum()
    known = set(units.frames.get("community", pd.DataFrame({"code": []}))["code"])
    unknown = [c for c in totals.index if c not in known]
    summary["group_communities_unknown"] = len(unknown)
    totals = totals.drop(index=unknown)
    community = cells_table["community_code"].to_numpy(dtype=object)
    residents = cells_table["residents"].to_numpy(dtype=float)
    per_community = pd.Series(residents).groupby(community).sum()
    empty = [c for c in totals.index if per_community.get(c, 0.0) <= 0]
    extra = pd.DataFrame()
    if empty:
        extra = _cells_of_empty_communities(empty, cells_table, units, base, summary)
    weights = pd.DataFrame({"cell": cells_table["cell"].to_numpy(), "community_code": community,
                            "_weight": residents})
    weights = pd.concat([weights[weights["_weight"] > 0], extra], ignore_index=True)
    weights["_share"] = weights["_weight"] / weights.groupby("community_code")[
        "_weight"].transform("sum")
    joined = weights.merge(totals, left_on="community_code", right_index=True, how="inner")
    result = pd.DataFrame({"cell": joined["cell"].to_numpy(np.uint64)})
    for g in groups:
        result[g] = joined[g].to_numpy(float) * joined["_share"].to_numpy(float)
    return result


def _cells_of_empty_communities(codes: list[str], cells_table: pd.DataFrame, units: AdminUnits,
                                base: int, summary: dict[str, Any]) -> pd.DataFrame:
    """Cells that take the groups of communities with no residents in the raster, evenly.

    The community's own cells (centre inside it) if it has any in the table; else the cells
    whose centre lies inside its polygon; else, for a community smaller than a cell, the cell
    at a point inside it (the groups then count in the neighbour holding that cell's centre).
    """
    import shapely

    summary["group_communities_without_residents"] = len(codes)
    table_codes = cells_table["community_code"].to_numpy(dtype=object)
    polygons = units.frames["community"].set_index("code")["geometry"]
    rows, too_small = [], []
    for code in codes:
        own = cells_table["cell"].to_numpy(np.uint64)[table_codes == code]
        if not len(own):
            own = grid.polygon_to_cells(polygons[code], base)
        if not len(own):
            point = shapely.point_on_surface(polygons[code])
            own = grid.points_to_cells(np.array([point.x]), np.array([point.y]), base)
            too_small.append(code)
        rows.append(pd.DataFrame({"cell": own, "community_code": code, "_weight": 1.0}))
    if too_small:
        summary["group_communities_smaller_than_a_cell"] = too_small
    return pd.concat(rows, ignore_index=True)


def _static(ws: Workspace, roles: dict[str, list[LayerVersion]], units: AdminUnits,
            out: Path, summary: dict[str, Any], timings: dict[str, float]) -> pd.DataFrame:
    from twin.rasters import allocate_raster

    base = ws.config.base_resolution
    parts: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
    clock = time.perf_counter()
    dasymetric = None
    if roles["buildings"]:
        dasymetric, part = _buildings(ws, roles["buildings"][0], base, summary)
        parts.append(part)
    timings["buildings"] = _lap(clock)

    clock = time.perf_counter()
    if roles["population"]:
        entry = roles["population"][0]
        path = ws.raster_path(entry.layer, entry.version)
        import rasterio

        with rasterio.open(path) as src:
            descriptions = list(src.descriptions)
        # Bands named after an age group are that group; the first other band is residents
        # whatever its description ("persons", "population", "人口", none).
        names = [d if d in GROUPS else f"band_{i + 1}" for i, d in enumerate(descriptions)]
        first = next((i for i, n in enumerate(names) if n not in GROUPS), None)
        if first is not None:
            names[first] = "residents"
        kwargs = {}
        if dasymetric is not None:
            kwargs = dict(zip(("building_lng", "building_lat", "building_weight",
                               "building_cells"), dasymetric, strict=True))
        samples = int(ws.config["fuse"]["raster_samples"]) or None
        allocation = allocate_raster(path, base, bands=names, samples=samples, **kwargs)
        parts.append((allocation.cells, {n: v for n, v in allocation.values.items()
                                         if n == "residents" or n in GROUPS}))
        summary.update(raster_samples=allocation.samples,
                       raster_residents=allocation.raster_totals.get("residents"),
                       dasymetric_share=round(allocation.dasymetric_share, 4))
    timings["population"] = _lap(clock)

    clock = time.perf_counter()
    facilities = None
    if roles["facilities"]:
        facilities, part = _facilities(ws, roles["facilities"][0], base)
        parts.append(part)
    if roles["stocks"]:
        part = _stocks(ws, roles["stocks"][0], facilities, summary)
        if part is not None:
            parts.append(part)
    timings["facilities_stocks"] = _lap(clock)

    clock = time.perf_counter()
    table = _merge(parts)
    if "residents" not in table:
        table["residents"] = 0.0
    codes, outside = units.assign(table["cell"].to_numpy(np.uint64), base)
    summary["cells_outside_boundaries"] = outside
    for level, values in codes.items():
        table[f"{level}_code"] = values
    timings["admin"] = _lap(clock)

    clock = time.perf_counter()
    if roles["population_groups"] and "community" in units.frames:
        spread = _groups(ws, roles["population_groups"][0], table, units, base, summary)
        new_cells = np.setdiff1d(spread["cell"].to_numpy(np.uint64), table["cell"].to_numpy())
        if len(new_cells):
            new_codes, _ = units.assign(new_cells, base)
            table = pd.concat([table, pd.DataFrame({"cell": new_cells, **{
                f"{lv}_code": v for lv, v in new_codes.items()}})], ignore_index=True)
            table = table.sort_values("cell", ignore_index=True)
        summed = spread.groupby("cell")[[g for g in GROUPS if g in spread]].sum()
        for g in summed.columns:
            table[g] = table["cell"].map(summed[g]).fillna(0.0).to_numpy(float)
    timings["groups"] = _lap(clock)

    clock = time.perf_counter()
    value_columns = [c for c in table.columns if c != "cell" and not c.endswith("_code")]
    table[value_columns] = table[value_columns].fillna(0.0)
    for c in value_columns:
        if c.endswith("_n"):
            table[c] = np.rint(table[c]).astype(np.int64)
    _write(table, out / f"cells_r{base}.parquet")
    for resolution in ws.config.rollups:
        parents = grid.cell_parents(table["cell"].to_numpy(np.uint64), resolution)
        rolled = table[value_columns].groupby(parents, sort=True).sum()
        rolled.index.name = "cell"
        _write(rolled.reset_index(), out / f"cells_r{resolution}.parquet")
    for level, frame in units.frames.items():
        key = f"{level}_code"
        sums = table.groupby(key)[value_columns].sum() if key in table else None
        unit_table = frame[["code", "name", "parent_code"]].copy()
        if sums is not None:
            unit_table = unit_table.merge(sums, left_on="code", right_index=True, how="left")
        unit_table[value_columns] = unit_table.reindex(columns=value_columns).fillna(0)
        _write(unit_table, out / f"units_{level}.parquet")
    timings["rollups_write"] = _lap(clock)
    summary["cells"] = len(table)
    summary["totals"] = {c: float(table[c].sum()) for c in value_columns
                         if not c.startswith(("buildings_", "floor_m2_", "fac_"))
                         or c in ("buildings_n",)}
    return table


# -- cases ---------------------------------------------------------------------------------------
def _cases(ws: Workspace, entry: LayerVersion | None, static: pd.DataFrame, units: AdminUnits,
           out: Path, summary: dict[str, Any]) -> None:
    base = ws.config.base_resolution
    if entry is None:
        frame = pd.DataFrame({"cell": np.empty(0, np.uint64), "date": np.empty(0, "M8[D]"),
                              "status": np.empty(0, object), "n": np.empty(0, np.int64)})
        for level in (f"r{base}", *(f"r{r}" for r in ws.config.rollups), *units.frames):
            _write_cases(frame.rename(columns={"cell": "code"}) if not level.startswith("r")
                         else frame, out / f"cases_{level}.parquet")
        _write(pd.DataFrame({"cell": np.empty(0, np.uint64)}), out / f"case_cells_r{base}.parquet")
        summary["cases"] = 0
        return
    table = pq.read_table(ws.root / entry.file, columns=["report_date", "status", "geometry"],
                          read_dictionary=["status"])
    lng, lat = point_coordinates(table.column("geometry"))
    cells = grid.points_to_cells(lng, lat, base)
    days = table.column("report_date").cast(pa.date32()).cast(pa.int32()).fill_null(
        np.iinfo(np.int32).min).to_numpy(zero_copy_only=False).astype(np.int64)
    status = table.column("status").combine_chunks()
    known = {s: i for i, s in enumerate(CASE_STATUSES)}
    status_map = np.array([known.get(s, -1) for s in status.dictionary.to_pylist()] + [-1])
    status_idx = status.indices.fill_null(len(status_map) - 1).to_numpy(zero_copy_only=False)
    codes = status_map[status_idx]
    valid = (cells != grid.NO_CELL) & (codes >= 0) & (days != np.iinfo(np.int32).min)
    summary["cases_unplaced"] = int((~valid).sum())
    summary["cases"] = int(valid.sum())
    cells, days, codes = cells[valid], days[valid], codes[valid]
    first = int(days.min()) if len(days) else 0
    span = int(days.max()) - first + 1 if len(days) else 1
    n_status = len(CASE_STATUSES)
    day_index = days - first

    def series(group: np.ndarray, keys: np.ndarray, key_name: str) -> pd.DataFrame:
        """Counts per (date, key, status), already in date order."""
        combined = (day_index * len(keys) + group) * n_status + codes
        size = span * len(keys) * n_status
        if size <= 8_000_000:  # dense enough for a direct count, no sort
            counts = np.bincount(combined, minlength=size)
            found = np.flatnonzero(counts)
            counts = counts[found]
        else:
            found, counts = np.unique(combined, return_counts=True)
        rest, status_code = np.divmod(found, n_status)
        day, key = np.divmod(rest, len(keys))
        return pd.DataFrame({key_name: keys[key], "date": (day + first).astype("M8[D]"),
                             "status": np.asarray(CASE_STATUSES, dtype=object)[status_code],
                             "n": counts.astype(np.int64)})

    # One sort of the case cells; every coarser grouping is derived on the unique cells.
    case_cells, inverse = np.unique(cells, return_inverse=True)
    _write_cases(series(inverse, case_cells, "cell"), out / f"cases_r{base}.parquet")
    for resolution in ws.config.rollups:
        parents, parent_of = np.unique(grid.cell_parents(case_cells, resolution),
                                       return_inverse=True)
        _write_cases(series(parent_of[inverse], parents, "cell"),
                     out / f"cases_r{resolution}.parquet")
    # Admin codes of the case cells: from the static table, or by point-in-polygon for cells
    # that hold nothing but cases.
    known_cells = pd.Index(static["cell"].to_numpy(np.uint64))
    position = known_cells.get_indexer(case_cells)
    new = case_cells[position < 0]
    new_codes: dict[str, np.ndarray] = {}
    if len(new):
        new_codes, _ = units.assign(new, base)
    # Cells that hold nothing but cases: their admin codes, for reading them like any cell.
    _write(pd.DataFrame({"cell": new, **{f"{lv}_code": new_codes.get(lv, np.empty(0, object))
                                         for lv in units.frames}}),
           out / f"case_cells_r{base}.parquet")
    summary["case_only_cells"] = len(new)
    have = position >= 0
    for level in units.frames:
        code_of = np.empty(len(case_cells), dtype=object)
        code_of[have] = static[f"{level}_code"].to_numpy(dtype=object)[position[have]]
        if len(new):
            code_of[~have] = new_codes[level]
        unit_codes, unit_of = np.unique(code_of.astype(str), return_inverse=True)
        _write_cases(series(unit_of[inverse], unit_codes.astype(object), "code"),
                     out / f"cases_{level}.parquet")


def _write_cases(frame: pd.DataFrame, path: Path) -> None:
    # In date order (as series() makes them) and in row groups, so that a date filter reads
    # only the groups it needs.
    table = pa.Table.from_pandas(frame, preserve_index=False)
    index = table.schema.get_field_index("date")
    table = table.set_column(index, "date", table.column("date").cast(pa.date32()))
    pq.write_table(table, path, compression="zstd", row_group_size=_ROW_GROUP)


def _write(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, compression="zstd", row_group_size=_ROW_GROUP)


def _lap(start: float) -> float:
    return round(time.perf_counter() - start, 3)


# -- the entry point -----------------------------------------------------------------------------
def fuse(ws: Workspace, *, force: bool = False, author: str | None = None,
         on_step: Callable[[int, int, str], None] | None = None) -> FuseResult:
    """Fuse the workspace's current layers into a new fact set, if anything changed.

    Parameters
    ----------
    ws
        The workspace.
    force
        Rebuild everything even when no layer changed.
    author
        Recorded in the audit log.
    on_step
        Progress callback ``(i, n, label)``.

    Returns
    -------
    FuseResult
        ``status`` is ``"unchanged"`` when the current facts already come from the current
        layers, ``"cases-updated"`` when only the case series was rebuilt, else ``"fused"``.

    Raises
    ------
    FuseError
        When layers are missing or ambiguous.
    """
    started = time.perf_counter()
    roles = _sources(ws)
    fingerprint = _fingerprint(ws, roles)
    previous = ws.current_facts()
    if previous is not None and not force and previous.sources == fingerprint:
        return FuseResult(status="unchanged", facts_id=previous.id,
                          summary=previous.summary)
    static_same = (previous is not None and not force
                   and all(previous.sources.get(r) == fingerprint[r]
                           for r in (*STATIC_ROLES, "config")))
    timings: dict[str, float] = {}
    steps = ["boundaries", "static", "cases", "publish"]

    def step(i: int, label: str) -> None:
        if on_step is not None:
            on_step(i, len(steps), label)

    def build(out: Path) -> dict[str, Any]:
        summary: dict[str, Any] = {"base_resolution": ws.config.base_resolution,
                                   "rollups": list(ws.config.rollups)}
        step(1, "boundaries")
        clock = time.perf_counter()
        units = _load_units(ws, roles["boundaries"])
        timings["boundaries"] = _lap(clock)
        step(2, "static")
        if static_same:
            for file in previous.path.iterdir():
                if file.name.startswith(("cells_", "units_")):
                    os.link(file, out / file.name)
            static = pd.read_parquet(out / f"cells_r{ws.config.base_resolution}.parquet",
                                     columns=["cell", *(f"{lv}_code" for lv in units.frames)])
            summary.update({k: v for k, v in previous.summary.items()
                            if k not in ("cases", "cases_unplaced", "seconds")})
        else:
            static = _static(ws, roles, units, out, summary, timings)
        step(3, "cases")
        clock = time.perf_counter()
        _cases(ws, roles["cases"][0] if roles["cases"] else None, static, units, out, summary)
        timings["cases"] = _lap(clock)
        step(4, "publish")
        summary["seconds"] = timings
        (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, default=str),
                                          encoding="utf-8")
        return summary

    facts = ws.publish_facts(build, sources=fingerprint, author=author)
    timings["total"] = _lap(started)
    return FuseResult(status="cases-updated" if static_same else "fused", facts_id=facts.id,
                      seconds=timings, summary=facts.summary)
