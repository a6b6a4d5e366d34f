"""Source CRS, reprojection to WGS84, GCJ-02/BD-09 removal and the location checks.

Reference points
----------------
People's Square, Shanghai: 121.4737 E, 31.2304 N. Its projected coordinates were computed
once with pyproj 3.7.2 / PROJ 9.5.1 and are hard-coded below. They are checked against an
independent source: the Transverse Mercator series of Snyder, "Map Projections - A Working
Manual" (USGS Professional Paper 1395, 1987, eqs. 8-9 to 8-11), implemented here from the
book, which first reproduces the book's own worked example (Clarke 1866, 40.5 N 73.5 W,
central meridian 75 W, k0 0.9996: x = 127,106.5 m, y = 4,484,124.4 m) and then agrees with
the hard-coded values to well under a millimetre on the CGCS2000 and WGS84 ellipsoids.

GCJ-02 / BD-09: the pairs published with wandergis/coordtransform (test/app.js) for the input
(116.404, 39.915) near Tiananmen.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely

from ingest.crs import (
    check_location,
    check_raster_location,
    parse_crs,
    resolve_crs,
    to_wgs84,
)
from ingest.errors import IngestError, ParseError
from ingest.report import Report
from twin.offsets import wgs84_to_bd09, wgs84_to_gcj02

# -- reference values --------------------------------------------------------------------------
PEOPLES_SQUARE = (121.4737, 31.2304)
GK_CM120E = (640412.3150366272, 3457455.48858212)       # EPSG:4549, no zone prefix
GK_ZONE40 = (40640412.315036625, 3457455.48858212)      # EPSG:4528, zone 40 prefix
UTM_51N = (354633.6489925435, 3456140.5296415724)       # EPSG:32651

CGCS2000_ELLIPSOID = {"a": 6378137.0, "f": 1 / 298.257222101}
WGS84_ELLIPSOID = {"a": 6378137.0, "f": 1 / 298.257223563}

# wandergis/coordtransform test/app.js, input (116.404, 39.915):
CT_WGS = (116.404, 39.915)
CT_WGS_TO_GCJ = (116.41024449916938, 39.91640428150164)
CT_GCJ_TO_BD = (116.41036949371029, 39.92133699351021)    # the BD-09 of GCJ-02 (116.404, 39.915)
CT_GCJ_TO_WGS = (116.39775550083061, 39.91359571849836)   # its one-step WGS84 (~0.1 m off)

SHANGHAI = (121.30, 31.10, 121.65, 31.40)
GEOD = pyproj.Geod(ellps="WGS84")


def snyder_tm(lon: float, lat: float, *, a: float, lon0: float, k0: float, f: float | None = None,
              e2: float | None = None, fe: float = 0.0) -> tuple[float, float]:
    """Transverse Mercator forward on the ellipsoid, Snyder (1987) eqs. 8-9 to 8-11."""
    e2 = e2 if e2 is not None else f * (2 - f)
    ep2 = e2 / (1 - e2)
    phi, lam = math.radians(lat), math.radians(lon - lon0)
    n = a / math.sqrt(1 - e2 * math.sin(phi) ** 2)
    t, c, aa = math.tan(phi) ** 2, ep2 * math.cos(phi) ** 2, lam * math.cos(phi)
    e4, e6 = e2 * e2, e2**3
    m = a * ((1 - e2 / 4 - 3 * e4 / 64 - 5 * e6 / 256) * phi
             - (3 * e2 / 8 + 3 * e4 / 32 + 45 * e6 / 1024) * math.sin(2 * phi)
             + (15 * e4 / 256 + 45 * e6 / 1024) * math.sin(4 * phi)
             - (35 * e6 / 3072) * math.sin(6 * phi))
    x = k0 * n * (aa + (1 - t + c) * aa**3 / 6
                  + (5 - 18 * t + t * t + 72 * c - 58 * ep2) * aa**5 / 120)
    y = k0 * (m + n * math.tan(phi) * (aa * aa / 2 + (5 - t + 9 * c + 4 * c * c) * aa**4 / 24
                                       + (61 - 58 * t + t * t + 600 * c - 330 * ep2)
                                       * aa**6 / 720))
    return x + fe, y


def points(xy: list[tuple[float, float]], crs: object = None, start: int = 1) -> gpd.GeoDataFrame:
    """Points with record numbers from ``start``."""
    arr = np.asarray(xy, dtype=float)
    return gpd.GeoDataFrame({"n": np.arange(len(arr))}, geometry=shapely.points(arr), crs=crs,
                            index=pd.RangeIndex(start, start + len(arr)))


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(GEOD.inv(a[0], a[1], b[0], b[1])[2])


def codes(report: Report) -> dict[str, str]:
    return {p.code: str(p.severity) for p in report.problems}


def message(report: Report, code: str) -> str:
    return next(p.message for p in report.problems if p.code == code)


def located(frame: gpd.GeoDataFrame, crs: pyproj.CRS, bbox: tuple | None = SHANGHAI, *,
            coords: str = "wgs84", share: float = 0.5) -> Report:
    """Run to_wgs84 then check_location as the pipeline does."""
    report = Report(source="t", kind="facilities")
    out = to_wgs84(frame, crs, coords, report)
    check_location(out, bbox, report, source=crs, min_inside_share=share,
                   raw_bounds=tuple(frame.total_bounds))
    return report


# -- independent check of the hard-coded projected values -----------------------------------------
def test_snyder_series_reproduces_the_textbook_example() -> None:
    x, y = snyder_tm(-73.5, 40.5, a=6378206.4, e2=0.00676866, lon0=-75.0, k0=0.9996)
    assert round(x, 1) == 127106.5
    assert round(y, 1) == 4484124.4


@pytest.mark.parametrize(("expected", "params"), [
    (GK_CM120E, {**CGCS2000_ELLIPSOID, "lon0": 120.0, "k0": 1.0, "fe": 500_000.0}),
    (GK_ZONE40, {**CGCS2000_ELLIPSOID, "lon0": 120.0, "k0": 1.0, "fe": 40_500_000.0}),
    (UTM_51N, {**WGS84_ELLIPSOID, "lon0": 123.0, "k0": 0.9996, "fe": 500_000.0}),
], ids=["gk-cm120e", "gk-zone40", "utm51n"])
def test_reference_values_agree_with_snyder(expected: tuple[float, float], params: dict) -> None:
    x, y = snyder_tm(*PEOPLES_SQUARE, **params)
    assert x == pytest.approx(expected[0], abs=1e-3)
    assert y == pytest.approx(expected[1], abs=1e-3)


# -- parse_crs ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "epsg"), [
    ("EPSG:4549", 4549),
    ("4490", 4490),
    ("  epsg:32651 ", 32651),
    (pyproj.CRS.from_epsg(4528).to_wkt(), 4528),
    ("EPSG:4979", 4326),        # 3D WGS84 -> its horizontal part
    ("EPSG:4549+5773", 4549),   # compound (GK + EGM96 height) -> the horizontal CRS
], ids=["epsg", "bare-code", "lowercase-padded", "wkt", "3d-to-2d", "compound"])
def test_parse_crs_accepts(text: str, epsg: int) -> None:
    assert parse_crs(text).to_epsg() == epsg


def test_parse_crs_accepts_proj_strings() -> None:
    crs = parse_crs("+proj=tmerc +lon_0=120 +k=1 +x_0=500000 +ellps=GRS80 +units=m")
    assert crs.is_projected


@pytest.mark.parametrize("text", ["EPSG:99999", "no-such-crs", "", "EPSG:5773", "EPSG:4978"],
                         ids=["unknown-code", "garbage", "empty", "vertical", "geocentric"])
def test_parse_crs_refuses(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_crs(text)
    assert isinstance(info.value, IngestError) and isinstance(info.value, ValueError)
    assert "give an EPSG code such as EPSG:4490 or EPSG:4549" in str(info.value)


def test_parse_crs_message_names_the_value() -> None:
    with pytest.raises(ParseError, match=r"unknown coordinate system 'EPSG:99999': "):
        parse_crs("EPSG:99999")


# -- resolve_crs -------------------------------------------------------------------------------
def test_resolve_without_any_crs() -> None:
    report = Report(source="t", kind="facilities")
    assert resolve_crs(None, None, report) is None
    assert codes(report) == {"no_crs": "error"}
    assert "--crs EPSG:4490" in message(report, "no_crs")


@pytest.mark.parametrize(("file_crs", "declared", "label"), [
    (pyproj.CRS.from_epsg(4549), None, "EPSG:4549"),
    (None, "EPSG:4490", "EPSG:4490"),
    (pyproj.CRS.from_epsg(4549), "4549", "EPSG:4549"),
    # an ESRI .prj: east/north axes, ESRI names; CRS.equals alone calls it different
    (pyproj.CRS.from_wkt(pyproj.CRS.from_epsg(4549).to_wkt("WKT1_ESRI")), "EPSG:4549",
     "EPSG:4549"),
    (pyproj.CRS.from_user_input("+proj=longlat +datum=WGS84 +no_defs"), "EPSG:4326",
     "EPSG:4326"),
], ids=["file-only", "declared-only", "both-equal", "esri-prj-equivalent", "proj4-equivalent"])
def test_resolve_accepts(file_crs: pyproj.CRS | None, declared: str | None, label: str) -> None:
    report = Report(source="t", kind="facilities")
    crs = resolve_crs(file_crs, declared, report)
    assert crs is not None and report.ok, report.to_text()
    assert report.info["source_crs"] == label


def test_resolve_conflict_names_both_and_keeps_the_files_crs() -> None:
    report = Report(source="t", kind="facilities")
    crs = resolve_crs(pyproj.CRS.from_epsg(4549), "EPSG:4528", report)
    assert codes(report) == {"crs_conflict": "error"}
    text = message(report, "crs_conflict")
    assert "EPSG:4549" in text and "EPSG:4528" in text and "drop --crs" in text
    assert crs is not None and crs.to_epsg() == 4549


def test_resolve_unnamed_crs_is_labelled_by_name() -> None:
    report = Report(source="t", kind="facilities")
    custom = pyproj.CRS.from_user_input("+proj=tmerc +lon_0=121.3 +k=1 +x_0=0 +ellps=GRS80")
    resolve_crs(custom, None, report)
    assert report.info["source_crs"] == custom.name


def test_resolve_bad_declared_crs_raises() -> None:
    with pytest.raises(ParseError):
        resolve_crs(None, "EPSG:99999", Report(source="t", kind="facilities"))


# -- to_wgs84: known answers -------------------------------------------------------------------
@pytest.mark.parametrize(("epsg", "xy", "tol_deg"), [
    (4490, PEOPLES_SQUARE, 1e-6),
    (4326, PEOPLES_SQUARE, 1e-12),
    (4549, GK_CM120E, 1e-8),
    (4528, GK_ZONE40, 1e-8),
    (32651, UTM_51N, 1e-8),
], ids=["cgcs2000-geographic", "wgs84", "gk-cm120e-4549", "gk-zone40-4528", "utm51n-32651"])
def test_to_wgs84_known_points(epsg: int, xy: tuple[float, float], tol_deg: float) -> None:
    crs = pyproj.CRS.from_epsg(epsg)
    report = Report(source="t", kind="facilities")
    out = to_wgs84(points([xy], crs, start=7), crs, "wgs84", report)
    assert out.crs.to_epsg() == 4326
    assert list(out.index) == [7]
    lon, lat = out.geometry.iloc[0].x, out.geometry.iloc[0].y
    assert lon == pytest.approx(PEOPLES_SQUARE[0], abs=tol_deg)
    assert lat == pytest.approx(PEOPLES_SQUARE[1], abs=tol_deg)
    assert report.ok and report.info["coords"] == "wgs84"


@pytest.mark.parametrize(("epsg", "expected"), [
    (4549, GK_CM120E), (4528, GK_ZONE40), (32651, UTM_51N),
], ids=["gk-cm120e-4549", "gk-zone40-4528", "utm51n-32651"])
def test_forward_projection_matches_hard_coded(epsg: int, expected: tuple[float, float]) -> None:
    base = 4326 if epsg == 32651 else 4490
    x, y = pyproj.Transformer.from_crs(base, epsg, always_xy=True).transform(*PEOPLES_SQUARE)
    assert x == pytest.approx(expected[0], abs=1e-3)
    assert y == pytest.approx(expected[1], abs=1e-3)


@pytest.mark.parametrize(("coords", "given", "expected"), [
    ("gcj02", CT_WGS_TO_GCJ, CT_WGS),
    ("bd09", CT_GCJ_TO_BD, CT_GCJ_TO_WGS),
], ids=["gcj02-coordtransform", "bd09-coordtransform"])
def test_offsets_recover_published_wgs84(coords: str, given: tuple[float, float],
                                         expected: tuple[float, float]) -> None:
    crs = pyproj.CRS.from_epsg(4326)
    report = Report(source="t", kind="facilities")
    out = to_wgs84(points([given], crs), crs, coords, report)
    got = (out.geometry.iloc[0].x, out.geometry.iloc[0].y)
    assert metres(got, expected) < 0.5
    assert report.ok and report.info["coords"] == coords


@pytest.mark.parametrize("coords", ["gcj02", "bd09"])
def test_offsets_are_removed_from_every_vertex(coords: str) -> None:
    """Polygons and lines in CGCS2000 degrees: every vertex comes back within 0.5 m."""
    rng = np.random.default_rng(1)
    lon = 121.35 + rng.random(200) * 0.25
    lat = 31.15 + rng.random(200) * 0.2
    forward = wgs84_to_gcj02 if coords == "gcj02" else wgs84_to_bd09
    olon, olat = forward(lon, lat)
    rings = [shapely.Polygon(np.column_stack([olon[i:i + 4], olat[i:i + 4]]))
             for i in range(0, 200, 4)]
    line = shapely.LineString(np.column_stack([olon, olat]))
    crs = pyproj.CRS.from_epsg(4490)
    frame = gpd.GeoDataFrame(geometry=[*rings, line], crs=crs)
    out = to_wgs84(frame, crs, coords, Report(source="t", kind="roads"))
    back = shapely.get_coordinates(out.geometry.iloc[-1])
    dist = GEOD.inv(back[:, 0], back[:, 1], lon, lat)[2]
    assert dist.max() < 0.5
    ring_xy = np.vstack([shapely.get_coordinates(g.exterior)[:-1] for g in out.geometry[:-1]])
    assert GEOD.inv(ring_xy[:, 0], ring_xy[:, 1], lon, lat)[2].max() < 0.5


def test_offset_on_projected_coordinates_is_an_error() -> None:
    crs = pyproj.CRS.from_epsg(4549)
    report = Report(source="t", kind="facilities")
    out = to_wgs84(points([GK_CM120E], crs), crs, "gcj02", report)
    assert codes(report) == {"offset_on_projected": "error"}
    # The projection itself still happened, without a bogus offset.
    assert out.geometry.iloc[0].x == pytest.approx(PEOPLES_SQUARE[0], abs=1e-8)


def test_unknown_coords_value_is_refused() -> None:
    crs = pyproj.CRS.from_epsg(4326)
    with pytest.raises(ValueError, match="gcj02"):
        to_wgs84(points([PEOPLES_SQUARE], crs), crs, "mars", Report(source="t", kind="x"))


def test_frame_crs_is_never_replaced_silently() -> None:
    frame = points([GK_CM120E], 4549)
    with pytest.raises(ValueError, match=r"EPSG:4549.*EPSG:4528"):
        to_wgs84(frame, pyproj.CRS.from_epsg(4528), "wgs84", Report(source="t", kind="x"))


# -- check_location ----------------------------------------------------------------------------
def shanghai_points(n: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([121.35 + rng.random(n) * 0.25, 31.15 + rng.random(n) * 0.2])


def test_points_inside_the_city_pass() -> None:
    report = located(points(list(map(tuple, shanghai_points()))), pyproj.CRS.from_epsg(4490))
    assert report.ok and not report.problems, report.to_text()
    x0, y0, x1, y1 = report.info["bounds"]
    assert SHANGHAI[0] <= x0 <= x1 <= SHANGHAI[2] and SHANGHAI[1] <= y0 <= y1 <= SHANGHAI[3]


def test_swapped_lon_lat_beyond_90_is_detected() -> None:
    report = located(points([(lat, lon) for lon, lat in shanghai_points()]),
                     pyproj.CRS.from_epsg(4326))
    assert "swapped_axes" in codes(report)
    assert "outside_city" not in codes(report)
    assert "fix the column order" in message(report, "swapped_axes")


def test_swapped_axes_detected_from_the_frame_alone() -> None:
    """Without raw bounds, points that fit the city only once x and y are exchanged."""
    frame = points([(lat, lon) for lon, lat in shanghai_points()], 4326)
    report = Report(source="t", kind="facilities")
    check_location(frame, SHANGHAI, report, source=pyproj.CRS.from_epsg(4326),
                   min_inside_share=0.5)
    assert codes(report) == {"swapped_axes": "error"}


def test_swapped_eastings_and_northings_are_detected() -> None:
    crs = pyproj.CRS.from_epsg(4549)
    xy = pyproj.Transformer.from_crs(4490, crs, always_xy=True).transform(*shanghai_points().T)
    report = located(points(list(zip(xy[1], xy[0], strict=True))), crs)
    assert "swapped_axes" in codes(report), report.to_text()


def test_zone_prefix_read_as_cm_crs_gets_the_prefix_hint() -> None:
    crs = pyproj.CRS.from_epsg(4549)
    x, y = pyproj.Transformer.from_crs(4490, 4528, always_xy=True).transform(*shanghai_points().T)
    report = located(points(list(zip(x, y, strict=True))), crs)
    assert codes(report).get("outside_city") == "error", report.to_text()
    text = message(report, "outside_city")
    assert text.startswith("only 0% of features fall inside the city area")
    assert "carry a zone number prefix" in text
    assert "EPSG:4528 for zone 40" in text and "instead of EPSG:4549" in text


def test_zone_prefix_of_another_city_is_an_unverified_hint() -> None:
    """Nanjing in zone 40 read as EPSG:4549 against Shanghai's bbox: no CRS lands it here."""
    nanjing = shanghai_points() + np.array([118.80 - 121.47, 32.06 - 31.25])
    x, y = pyproj.Transformer.from_crs(4490, 4528, always_xy=True).transform(*nanjing.T)
    report = located(points(list(zip(x, y, strict=True))), pyproj.CRS.from_epsg(4549))
    text = message(report, "outside_city")
    assert "may carry a zone number prefix (40)" in text and "another city" in text


