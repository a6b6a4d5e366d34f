"""OpenStreetMap PBF extracts, read through GDAL's OSM driver.

An extract holds everything; ingest keeps what the kind needs and maps OSM tags onto the
canonical schema: buildings (``building=*`` areas; ``building:levels``, ``height``), facilities
(``healthcare=*``, ``amenity=*``, ``shop=*`` nodes and areas, as points; ``beds``,
``capacity``) and roads (``highway=*`` lines; ``maxspeed``). Tag values are matched with the
synonym tables of :mod:`ingest.values`; features whose tags mean nothing for the kind (a bench,
a footpath) are skipped and counted in the report.
"""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
from pyproj import CRS

from ingest._vector import RawLayer
from ingest.errors import LimitExceededError, ParseError
from ingest.report import Report
from ingest.values import normalise_value
from twin.schema import Kind

__all__ = ["parse_other_tags", "read_osm"]

_TAG = re.compile(r'"((?:[^"\\]|\\.)*)"=>"((?:[^"\\]|\\.)*)"')
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph|m|km/h|kmh)?\s*$", re.IGNORECASE)


def parse_other_tags(values: pd.Series) -> list[dict[str, str]]:
    """Parse GDAL's ``other_tags`` hstore strings (``"k"=>"v","k2"=>"v2"``) into dicts."""
    return [dict(_TAG.findall(v)) if isinstance(v, str) else {} for v in values]


def read_osm(path: Path, *, kind: Kind, source_name: str, limits: dict[str, float],
             report: Report) -> RawLayer:
    """Read the features of ``kind`` from an OSM PBF extract.

    Raises
    ------
    ParseError
        When the extract cannot be read, or the kind is not one OSM provides here.
    LimitExceededError
        When a layer has more features than ``ingest.max_features``.
    """
    readers = {"buildings": _buildings, "facilities": _facilities, "roads": _roads}
    if kind.name not in readers:
        raise ParseError(f"OpenStreetMap extracts provide buildings, facilities and roads; "
                         f"load {kind.name} from another file")
    max_rows = int(limits["max_features"])

    def layer(name: str) -> gpd.GeoDataFrame:
        try:
            frame = pyogrio.read_dataframe(path, layer=name, max_features=max_rows + 1)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError,
                ValueError) as exc:
            raise ParseError(f"{source_name} is not a readable OSM PBF extract "
                             f"({str(exc).replace(str(path), source_name)})") from None
        if len(frame) > max_rows:
            raise LimitExceededError(f"{source_name} has more than {max_rows:,} {name}, the "
                                     "limit ingest.max_features in twin.toml")
        return frame

    frame, skipped = readers[kind.name](layer)
    frame = gpd.GeoDataFrame(frame, geometry="geometry", crs=4326)
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    report.info.update({"driver": "OSM", "rows_read": len(frame) + skipped,
                        "osm_features_skipped": skipped})
    if skipped:
        report.info["osm_note"] = (f"{skipped:,} features whose tags mean no {kind.name} were "
                                   "skipped")
    return RawLayer(frame=frame, crs=CRS.from_epsg(4326), info={})


def _ids(frame: gpd.GeoDataFrame, element: str = "node") -> pd.Series:
    """OSM ids as ``node/…``, ``way/…`` or ``relation/…``.

    GDAL's OSM layers say which element a row came from: ``points`` are nodes and ``lines``
    are ways (``element``); ``multipolygons`` carry ``osm_way_id`` for closed ways and
    ``osm_id`` for relations.
    """
    way = frame.get("osm_way_id")
    osm = frame["osm_id"]
    if way is None:
        return f"{element}/" + osm.astype(str)
    return np.where(way.notna(), "way/" + way.astype(str), "relation/" + osm.astype(str))


def _number(text: str | None) -> float:
    match = _NUMBER.match(text or "")
    if not match:
        return np.nan
    value = float(match.group(1))
    return value * 1.609344 if (match.group(2) or "").lower() == "mph" else value


def _buildings(layer) -> tuple[pd.DataFrame, int]:
    areas = layer("multipolygons")
    keep = areas["building"].notna()
    areas = areas[keep]
    tags = parse_other_tags(areas["other_tags"])
    uses = [normalise_value("buildings", "use", f"building={b}") or "other"
            for b in areas["building"]]
    frame = pd.DataFrame({
        "id": _ids(areas), "use": uses,
        "floors": [_number(t.get("building:levels")) for t in tags],
        "height_m": [_number(t.get("height")) for t in tags],
        "name": areas["name"].to_numpy(), "osm_building": areas["building"].to_numpy(),
        "geometry": areas.geometry.to_numpy()})
    return frame, int((~keep).sum())


def _facility_kind(values: dict[str, str]) -> str | None:
    for key in ("healthcare", "amenity", "shop", "social_facility"):
        value = values.get(key)
        if value:
            kind = normalise_value("facilities", "kind", f"{key}={value}")
            if kind:
                return kind
    return None


def _facilities(layer) -> tuple[pd.DataFrame, int]:
    rows, skipped = [], 0
    for name in ("points", "multipolygons"):
        frame = layer(name)
        tags = parse_other_tags(frame["other_tags"])
        for column in ("amenity", "shop"):
            if column in frame:
                for t, value in zip(tags, frame[column], strict=True):
                    if isinstance(value, str):
                        t[column] = value
        kinds = [_facility_kind(t) for t in tags]
        keep = np.array([k is not None for k in kinds], dtype=bool)
        skipped += int((~keep).sum())
        if not keep.any():
            continue
        chosen = frame[keep]
        geometry = chosen.geometry
        if name == "multipolygons":
            geometry = geometry.representative_point()
        kept_tags = [t for t, k in zip(tags, keep, strict=True) if k]
        rows.append(pd.DataFrame({
            "id": _ids(chosen), "kind": [k for k in kinds if k is not None],
            "name": chosen["name"].to_numpy(),
            "capacity": [_number(t.get("beds") or t.get("capacity")) for t in kept_tags],
            "geometry": geometry.to_numpy()}))
    if not rows:
        return pd.DataFrame({"id": [], "kind": [], "name": [], "capacity": [],
                             "geometry": gpd.GeoSeries([])}), skipped
    return pd.concat(rows, ignore_index=True), skipped


def _roads(layer) -> tuple[pd.DataFrame, int]:
    lines = layer("lines")
    classes = [normalise_value("roads", "class", f"highway={h}") if isinstance(h, str) else None
               for h in lines["highway"]]
    keep = np.array([c is not None for c in classes], dtype=bool)
    chosen = lines[keep]
    tags = parse_other_tags(chosen["other_tags"])
    frame = pd.DataFrame({
        "id": _ids(chosen, "way"), "class": [c for c in classes if c is not None],
        "name": chosen["name"].to_numpy(),
        "speed_kmh": [_number(t.get("maxspeed")) for t in tags],
        "geometry": chosen.geometry.to_numpy()})
    return frame, int((~keep).sum())
