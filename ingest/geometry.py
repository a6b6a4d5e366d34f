"""Geometry cleaning: the stage between field mapping and reprojection.

It works in the source CRS, vectorised with shapely 2 over the whole frame, and never raises
for a problem of the data (only for a file over a limit of ``[ingest]``): null, empty and
non-finite geometries are dropped, geometries of the wrong family are dropped, collections are
reduced to their parts of the right family, invalid geometries are repaired, and polygons too
large for the H3 grid are named in an error. Every dropped or changed record is named in the
report by its record number (the frame's index, which is kept).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from ingest._parallel import chunked
from ingest.errors import LimitExceededError
from ingest.report import Report
from twin.grid import average_cell_area_m2
from twin.schema import Kind

__all__ = ["clean_geometries", "count_vertices", "decode_wkb"]

# shapely.get_type_id -> family; index 7 is GeometryCollection, -1 (missing) maps to "none".
_TYPE_NAMES = ("Point", "LineString", "LinearRing", "Polygon", "MultiPoint", "MultiLineString",
               "MultiPolygon", "GeometryCollection")
_FAMILY_BY_ID = np.array(["point", "line", "line", "polygon", "point", "line", "polygon",
                          "collection", "none"], dtype=object)
_COLLECTION = 7
# When a collection holds parts of several allowed families, keep the one of highest dimension
# (a population layer may take points or polygons; the polygons carry more of the truth).
_PRIORITY = ("polygon", "line", "point")
_MULTI = {"polygon": shapely.multipolygons, "line": shapely.multilinestrings,
          "point": shapely.multipoints}
# Upper bounds on how much a map projection may shrink areas, and on the ellipsoid's area element
# relative to a sphere of its semi-major axis: used only to skip exact areas safely.
_PROJECTED_AREA_SLACK = 4.0
_ELLIPSOID_SLACK = 1.01


def decode_wkb(wkb: np.ndarray, index: pd.Index, report: Report, *,
               ids: np.ndarray | pd.Series | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode WKB geometries one record at a time, so a bad record never sinks the file.

    GDAL hands over what a file holds, including geometries GEOS refuses to build (a ring of
    two points from a closed OpenStreetMap way cut by an extract's box, a ring that is not
    closed). Such records are decoded with shapely's ``on_invalid="fix"``, which closes open
    rings (reported as ``ring_closed``; a ring that then encloses nothing is dropped later by
    the repair in :func:`clean_geometries`), and the few that even that cannot build become
    not decoded at all, reported as ``geometry_unreadable``; the caller drops them.

    Parameters
    ----------
    wkb
        WKB bytes per record (None for a record without geometry).
    index
        The records' 1-based numbers, as the frame's index.
    report
        Receives the warnings.
    ids
        The records' own ids, for the report's samples.

    Returns
    -------
    geometries : numpy.ndarray
        Shapely geometries (None where there is none), aligned with ``wkb``.
    unreadable : numpy.ndarray
        Boolean mask of the records to drop.
    """
    wkb = np.asarray(wkb, dtype=object)
    geoms = chunked(lambda part: shapely.from_wkb(part, on_invalid="ignore"), wkb)
    unreadable = np.zeros(len(wkb), dtype=bool)
    bad = np.flatnonzero(shapely.is_missing(geoms) & ~pd.isna(wkb))
    if not len(bad):
        return geoms, unreadable
    fixed = shapely.from_wkb(wkb[bad], on_invalid="fix")
    sample = np.asarray(ids, dtype=object) if ids is not None else None
    built = ~shapely.is_missing(fixed)
    geoms[bad[built]] = fixed[built]
    if built.any():
        where = bad[built]
        report.warning("ring_closed", "polygon rings that GEOS could not build as given (not "
                       "closed, or fewer than 4 points, as GDAL makes for an OpenStreetMap way "
                       "cut by an extract's box) were closed; those that enclose nothing are "
                       "dropped as unrepairable", rows=index[where],
                       ids=sample[where] if sample is not None else ())
    if (~built).any():
        where = bad[~built]
        report.warning("geometry_unreadable", "features whose geometry could not be decoded "
                       "at all were dropped", rows=index[where],
                       ids=sample[where] if sample is not None else ())
        unreadable[where] = True
    return geoms, unreadable