def test_missing_zone_prefix_gets_the_cm_hint() -> None:
    crs = pyproj.CRS.from_epsg(4528)
    x, y = pyproj.Transformer.from_crs(4490, 4549, always_xy=True).transform(*shanghai_points().T)
    report = located(points(list(zip(x, y, strict=True))), crs)
    text = message(report, "outside_city")
    assert "no zone number prefix" in text and "EPSG:4549" in text


def test_degrees_declared_as_projected_get_the_degrees_hint() -> None:
    report = located(points(list(map(tuple, shanghai_points()))), pyproj.CRS.from_epsg(4549))
    text = message(report, "outside_city")
    assert "look like degrees" in text and "EPSG:4549 is projected" in text
    assert "EPSG:4326" in text and "EPSG:4490" in text


def test_metres_declared_as_geographic_get_the_metres_hint() -> None:
    x, y = pyproj.Transformer.from_crs(4490, 4549, always_xy=True).transform(*shanghai_points().T)
    report = located(points(list(zip(x, y, strict=True))), pyproj.CRS.from_epsg(4490))
    assert "swapped_axes" not in codes(report)
    text = message(report, "outside_city")
    assert "look like metres" in text and "EPSG:4549" in text


def test_web_mercator_declared_as_gauss_kruger_is_named() -> None:
    x, y = pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(*shanghai_points().T)
    report = located(points(list(zip(x, y, strict=True))), pyproj.CRS.from_epsg(4549))
    assert "EPSG:3857" in message(report, "outside_city")


