"""Where an event is: its base cell, grid unit, community, street, district and zone.

The grid unit of a point is the unit that owns its cell in the fused facts: the unit whose
polygon holds the cell's centre, or, for a cell outside every unit, the nearest unit (counted
as ``outside``). Fusion assigns cells the same way (:meth:`twin.fuse.AdminUnits.assign`), so
an event and the facts of its cell always agree on its unit. Without grid units in the
boundaries, events go to their community.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from twin import grid
from twin.errors import EventInputError, FuseError
from twin.fuse import AdminUnits, admin_units
from twin.store import Workspace

__all__ = ["UNIT_LEVELS", "Locator"]

#: The levels an event carries codes of, finest first.
UNIT_LEVELS = ("grid", "community", "street", "district")
_TIER_ORDER = {"lockdown": 0, "control": 1, "prevention": 2}


@dataclass
class Locator:
    """Locates points and buildings in one workspace (built once per import or server)."""

    workspace: Workspace
    units: AdminUnits = field(init=False)
    _buildings: pd.DataFrame | None = field(default=None, init=False)
    _zones: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        try:
            self.units = admin_units(self.workspace)
        except FuseError as exc:
            raise EventInputError(f"events need the city's boundaries to find each report's "
                                  f"grid unit: {exc}") from None
        self.base = int(self.workspace.config.base_resolution)

    @property
    def has_grid(self) -> bool:
        """Whether the boundaries hold grid units (else events go to communities)."""
        return "grid" in self.units.frames

    def unit_names(self, level: str) -> dict[str, str]:
        """code -> name of the units of ``level`` (empty when there is no such level)."""
        frame = self.units.frames.get(level)
        if frame is None:
            return {}
        return dict(zip(frame["code"].astype(str), frame["name"].astype(str), strict=True))

    def locate(self, lng: np.ndarray, lat: np.ndarray) -> pd.DataFrame:
        """Per point: ``cell`` (uint64), ``<level>_code`` for every level, ``zone_id``,
        ``zone_tier`` (strictest active zone holding the cell, or None) and ``outside``
        (the cell lies outside every unit and went to the nearest)."""
        lng = np.asarray(lng, dtype=float)
        lat = np.asarray(lat, dtype=float)
        cells = grid.points_to_cells(lng, lat, self.base)
        unique, inverse = np.unique(cells, return_inverse=True)
        codes, _ = self.units.assign(unique, self.base)
        out = pd.DataFrame({"cell": cells})
        for level in UNIT_LEVELS:
            values = codes.get(level)
            out[f"{level}_code"] = (values[inverse] if values is not None
                                    else np.full(len(cells), None, dtype=object))
        if not self.has_grid:
            out["grid_code"] = out["community_code"]
        out["outside"] = ~self._inside(unique)[inverse]
        zone_id, zone_tier = self._zone_of(cells)
        out["zone_id"], out["zone_tier"] = zone_id, zone_tier
        return out

    def _inside(self, cells: np.ndarray) -> np.ndarray:
        """Whether each cell's centre lies inside a unit of the finest level."""
        import shapely

        finest = next(lv for lv in UNIT_LEVELS if lv in self.units.frames)
        frame = self.units.frames[finest]
        tree = shapely.STRtree(frame.geometry.to_numpy())
        points = shapely.points(*grid.cell_centres(cells))
        hit, _ = tree.query(points, predicate="within")
        inside = np.zeros(len(cells), dtype=bool)
        inside[hit] = True
        return inside

    def _zone_of(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._zones is None:
            from twin.zones import Zones

            active = sorted(Zones(self.workspace).list(status="active"),
                            key=lambda z: _TIER_ORDER.get(z.tier, 9))
            all_cells, ids, tiers = [], [], []
            for z in active:  # strictest first: a cell in two zones belongs to the stricter
                all_cells.append(np.asarray(z.cells, dtype=np.uint64))
                ids.append(np.full(len(z.cells), z.zone_id, dtype=object))
                tiers.append(np.full(len(z.cells), z.tier, dtype=object))
            if all_cells:
                c = np.concatenate(all_cells)
                c, first = np.unique(c, return_index=True)  # first occurrence: the strictest
                self._zones = (c, np.concatenate(ids)[first], np.concatenate(tiers)[first])
            else:
                self._zones = (np.empty(0, np.uint64), np.empty(0, object), np.empty(0, object))
        zc, zid, ztier = self._zones
        position = np.searchsorted(zc, cells)
        position = np.minimum(position, max(len(zc) - 1, 0))
        found = (zc[position] == cells) if len(zc) else np.zeros(len(cells), bool)
        ids = np.full(len(cells), None, dtype=object)
        tiers = np.full(len(cells), None, dtype=object)
        ids[found], tiers[found] = zid[position[found]], ztier[position[found]]
        return ids, tiers

    def buildings(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longitude and latitude (WGS84) of each building id's footprint centre (NaN when the
        current buildings layer has no such id)."""
        if self._buildings is None:
            self._buildings = self._load_buildings()
        table = self._buildings
        position = pd.Index(table["id"]).get_indexer(pd.Series(ids, dtype=object).astype(str))
        lng = np.where(position >= 0, table["lng"].to_numpy()[position], np.nan)
        lat = np.where(position >= 0, table["lat"].to_numpy()[position], np.nan)
        return lng, lat

    def _load_buildings(self) -> pd.DataFrame:
        layers = [layer for layer in self.workspace.layers() if layer.kind == "buildings"]
        if not layers:
            return pd.DataFrame({"id": pd.Series([], dtype=object), "lng": [], "lat": []})
        import geopandas as gpd

        entry = self.workspace.version(layers[0].name)
        frame = gpd.read_parquet(self.workspace.root / entry.file, columns=["id", "geometry"])
        points = frame.geometry.representative_point()
        return pd.DataFrame({"id": frame["id"].astype(str).to_numpy(),
                             "lng": points.x.to_numpy(), "lat": points.y.to_numpy()}
                            ).drop_duplicates("id")
