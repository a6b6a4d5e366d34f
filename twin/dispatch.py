"""Dispatch: move stock from warehouses to the areas with gaps, never through lockdown zones.

:func:`plan` works on plain tables; :func:`dispatch` builds them from a workspace.

Objective (solved per resource, three linear programs with HiGHS via
:func:`scipy.optimize.linprog`; ``x[s, k]`` is the quantity source ``s`` sends sink ``k``)
--------------------------------------------------------------------------------------------
Constraints: a source never ships more than it holds (``Σ_k x[s, k] ≤ stock_s``) and a sink
never receives more than its gap (``Σ_s x[s, k] ≤ gap_k``); only pairs with a feasible route
get a variable.

1. **Worst first** (max-min days of cover): maximise ``t`` such that every reachable sink ends
   with at least ``t`` days of cover, ``(supply_k + Σ_s x[s, k]) / daily_demand_k ≥ t``. When
   stock is short, the areas with the fewest days of cover are raised first, all together.
2. **As much as possible**: keeping that level, maximise the total quantity shipped.
3. **Least transport**: keeping both, minimise ``Σ distance_m × quantity``.

A sink that is served by only a small source can hold ``t`` down for everyone in step 1; the
other sinks still get the rest in step 2 (it is one max-min level, not full lexicographic
water-filling).

Routes and lockdown zones
-------------------------
A route never enters a lockdown cell: a path is refused when it meets the *interior* of a
lockdown cell's hexagon (exact polygon test, stricter than testing points along it).

- With a roads layer: a graph whose nodes are line endpoints snapped to
  :data:`SNAP_DEGREES` and whose edges are the road lines weighted by their length; every line
  that enters a lockdown cell is removed (the whole line, not only its midpoint's cell).
  Shortest paths by :func:`scipy.sparse.csgraph.dijkstra`. A source or sink joins the graph by a
  straight access leg to one of its :data:`ACCESS_CANDIDATES` nearest nodes (the first whose leg
  avoids lockdown cells). When the graph does not connect the two, the off-road method below
  is used and the route says ``via = "off-road"``.
- Without roads: the straight segment when it avoids lockdown cells; otherwise a shortest path
  over the centres of the non-lockdown base cells around the endpoints (a segment between the
  centres of two neighbouring hexagons stays inside those two), shortened by keeping only the
  turns it needs. No such path: the pair is infeasible.
- Goods for a sink inside a lockdown zone ("stay home, services delivered") are handed over
  at the zone's gate, the nearest non-lockdown cell centre within :data:`GATE_RINGS` rings;
  sources inside a lockdown zone ship nothing.

Distances are in metres on a local equirectangular projection (error < 0.1 % at city scale).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.optimize import linprog
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from twin import grid

__all__ = [
    "ACCESS_CANDIDATES",
    "GATE_RINGS",
    "SNAP_DEGREES",
    "SOURCE_KINDS",
    "DispatchPlan",
    "Router",
    "dispatch",
    "plan",
]

#: Facility kinds whose stock is available for dispatch.
SOURCE_KINDS = ("warehouse",)
#: Road line endpoints closer than this (degrees, ~0.1 m) are one graph node.
SNAP_DEGREES = 1e-6
#: Nearest road nodes tried for the access leg from a source or sink to the road graph.
ACCESS_CANDIDATES = 8
#: Rings of cells searched for the gate of a sink inside a lockdown zone.
GATE_RINGS = 10
#: Margin (metres) around the endpoints of the cell grid used to route around lockdown cells.
DETOUR_MARGIN_M = 1000.0
_EARTH_RADIUS_M = 6_371_008.8
_ROUTE_COLUMNS = ["from", "to", "resource", "quantity", "distance_m", "via"]


@dataclass
class DispatchPlan:
    """The result of :func:`plan`.

    ``routes``: a GeoDataFrame (EPSG:4326) with ``from, to, resource, quantity, distance_m,
    via`` and the path as a LineString; ``sinks``: per sink and resource the gap, the quantity
    planned, what stays unmet, the days of cover before and after and whether any source can
    reach it; ``notes``: sources and sinks left out and why.
    """

    routes: gpd.GeoDataFrame
    sinks: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> pd.DataFrame:
        """The routes without geometry."""
        return pd.DataFrame(self.routes.drop(columns="geometry"))

    def to_dict(self) -> dict[str, Any]:
        """Routes (without geometry), sinks and notes as plain JSON-ready data."""
        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                     for k, v in row.items()} for row in frame.to_dict(orient="records")]

        return {"routes": records(self.rows), "sinks": records(self.sinks),
                "notes": list(self.notes)}


def _xy(lon: Any, lat: Any, lat0: float) -> np.ndarray:
    lon = np.atleast_1d(np.asarray(lon, dtype=float))
    lat = np.atleast_1d(np.asarray(lat, dtype=float))
    return np.column_stack([np.radians(lon) * _EARTH_RADIUS_M * math.cos(math.radians(lat0)),
                            np.radians(lat) * _EARTH_RADIUS_M])


class Router:
    """Shortest paths between lon/lat points that never enter a lockdown cell."""

    def __init__(self, lockdown_cells: Any, *, roads: gpd.GeoDataFrame | None = None,
                 resolution: int | None = None, lat0: float = 0.0) -> None:
        cells = np.unique(np.asarray(lockdown_cells, dtype=np.uint64))
        self.lockdown = cells
        self.lockdown_set = set(cells.tolist())
        if resolution is None:
            resolution = int(grid.cell_resolution(cells[:1])[0]) if len(cells) else 10
        self.resolution = resolution
        self.lat0 = lat0
        if len(cells):
            polys = shapely.from_wkb(grid.cell_boundaries_wkb(cells))
            self.blocked_area = shapely.union_all(polys)
            shapely.prepare(self.blocked_area)
        else:
            self.blocked_area = None
        self._cell_graph: tuple[Any, ...] | None = None
        self._road = self._build_roads(roads) if roads is not None and len(roads) else None
        self._road_trees: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # -- lockdown tests -------------------------------------------------------------------
    def blocked(self, lines: Any) -> np.ndarray:
        """Whether each line enters the interior of a lockdown cell."""
        lines = np.atleast_1d(np.asarray(lines, dtype=object))
        if self.blocked_area is None or not len(lines):
            return np.zeros(len(lines), dtype=bool)
        hit = shapely.intersects(lines, self.blocked_area)
        if hit.any():
            hit[hit] = ~shapely.touches(lines[hit], self.blocked_area)
        return hit

    def in_lockdown(self, lon: Any, lat: Any) -> np.ndarray:
        cells = grid.points_to_cells(np.atleast_1d(lon), np.atleast_1d(lat), self.resolution)
        return np.isin(cells, self.lockdown)

    def gate(self, lon: float, lat: float) -> tuple[float, float] | None:
        """The nearest non-lockdown cell centre (the point itself when it is outside)."""
        cell = grid.points_to_cells(np.array([lon]), np.array([lat]), self.resolution)
        if int(cell[0]) not in self.lockdown_set:
            return lon, lat
        for k in range(1, GATE_RINGS + 1):
            ring = grid.grid_disk(cell, k)
            free = ring[~np.isin(ring, self.lockdown)]
            if len(free):
                flon, flat = grid.cell_centres(free)
                d = np.hypot((flon - lon) * math.cos(math.radians(lat)), flat - lat)
                i = int(np.argmin(d))
                return float(flon[i]), float(flat[i])
        return None

    def length(self, coords: np.ndarray) -> float:
        xy = _xy(coords[:, 0], coords[:, 1], self.lat0)
        return float(np.hypot(*np.diff(xy, axis=0).T).sum())

    # -- roads ----------------------------------------------------------------------------
    def _build_roads(self, roads: gpd.GeoDataFrame) -> dict[str, Any] | None:
        lines = roads.geometry.explode(index_parts=False)
        lines = lines[lines.geom_type == "LineString"].to_numpy()
        if not len(lines):
            return None
        keep = ~self.blocked(lines)
        lines = lines[keep]
        if not len(lines):
            return None
        coords = [np.asarray(shapely.get_coordinates(g)) for g in lines]
        ends = np.array([[c[0, 0], c[0, 1], c[-1, 0], c[-1, 1]] for c in coords])
        keys = np.round(np.vstack([ends[:, :2], ends[:, 2:]]) / SNAP_DEGREES).astype(np.int64)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        n = len(lines)
        u, v = inverse[:n], inverse[n:]
        w = np.array([self.length(c) for c in coords])
        edges: dict[tuple[int, int], tuple[float, int]] = {}
        for i, (a, b) in enumerate(zip(u.tolist(), v.tolist(), strict=True)):
            key = (min(a, b), max(a, b))
            if a != b and (key not in edges or w[i] < edges[key][0]):
                edges[key] = (float(w[i]), i)
        if not edges:
            return None
        pairs = np.array(list(edges), dtype=np.int64)
        weights = np.array([max(e[0], 1e-9) for e in edges.values()])
        nodes = uniq * SNAP_DEGREES
        matrix = coo_matrix((weights, (pairs[:, 0], pairs[:, 1])),
                            shape=(len(uniq), len(uniq))).tocsr()
        used = np.unique(pairs)
        tree = cKDTree(_xy(nodes[used, 0], nodes[used, 1], self.lat0))
        return {"matrix": matrix, "nodes": nodes, "used": used, "tree": tree,
                "edges": edges, "coords": coords, "u": u}

    def _access(self, lon: float, lat: float) -> tuple[int, float, np.ndarray] | None:
        road = self._road
        assert road is not None
        k = min(ACCESS_CANDIDATES, len(road["used"]))
        _d, idx = road["tree"].query(_xy(lon, lat, self.lat0)[0], k=k)
        for j in np.atleast_1d(idx).tolist():
            node = int(road["used"][j])
            nlon, nlat = road["nodes"][node]
            leg = np.array([[lon, lat], [nlon, nlat]])
            if not self.blocked(shapely.linestrings(leg))[0]:
                return node, self.length(leg), leg
        return None

    def _road_path(self, node_a: int, node_b: int) -> np.ndarray | None:
        road = self._road
        assert road is not None
        if node_a not in self._road_trees:
            dist, pred = dijkstra(road["matrix"], directed=False, indices=node_a,
                                  return_predecessors=True)
            self._road_trees[node_a] = (dist, pred)
        dist, pred = self._road_trees[node_a]
        if not np.isfinite(dist[node_b]):
            return None
        chain = [node_b]
        while chain[-1] != node_a:
            chain.append(int(pred[chain[-1]]))
        chain.reverse()
        parts = [road["nodes"][node_a][None, :]]
        for a, b in itertools.pairwise(chain):
            _w, i = road["edges"][(min(a, b), max(a, b))]
            c = road["coords"][i]
            parts.append(c if int(road["u"][i]) == a else c[::-1])
        return np.vstack(parts)

    # -- off-road -------------------------------------------------------------------------
    def _detour(self, a: tuple[float, float], b: tuple[float, float]) -> np.ndarray | None:
        res = self.resolution
        margin = DETOUR_MARGIN_M / _EARTH_RADIUS_M * 180 / math.pi
        cos = max(math.cos(math.radians(self.lat0)), 0.1)
        box = shapely.box(min(a[0], b[0]) - margin / cos, min(a[1], b[1]) - margin,
                          max(a[0], b[0]) + margin / cos, max(a[1], b[1]) + margin)
        ends = grid.points_to_cells(np.array([a[0], b[0]]), np.array([a[1], b[1]]), res)
        cells = np.union1d(grid.polygon_to_cells(box, res), ends)
        cells = cells[~np.isin(cells, self.lockdown)]
        if not np.isin(ends, cells).all():
            return None
        index = {c: i for i, c in enumerate(cells.tolist())}
        rows, cols = [], []
        for i, c in enumerate(cells.tolist()):
            for nb in grid.grid_disk(np.array([c], dtype=np.uint64), 1).tolist():
                j = index.get(nb)
                if j is not None and j != i:
                    rows.append(i)
                    cols.append(j)
        lon, lat = grid.cell_centres(cells)
        xy = _xy(lon, lat, self.lat0)
        w = np.hypot(*(xy[rows] - xy[cols]).T)
        matrix = coo_matrix((w, (rows, cols)), shape=(len(cells), len(cells))).tocsr()
        ia, ib = index[int(ends[0])], index[int(ends[1])]
        dist, pred = dijkstra(matrix, directed=False, indices=ia, return_predecessors=True)
        if not np.isfinite(dist[ib]):
            return None
        chain = [ib]
        while chain[-1] != ia:
            chain.append(int(pred[chain[-1]]))
        chain.reverse()
        points = np.vstack([[a], np.column_stack([lon[chain], lat[chain]]), [b]])
        return self._shorten(points)

    def _shorten(self, points: np.ndarray) -> np.ndarray:
        """Drop the turns a straight, lockdown-free segment can skip (greedy, farthest first)."""
        out = [points[0]]
        i = 0
        while i < len(points) - 1:
            later = np.arange(i + 1, len(points))
            segs = shapely.linestrings([np.array([points[i], points[j]]) for j in later])
            clean = later[~self.blocked(segs)]
            j = int(clean.max()) if len(clean) else i + 1
            out.append(points[j])
            i = j
        return np.array(out)

    def route(self, a: tuple[float, float], b: tuple[float, float]) -> tuple[
            float, np.ndarray, str] | None:
        """``(distance_m, path coordinates, via)`` from ``a`` to ``b`` or None (infeasible)."""
        if self._road is not None:
            ea, eb = self._access(*a), self._access(*b)
            if ea is not None and eb is not None:
                middle = (np.array([[a[0], a[1]]]) if ea[0] == eb[0]
                          else self._road_path(ea[0], eb[0]))
                if middle is not None:
                    path = np.vstack([[a], middle, [b]])
                    path = path[np.r_[True, np.any(np.diff(path, axis=0) != 0, axis=1)]]
                    if len(path) == 1:
                        path = np.vstack([path, path])
                    return self.length(path), path, "road"
        straight = np.array([a, b], dtype=float)
        if not self.blocked(shapely.linestrings(straight))[0]:
            return self.length(straight), straight, "straight" if self._road is None \
                else "off-road"
        path = self._detour(a, b)
        if path is None:
            return None
        return self.length(path), path, "detour" if self._road is None else "off-road"


def _solve(stock: np.ndarray, gap: np.ndarray, base: np.ndarray, daily: np.ndarray,
           pairs: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """The three linear programs of the module docstring; returns x per pair."""
    n_s, n_k, n_p = len(stock), len(gap), len(pairs)
    src = coo_matrix((np.ones(n_p), (pairs[:, 0], np.arange(n_p))), shape=(n_s, n_p))
    snk = coo_matrix((np.ones(n_p), (pairs[:, 1], np.arange(n_p))), shape=(n_k, n_p))
    src, snk = src.toarray(), snk.toarray()
    reach = np.flatnonzero(snk.sum(axis=1) > 0)
    scale = max(float(np.max(gap)), 1.0)
    bounds = [(0, None)] * n_p
    a_base = np.vstack([src, snk]) / scale
    b_base = np.concatenate([stock, gap]) / scale
    # 1. max t with base_k + Σx_k ≥ t · daily_k for reachable sinks (t, in days, is last).
    a1 = np.hstack([np.vstack([a_base, -snk[reach] / scale]),
                    np.concatenate([np.zeros(n_s + n_k), daily[reach] / scale])[:, None]])
    b1 = np.concatenate([b_base, base[reach] / scale])
    c1 = np.zeros(n_p + 1)
    c1[-1] = -1.0
    r1 = linprog(c1, A_ub=a1, b_ub=b1, bounds=[*bounds, (0, None)], method="highs")
    t = max(float(r1.x[-1]) * (1 - 1e-9) - 1e-9, 0.0) if r1.status == 0 else 0.0
    need = np.maximum(t * daily[reach] - base[reach], 0.0)
    a2 = np.vstack([a_base, -snk[reach] / scale])
    b2 = np.concatenate([b_base, -need / scale])
    # 2. max total shipped keeping t.
    r2 = linprog(-np.ones(n_p), A_ub=a2, b_ub=b2, bounds=bounds, method="highs")
    if r2.status != 0:
        return np.zeros(n_p)
    total = float(r2.x.sum()) * (1 - 1e-9)
    # 3. min distance × quantity keeping both.
    a3 = np.vstack([a2, -np.ones((1, n_p)) / scale])
    b3 = np.concatenate([b2, [-total / scale]])
    r3 = linprog(dist / max(float(dist.max(initial=0.0)), 1.0), A_ub=a3, b_ub=b3,
                 bounds=bounds, method="highs")
    x = r3.x if r3.status == 0 else r2.x
    x = np.where(x > 1e-9 * scale, x, 0.0)
    # Remove solver round-off so no source ships, and no sink gets, a hair too much.
    for m, cap in ((src, stock), (snk, gap)):
        sent = m @ x
        over = sent > cap
        if over.any():
            factor = np.ones(len(cap))
            factor[over] = cap[over] / sent[over]
            x = x * factor[np.argmax(m, axis=0)]
    return x


def plan(sources: pd.DataFrame, sinks: pd.DataFrame, *, lockdown_cells: Any,
         roads: gpd.GeoDataFrame | None = None, resolution: int | None = None) -> DispatchPlan:
    """Plan shipments from ``sources`` to ``sinks``.

    ``sources``: ``id, resource, quantity, lon, lat`` (stock available to ship);
    ``sinks``: ``id, resource, gap, lon, lat`` and optionally ``daily_demand`` and ``supply``
    (days of cover = supply / daily_demand; without them every sink counts as empty with a
    daily need equal to its gap, so step 1 equalises the filled share of the gaps);
    ``lockdown_cells``: base cells no route may enter; ``roads``: road lines (EPSG:4326).
    """
    sources = sources.reset_index(drop=True).copy()
    sinks = sinks.reset_index(drop=True).copy()
    if "daily_demand" not in sinks:
        sinks["daily_demand"] = sinks["gap"]
    if "supply" not in sinks:
        sinks["supply"] = 0.0
    notes: list[str] = []
    lat_all = np.concatenate([sources["lat"].to_numpy(float), sinks["lat"].to_numpy(float)])
    lat0 = float(np.nanmean(lat_all)) if len(lat_all) else 0.0
    router = Router(lockdown_cells, roads=roads, resolution=resolution, lat0=lat0)

    src_ok = np.ones(len(sources), dtype=bool)
    if len(sources):
        inside = router.in_lockdown(sources["lon"].to_numpy(float), sources["lat"].to_numpy(float))
        for sid in sources.loc[inside, "id"].unique():
            notes.append(f"source {sid} is inside a lockdown zone and ships nothing")
        src_ok &= ~inside & (sources["quantity"].to_numpy(float) > 0)
    drop = np.zeros(len(sinks), dtype=bool)
    gates = []
    for i, row in enumerate(sinks.itertuples(index=False)):
        g = router.gate(float(row.lon), float(row.lat))
        if g is None:
            notes.append(f"sink {row.id} has no gate outside lockdown within {GATE_RINGS} rings")
            drop[i] = True
            g = (float(row.lon), float(row.lat))
        gates.append(g)
    sinks["gate_lon"] = [g[0] for g in gates]
    sinks["gate_lat"] = [g[1] for g in gates]

    cache: dict[tuple[float, float, float, float], Any] = {}
    route_rows: list[dict[str, Any]] = []
    sink_rows: list[pd.DataFrame] = []
    for resource in sorted(set(sinks["resource"]) | set(sources["resource"])):
        si = np.flatnonzero(src_ok & (sources["resource"] == resource).to_numpy())
        ki = np.flatnonzero(~drop & (sinks["resource"] == resource).to_numpy()
                            & (sinks["gap"].to_numpy(float) > 0))
        pairs, dists, paths = [], [], []
        for a, s in enumerate(si.tolist()):
            pa = (float(sources.at[s, "lon"]), float(sources.at[s, "lat"]))
            for b, k in enumerate(ki.tolist()):
                pb = (float(sinks.at[k, "gate_lon"]), float(sinks.at[k, "gate_lat"]))
                key = (*pa, *pb)
                if key not in cache:
                    cache[key] = router.route(pa, pb)
                found = cache[key]
                if found is not None:
                    pairs.append((a, b))
                    dists.append(found[0])
                    paths.append(found)
        x = np.zeros(len(pairs))
        if pairs:
            x = _solve(sources.loc[si, "quantity"].to_numpy(float),
                       sinks.loc[ki, "gap"].to_numpy(float),
                       sinks.loc[ki, "supply"].to_numpy(float),
                       sinks.loc[ki, "daily_demand"].to_numpy(float),
                       np.array(pairs, dtype=np.int64), np.array(dists))
        got = np.zeros(len(ki))
        reach = np.zeros(len(ki), dtype=bool)
        for (a, b), q, found in zip(pairs, x, paths, strict=True):
            reach[b] = True
            got[b] += q
            if q <= 0:
                continue
            route_rows.append({"from": sources.at[si[a], "id"], "to": sinks.at[ki[b], "id"],
                               "resource": resource, "quantity": float(q),
                               "distance_m": found[0], "via": found[2],
                               "geometry": shapely.linestrings(found[1])})
        if len(ki):
            part = sinks.loc[ki, ["id", "resource", "gap", "supply", "daily_demand"]].copy()
            part["planned"] = got
            part["unmet"] = np.maximum(part["gap"].to_numpy(float) - got, 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                daily = part["daily_demand"].to_numpy(float)
                part["cover_before"] = np.where(daily > 0, part["supply"] / daily, np.inf)
                part["cover_after"] = np.where(daily > 0, (part["supply"] + got) / daily,
                                               np.inf)
            part["reachable"] = reach
            sink_rows.append(part)
    routes = gpd.GeoDataFrame(route_rows or None, columns=[*_ROUTE_COLUMNS, "geometry"],
                              geometry="geometry", crs=4326)
    sink_frame = (pd.concat(sink_rows, ignore_index=True) if sink_rows else pd.DataFrame(
        columns=["id", "resource", "gap", "supply", "daily_demand", "planned", "unmet",
                 "cover_before", "cover_after", "reachable"]))
    return DispatchPlan(routes=routes, sinks=sink_frame, notes=notes)


def dispatch(workspace: Any, resource: str | None = None,
             zones: Mapping[str, tuple[str, np.ndarray]] | None = None, *,
             horizon_days: float | None = None) -> DispatchPlan:
    """Plan dispatch for a workspace: warehouse stock to communities with gaps.

    Communities are tiered by ``zones`` (see :func:`twin.supply.community_areas`); the cells of
    lockdown zones are avoided. Beds are not shipped.
    """
    from twin.errors import LayerNotFoundError, SupplyError
    from twin.facts import Facts
    from twin.supply import area_centres, latest_stocks, workspace_areas, workspace_gaps

    table = workspace_gaps(workspace, level="community", zones=zones,
                           horizon_days=horizon_days)
    known = sorted(set(table["resource"].astype(str)) - {"beds"})
    if resource is not None and resource not in known:
        raise SupplyError(f"unknown resource {resource!r} to dispatch; the resources are "
                          f"{', '.join(known)} (beds are not shipped)")
    table = table[(table["resource"] != "beds") & (table["gap"] > 0)]
    if resource is not None:
        table = table[table["resource"] == resource]
    facts = Facts(workspace)
    base = facts.static(facts.base, ["residents"])
    areas = workspace_areas(workspace, level="community", zones=zones)
    centres = area_centres(areas, base).set_index("area")
    sinks = table.rename(columns={"area": "id"})[["id", "resource", "gap", "supply",
                                                   "daily_demand"]].copy()
    sinks["lon"] = sinks["id"].map(centres["lon"])
    sinks["lat"] = sinks["id"].map(centres["lat"])
    sinks = sinks.dropna(subset=["lon", "lat"])

    facilities = workspace.read("facilities")
    facilities = facilities[facilities["kind"].isin(SOURCE_KINDS)]
    stock = latest_stocks(workspace.read("stocks"))
    sources = stock.merge(pd.DataFrame({"facility_id": facilities["id"].astype(str),
                                        "lon": facilities.geometry.x.to_numpy(),
                                        "lat": facilities.geometry.y.to_numpy()}),
                          on="facility_id").rename(columns={"facility_id": "id"})
    sources = sources[sources["resource"].isin(sinks["resource"].unique())]
    lockdown = [np.asarray(c, dtype=np.uint64) for t, c in (zones or {}).values()
                if t == "lockdown"]
    cells = np.concatenate(lockdown) if lockdown else np.empty(0, dtype=np.uint64)
    try:
        roads = workspace.read("roads")
    except LayerNotFoundError:
        roads = None
    return plan(sources[["id", "resource", "quantity", "lon", "lat"]], sinks,
                lockdown_cells=cells, roads=roads, resolution=facts.base)