def test_another_city_gets_the_generic_hint() -> None:
    beijing = shanghai_points() + np.array([116.40 - 121.47, 39.90 - 31.25])
    report = located(points(list(map(tuple, beijing))), pyproj.CRS.from_epsg(4326))
    text = message(report, "outside_city")
    assert "another city" in text
    assert "zone" not in text and "swapped" not in text


def test_gcj02_left_in_place_stays_inside() -> None:
    """A forgotten --coords gcj02 shifts points ~500 m: that is not an outside_city matter."""
    glon, glat = wgs84_to_gcj02(*shanghai_points().T)
    report = located(points(list(zip(glon, glat, strict=True))), pyproj.CRS.from_epsg(4326))
    assert "outside_city" not in codes(report)


def test_partly_outside_is_a_warning_with_rows() -> None:
    inside = list(map(tuple, shanghai_points(40)))
    outside = [(120.5, 30.5)] * 10
    report = located(points(inside + outside), pyproj.CRS.from_epsg(4326))
    assert codes(report) == {"partly_outside": "warning"}
    problem = report.problems[0]
    assert problem.count == 10 and problem.rows == [41, 42, 43, 44, 45]
    assert report.info["inside_share"] == pytest.approx(0.8)


def test_mostly_outside_is_an_error_with_the_share() -> None:
    inside = list(map(tuple, shanghai_points(3)))
    report = located(points(inside + [(116.4, 39.9)] * 97), pyproj.CRS.from_epsg(4326))
    assert message(report, "outside_city").startswith(
        "only 3% of features fall inside the city area [121.3, 31.1, 121.65, 31.4]; ")


