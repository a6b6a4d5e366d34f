"""OpenStreetMap PBF extracts, read through GDAL's OSM driver.

An extract holds everything; ingest keeps what the kind needs and maps OSM tags onto the
canonical schema: buildings (``building=*`` areas; ``building:levels``, ``height``), facilities
(``healthcare=*``, ``amenity=*``, ``shop=*`` nodes and areas, as points; ``beds``,
``capacity``) and roads (``highway=*`` lines; ``maxspeed``). Tag values are matched with the
reviewed tag tables below (building values from the OSM wiki's ``Key:building``; ``amenity``,
``healthcare``, ``shop``, ``social_facility`` and ``emergency`` values to our facility kinds),
not with the free-text synonyms of :mod:`ingest.values`: ``amenity=shelter`` is a bus-stop roof
in OSM, not an emergency shelter. Features whose tags mean nothing for the kind (a bench, a
footpath) are skipped and counted in the report.

Extracts are clipped to a box, so closed ways cut by it come with rings GEOS cannot build:
geometries are decoded per record (:func:`ingest.geometry.decode_wkb`), and a bad one is a
warning with its OSM id, never a failure of the file. GDAL builds a cut way from the nodes the
extract kept, silently; a pyosmium pass over the node references (:func:`check_references`)
names the ways built short (``way_truncated``) and the relations with members missing
(``relation_incomplete``).
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
from ingest.geometry import decode_wkb
from ingest.report import Report
from ingest.values import enumeration, normalise_value
from twin.schema import Kind

__all__ = ["BUILDING_USES", "FACILITY_KINDS", "check_references", "parse_measure",
           "parse_other_tags", "read_osm"]

_TAG = re.compile(r'"((?:[^"\\]|\\.)*)"=>"((?:[^"\\]|\\.)*)"')
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph|m|km/h|kmh)?\s*$", re.IGNORECASE)
# One number with an optional unit; a value may list several ("3;4") or a range ("3-5").
_MEASURE = re.compile(r"(\d+(?:[.,]\d+)?)\s*(m|ft|'|feet)?", re.IGNORECASE)
_FEET = 0.3048


def _table(groups: dict[str, str]) -> dict[str, str]:
    return {value: use for use, values in groups.items() for value in values.split()}


#: ``building=*`` values (OSM wiki, Key:building) to our building uses; a value not listed
#: (``yes``, ``garage``, ``shed``, ``roof``, …) is ``other``.
BUILDING_USES: dict[str, str] = _table({
    "residential": "apartments barracks bungalow cabin detached annexe dormitory farm ger house "
                   "houseboat residential semidetached_house static_caravan stilt_house "
                   "terrace tree_house trullo",
    "commercial": "commercial kiosk retail supermarket hotel",
    "office": "office",
    "industrial": "industrial warehouse factory manufacture hangar",
    "public": "civic college fire_station government hospital kindergarten museum public "
              "school toilets train_station transportation university religious cathedral "
              "chapel church kingdom_hall monastery mosque presbytery shrine synagogue temple "
              "sports_hall sports_centre stadium grandstand pavilion riding_hall library",
})

#: ``key=value`` tags to our facility kinds. Left out on purpose: ``amenity=shelter`` (a
#: roof at a bus stop or a picnic site), ``social_facility=shelter`` (a homeless shelter) and
#: other tags whose words look like ours but are not emergency facilities.
FACILITY_KINDS: dict[str, str] = _table({
    "hospital": "amenity=hospital healthcare=hospital",
    "clinic": "amenity=clinic amenity=doctors healthcare=clinic healthcare=doctor "
              "healthcare=centre",
    "pharmacy": "amenity=pharmacy healthcare=pharmacy shop=chemist",
    "supermarket": "shop=supermarket shop=wholesale",
    "market": "amenity=marketplace",
    "convenience_store": "shop=convenience",
    "shelter": "emergency=assembly_point amenity=refugee_site",
    "school": "amenity=school amenity=university amenity=college amenity=kindergarten",
    "nursing_home": "amenity=nursing_home social_facility=nursing_home "
                    "social_facility=assisted_living",
})
_FACILITY_KEYS = ("healthcare", "amenity", "shop", "social_facility", "emergency")


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

    def layer(name: str) -> pd.DataFrame:
        # Read WKB, not shapely geometries: building them all at once fails on the first
        # ring GEOS refuses, and an extract always has some (ways cut by its box).
        try:
            meta, table = pyogrio.read_arrow(path, layer=name, max_features=max_rows + 1)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError,
                ValueError) as exc:
            raise ParseError(f"{source_name} is not a readable OSM PBF extract "
                             f"({str(exc).replace(str(path), source_name)})") from None
        if table.num_rows > max_rows:
            raise LimitExceededError(f"{source_name} has more than {max_rows:,} {name}, the "
                                     "limit ingest.max_features in twin.toml")
        frame = table.to_pandas()
        return frame.rename(columns={meta["geometry_name"] or "wkb_geometry": "wkb"})

    frame, skipped = readers[kind.name](layer)
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    geometry, unreadable = decode_wkb(frame.pop("wkb").to_numpy(), frame.index, report,
                                      ids=frame["id"].to_numpy())
    frame = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometry, index=frame.index),
                             crs=4326)
    if kind.name == "facilities":
        # Areas (a hospital's grounds) become one point inside them.
        areas = frame["osm_area"].to_numpy(dtype=bool) & ~unreadable
        frame.loc[areas, "geometry"] = frame.geometry[areas].representative_point()
        frame = frame.drop(columns="osm_area")
        _name_fallback(frame, report)
    frame = frame[~unreadable]
    check_references(path, kind.name, frame["id"], report)
    report.info.update({"driver": "OSM", "rows_read": len(frame) + skipped,
                        "osm_features_skipped": skipped})
    if skipped:
        report.info["osm_note"] = (f"{skipped:,} features whose tags mean no {kind.name} were "
                                   "skipped")
    return RawLayer(frame=frame, crs=CRS.from_epsg(4326), info={"id_column": "id"})


#: The tag keys whose ways and relations each kind reads.
_KIND_KEYS = {"buildings": ("building",), "roads": ("highway",), "facilities": _FACILITY_KEYS}


def check_references(path: Path, kind: str, kept_ids: pd.Series, report: Report) -> None:
    """Report ways built from fewer nodes than they list, and relations missing members.

    An extract keeps the ways that cross its box with all their node references, but not the
    nodes outside; GDAL then builds such a way from the nodes present, so a road ends at the
    box's edge and a building becomes a sliver, without a word. A multipolygon relation whose
    member ways lie outside is built from the members present, or not at all.

    Parameters
    ----------
    path
        The staged PBF file.
    kind
        ``buildings``, ``facilities`` or ``roads``: which tags' ways and relations to check.
    kept_ids
        The ``way/…`` and ``relation/…`` ids of the records read, to tell a record published
        short from one GDAL left out.
    report
        Receives ``way_truncated`` and ``relation_incomplete`` warnings with sample ids.
    """
    import osmium

    keys = _KIND_KEYS[kind]
    kept = set(kept_ids.astype(str))
    truncated: list[str] = []
    members: dict[int, list[int]] = {}
    relations = osmium.FileProcessor(str(path), osmium.osm.RELATION).with_filter(
        osmium.filter.KeyFilter(*keys))
    for rel in relations:
        members[rel.id] = [m.ref for m in rel.members if m.type == "w"]
    # One streaming pass with a node-location index (C++): a reference whose node the file
    # lacks has no valid location. Only the kind's tagged ways reach Python.
    ways = osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations()
    ways = ways.with_filter(osmium.filter.EntityFilter(osmium.osm.WAY)).with_filter(
        osmium.filter.KeyFilter(*keys))
    for way in ways:
        if not all(n.location.valid() for n in way.nodes):
            truncated.append(f"way/{way.id}")
    if members:
        wanted = {ref for refs in members.values() for ref in refs}
        present = {w.id for w in osmium.FileProcessor(str(path), osmium.osm.WAY).with_filter(
            osmium.filter.IdFilter(wanted))}
        incomplete = [f"relation/{rid}" for rid, refs in members.items()
                      if any(ref not in present for ref in refs)]
    else:
        incomplete = []
    short = [i for i in truncated if i in kept]
    if short:
        what = "lines end" if kind == "roads" else "outlines were closed"
        report.warning("way_truncated", f"{len(short):,} ways cross the edge of the extract and "
                       f"lack the nodes beyond it; their {what} at the last node inside (cut a "
                       "larger extract to have them whole)", count=len(short), ids=short,
                       field="geometry")
    if incomplete:
        built = [i for i in incomplete if i in kept]
        report.warning("relation_incomplete", f"{len(incomplete):,} relations lack member ways "
                       f"the extract does not hold; {len(built):,} were built from the members "
                       f"present and {len(incomplete) - len(built):,} could not be built (cut a "
                       "larger extract to have them whole)", count=len(incomplete),
                       ids=incomplete, field="geometry")
    report.info["osm_ways_truncated"] = len(short)
    report.info["osm_relations_incomplete"] = len(incomplete)


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


def parse_measure(text: str | None, *, unit: str = "") -> float:
    """A number from an OSM value that may hold decimals, lists and ranges.

    ``"2.5"`` → 2.5, ``"3-5"`` or ``"3;5"`` → 5 (the largest: a building is as tall as its
    tallest part), ``"12 m"`` → 12, and with ``unit="m"``, ``"40'"`` or ``"40 ft"`` → 12.19.
    Anything else (``"many"``) is NaN, which ingest then treats as missing.
    """
    if not isinstance(text, str):
        return np.nan
    values = []
    for number, suffix in _MEASURE.findall(text):
        value = float(number.replace(",", "."))
        if unit == "m" and suffix.lower() in ("ft", "'", "feet"):
            value *= _FEET
        values.append(value)
    return max(values) if values else np.nan


def _levels(text: str | None) -> float:
    """Floors from ``building:levels``: a half level (an attic, ``2.5``) counts as a floor."""
    value = parse_measure(text)
    return float(np.ceil(value)) if np.isfinite(value) and value > 0 else np.nan


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
    uses = [BUILDING_USES.get(str(b).strip().lower(), "other") for b in areas["building"]]
    frame = pd.DataFrame({
        "id": _ids(areas), "use": uses,
        "floors": [_levels(t.get("building:levels")) for t in tags],
        "height_m": [parse_measure(t.get("height"), unit="m") for t in tags],
        "name": areas["name"].to_numpy(), "osm_building": areas["building"].to_numpy(),
        "wkb": areas["wkb"].to_numpy()})
    return frame, int((~keep).sum())


def _facility_kind(values: dict[str, str]) -> str | None:
    for key in _FACILITY_KEYS:
        value = values.get(key)
        if value:
            kind = FACILITY_KINDS.get(f"{key}={value.strip().lower()}")
            if kind:
                return kind
    return None


def _name_fallback(frame: gpd.GeoDataFrame, report: Report) -> None:
    """Name unnamed facilities by kind and id (OSM leaves many university areas unnamed)."""
    labels = {v.code: f"{v.zh} {v.en}" for v in enumeration("facilities", "kind") or ()}
    unnamed = frame["name"].isna() | (frame["name"].astype(str).str.strip() == "")
    if not unnamed.any():
        return
    frame.loc[unnamed, "name"] = [f"{labels.get(k, k)} {i}" for k, i in
                                  zip(frame["kind"][unnamed], frame["id"][unnamed], strict=True)]
    report.warning("name_filled", "facilities without a name in OpenStreetMap were named by "
                   "their kind and OSM id; add name=* in OSM or fix the name in the catalog",
                   rows=frame.index[unnamed], ids=frame["id"][unnamed], field="name")


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
        kept_tags = [t for t, k in zip(tags, keep, strict=True) if k]
        rows.append(pd.DataFrame({
            "id": _ids(chosen, "node"), "kind": [k for k in kinds if k is not None],
            "name": chosen["name"].to_numpy(),
            "capacity": [parse_measure(t.get("beds") or t.get("capacity")) for t in kept_tags],
            "osm_area": name == "multipolygons", "wkb": chosen["wkb"].to_numpy()}))
    if not rows:
        return pd.DataFrame({"id": [], "kind": [], "name": [], "capacity": [],
                             "osm_area": pd.Series([], dtype=bool),
                             "wkb": pd.Series([], dtype=object)}), skipped
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
        "wkb": chosen["wkb"].to_numpy()})
    return frame, int((~keep).sum())
