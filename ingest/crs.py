"""Coordinate reference systems: resolve the source CRS, reproject to WGS84, check the location.

Three stages of the ingest pipeline (``ingest/CONVENTIONS.md``) live here:

* :func:`resolve_crs` decides the source CRS from the file's own CRS and the one given with
  ``--crs``, and never replaces one with the other silently;
* :func:`to_wgs84` reprojects every vertex to EPSG:4326 and undoes the Chinese web-map offsets
  GCJ-02 and BD-09 (:mod:`twin.offsets`);
* :func:`check_location` and :func:`check_raster_location` compare the result with
  ``city.bbox`` to catch the classic mistakes (swapped axes, a Gauss-Kruger zone prefix,
  degrees declared as metres, another city) and say which one it most likely is.

CGCS2000 (EPSG:4490) and WGS84 differ by well under a metre over China; PROJ treats the
datum change as a "ballpark" no-op, and so does citytwin.
"""

from __future__ import annotations

import functools

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from pyproj.database import PJType, query_crs_info
from pyproj.exceptions import CRSError

from ingest._parallel import chunked
from ingest.errors import ParseError
from ingest.report import Report
from twin.offsets import bd09_to_wgs84, gcj02_to_wgs84

__all__ = [
    "COORDS",
    "WGS84",
    "check_location",
    "check_raster_location",
    "crs_label",
    "parse_crs",
    "resolve_crs",
    "to_wgs84",
]

#: The CRS every stored layer uses.
WGS84 = pyproj.CRS.from_epsg(4326)

#: Coordinate flavours a file may carry on top of its CRS: plain, or a Chinese web-map offset.
COORDS = ("wgs84", "gcj02", "bd09")

# A WKT of a real CRS is a few kB; anything far longer is not one, and PROJ need not parse it.
_MAX_CRS_TEXT = 64_000

# Gauss-Kruger eastings with a zone prefix are zone * 1e6 + 500,000 +- a few hundred km; China's
# 3-degree zones are 25-45 and its 6-degree zones 13-23.
_ZONE_PREFIX_MIN = 1.0e7


# ---------------------------------------------------------------------------------------------
# Parsing and resolving
# ---------------------------------------------------------------------------------------------
def parse_crs(text: str) -> pyproj.CRS:
    """Parse a coordinate system given by a user.

    Parameters
    ----------
    text
        ``"EPSG:4549"``, a bare code such as ``"4490"``, a PROJ string (``"+proj=..."``), WKT or
        PROJJSON.

    Returns
    -------
    pyproj.CRS
        The horizontal CRS (the horizontal part of a compound or 3D CRS).

    Raises
    ------
    ParseError
        When the text names no known CRS, or a CRS without horizontal coordinates (a vertical
        or geocentric one); the message names the value and how to give a good one.
    """
    value = str(text).strip()
    fix = "give an EPSG code such as EPSG:4490 or EPSG:4549"
    if len(value) > _MAX_CRS_TEXT:
        raise ParseError(f"unknown coordinate system ({len(value):,} characters, longer than "
                         f"any real one); {fix}")
    if value.isdigit():
        value = f"EPSG:{value}"
    try:
        crs = pyproj.CRS.from_user_input(value)
    except CRSError as exc:
        # pyproj's message repeats the input; keep PROJ's reason only.
        reason = str(exc).rsplit("proj_create: ", 1)[-1].rstrip(")") or "not recognised"
        raise ParseError(f"unknown coordinate system {_short(value)!r}: {reason}; {fix}") from None
    if crs.is_compound:
        horizontal = [c for c in crs.sub_crs_list if c.is_geographic or c.is_projected]
        crs = horizontal[0] if horizontal else crs
    if crs.is_geographic and len(crs.axis_info) == 3:
        crs = crs.to_2d()
    if not (crs.is_geographic or crs.is_projected):
        raise ParseError(f"coordinate system {_short(value)!r} ({crs.name}, a {crs.type_name}) "
                         f"has no longitude/latitude or easting/northing; {fix}")
    return crs


