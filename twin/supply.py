"""Demand, supply and gaps of supplies per area (zone or community).

Areas are plain data, so zones and communities are handled alike: a mapping of area id to
``(tier, base cells)`` where tier is ``"lockdown"``, ``"control"`` or ``"prevention"`` and the
cells are ``uint64`` H3 cells at the base resolution.

Formulas
--------
- **Demand** of an area for a resource whose ``tiers`` include the area's tier::

      daily_demand = population × per_capita_daily
      demand       = daily_demand × horizon_days

  ``population`` is the sum over the area's cells of ``residents`` (or ``chronic_patients``
  for resources counted over them, such as medicine). Resources that do not apply in the
  area's tier get no row.
- **Hospital beds** are a city-level row (area ``"city"``): demand = daily_demand =
  ``bed_share_of_active_cases`` × active cases, where active cases are the confirmed and
  asymptomatic cases reported in the last :data:`ACTIVE_CASE_DAYS` days (suspected cases and
  close contacts are not infections). Beds are a stock, not a flow, so "days of cover" of beds
  is simply beds available / beds needed (at least 1 means enough).
- **Supply** of an area = stock of the facilities that serve it (latest ``as_of`` per facility
  and resource). A facility of a suitable kind (:data:`SERVING_KINDS`) holding the resource
  serves the areas it lies in (its point's base cell is one of the area's cells); an area
  with no such facility inside is served by the :data:`NEAREST_FACILITIES` nearest suitable
  facilities within ``supply.service_radius_m`` of any of its cell centres. Warehouses are
  dispatch sources (:mod:`twin.dispatch`), not serving stocks.
- **Sharing**: a facility serving several areas splits its stock between them in proportion
  to their demand for the resource, so the supply summed over areas never exceeds the stock.
- ``gap = max(demand - supply, 0)``; ``days_of_cover = supply / daily_demand`` (``inf`` when
  there is no demand).

Communities
-----------
A community's tier (:func:`community_areas`) is the strictest tier among the zones covering
any of its cells when zones are given (communities outside every zone are "prevention", the
protocol's rest of the district). Without zones, every community is planned as "control"
(:data:`PLANNING_TIER`): the planning assumption that residents must be supplied where they
live, which is the case in both lockdown and control zones for food, water and medicine.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from twin import grid
from twin.errors import NoZonesError, SupplyError
from twin.schema import INFECTION_STATUSES, ZONE_TIERS

__all__ = [
    "ACTIVE_CASE_DAYS",
    "NEAREST_FACILITIES",
    "OUTSIDE_ZONES_TIER",
    "PLANNING_TIER",
    "SERVING_KINDS",
    "TIERS",
    "Need",
    "active_cases",
    "add_requests",
    "area_centres",
    "bed_gap",
    "community_areas",
    "demand",
    "gaps",
    "latest_stocks",
    "needs",
    "supply",
    "tier_demand",
    "workspace_areas",
    "workspace_gaps",
]

#: Zone tiers, strictest first (:data:`twin.schema.ZONE_TIERS`).
TIERS = ZONE_TIERS
#: Tier assumed for every community when no zones are given (see the module docstring).
PLANNING_TIER = "control"
#: Tier of a community covered by none of the given zones.
OUTSIDE_ZONES_TIER = "prevention"
#: Cases reported in this many days (up to the last report date) count as active, for beds.
ACTIVE_CASE_DAYS = 14
#: Case statuses that count as active infections, for beds
#: (:data:`twin.schema.INFECTION_STATUSES`).
ACTIVE_STATUSES = INFECTION_STATUSES
#: An area with no suitable facility inside is served by at most this many nearest ones.
NEAREST_FACILITIES = 3
#: Which facility kinds serve which resource. Warehouses are dispatch sources, not serving
#: stocks; resources not listed (added in twin.toml) are served by every kind but warehouses.
SERVING_KINDS: dict[str, tuple[str, ...]] = {
    "water": ("supermarket", "market", "convenience_store"),
    "grain": ("supermarket", "market", "convenience_store"),
    "vegetables": ("supermarket", "market", "convenience_store"),
    "protein": ("supermarket", "market", "convenience_store"),
    "masks": ("pharmacy", "clinic", "hospital"),
    "antigen_tests": ("pharmacy", "clinic", "hospital"),
    "medicine": ("pharmacy", "clinic", "hospital"),
    "beds": ("hospital", "quarantine_site"),
}
_NOT_SERVING = ("warehouse",)
_EARTH_RADIUS_M = 6_371_008.8

Areas = Mapping[str, tuple[str, np.ndarray]]
GAP_COLUMNS = ["area", "tier", "resource", "unit", "daily_demand", "demand", "supply", "gap",
               "days_of_cover"]


@dataclass(frozen=True)
class Need:
    """One row of the needs table (``[needs.<resource>]`` in twin.toml)."""

    resource: str
    unit: str
    per_capita_daily: float
    tiers: tuple[str, ...]
    population: str
    basis: str


def needs(config: Any) -> list[Need]:
    """The needs table of a workspace configuration (a ``Config`` or a plain mapping)."""
    table = config["needs"]
    return [Need(resource=str(name), unit=str(entry["unit"]),
                 per_capita_daily=float(entry["per_capita_daily"]),
                 tiers=tuple(entry["tiers"]), population=str(entry["population"]),
                 basis=str(entry.get("basis", "")))
            for name, entry in table.items()]


def _cells(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.uint64)


def _check_tier(area: str, tier: str) -> None:
    if tier not in TIERS:
        raise SupplyError(f"area {area!r} has tier {tier!r}; zone tiers are "
                          f"{', '.join(TIERS)}")


def community_areas(facts_base: pd.DataFrame, zones: Areas | None = None) -> dict[str, tuple[
        str, np.ndarray]]:
    """Communities as areas: ``{community_code: (tier, cells)}``.

    The tier is the strictest tier of the ``zones`` covering any of the community's cells,
    :data:`OUTSIDE_ZONES_TIER` when none does, and :data:`PLANNING_TIER` when no zones are
    given at all.
    """
    base = facts_base.dropna(subset=["community_code"])
    rank: dict[int, int] = {}
    if zones:
        for zone_id, (tier, cells) in zones.items():
            _check_tier(str(zone_id), tier)
            level = TIERS.index(tier)
            for cell in _cells(cells).tolist():
                rank[cell] = min(rank.get(cell, level), level)
    out: dict[str, tuple[str, np.ndarray]] = {}
    for code, group in base.groupby("community_code", sort=True):
        cells = _cells(group["cell"].to_numpy())
        if zones is None:
            tier = PLANNING_TIER
        else:
            levels = [rank[c] for c in cells.tolist() if c in rank]
            tier = TIERS[min(levels)] if levels else OUTSIDE_ZONES_TIER
        out[str(code)] = (tier, cells)
    return out


def _population(areas: Areas, facts_base: pd.DataFrame, column: str) -> dict[str, float]:
    if column not in facts_base:
        raise KeyError(f"the base-cell facts have no column {column!r} (needed for demand)")
    values = facts_base.set_index("cell")[column].astype(float)
    values = values.groupby(level=0).sum()
    out = {}
    for area, (_tier, cells) in areas.items():
        out[area] = float(values.reindex(_cells(cells)).fillna(0.0).sum())
    return out


def tier_demand(table: Sequence[Need], tier: str, population: Callable[[str], float], *,
                horizon_days: float) -> list[tuple[Need, float, float, float]]:
    """The demand of one area of ``tier``: ``(need, population, daily_demand, demand)`` rows.

    One row per need of ``table`` (:func:`needs`) whose tiers include ``tier``, in table order;
    ``population(column)`` gives the area's sum of that column (``residents``,
    ``chronic_patients``...). ``daily_demand = population × per_capita_daily`` and
    ``demand = daily_demand × horizon_days``. :func:`demand` and the impact of a zone
    (:func:`twin.zones.impact`) both compute demand here.
    """
    rows = []
    for need in table:
        if tier not in need.tiers:
            continue
        people = population(need.population)
        daily = people * need.per_capita_daily
        rows.append((need, people, daily, daily * horizon_days))
    return rows


def demand(areas: Areas, facts_base: pd.DataFrame, config: Any, *,
           horizon_days: float) -> pd.DataFrame:
    """Demand per area and resource over ``horizon_days`` (:func:`tier_demand` per area).

    Columns: ``area, tier, resource, unit, population, daily_demand, demand``; one row per
    area and resource whose tiers include the area's tier.
    """
    if horizon_days < 0:
        raise SupplyError(f"the planning horizon must not be negative, got {horizon_days} "
                          "days; give 0 or more (supply.horizon_days in twin.toml, --horizon)")
    table = needs(config)
    pops: dict[str, dict[str, float]] = {}

    def population(column: str, area: str) -> float:
        if column not in pops:
            pops[column] = _population(areas, facts_base, column)
        return pops[column][area]

    rows = []
    for area, (tier, _) in areas.items():
        _check_tier(str(area), tier)
        for need, people, daily, total in tier_demand(
                table, tier, functools.partial(population, area=area),
                horizon_days=horizon_days):
            rows.append((area, tier, need.resource, need.unit, people, daily, total))
    return pd.DataFrame(rows, columns=["area", "tier", "resource", "unit", "population",
                                       "daily_demand", "demand"])


def latest_stocks(stocks: pd.DataFrame) -> pd.DataFrame:
    """The latest ``as_of`` row per facility and resource (quantities of that day summed)."""
    if stocks.empty:
        return stocks.loc[:, ["facility_id", "resource", "quantity", "unit"]].copy()
    frame = stocks.copy()
    if "as_of" in frame:
        frame["as_of"] = pd.to_datetime(frame["as_of"])
        last = frame.groupby(["facility_id", "resource"])["as_of"].transform("max")
        frame = frame[(frame["as_of"] == last) | last.isna()]
    frame["quantity"] = frame["quantity"].astype(float).fillna(0.0)
    return (frame.groupby(["facility_id", "resource"], as_index=False)
            .agg(quantity=("quantity", "sum"), unit=("unit", "first")))


def _lonlat(facilities: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if "geometry" in facilities:
        geom = facilities.geometry
        return np.asarray(geom.x, dtype=float), np.asarray(geom.y, dtype=float)
    return (facilities["lon"].to_numpy(dtype=float), facilities["lat"].to_numpy(dtype=float))


def _metres(lon: np.ndarray, lat: np.ndarray, lat0: float) -> np.ndarray:
    """Local equirectangular projection (metres); exact enough at city scale (< 0.1 %)."""
    x = np.radians(lon) * _EARTH_RADIUS_M * math.cos(math.radians(lat0))
    y = np.radians(lat) * _EARTH_RADIUS_M
    return np.column_stack([x, y])


def supply(areas: Areas, demand_frame: pd.DataFrame, facilities: pd.DataFrame,
           stocks: pd.DataFrame, *, service_radius_m: float,
           resolution: int | None = None) -> pd.DataFrame:
    """Stock available to each area for each resource of ``demand_frame``.

    ``facilities``: ``id, kind`` and a point ``geometry`` (EPSG:4326) or ``lon, lat``;
    ``stocks``: ``facility_id, resource, quantity`` (and ``as_of``: the latest is used).
    Returns ``area, resource, supply, facilities`` (the serving facility ids). See the module
    docstring for the serving rule and how a shared facility's stock is split.
    """
    out_columns = ["area", "resource", "supply", "facilities"]
    if demand_frame.empty:
        return pd.DataFrame(columns=out_columns)
    stock = latest_stocks(stocks)
    fac = facilities.reset_index(drop=True)
    lon, lat = _lonlat(fac)
    all_cells = [c for _t, c in areas.values() if len(c)]
    if resolution is None:
        resolution = int(grid.cell_resolution(all_cells[0][:1])[0]) if all_cells else 10
    fac_cells = grid.points_to_cells(lon, lat, resolution)
    lat0 = float(np.nanmean(lat)) if len(lat) else 0.0
    fac_xy = _metres(lon, lat, lat0)
    area_xy: dict[str, np.ndarray] = {}
    for area, (_tier, cells) in areas.items():
        clon, clat = grid.cell_centres(_cells(cells))
        area_xy[area] = _metres(clon, clat, lat0)

    claims: list[tuple[str, str, str, float]] = []  # area, resource, facility id, demand
    for resource, rows in demand_frame.groupby("resource", sort=False):
        kinds = SERVING_KINDS.get(str(resource))
        held = stock[(stock["resource"] == resource) & (stock["quantity"] > 0)]
        held_ids = set(held["facility_id"].astype(str))
        suitable = fac["kind"].isin(kinds) if kinds else ~fac["kind"].isin(_NOT_SERVING)
        ok = np.asarray(fac["id"].astype(str).isin(held_ids) & suitable, dtype=bool)
        idx = np.flatnonzero(ok)
        for row in rows.itertuples(index=False):
            if row.demand <= 0 or not len(idx):
                continue
            cells = _cells(areas[row.area][1])
            inside = idx[np.isin(fac_cells[idx], cells)]
            if len(inside) == 0 and len(area_xy[row.area]):
                diff = fac_xy[idx, None, :] - area_xy[row.area][None, :, :]
                dist = np.sqrt((diff ** 2).sum(axis=2)).min(axis=1)
                order = np.argsort(dist, kind="stable")
                near = order[dist[order] <= service_radius_m][:NEAREST_FACILITIES]
                inside = idx[near]
            claims.extend((row.area, str(resource), str(fac.at[i, "id"]), float(row.demand))
                          for i in inside)
    if not claims:
        frame = demand_frame[["area", "resource"]].copy()
        frame["supply"] = 0.0
        frame["facilities"] = [[] for _ in range(len(frame))]
        return frame
    claim = pd.DataFrame(claims, columns=["area", "resource", "facility_id", "demand"])
    claim = claim.merge(stock[["facility_id", "resource", "quantity"]],
                        on=["facility_id", "resource"], how="left")
    total = claim.groupby(["facility_id", "resource"])["demand"].transform("sum")
    claim["share"] = claim["quantity"].fillna(0.0) * claim["demand"] / total
    per_area = claim.groupby(["area", "resource"], as_index=False).agg(
        supply=("share", "sum"), facilities=("facility_id", list))
    frame = demand_frame[["area", "resource"]].merge(per_area, on=["area", "resource"],
                                                     how="left")
    frame["supply"] = frame["supply"].fillna(0.0)
    frame["facilities"] = [v if isinstance(v, list) else [] for v in frame["facilities"]]
    return frame[out_columns]


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    frame["gap"] = (frame["demand"] - frame["supply"]).clip(lower=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = frame["supply"].to_numpy(float) / frame["daily_demand"].to_numpy(float)
    cover[frame["daily_demand"].to_numpy(float) <= 0] = np.inf
    frame["days_of_cover"] = cover
    return frame


def active_cases(cases: pd.DataFrame, *, as_of: str | dt.date | None = None) -> float:
    """Active infections: confirmed + asymptomatic cases of the last ACTIVE_CASE_DAYS days.

    ``cases``: a case series ``(…, date, status, n)`` as :meth:`twin.facts.Facts.cases`
    returns it; the window ends at ``as_of`` (default: the last report date).
    """
    if cases.empty:
        return 0.0
    dates = pd.to_datetime(cases["date"])
    end = pd.Timestamp(as_of) if as_of is not None else dates.max()
    start = end - pd.Timedelta(days=ACTIVE_CASE_DAYS - 1)
    keep = (dates >= start) & (dates <= end) & cases["status"].astype(str).isin(
        ACTIVE_STATUSES)
    return float(cases.loc[keep, "n"].sum())


def bed_gap(active: float, bed_stock: float, config: Any) -> pd.DataFrame:
    """The city-level hospital-bed row: need = bed_share_of_active_cases × active cases."""
    need = float(config["supply"]["bed_share_of_active_cases"]) * float(active)
    frame = pd.DataFrame([{"area": "city", "tier": "city", "resource": "beds", "unit": "bed",
                           "population": float(active), "daily_demand": need, "demand": need,
                           "supply": float(bed_stock)}])
    return _finish(frame)


def gaps(areas: Areas, facts_base: pd.DataFrame, config: Any, *, facilities: pd.DataFrame,
         stocks: pd.DataFrame, horizon_days: float | None = None,
         active: float | None = None) -> pd.DataFrame:
    """Demand, supply, gap and days of cover per area and resource.

    Columns ``area, tier, resource, unit, population, daily_demand, demand, supply, gap,
    days_of_cover`` (:func:`workspace_gaps` adds ``requests``). With ``active`` (active
    cases) a city-level ``beds`` row is added; its supply is every bed held by hospitals and
    quarantine sites.
    """
    horizon = float(config["supply"]["horizon_days"] if horizon_days is None else horizon_days)
    want = demand(areas, facts_base, config, horizon_days=horizon)
    have = supply(areas, want, facilities, stocks,
                  service_radius_m=float(config["supply"]["service_radius_m"]))
    frame = want.merge(have[["area", "resource", "supply"]], on=["area", "resource"],
                       how="left")
    frame["supply"] = frame["supply"].fillna(0.0)
    frame = _finish(frame)
    if active is not None:
        stock = latest_stocks(stocks)
        bed_ids = facilities.loc[facilities["kind"].isin(SERVING_KINDS["beds"]), "id"]
        beds = stock[(stock["resource"] == "beds")
                     & stock["facility_id"].astype(str).isin(bed_ids.astype(str))]
        frame = pd.concat([frame, bed_gap(active, beds["quantity"].sum(), config)],
                          ignore_index=True)
    return frame.reset_index(drop=True)


def area_centres(areas: Areas, facts_base: pd.DataFrame) -> pd.DataFrame:
    """A delivery point per area: its cell nearest the residents-weighted centre.

    Columns ``area, cell, lon, lat``; areas without cells are left out.
    """
    residents = facts_base.set_index("cell")["residents"].astype(float).groupby(level=0).sum()
    rows = []
    for area, (_tier, cells) in areas.items():
        cells = _cells(cells)
        if not len(cells):
            continue
        lon, lat = grid.cell_centres(cells)
        weight = residents.reindex(cells).fillna(0.0).to_numpy()
        if weight.sum() <= 0:
            weight = np.ones(len(cells))
        cx, cy = np.average(lon, weights=weight), np.average(lat, weights=weight)
        i = int(np.argmin((lon - cx) ** 2 + ((lat - cy) ** 2)))
        rows.append((area, np.uint64(cells[i]), float(lon[i]), float(lat[i])))
    frame = pd.DataFrame(rows, columns=["area", "cell", "lon", "lat"])
    frame["cell"] = frame["cell"].astype(np.uint64)
    return frame


def workspace_areas(workspace: Any, *, level: str = "community",
                    zones: Areas | None = None) -> dict[str, tuple[str, np.ndarray]]:
    """The areas of a workspace: its communities (tiered by ``zones``) or the zones."""
    from twin.facts import Facts

    if level == "zone":
        if not zones:
            raise NoZonesError("no zones yet: draw or propose zones first, or plan per "
                               "community (level 'community')")
        return {str(k): (t, _cells(c)) for k, (t, c) in zones.items()}
    if level != "community":
        raise SupplyError(f"unknown planning level {level!r}; use 'zone' or 'community'")
    facts = Facts(workspace)
    base = facts.static(facts.base, ["residents", "community_code"])
    return community_areas(base, zones)


def workspace_gaps(workspace: Any, *, level: str = "community", zones: Areas | None = None,
                   horizon_days: float | None = None) -> pd.DataFrame:
    """:func:`gaps` over a workspace's fused facts, facilities and stocks (with beds)."""
    from twin.facts import Facts

    facts = Facts(workspace)
    columns = [c for c in ("residents", "chronic_patients", "community_code")
               if c in facts.columns(facts.base)]
    base = facts.static(facts.base, columns)
    if "chronic_patients" not in base:
        base["chronic_patients"] = 0.0
    areas = workspace_areas(workspace, level=level, zones=zones)
    facilities = workspace.read("facilities")
    stocks = workspace.read("stocks")
    active = active_cases(facts.cases(facts.base))
    frame = gaps(areas, base, workspace.config, facilities=facilities, stocks=stocks,
                 horizon_days=horizon_days, active=active)
    from twin.events.store import Events

    return add_requests(frame, areas, Events(workspace).open_need_cells())