def _families(geoms: np.ndarray) -> np.ndarray:
    """The family of each geometry: point, line, polygon, collection or none (missing)."""
    return _FAMILY_BY_ID[shapely.get_type_id(geoms)]


def count_vertices(frame: gpd.GeoDataFrame) -> int:
    """Return the number of vertices over all geometries of ``frame`` (missing ones count 0)."""
    return int(shapely.get_num_coordinates(np.asarray(frame.geometry.values, dtype=object)).sum())


def _limit(limits: Mapping[str, float], key: str) -> float:
    try:
        return float(limits[key])
    except KeyError:
        raise KeyError(f"limits lack {key!r}; pass the [ingest] table of twin.toml") from None


def _check_limits(frame: gpd.GeoDataFrame, limits: Mapping[str, float]) -> None:
    """Refuse a layer over max_features or max_vertices before any expensive work."""
    n, max_features = len(frame), _limit(limits, "max_features")
    if n > max_features:
        raise LimitExceededError(
            f"the layer has {n:,} features, over the limit of {max_features:,.0f} "
            "(max_features in [ingest] of twin.toml); split the file, or raise the limit there "
            "if the file is genuine")
    vertices, max_vertices = count_vertices(frame), _limit(limits, "max_vertices")
    if vertices > max_vertices:
        raise LimitExceededError(
            f"the layer has {vertices:,} vertices, over the limit of {max_vertices:,.0f} "
            "(max_vertices in [ingest] of twin.toml); simplify or split the file, or raise the "
            "limit there if the file is genuine")


def _flatten(geom: shapely.Geometry) -> list[shapely.Geometry]:
    """The single (non-multi, non-collection) parts of a geometry, nested ones included."""
    parts, stack = [], [geom]
    while stack:
        current = stack.pop()
        if shapely.is_empty(current):
            continue
        if shapely.get_type_id(current) in (4, 5, 6, _COLLECTION):
            stack.extend(shapely.get_parts(current))
        else:
            parts.append(current)
    return parts


def _reduce(geom: shapely.Geometry, families: frozenset[str]) -> shapely.Geometry | None:
    """Keep the parts of ``geom`` of the best allowed family, as a single or Multi geometry."""
    parts = _flatten(geom)
    by_family: dict[str, list[shapely.Geometry]] = {}
    for part in parts:
        family = _FAMILY_BY_ID[shapely.get_type_id(part)]
        if shapely.get_type_id(part) == 2:  # a LinearRing is stored as the LineString it is
            part = shapely.LineString(shapely.get_coordinates(part))
        by_family.setdefault(family, []).append(part)
    for family in _PRIORITY:
        if family in families and by_family.get(family):
            chosen = by_family[family]
            return chosen[0] if len(chosen) == 1 else _MULTI[family](chosen)
    return None


def _make_valid(geoms: np.ndarray) -> np.ndarray:
    """shapely.make_valid with the "structure" method where available.

    "structure" rebuilds polygons from their rings' areas, so a bow-tie becomes its two
    triangles and collapsed parts vanish, instead of the "linework" method's mix of polygons
    and stray lines.
    """
    try:
        return shapely.make_valid(geoms, method="structure", keep_collapsed=False)
    except (TypeError, ValueError):  # shapely < 2.1 or GEOS < 3.10
        return shapely.make_valid(geoms)