def _short(text: str, limit: int = 80) -> str:
    """A WKT can be long: show its start only."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@functools.lru_cache(maxsize=64)
def _epsg_of(crs: pyproj.CRS) -> int | None:
    # to_epsg searches PROJ's database for ESRI .prj files and the like; cache it per CRS.
    return crs.to_epsg(min_confidence=70)


def crs_label(crs: pyproj.CRS) -> str:
    """Return ``"EPSG:nnnn"`` when the CRS is identifiable (confidence >= 70), else its name."""
    code = _epsg_of(crs)
    return f"EPSG:{code}" if code is not None else crs.name


def _equivalent(a: pyproj.CRS, b: pyproj.CRS) -> bool:
    """Whether two CRSs describe the same coordinates.

    ``CRS.equals(ignore_axis_order=True)`` ignores axis order for geographic CRSs only, so an
    ESRI ``.prj`` of EPSG:4549 (east, north) does not "equal" EPSG:4549 (north, east); both
    identify as the same EPSG code, which is what matters for always_xy coordinates.
    """
    if a.equals(b, ignore_axis_order=True):
        return True
    code = _epsg_of(a)
    return code is not None and code == _epsg_of(b)


def resolve_crs(file_crs: pyproj.CRS | None, declared: str | None,
                report: Report) -> pyproj.CRS | None:
    """Decide the source CRS from the file's own CRS and the one given with ``--crs``.

    Parameters
    ----------
    file_crs
        The CRS the file carries (a ``.prj``, a GeoPackage's SRS), or ``None``.
    declared
        The user's ``--crs`` value, or ``None``.
    report
        Receives ``no_crs`` or ``crs_conflict`` errors and ``info["source_crs"]``.

    Returns
    -------
    pyproj.CRS or None
        The CRS to use; ``None`` when there is none (the report then has a ``no_crs`` error).
        On a conflict the file's own CRS is returned, so that the later checks still run and
        may tell which of the two is right; the ``crs_conflict`` error blocks publishing.

    Raises
    ------
    ParseError
        When ``declared`` is not a coordinate system (see :func:`parse_crs`).
    """
    given = parse_crs(declared) if declared is not None and str(declared).strip() else None
    if file_crs is None and given is None:
        report.error("no_crs", "the file has no coordinate system; give it with --crs, e.g. "
                     "--crs EPSG:4490 for longitude/latitude in degrees (CGCS2000) or "
                     "--crs EPSG:4549 for CGCS2000 Gauss-Kruger metres (CM 120E)")
        return None
    if file_crs is not None and given is not None and not _equivalent(file_crs, given):
        report.error("crs_conflict",
                     f"the file says its coordinates are in {crs_label(file_crs)} "
                     f"({file_crs.name}) but --crs says {crs_label(given)} ({given.name}); "
                     "citytwin does not override a file's CRS: drop --crs if the file is "
                     "right, or fix the file's CRS (e.g. its .prj) if --crs is")
    crs = file_crs if file_crs is not None else given
    assert crs is not None  # for type checkers: one of the two is set here
    report.info["source_crs"] = crs_label(crs)
    return crs


# ---------------------------------------------------------------------------------------------
# Reprojection
# ---------------------------------------------------------------------------------------------
def _normalise_coords(coords: str) -> str:
    value = str(coords).strip().lower().replace("-", "").replace("_", "")
    if value not in COORDS:
        raise ValueError(f"unknown coordinate offset {coords!r}; use one of {', '.join(COORDS)}")
    return value


def to_wgs84(frame: gpd.GeoDataFrame, source: pyproj.CRS, coords: str,
             report: Report) -> gpd.GeoDataFrame:
    """Reproject every vertex to EPSG:4326 and undo a GCJ-02 or BD-09 offset.

    Parameters
    ----------
    frame
        Features in ``source`` coordinates (its ``.crs`` may be unset). The index (record
        numbers) is kept.
    source
        The source CRS from :func:`resolve_crs`.
    coords
        ``"wgs84"`` (no offset), ``"gcj02"`` (AMap/Gaode, Tencent) or ``"bd09"`` (Baidu).
    report
        Receives an ``offset_on_projected`` error and ``info["coords"]``.

    Returns
    -------
    geopandas.GeoDataFrame
        A new frame in EPSG:4326. Vertices PROJ cannot transform come out as ``inf``;
        :func:`check_location` reports them.

    Raises
    ------
    ValueError
        For an unknown ``coords`` value, or a frame whose own CRS differs from ``source``
        (a caller's mistake: the CRS is never replaced silently).
    """
    coords = _normalise_coords(coords)
    if frame.crs is not None and not _equivalent(frame.crs, source):
        raise ValueError(f"the frame is in {crs_label(frame.crs)} but source says "
                         f"{crs_label(source)}; resolve the CRS with resolve_crs() first")
    report.info["coords"] = coords
    offset = coords != "wgs84"
    if offset and not source.is_geographic:
        # GCJ-02 / BD-09 are offsets of longitude/latitude; on eastings/northings they are
        # meaningless, so the file is refused rather than shifted by a few hundred metres.
        report.error("offset_on_projected",
                     f"--coords {coords} undoes a web-map offset of longitude/latitude, but "
                     f"the coordinates are in the projected {crs_label(source)} "
                     f"({source.name}); drop --coords, or give the degrees' CRS "
                     "(--crs EPSG:4326) if the file really holds GCJ-02/BD-09 degrees")
        offset = False
    if not offset and _equivalent(source, WGS84):
        # Already longitude/latitude on WGS84: nothing to move (a million points' copy saved).
        return _replace_geometry(frame, np.asarray(frame.geometry.values, dtype=object), WGS84)
    unoffset = {"gcj02": gcj02_to_wgs84, "bd09": bd09_to_wgs84}.get(coords) if offset else None

    def transform(part: np.ndarray) -> np.ndarray:
        # One transformer per thread: a PROJ context must not be shared between threads.
        transformer = pyproj.Transformer.from_crs(source, WGS84, always_xy=True)

        def convert(xy: np.ndarray) -> np.ndarray:
            x, y = transformer.transform(xy[:, 0], xy[:, 1])
            if unoffset is not None:
                x, y = unoffset(x, y)
            return np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])

        return shapely.transform(part, convert)

    geoms = chunked(transform, np.asarray(frame.geometry.values, dtype=object))
    return _replace_geometry(frame, geoms, WGS84)


def _replace_geometry(frame: gpd.GeoDataFrame, geoms: np.ndarray,
                      crs: pyproj.CRS | None) -> gpd.GeoDataFrame:
    """A copy of ``frame`` with new geometries in ``crs``, same index and column name."""
    name = frame.geometry.name
    return frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index, crs=crs, name=name))


# ---------------------------------------------------------------------------------------------
# Location checks
# ---------------------------------------------------------------------------------------------
def _fmt_bbox(bbox: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in bbox) + "]"


def _inside(x: np.ndarray, y: np.ndarray, bbox: tuple[float, ...]) -> np.ndarray:
    return (x >= bbox[0]) & (x <= bbox[2]) & (y >= bbox[1]) & (y <= bbox[3])


def _grow(bbox: tuple[float, ...], factor: float = 0.5) -> tuple[float, ...]:
    """The bbox widened by ``factor`` of its size on every side (a tolerant "near the city")."""
    dx, dy = (bbox[2] - bbox[0]) * factor, (bbox[3] - bbox[1]) * factor
    return (bbox[0] - dx, bbox[1] - dy, bbox[2] + dx, bbox[3] + dy)


def _rounded(bounds: np.ndarray | tuple[float, ...]) -> list[float]:
    return [round(float(v), 6) for v in bounds]


def check_location(frame4326: gpd.GeoDataFrame, bbox: tuple[float, float, float, float] | None,
                   report: Report, *, source: pyproj.CRS, min_inside_share: float,
                   raw_bounds: tuple[float, float, float, float] | None = None) -> None:
    """Check that the features lie in the city, and name the likely mistake when they do not.

    Parameters
    ----------
    frame4326
        The features after :func:`to_wgs84`.
    bbox
        ``city.bbox`` as ``(min_lon, min_lat, max_lon, max_lat)``, or ``None`` when the
        workspace has none (the share check is then skipped).
    report
        Receives ``non_finite_coordinates`` and ``partly_outside`` warnings, ``swapped_axes``
        and ``outside_city`` errors, and ``info["bounds"]``.
    source
        The source CRS, used to explain a wrong location.
    min_inside_share
        Share of features whose representative point must fall inside ``bbox``.
    raw_bounds
        Bounds of the features in source coordinates (before reprojection), the evidence for
        the hints (a zone prefix, degrees under a projected CRS, ...).
    """
    geoms = np.asarray(frame4326.geometry.values, dtype=object)
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    bad = np.zeros(len(geoms), dtype=bool)
    bad[owner[~np.isfinite(coords).all(axis=1)]] = True
    if bad.any():
        report.warning("non_finite_coordinates",
                       "features have coordinates that are not finite numbers (NaN or "
                       "infinite, or outside what the source CRS can transform); they cannot "
                       "be placed on the map", rows=frame4326.index[bad])
    usable = present & ~bad
    kept = geoms[usable]
    report.info["bounds"] = _rounded(shapely.total_bounds(kept)) if usable.any() else None

    swapped_geographic = _swapped_beyond_90(source, raw_bounds, report)
    if bbox is None:
        report.info["location_check"] = "skipped: no city.bbox in twin.toml"
        return
    if not present.any():
        return
    bbox = tuple(float(v) for v in bbox)
    bounds = shapely.bounds(kept)
    wholly = ((bounds[:, 0] >= bbox[0]) & (bounds[:, 1] >= bbox[1])
              & (bounds[:, 2] <= bbox[2]) & (bounds[:, 3] <= bbox[3]))
    # A feature whose bounds lie in the box is inside wherever its representative point is;
    # only the others (few, in a good file) need GEOS to find one.
    points = np.column_stack([(bounds[:, 0] + bounds[:, 2]) / 2,
                              (bounds[:, 1] + bounds[:, 3]) / 2])
    if not wholly.all():
        points[~wholly] = shapely.get_coordinates(shapely.point_on_surface(kept[~wholly]))
    x, y = points[:, 0], points[:, 1]
    inside = _inside(x, y, bbox)
    # Features PROJ could not transform (infinite) lie outside the source CRS's domain, far
    # from the city: they count against the share, as a zone prefix read without one does.
    share = float(inside.sum()) / int(present.sum())
    report.info["inside_share"] = round(share, 4)
    if share >= min_inside_share:
        reaching = ~wholly
        if reaching.any():
            report.warning("partly_outside",
                           f"features lie wholly or partly outside the city area "
                           f"{_fmt_bbox(bbox)}; they are kept, but parts outside belong to no "
                           "district: check them, or widen city.bbox in twin.toml",
                           rows=frame4326.index[usable][reaching])
        return
    if swapped_geographic:
        return
    if len(x) and float(_inside(y, x, bbox).sum()) / int(present.sum()) >= min_inside_share:
        _report_swapped(report, f"x values like {np.median(x):.4f} and y values like "
                                f"{np.median(y):.4f} fall inside the city area "
                                f"{_fmt_bbox(bbox)} only with the two exchanged")
        return
    swapped = _swapped_projected(source, raw_bounds, bbox)
    if swapped:
        _report_swapped(report, swapped)
        return
    hint = _outside_hint(source, raw_bounds, bbox)
    report.error("outside_city", f"only {share:.0%} of features fall inside the city area "
                                 f"{_fmt_bbox(bbox)}; {hint}")


def _report_swapped(report: Report, evidence: str) -> None:
    report.error("swapped_axes",
                 f"longitude and latitude look swapped ({evidence}); fix the column order "
                 "(x is longitude or easting, y is latitude or northing) or the CRS axis "
                 "order, then load the file again")


def _swapped_beyond_90(source: pyproj.CRS, raw_bounds: tuple[float, ...] | None,
                       report: Report) -> bool:
    """Latitudes beyond +-90 with longitudes within it: the columns are exchanged."""
    if raw_bounds is None or not source.is_geographic:
        return False
    x0, y0, x1, y1 = (float(v) for v in raw_bounds)
    if max(abs(y0), abs(y1)) > 90 and max(abs(x0), abs(x1)) <= 90:
        _report_swapped(report, f"latitudes reach {max(abs(y0), abs(y1)):g}, beyond 90, "
                                f"while longitudes stay within {max(abs(x0), abs(x1)):g}")
        return True
    return False


@functools.cache
def _projected_names() -> dict[str, str]:
    """EPSG projected CRS names -> codes (from PROJ's database, read once)."""
    infos = query_crs_info(auth_name="EPSG", pj_types=PJType.PROJECTED_CRS)
    return {info.name: info.code for info in infos if not info.deprecated}


def _param(crs: pyproj.CRS, name: str) -> float | None:
    operation = crs.coordinate_operation
    if operation is None:
        return None
    for param in operation.params:
        if param.name == name:
            return float(param.value)
    return None


def _datum_prefix(crs: pyproj.CRS) -> str:
    """``"CGCS2000"`` of ``"CGCS2000 / 3-degree Gauss-Kruger CM 120E"``."""
    return crs.name.split(" / ", 1)[0] if " / " in crs.name else "CGCS2000"


def _lands(crs_code: str, x: float, y: float, near: tuple[float, ...]) -> bool:
    """Whether the source point (x, y) read in ``crs_code`` falls near the city."""
    try:
        transformer = pyproj.Transformer.from_crs(f"EPSG:{crs_code}", WGS84, always_xy=True)
        lon, lat = transformer.transform(x, y)
    except (CRSError, pyproj.exceptions.ProjError):
        return False
    return bool(np.isfinite(lon) and np.isfinite(lat)
                and _inside(np.array(lon), np.array(lat), near))


def _first_landing(names: list[str], x: float, y: float,
                   near: tuple[float, ...]) -> tuple[str, str] | None:
    table = _projected_names()
    for name in names:
        code = table.get(name)
        if code is not None and _lands(code, x, y, near):
            return code, name
    return None


def _swapped_projected(source: pyproj.CRS, raw_bounds: tuple[float, ...] | None,
                       bbox: tuple[float, ...]) -> str | None:
    """Evidence that projected coordinates were read as (northing, easting), or ``None``."""
    if raw_bounds is None or not source.is_projected or not np.all(np.isfinite(raw_bounds)):
        return None
    x0, y0, x1, y1 = (float(v) for v in raw_bounds)
    try:
        transformer = pyproj.Transformer.from_crs(source, WGS84, always_xy=True)
        lon, lat = transformer.transform((y0 + y1) / 2.0, (x0 + x1) / 2.0)
    except pyproj.exceptions.ProjError:
        return None
    if np.isfinite(lon) and _inside(np.array(lon), np.array(lat), _grow(bbox)):
        return (f"eastings and northings exchanged: reading x as the northing and y as the "
                f"easting puts the data inside the city area {_fmt_bbox(bbox)} in "
                f"{crs_label(source)}")
    return None


def _outside_hint(source: pyproj.CRS, raw_bounds: tuple[float, ...] | None,
                  bbox: tuple[float, ...]) -> str:
    """Explain features outside the city from the raw coordinates' evidence.

    Candidate explanations are tried in order and kept only when reading the raw coordinates
    that way really lands in (or near) the city. GCJ-02/BD-09 offsets move points by a few
    hundred metres only, so they never explain a file outside the city.
    """
    generic = ("the coordinates are elsewhere: the CRS is probably wrong, or the file "
               "belongs to another city; check --crs and the file's bounds")
    if raw_bounds is None or not np.all(np.isfinite(raw_bounds)):
        return generic
    x0, y0, x1, y1 = (float(v) for v in raw_bounds)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    near = _grow(bbox)
    label = crs_label(source)
    looks_degrees = max(abs(x0), abs(x1)) <= 180 and max(abs(y0), abs(y1)) <= 90

    if source.is_projected:
        prefix = _datum_prefix(source)
        false_easting = _param(source, "False easting") or 0.0
        if abs(cx) >= _ZONE_PREFIX_MIN and false_easting < 1.0e6:
            zone = int(abs(cx) // 1.0e6)
            found = _first_landing([f"{prefix} / 3-degree Gauss-Kruger zone {zone}",
                                    f"{prefix} / Gauss-Kruger zone {zone}",
                                    f"CGCS2000 / 3-degree Gauss-Kruger zone {zone}",
                                    f"CGCS2000 / Gauss-Kruger zone {zone}"], cx, cy, near)
            if found:
                return (f"eastings like {cx:,.0f} carry a zone number prefix: use the "
                        f"zone-numbered CRS, e.g. EPSG:{found[0]} for zone {zone} "
                        f"({found[1]}), instead of {label}: give --crs EPSG:{found[0]} or "
                        "fix the CRS the file declares")
        if false_easting >= 1.0e6 and abs(cx) < 1.0e6:
            zone = int(false_easting // 1.0e6)
            cm = _param(source, "Longitude of natural origin")
            cm_text = f"{cm:g}E" if cm is not None else ""
            found = _first_landing([f"{prefix} / 3-degree Gauss-Kruger CM {cm_text}",
                                    f"{prefix} / Gauss-Kruger CM {cm_text}"], cx, cy, near)
            if found:
                return (f"eastings like {cx:,.0f} have no zone number prefix, but {label} "
                        f"expects one (false easting {false_easting:,.0f}, zone {zone}): use "
                        f"the central-meridian CRS, e.g. EPSG:{found[0]} ({found[1]}), "
                        f"instead: give --crs EPSG:{found[0]} or fix the CRS the file "
                        "declares")
        if looks_degrees:
            return (f"the coordinates look like degrees (x {x0:g} to {x1:g}, y {y0:g} to "
                    f"{y1:g}) but {label} is projected (metres): try --crs EPSG:4326 / "
                    "EPSG:4490")
    elif not looks_degrees:
        found = _first_landing(_metric_candidates(bbox, cx), cx, cy, near)
        example = f"EPSG:{found[0]} ({found[1]})" if found else "EPSG:4549"
        return (f"the coordinates look like metres (x {x0:,.0f} to {x1:,.0f}) but {label} is "
                f"geographic (degrees): give the projected CRS with --crs, e.g. {example}")
    # Here the source is projected with metre-like values, or geographic with degree-like ones.
    found = _first_landing(_metric_candidates(bbox, cx), cx, cy, near) if source.is_projected \
        else None
    if found and str(found[0]) == str(source.to_epsg()):
        # The declared CRS is the one that fits: the features are right, but mostly
        # elsewhere (another city's file, or a city area drawn too small).
        return (f"the coordinates are consistent with {label}, but most features lie "
                "outside the city area: is this the right city's file, or does the "
                "workspace's bbox need widening?")
    if found:
        return (f"the coordinates fit EPSG:{found[0]} ({found[1]}) rather than {label}: "
                f"check the CRS, e.g. --crs EPSG:{found[0]}")
    if source.is_projected and 13 <= int(abs(cx) // 1.0e6) <= 45:
        # Unverified (nothing tried lands in the city), but still the likeliest reading.
        zone = int(abs(cx) // 1.0e6)
        return (f"eastings like {cx:,.0f} may carry a zone number prefix ({zone}), which "
                f"{label} does not expect: if so, use the CRS of Gauss-Kruger zone {zone}; "
                "otherwise the CRS is wrong or the file belongs to another city")
    return generic


def _metric_candidates(bbox: tuple[float, ...], cx: float) -> list[str]:
    """Projected CRSs commonly used around the city, by name."""
    lon = (bbox[0] + bbox[2]) / 2.0
    cm3 = round(lon / 3.0) * 3
    zone3 = int(cm3 // 3)
    zone6 = int((lon + 6.0) // 6.0)  # 6-degree zone n spans 6(n-1) to 6n, CM 6n - 3
    cm6 = zone6 * 6 - 3
    utm = int((lon + 180.0) // 6.0) + 1
    hemisphere = "N" if bbox[1] + bbox[3] >= 0 else "S"
    names = [f"CGCS2000 / 3-degree Gauss-Kruger CM {cm3}E",
             f"CGCS2000 / Gauss-Kruger CM {cm6}E",
             f"WGS 84 / UTM zone {utm}{hemisphere}",
             "WGS 84 / Pseudo-Mercator"]
    if abs(cx) >= _ZONE_PREFIX_MIN:
        names = [f"CGCS2000 / 3-degree Gauss-Kruger zone {zone3}",
                 f"CGCS2000 / Gauss-Kruger zone {zone6}", *names]
    return names


def check_raster_location(bounds4326: tuple[float, float, float, float],
                          bbox: tuple[float, float, float, float] | None,
                          report: Report) -> None:
    """Check a raster's footprint against the city area.

    Parameters
    ----------
    bounds4326
        The raster's bounds in EPSG:4326 ``(min_lon, min_lat, max_lon, max_lat)``.
    bbox
        ``city.bbox``, or ``None`` (the check is then skipped).
    report
        Receives an ``outside_city`` or ``swapped_axes`` error when the footprint misses the
        city, a ``partly_outside`` warning when less than half the raster lies inside it, and
        ``info["bounds"]``.
    """
    values = np.asarray(bounds4326, dtype=float)
    finite = bool(np.isfinite(values).all())
    report.info["bounds"] = _rounded(values) if finite else None
    if bbox is None:
        report.info["location_check"] = "skipped: no city.bbox in twin.toml"
        return
    bbox = tuple(float(v) for v in bbox)
    if not finite:
        report.error("outside_city", "the raster's footprint could not be placed in EPSG:4326 "
                     "(its corners do not transform); check its CRS")
        return
    x0, y0, x1, y1 = values
    overlap = _overlap_area((x0, y0, x1, y1), bbox)
    if overlap <= 0.0:
        if _overlap_area((y0, x0, y1, x1), bbox) > 0.0:
            _report_swapped(report, f"the raster covers {_fmt_bbox(tuple(values))}, which "
                                    f"overlaps the city area {_fmt_bbox(bbox)} only with the "
                                    "two exchanged")
            return
        report.error("outside_city", f"the raster covers {_fmt_bbox(tuple(values))}, which "
                                     f"does not overlap the city area {_fmt_bbox(bbox)}; the "
                                     "CRS is probably wrong, or the raster belongs to another "
                                     "city")
        return
    area = max((x1 - x0) * (y1 - y0), 0.0)
    share = overlap / area if area > 0 else 1.0
    if share < 0.5:
        report.warning("partly_outside", f"only {share:.0%} of the raster lies inside the city "
                                         f"area {_fmt_bbox(bbox)}; the rest is ignored")


def _overlap_area(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Area of the intersection of two boxes (in squared degrees; shares only)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w < 0 or h < 0:
        return 0.0
    # A zero-width touch still counts as overlapping for a degenerate (one-pixel) raster.
    return max(w * h, 1e-300)

