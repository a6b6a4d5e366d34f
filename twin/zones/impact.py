"""What a set of cells holds: residents, groups, buildings, facilities, stocks and, for a tier,
the demand and gap of each resource the tier needs (demand as :mod:`twin.supply` computes it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.store import Workspace
from twin.supply import needs, tier_demand
from twin.zones.store import TIERS, Zones, as_cells, check_choice

__all__ = ["Impact", "active_areas", "facts_or_none", "impact"]


@dataclass
class Impact:
    """What a set of cells holds: the sum of its cells' base facts.

    ``totals`` maps every summed fact column to its sum; ``cells_without_facts`` counts cells
    absent from the base table (no residents, buildings or facilities there).
    """

    cells: int
    cells_without_facts: int
    totals: dict[str, float]
    #: Per resource, when a tier was given: unit, daily_demand, demand, supply (stocks inside),
    #: gap and days_of_cover.
    supply: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Grouped for people: residents, groups, buildings, facilities by kind, stocks."""
        t = self.totals
        groups = ("age_65_plus", "children", "elderly_living_alone", "chronic_patients")
        kinds = sorted({c[4:-2] for c in t if c.startswith("fac_") and c.endswith("_n")})
        uses = sorted({c[10:-2] for c in t if c.startswith("buildings_") and c.endswith("_n")
                       and c != "buildings_n"})
        return {
            "cells": self.cells, "cells_without_facts": self.cells_without_facts,
            "residents": t.get("residents", 0.0),
            "groups": {g: t[g] for g in groups if g in t},
            "buildings": {"n": int(t.get("buildings_n", 0)),
                          "footprint_m2": t.get("footprint_m2", 0.0),
                          "floor_m2": t.get("floor_m2", 0.0),
                          "by_use": {u: {"n": int(t[f"buildings_{u}_n"]),
                                         "floor_m2": t.get(f"floor_m2_{u}", 0.0)}
                                     for u in uses if t[f"buildings_{u}_n"]}},
            "facilities": {k: {"n": int(t[f"fac_{k}_n"]),
                               "capacity": t.get(f"fac_{k}_capacity", 0.0)}
                           for k in kinds if t[f"fac_{k}_n"]},
            "stocks": {c[6:]: v for c, v in t.items() if c.startswith("stock_") and v},
            "supply": self.supply,
        }


_INDEX: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}


def _impact_index(facts: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Sorted base cells, the matrix of numeric facts in that order, and its column names."""
    key = str(facts.set.path)
    cached = _INDEX.get(key)
    if cached is None:
        table = facts.static(facts.base)
        columns = [c for c in table.columns if c != "cell" and not c.endswith("_code")
                   and np.issubdtype(table[c].dtype, np.number)]
        order = np.argsort(table["cell"].to_numpy(np.uint64), kind="stable")
        cells = table["cell"].to_numpy(np.uint64)[order]
        matrix = np.ascontiguousarray(table[columns].to_numpy(np.float64)[order])
        cached = (cells, matrix, columns)
        if len(_INDEX) > 8:
            _INDEX.clear()
        _INDEX[key] = cached
    return cached


def impact(facts: Any, cells: Iterable[Any] | np.ndarray, *, tier: str | None = None,
           horizon_days: float | None = None) -> Impact:
    """The residents, groups, buildings, facilities and stocks of ``cells`` (base cells).

    Takes a :class:`twin.facts.Facts`; the base table is indexed once per fact set and process,
    then each call is a ``searchsorted`` and a column sum. With a ``tier``, it also gives the
    demand of each resource the tier needs over ``horizon_days`` (default
    ``supply.horizon_days``), the stocks inside the cells, the gap and the days of cover
    (wider service areas are :func:`twin.supply.gaps`' business).
    """
    index, matrix, columns = _impact_index(facts)
    wanted = as_cells(cells)
    wanted = np.unique(wanted) if wanted is not None else np.empty(0, np.uint64)
    pos = np.searchsorted(index, wanted)
    pos[pos >= len(index)] = 0
    found = pos[index[pos] == wanted] if len(index) else pos[:0]
    sums = matrix[found].sum(axis=0)
    totals = dict(zip(columns, sums.tolist(), strict=True))
    result = Impact(cells=len(wanted), cells_without_facts=int(len(wanted) - len(found)),
                    totals=totals)
    if tier is not None:
        result.supply = _inside_supply(facts.workspace.config, totals, tier, horizon_days)
    return result


def _inside_supply(config: Any, totals: dict[str, float], tier: str,
                   horizon_days: float | None) -> dict[str, dict[str, float]]:
    """Per needed resource: demand of the cells' residents (:func:`twin.supply.tier_demand`),
    the stocks inside, the gap and the days of cover."""
    check_choice(tier, TIERS, "tier")
    horizon = float(horizon_days or config["supply"]["horizon_days"])
    out = {}
    for need, _, daily, total in tier_demand(needs(config), tier,
                                             lambda column: totals.get(column, 0.0),
                                             horizon_days=horizon):
        stock = totals.get(f"stock_{need.resource}", 0.0)
        out[need.resource] = {
            "unit": need.unit, "daily_demand": daily, "demand": total,
            "supply": stock, "gap": max(total - stock, 0.0),
            "days_of_cover": stock / daily if daily > 0 else float("inf")}
    return out


def active_areas(workspace: Workspace) -> dict[str, tuple[str, np.ndarray]]:
    """Active zones as ``{zone id: (tier, cells)}``, for demand, gaps and dispatch."""
    return {z.zone_id: (z.tier, z.cells) for z in Zones(workspace).list(status="active")}


def facts_or_none(workspace: Workspace) -> Any:
    """The workspace's :class:`twin.facts.Facts`, or ``None`` when it has no fused facts."""
    from twin.facts import Facts, FactsNotFoundError

    try:
        return Facts(workspace)
    except FactsNotFoundError:
        return None