def clean_geometries(frame: gpd.GeoDataFrame, kind: Kind, report: Report, *,
                     limits: Mapping[str, float], base_resolution: int,
                     crs: pyproj.CRS | None = None,
                     id_column: str | None = None) -> gpd.GeoDataFrame:
    """Clean a layer's geometries for ``kind``, in the source CRS.

    Parameters
    ----------
    frame
        Features with an integer index of 1-based record numbers.
    kind
        The canonical kind; ``kind.geometry`` names the allowed families.
    report
        Receives the warnings (``empty_geometry``, ``non_finite_coordinates``,
        ``geometry_collection``, ``wrong_geometry_type``, ``geometry_repaired``,
        ``unrepairable_geometry``) and errors (``no_usable_geometry``, ``polygon_too_large``),
        and ``info["rows_kept"]`` (``info["z_dropped"]`` when 3D coordinates were flattened).
    limits
        The ``[ingest]`` table: ``max_features``, ``max_vertices``, ``max_polygon_cells``.
    base_resolution
        The H3 base resolution, whose cell area turns ``max_polygon_cells`` into an area.
    crs
        The source CRS when the frame does not carry it (e.g. given with ``--crs``); without
        either, the polygon size check is skipped (noted in ``report.info``).
    id_column
        A column holding the records' own ids (an OSM extract's ``way/…``), sampled into the
        report beside the record numbers.

    Returns
    -------
    geopandas.GeoDataFrame
        The kept features, index preserved, with cleaned geometries. Polygons over the size
        limit are kept (the ``polygon_too_large`` error already refuses the file).

    Raises
    ------
    LimitExceededError
        When the layer has more than ``max_features`` features or ``max_vertices`` vertices.
    """
    families = frozenset(kind.geometry) - {"none"}
    if not families:
        raise ValueError(f"kind {kind.name!r} is a plain table: it has no geometries to clean")
    _check_limits(frame, limits)
    index = frame.index
    own_ids = (frame[id_column].astype(str).to_numpy()
               if id_column is not None and id_column in frame else None)

    def ids(mask: np.ndarray | list[int]) -> np.ndarray | tuple[()]:
        return own_ids[mask] if own_ids is not None else ()

    geoms = np.asarray(frame.geometry.values, dtype=object).copy()
    keep = np.ones(len(geoms), dtype=bool)
    expected = "/".join(sorted(families))

    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():
        report.warning("empty_geometry", "features without a geometry (null or empty) were "
                       "dropped", rows=index[missing], ids=ids(missing))
    keep &= ~missing

    has_z = shapely.has_z(geoms)
    if has_z.any():
        # The twin is 2D (heights are attributes): dropping Z loses nothing it uses.
        geoms[has_z] = shapely.force_2d(geoms[has_z])
        report.info["z_dropped"] = int(has_z.sum())

    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    non_finite = np.zeros(len(geoms), dtype=bool)
    non_finite[owner[~np.isfinite(coords).all(axis=1)]] = True
    if non_finite.any():
        report.warning("non_finite_coordinates", "features with coordinates that are not "
                       "finite numbers (NaN or infinite) were dropped", rows=index[non_finite],
                       ids=ids(non_finite))
    keep &= ~non_finite

    type_ids = shapely.get_type_id(geoms)
    collections = np.flatnonzero(keep & (type_ids == _COLLECTION))
    reduced = []
    for i in collections:
        part = _reduce(geoms[i], families)
        if part is not None:
            geoms[i] = part
            reduced.append(i)
    if reduced:
        report.warning("geometry_collection", f"geometry collections were reduced to their "
                       f"{expected} parts; parts of other types were dropped",
                       rows=index[reduced], ids=ids(reduced))
    # LinearRings are lines; store them as the LineStrings they are.
    rings = np.flatnonzero(keep & (type_ids == 2))
    if len(rings):
        geoms[rings] = [shapely.LineString(shapely.get_coordinates(g)) for g in geoms[rings]]

    family = _families(geoms)
    wrong = keep & ~np.isin(family, list(families))
    if wrong.any():
        found = Counter(_TYPE_NAMES[t] for t in shapely.get_type_id(geoms[wrong]))
        listed = ", ".join(f"{n} {name}" for name, n in found.most_common())
        report.warning("wrong_geometry_type",
                       f"features whose geometry is not {expected} were dropped: the kind "
                       f"{kind.name!r} takes {expected} geometries, found {listed}",
                       rows=index[wrong], ids=ids(wrong))
    keep &= ~wrong

    keep = _repair(geoms, keep, family, families, index, report, ids)

    if len(frame) and not keep.any():
        report.error("no_usable_geometry",
                     f"no feature with a usable {expected} geometry is left of the "
                     f"{len(frame):,} read (see the warnings for why each was dropped); the "
                     f"kind {kind.name!r} needs {expected} geometries")

    source_crs = crs if crs is not None else frame.crs
    if "polygon" in families and keep.any():
        _check_polygon_size(geoms, keep & (_families(geoms) == "polygon"), index, source_crs,
                            report, max_cells=_limit(limits, "max_polygon_cells"),
                            resolution=base_resolution)

    out = frame.loc[keep].copy()
    out = out.set_geometry(gpd.GeoSeries(geoms[keep], index=out.index, crs=frame.crs,
                                         name=frame.geometry.name))
    report.info["rows_kept"] = len(out)
    return out