def test_no_bbox_skips_the_share_check() -> None:
    report = located(points([(116.4, 39.9)] * 5), pyproj.CRS.from_epsg(4326), bbox=None)
    assert report.ok and not report.problems
    assert "skipped" in report.info["location_check"]
    assert report.info["bounds"] == [116.4, 39.9, 116.4, 39.9]


def test_non_finite_coordinates_are_reported() -> None:
    frame = points([*map(tuple, shanghai_points(4)), (np.inf, 31.2)], 4326)
    report = Report(source="t", kind="facilities")
    check_location(frame, SHANGHAI, report, source=pyproj.CRS.from_epsg(4326),
                   min_inside_share=0.5)
    assert codes(report) == {"non_finite_coordinates": "warning"}
    assert report.problems[0].rows == [5]


@pytest.mark.parametrize(("bounds", "expected"), [
    ((121.35, 31.15, 121.6, 31.35), {}),
    ((121.0, 31.0, 122.5, 32.0), {"partly_outside": "warning"}),
    ((116.2, 39.7, 116.6, 40.1), {"outside_city": "error"}),
    ((31.15, 121.35, 31.35, 121.6), {"swapped_axes": "error"}),
], ids=["inside", "mostly-outside", "disjoint", "swapped"])
def test_raster_location(bounds: tuple, expected: dict) -> None:
    report = Report(source="t", kind="population")
    check_raster_location(bounds, SHANGHAI, report)
    assert codes(report) == expected
    assert report.info["bounds"] == list(bounds)


def test_raster_location_without_bbox() -> None:
    report = Report(source="t", kind="population")
    check_raster_location((116.2, 39.7, 116.6, 40.1), None, report)
    assert report.ok and "skipped" in report.info["location_check"]


def test_the_right_crs_over_a_wider_area_is_not_told_to_use_itself() -> None:
    """A region's file, in the CRS it declares, mostly beyond the city: no "use EPSG:4549
    rather than EPSG:4549" (seen with the megacity's buildings loaded into the city)."""
    centre = shanghai_points().mean(axis=0)
    wide = centre + (shanghai_points() - centre) * 12
    crs = pyproj.CRS.from_epsg(4549)
    x, y = pyproj.Transformer.from_crs(4490, crs, always_xy=True).transform(*wide.T)
    report = located(points(list(zip(x, y, strict=True))), crs)
    text = message(report, "outside_city")
    assert "rather than" not in text, text
    assert "consistent with EPSG:4549" in text and "right city's file" in text
