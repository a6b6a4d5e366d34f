"""Zones for people and other tools: the diff between two versions, dissolved outlines, and
GeoJSON / GeoPackage export with bilingual properties.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from twin import grid
from twin.errors import ZoneError
from twin.schema import OPEN_ZONE_STATUSES
from twin.store import Workspace
from twin.zones.impact import facts_or_none, impact
from twin.zones.store import STATUS_ZH, STATUSES, TIER_ZH, TIERS, Zones, check_choice

__all__ = ["diff", "export", "outline_of"]


def diff(workspace: Workspace, zone_id: str, old: int, new: int | None = None) -> dict[str, Any]:
    """Cells added and removed between two versions of a zone, and the residents they hold.

    Residents are ``None`` when the workspace has no fused facts.
    """
    zones = Zones(workspace)
    a, b = zones.get(zone_id, old), zones.get(zone_id, new)
    added, removed = np.setdiff1d(b.cells, a.cells), np.setdiff1d(a.cells, b.cells)
    out: dict[str, Any] = {
        "zone_id": zone_id, "from_version": a.version, "to_version": b.version,
        "tier": [a.tier, b.tier], "status": [a.status, b.status],
        "added": grid.cells_to_strings(added).tolist(),
        "removed": grid.cells_to_strings(removed).tolist(),
        "residents_added": None, "residents_removed": None,
        "residents_before": None, "residents_after": None}
    facts = facts_or_none(workspace)
    if facts is not None:
        out["residents_added"] = impact(facts, added).totals.get("residents", 0.0)
        out["residents_removed"] = impact(facts, removed).totals.get("residents", 0.0)
        out["residents_before"] = impact(facts, a.cells).totals.get("residents", 0.0)
        out["residents_after"] = impact(facts, b.cells).totals.get("residents", 0.0)
    return out


def outline_of(cells: np.ndarray) -> Any:
    """The dissolved outline of cells: the union of their hexagons (shapely geometry)."""
    return grid.cells_outline(cells)


def export(workspace: Workspace, path: str | os.PathLike[str], *,
           statuses: Sequence[str] = OPEN_ZONE_STATUSES,
           tiers: Sequence[str] = TIERS) -> int:
    """Write the current versions of the zones as GeoJSON (``.geojson``/``.json``) or
    GeoPackage (``.gpkg``), one feature per zone with its dissolved outline; returns the count.

    Properties are bilingual (``tier`` / ``tier_zh`` ...). The file is written under a
    temporary name in the same directory and renamed into place.
    """
    import geopandas as gpd

    target = Path(path)
    suffix = target.suffix.lower()
    drivers = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}
    if suffix not in drivers:
        raise ZoneError(f"cannot export zones to {target.name}: use a .geojson or .gpkg file")
    for s in statuses:
        check_choice(s, STATUSES, "status")
    chosen = [z for z in Zones(workspace).list() if z.status in statuses and z.tier in tiers]
    facts = facts_or_none(workspace)
    rows = []
    for z in chosen:
        got = impact(facts, z.cells).to_dict() if facts is not None else {}
        rows.append({
            "zone_id": z.zone_id, "name": z.name, "version": z.version,
            "tier": z.tier, "tier_zh": TIER_ZH[z.tier],
            "label": f"{TIER_ZH[z.tier]}/{z.tier}", "status": z.status,
            "status_zh": STATUS_ZH[z.status], "valid_from": z.valid_from, "author": z.author,
            "reason": z.reason, "cells_n": len(z.cells),
            "residents": got.get("residents"),
            "age_65_plus": got.get("groups", {}).get("age_65_plus"),
            "buildings_n": got.get("buildings", {}).get("n"),
            "geometry": outline_of(z.cells)})
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=4326) if rows else gpd.GeoDataFrame(
        {"zone_id": [], "tier": []}, geometry=[], crs=4326)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp-{os.getpid()}{suffix}")
    try:
        frame.to_file(tmp, driver=drivers[suffix], engine="pyogrio",
                      **({"layer": "zones"} if suffix == ".gpkg" else {}))
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return len(rows)
