"""The fused picture as OGC API Features collections: what other departments' GIS reads.

Collections (ids are URL-safe):

- ``layer-NAME``: the current version of every vector layer (buildings, facilities, roads,
  boundaries, cases), as published;
- ``facts-r10`` … ``facts-r7``, ``facts-community``, ``facts-street``, ``facts-district``: the
  fused facts per H3 cell or admin unit, with the new cases of a window (``datetime``: a day
  or ``start/end``; all dates by default) as ``cases`` and ``cases_<status>``;
- ``zones``: the open control zones, with their dissolved outlines.

Items are paged (``limit``/``offset``), filtered by ``bbox`` (in CRS84 or, with
``bbox-crs``, EPSG:4326/4490) and returned in CRS84 or, with ``crs`` (Part 2), in EPSG:4326 or
EPSG:4490 (CGCS2000) in those CRSs' latitude-first axis order. CGCS2000 and WGS84 agree to a
few centimetres; PROJ treats the conversion as a null transformation, so only the axis order
changes.

Privacy: a viewer's token sees what a viewer sees on the cockpit (``twin.privacy``): no case
points, no facts finer than ``privacy.viewer_resolution``, and case counts from 1 to
``suppress_below - 1`` as ``"<10"``.

The HTTP layer (``dashboards/ogc.py``) only parses requests and writes JSON; everything here
is plain functions of the workspace.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from twin.errors import AuthError, FeaturesError, TwinError
from twin.schema import CASE_STATUSES
from twin.users import can

if TYPE_CHECKING:
    import geopandas as gpd

    from twin.store import Workspace

__all__ = ["CRS84", "CRSS", "Collection", "FeaturesError", "Page", "collection_frame",
           "collections", "crs_uri", "feature_collection", "get_collection", "items"]

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: Supported CRS URIs -> (EPSG code or None for CRS84, latitude first?).
CRSS: dict[str, tuple[int | None, bool]] = {
    CRS84: (None, False),
    "http://www.opengis.net/def/crs/EPSG/0/4326": (4326, True),
    "http://www.opengis.net/def/crs/EPSG/0/4490": (4490, True),
}
MAX_LIMIT = 10_000
_RESOLUTIONS = (10, 9, 8, 7)
_ADMIN_LEVELS = ("community", "street", "district")
_ADMIN_ZH = {"community": "社区", "street": "街道", "district": "区"}
# Every status the schema knows (close contacts too): a hand-kept list once missed one.
_CASE_COLUMNS = ("cases", *(f"cases_{status}" for status in CASE_STATUSES))


@dataclass(frozen=True)
class Collection:
    """One collection: its id, bilingual title and how to build its features."""

    id: str
    title: str
    description: str
    kind: str  # "layer", "facts" or "zones"
    source: str  # layer name, facts level, or "zones"
    source_kind: str = ""  # a layer's kind (cases are personal), else the collection's kind
    has_time: bool = False
    extent: tuple[float, float, float, float] | None = None

    def to_dict(self, base: str) -> dict[str, Any]:
        href = f"{base}/collections/{self.id}"
        data: dict[str, Any] = {
            "id": self.id, "title": self.title, "description": self.description,
            "itemType": "feature", "crs": list(CRSS), "storageCrs": CRS84,
            "links": [
                {"href": href, "rel": "self", "type": "application/json",
                 "title": "this collection"},
                {"href": f"{href}/items", "rel": "items", "type": "application/geo+json",
                 "title": "the features"}]}
        if self.extent is not None:
            data["extent"] = {"spatial": {"bbox": [list(self.extent)], "crs": CRS84}}
        return data


@dataclass
class Page:
    """One page of items: the features (EPSG:4326), the count matched and the next offset."""

    features: gpd.GeoDataFrame
    number_matched: int
    offset: int
    limit: int
    crs: str = CRS84
    suppressed: list[str] = field(default_factory=list)

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.features)
        return end if end < self.number_matched else None


def crs_uri(value: str | None, what: str = "crs") -> str:
    """The CRS URI asked for (CRS84 by default), or FeaturesError for one not offered."""
    if not value:
        return CRS84
    uri = value.strip().strip("[]")
    if uri in CRSS:
        return uri
    raise FeaturesError(f"{what} {value!r} is not offered; use one of {', '.join(CRSS)}")


def _allowed(role: str, collection: Collection, viewer_resolution: int) -> str | None:
    """Why ``role`` may not read ``collection`` (None when it may)."""
    if can(role, "view_fine_cases"):
        return None
    if collection.kind == "layer" and collection.source_kind == "cases":
        return ("case points are personal data; viewers read case counts from the facts "
                "collections")
    if collection.kind == "facts" and collection.source.isdigit() and \
            int(collection.source) > viewer_resolution:
        return (f"facts finer than H3 resolution {viewer_resolution} are not for viewers; read "
                f"facts-r{viewer_resolution} or coarser")
    return None


def collections(workspace: Workspace, role: str) -> list[Collection]:
    """The collections ``role`` may read, in a stable order."""
    from twin.facts import Facts
    from twin.privacy import PrivacyPolicy

    policy = PrivacyPolicy.from_config(workspace.config)
    out: list[Collection] = []
    for info in workspace.layers():
        entry = workspace.version(info.name)
        if entry.format != "geoparquet":
            continue
        c = Collection(id=f"layer-{info.name}", title=f"{info.name} ({info.kind})",
                       description=f"图层 layer {info.name}: {info.kind}, version "
                       f"{entry.version}, {entry.row_count:,} features",
                       kind="layer", source=info.name, source_kind=info.kind,
                       has_time=info.kind == "cases", extent=entry.bounds)
        out.append(c)
    try:
        facts = Facts(workspace)
        levels = [str(lv) for lv in facts.levels]
    except TwinError:
        levels = []
    for res in _RESOLUTIONS:
        if str(res) in levels:
            out.append(Collection(
                id=f"facts-r{res}", title=f"H3 {res} 级网格事实 facts per H3 cell (res {res})",
                description="residents, age groups, buildings, facilities and the new cases of "
                "the datetime window per H3 cell", kind="facts", source=str(res),
                has_time=True))
    for level in _ADMIN_LEVELS:
        if level in levels:
            out.append(Collection(
                id=f"facts-{level}", title=f"{_ADMIN_ZH[level]}事实 facts per {level}",
                description=f"the fused facts per {level}, with the new cases of the datetime "
                "window", kind="facts", source=level, has_time=True))
    out.append(Collection(id="zones", title="管控区域 control zones",
                          description="open control zones (current versions) with their "
                          "outlines, tiers and residents", kind="zones", source="zones"))
    return [c for c in out if _allowed(role, c, policy.viewer_resolution) is None]


def get_collection(workspace: Workspace, collection_id: str, role: str) -> Collection:
    """The collection ``collection_id`` if ``role`` may read it.

    Raises
    ------
    FeaturesError
        ``not_found`` when there is no such collection.
    AuthError
        When it exists but ``role`` may not read it (with the reason).
    """
    from twin.privacy import PrivacyPolicy

    policy = PrivacyPolicy.from_config(workspace.config)
    every = collections(workspace, "admin")
    for c in every:
        if c.id == collection_id:
            why = _allowed(role, c, policy.viewer_resolution)
            if why is not None:
                raise AuthError(f"collection {collection_id!r} is not open to role {role!r}: "
                                f"{why}")
            return c
    raise FeaturesError(f"no collection {collection_id!r}; see /ogc/collections",
                        not_found=True)


def _window(value: str | None) -> tuple[dt.date | None, dt.date | None]:
    """``datetime``: a day, a timestamp, or an interval ``start/end`` with ``..`` for open."""
    if not value:
        return None, None

    def day(text: str) -> dt.date | None:
        text = text.strip()
        if text in ("", ".."):
            return None
        try:
            return dt.date.fromisoformat(text[:10])
        except ValueError:
            raise FeaturesError(f"datetime {value!r} is not an RFC 3339 date or interval "
                                "(e.g. 2026-03-15 or 2026-03-01/2026-03-15)") from None

    if "/" in value:
        start, _, end = value.partition("/")
        first, last = day(start), day(end)
    else:
        first = last = day(value)
    if first and last and first > last:
        raise FeaturesError(f"datetime {value!r} ends before it starts")
    return first, last


# Built frames per (workspace, collection, version key, window), a few at a time: a GIS client
# pages through a collection, and each page must not rebuild 100,000 hexagons.
_CACHE: OrderedDict[tuple[Any, ...], gpd.GeoDataFrame] = OrderedDict()
_CACHE_SIZE = 8
_LOCK = threading.Lock()


def _frame(workspace: Workspace, c: Collection, window: tuple[dt.date | None, dt.date | None],
           role: str) -> gpd.GeoDataFrame:
    key = (str(workspace.root), c.id, _version_key(workspace, c), window,
           can(role, "view_fine_cases"))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    frame = _build(workspace, c, window, role)
    with _LOCK:
        _CACHE[key] = frame
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return frame


def _version_key(workspace: Workspace, c: Collection) -> Any:
    if c.kind == "layer":
        return workspace.version(c.source).version
    if c.kind == "facts":
        fact_set = workspace.current_facts()
        return fact_set.id if fact_set is not None else None
    with workspace.connect() as conn:  # zones: any saved version changes the collection
        return tuple(conn.execute("SELECT count(*), max(created_at) FROM zone_versions")
                     .fetchone())


def _build(workspace: Workspace, c: Collection, window: tuple[dt.date | None, dt.date | None],
           role: str) -> gpd.GeoDataFrame:
    import geopandas as gpd

    if c.kind == "layer":
        frame = workspace.read(c.source)
        if c.has_time and any(window) and "report_date" in frame:
            dates = pd.to_datetime(frame["report_date"]).dt.date
            keep = np.ones(len(frame), dtype=bool)
            if window[0]:
                keep &= (dates >= window[0]).to_numpy()
            if window[1]:
                keep &= (dates <= window[1]).to_numpy()
            frame = frame[keep]
        key = "id" if "id" in frame else None
        ids = frame[key].astype(str).to_numpy() if key else np.arange(1, len(frame) + 1)
        frame = frame.assign(_fid=ids)
    elif c.kind == "facts":
        frame = _facts_frame(workspace, c.source, window)
    else:
        frame = _zones_frame(workspace)
    if not can(role, "view_fine_cases"):
        frame = _suppress(workspace, frame)
    frame = frame.reset_index(drop=True)
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=4326)


def _facts_frame(workspace: Workspace, level: str,
                 window: tuple[dt.date | None, dt.date | None]) -> pd.DataFrame:
    import geopandas as gpd
    import shapely

    from twin import grid
    from twin.facts import Facts

    facts = Facts(workspace)
    table = facts.read(int(level) if level.isdigit() else level, start=window[0],
                       end=window[1])
    if level.isdigit():
        cells = table["cell"].to_numpy(dtype=np.uint64)
        geometry = shapely.from_wkb(grid.cell_boundaries_wkb(cells))
        table = table.assign(cell=grid.cells_to_strings(cells), _fid=grid.cells_to_strings(cells))
        return gpd.GeoDataFrame(table, geometry=geometry, crs=4326)
    units = _admin_geometries(workspace, level)
    table = table.merge(units, on="code", how="inner")
    return gpd.GeoDataFrame(table.assign(_fid=table["code"].astype(str)), geometry="geometry",
                            crs=4326)


def _admin_geometries(workspace: Workspace, level: str) -> pd.DataFrame:
    frames = []
    for info in workspace.layers():
        if info.kind == "boundaries":
            b = workspace.read(info.name)
            if "level" in b:
                frames.append(b.loc[b["level"] == level, ["code", "geometry"]])
    if not frames:
        raise FeaturesError(f"no boundaries layer holds the {level} outlines", not_found=True)
    return pd.concat(frames, ignore_index=True).drop_duplicates("code")


def _zones_frame(workspace: Workspace) -> pd.DataFrame:
    import geopandas as gpd

    from twin.schema import OPEN_ZONE_STATUSES
    from twin.zones import STATUS_ZH, TIER_ZH, Zones, outline_of

    rows = [{"_fid": z.zone_id, "zone_id": z.zone_id, "name": z.name, "version": z.version,
             "tier": z.tier, "tier_zh": TIER_ZH[z.tier], "status": z.status,
             "status_zh": STATUS_ZH[z.status], "valid_from": z.valid_from,
             "cells_n": len(z.cells), "geometry": outline_of(z.cells)}
            for z in Zones(workspace).list() if z.status in OPEN_ZONE_STATUSES]
    if not rows:
        return gpd.GeoDataFrame({"_fid": [], "zone_id": []}, geometry=[], crs=4326)
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


def _suppress(workspace: Workspace, frame: pd.DataFrame) -> pd.DataFrame:
    from twin.privacy import PrivacyPolicy, suppress_counts

    below = PrivacyPolicy.from_config(workspace.config).suppress_below
    out = frame.copy()
    for column in _CASE_COLUMNS:
        if column in out:
            out[column] = suppress_counts(out[column].to_numpy(), below)
    return out


def items(workspace: Workspace, collection_id: str, *, role: str,
          bbox: list[float] | None = None, bbox_crs: str | None = None, limit: int = 10,
          offset: int = 0, datetime: str | None = None, crs: str | None = None,
          feature_id: str | None = None) -> Page:
    """One page of a collection's features, filtered and in the CRS asked for.

    Raises
    ------
    FeaturesError
        For an unknown collection or feature (``not_found``) or a bad parameter.
    AuthError
        When ``role`` may not read the collection.
    """
    import shapely

    c = get_collection(workspace, collection_id, role)
    if not 1 <= limit <= MAX_LIMIT:
        raise FeaturesError(f"limit must be between 1 and {MAX_LIMIT:,}, got {limit}")
    if offset < 0:
        raise FeaturesError(f"offset must be 0 or more, got {offset}")
    window = _window(datetime) if c.has_time else (None, None)
    if datetime and not c.has_time:
        raise FeaturesError(f"collection {collection_id!r} has no time; drop datetime")
    out_crs = crs_uri(crs)
    frame = _frame(workspace, c, window, role)
    if feature_id is not None:
        match = frame[frame["_fid"].astype(str) == str(feature_id)]
        if not len(match):
            raise FeaturesError(f"no feature {feature_id!r} in {collection_id!r}",
                                not_found=True)
        return Page(features=match, number_matched=1, offset=0, limit=1, crs=out_crs)
    if bbox is not None:
        if len(bbox) not in (4, 6):
            raise FeaturesError("bbox takes 4 numbers: min x, min y, max x, max y")
        b = [float(v) for v in (bbox if len(bbox) == 4 else [bbox[0], bbox[1], bbox[3],
                                                              bbox[4]])]
        if CRSS[crs_uri(bbox_crs, "bbox-crs")][1]:  # latitude first: swap to lon/lat
            b = [b[1], b[0], b[3], b[2]]
        if b[0] > b[2] or b[1] > b[3]:
            raise FeaturesError(f"bbox {bbox} has its minimum above its maximum")
        bounds = shapely.bounds(np.asarray(frame.geometry.values, dtype=object))
        hit = ((bounds[:, 2] >= b[0]) & (bounds[:, 0] <= b[2]) & (bounds[:, 3] >= b[1])
               & (bounds[:, 1] <= b[3]))
        candidates = np.flatnonzero(hit)
        if len(candidates):
            box = shapely.box(*b)
            exact = shapely.intersects(np.asarray(frame.geometry.values,
                                                  dtype=object)[candidates], box)
            candidates = candidates[exact]
        frame = frame.iloc[candidates]
    matched = len(frame)
    return Page(features=frame.iloc[offset:offset + limit], number_matched=matched,
                offset=offset, limit=limit, crs=out_crs)


def collection_frame(workspace: Workspace, collection_id: str, *, role: str,
                     datetime: str | None = None) -> gpd.GeoDataFrame:
    """The whole of a collection as ``role`` may read it (WGS84), for downloads.

    The same frame as :func:`items` pages through, with the same privacy; without the
    internal feature id.

    Raises
    ------
    FeaturesError
        For an unknown collection (``not_found``) or a bad ``datetime``.
    AuthError
        When ``role`` may not read the collection.
    """
    c = get_collection(workspace, collection_id, role)
    if datetime and not c.has_time:
        raise FeaturesError(f"collection {collection_id!r} has no time; drop datetime")
    window = _window(datetime) if c.has_time else (None, None)
    return _frame(workspace, c, window, role).drop(columns="_fid")


def feature_collection(page: Page) -> dict[str, Any]:
    """The page as a GeoJSON FeatureCollection (without links), coordinates in ``page.crs``."""
    import json

    import shapely

    frame = page.features
    geoms = np.asarray(frame.geometry.values, dtype=object)
    if CRSS[page.crs][1] and len(geoms):  # EPSG:4326/4490 axis order: latitude first
        geoms = shapely.transform(geoms, lambda xy: xy[:, ::-1])
    texts = shapely.to_geojson(geoms) if len(geoms) else []
    props = frame.drop(columns=[frame.geometry.name, "_fid"])
    records = json.loads(props.to_json(orient="records", date_format="iso", force_ascii=False))
    features = [{"type": "Feature", "id": fid, "geometry": json.loads(g) if g else None,
                 "properties": p}
                for fid, g, p in zip(frame["_fid"].tolist(), texts, records, strict=True)]
    return {"type": "FeatureCollection", "features": features,
            "numberMatched": page.number_matched, "numberReturned": len(features),
            "timeStamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