def add_requests(frame: pd.DataFrame, areas: Areas, requests: pd.DataFrame) -> pd.DataFrame:
    """Gaps with residents' open requests added to the demand of the area they fall in.

    ``requests`` has one row per open request with a need (``cell``, ``need``, ``quantity``,
    from :meth:`twin.events.store.Events.open_need_cells`). A request adds its quantity to the
    area holding its cell, for a resource the area already plans (its tier needs it); the
    column ``requests`` counts them. Gaps and days of cover are recomputed.
    """
    frame = frame.copy()
    frame["requests"] = 0
    if not len(requests) or not len(frame):
        return frame
    cells = requests["cell"].to_numpy(np.uint64)
    rows = []
    for area, (_tier, area_cells) in areas.items():
        inside = np.isin(cells, _cells(area_cells))
        if inside.any():
            part = requests[inside]
            rows.append(part.groupby("need")["quantity"].agg(["size", "sum"]).assign(
                area=area).reset_index())
    if not rows:
        return frame
    extra = pd.concat(rows, ignore_index=True).rename(columns={"need": "resource"})
    merged = frame.merge(extra, on=["area", "resource"], how="left")
    frame["requests"] = merged["size"].fillna(0).astype(int).to_numpy()
    frame["demand"] = frame["demand"] + merged["sum"].fillna(0.0).to_numpy()
    return _finish(frame)