def _repair(geoms: np.ndarray, keep: np.ndarray, family: np.ndarray,
            families: frozenset[str], index: pd.Index, report: Report,
            ids=lambda mask: ()) -> np.ndarray:
    """Repair invalid geometries in place; return the updated keep mask."""
    invalid = np.flatnonzero(keep & ~chunked(shapely.is_valid, geoms))
    if not len(invalid):
        return keep
    repaired = _make_valid(geoms[invalid])
    lost = []
    for i, geom in zip(invalid, repaired, strict=True):
        # Keep only the original family: a repaired polygon may come with stray lines or
        # points (collapsed slivers) that would change the feature's kind.
        result = _reduce(geom, frozenset({family[i]}) & families) if geom is not None else None
        if result is not None and not shapely.is_valid(result):
            # Parts of a collection may overlap once merged into one Multi geometry.
            result = _reduce(shapely.make_valid(result), frozenset({family[i]}))
        if result is None or shapely.is_empty(result) or not shapely.is_valid(result):
            lost.append(i)
        else:
            geoms[i] = result
    fixed = np.setdiff1d(invalid, lost)
    if len(fixed):
        report.warning("geometry_repaired", "invalid geometries (self-intersections, bad rings) "
                       "were repaired; check their shape", rows=index[fixed], ids=ids(fixed))
    if lost:
        report.warning("unrepairable_geometry", "invalid geometries that vanished when "
                       "repaired (collapsed to a line or a point) were dropped",
                       rows=index[lost], ids=ids(lost))
        keep = keep.copy()
        keep[lost] = False
    return keep


def _check_polygon_size(geoms: np.ndarray, polygons: np.ndarray, index: pd.Index,
                        crs: pyproj.CRS | None, report: Report, *, max_cells: float,
                        resolution: int) -> None:
    """Name polygons that would cover more than ``max_cells`` base cells.

    Exact geodesic areas are slow per polygon, so a cheap vectorised upper bound from each
    polygon's bounding box selects the few candidates first; only those get an exact area on
    the CRS's ellipsoid (``pyproj.Geod``).
    """
    if crs is None:
        report.info["polygon_size_check"] = "skipped: no CRS"
        return
    cell_area = average_cell_area_m2(resolution)
    max_area = max_cells * cell_area
    rows = np.flatnonzero(polygons)
    bounds = shapely.bounds(geoms[rows])
    geod = crs.get_geod()
    if geod is None:
        report.info["polygon_size_check"] = "skipped: the CRS has no ellipsoid"
        return
    if crs.is_geographic:
        # A lon/lat box on a sphere of radius a has area a^2 dlon (sin lat1 - sin lat0).
        lat0 = np.radians(np.clip(bounds[:, 1], -90.0, 90.0))
        lat1 = np.radians(np.clip(bounds[:, 3], -90.0, 90.0))
        dlon = np.radians(np.clip(bounds[:, 2] - bounds[:, 0], 0.0, 360.0))
        upper = _ELLIPSOID_SLACK * geod.a**2 * dlon * np.abs(np.sin(lat1) - np.sin(lat0))
        # Coordinates beyond +-90/180 are not degrees: the location check reports them.
        sane = (np.abs(bounds[:, [1, 3]]) <= 90.0).all(axis=1) & \
               (np.abs(bounds[:, [0, 2]]) <= 540.0).all(axis=1)
        upper = np.where(sane, upper, 0.0)
        to_lonlat = None
    else:
        unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        planar = (bounds[:, 2] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 1]) * unit**2
        upper = _PROJECTED_AREA_SLACK * planar
        to_lonlat = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    candidates = rows[upper > max_area]
    if not len(candidates):
        return
    shapes = geoms[candidates]
    if to_lonlat is not None:
        shapes = shapely.transform(
            shapes, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))
    areas = np.array([abs(geod.geometry_area_perimeter(s)[0]) for s in shapes])
    too_large = np.isfinite(areas) & (areas > max_area)
    if too_large.any():
        largest = float(areas[too_large].max())
        report.error("polygon_too_large",
                     f"polygons too large for the grid: the largest, {largest / 1e6:,.0f} km², "
                     f"would cover about {largest / cell_area:,.0f} H3 cells at resolution "
                     f"{resolution}, over the limit of {max_cells:,.0f} (max_polygon_cells in "
                     "[ingest] of twin.toml); check the CRS and units, or split these polygons",
                     rows=index[candidates[too_large]])
