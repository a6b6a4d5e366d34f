"""WGS84 / GCJ-02 / BD-09 conversions: published reference values and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.offsets import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

# Reference pairs published with wandergis/coordtransform (test/app.js), a widely used
# implementation of the same algorithm, for the input (116.404, 39.915).
REF_IN = (116.404, 39.915)
REF_WGS_TO_GCJ = (116.41024449916938, 39.91640428150164)
REF_GCJ_TO_BD = (116.41036949371029, 39.92133699351021)
# Baidu's approximate one-step BD-09 -> GCJ-02; ours iterates to the exact inverse, which
# differs from it by well under a metre.
REF_BD_TO_GCJ_APPROX = (116.39762729119315, 39.90865673957631)

lon_china = st.floats(min_value=73.0, max_value=135.0, allow_nan=False)
lat_china = st.floats(min_value=18.0, max_value=53.5, allow_nan=False)


def test_wgs84_to_gcj02_matches_reference() -> None:
    lon, lat = wgs84_to_gcj02(*REF_IN)
    assert lon == pytest.approx(REF_WGS_TO_GCJ[0], abs=1e-12)
    assert lat == pytest.approx(REF_WGS_TO_GCJ[1], abs=1e-12)


def test_gcj02_to_bd09_matches_reference() -> None:
    lon, lat = gcj02_to_bd09(*REF_IN)
    assert lon == pytest.approx(REF_GCJ_TO_BD[0], abs=1e-12)
    assert lat == pytest.approx(REF_GCJ_TO_BD[1], abs=1e-12)


def test_bd09_to_gcj02_close_to_published_approximation() -> None:
    lon, lat = bd09_to_gcj02(*REF_IN)
    assert lon == pytest.approx(REF_BD_TO_GCJ_APPROX[0], abs=1e-5)
    assert lat == pytest.approx(REF_BD_TO_GCJ_APPROX[1], abs=1e-5)


def test_gcj02_to_wgs84_inverts_reference() -> None:
    lon, lat = gcj02_to_wgs84(*REF_WGS_TO_GCJ)
    assert lon == pytest.approx(REF_IN[0], abs=1e-9)
    assert lat == pytest.approx(REF_IN[1], abs=1e-9)


def test_offset_near_shanghai_is_hundreds_of_metres() -> None:
    lon, lat = 121.47, 31.23
    glon, glat = wgs84_to_gcj02(lon, lat)
    dx = (glon - lon) * 111_320 * np.cos(np.radians(lat))
    dy = (glat - lat) * 110_574
    assert 100 < np.hypot(dx, dy) < 800


@settings(max_examples=300, deadline=None)
@given(lon_china, lat_china)
def test_gcj02_round_trip(lon: float, lat: float) -> None:
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert abs(back[0] - lon) < 1e-7
    assert abs(back[1] - lat) < 1e-7


@settings(max_examples=300, deadline=None)
@given(lon_china, lat_china)
def test_bd09_round_trip(lon: float, lat: float) -> None:
    back = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    assert abs(back[0] - lon) < 1e-7
    assert abs(back[1] - lat) < 1e-7
    back = bd09_to_gcj02(*gcj02_to_bd09(lon, lat))
    assert abs(back[0] - lon) < 1e-7
    assert abs(back[1] - lat) < 1e-7


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(0.0, 0.0), (-74.0, 40.7), (2.35, 48.85), (139.7, 35.7), (100.0, 60.0), (150.0, 30.0)],
    ids=["null-island", "new-york", "paris", "tokyo", "siberia", "pacific"],
)
def test_outside_china_unchanged(lon: float, lat: float) -> None:
    assert wgs84_to_gcj02(lon, lat) == (lon, lat)
    assert gcj02_to_wgs84(lon, lat) == (lon, lat)


def test_vectorised_and_scalar_agree() -> None:
    rng = np.random.default_rng(1)
    lon = rng.uniform(100, 125, 50)
    lat = rng.uniform(20, 45, 50)
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert glon.shape == (50,)
    assert glat.shape == (50,)
    for i in (0, 17, 49):
        s = wgs84_to_gcj02(float(lon[i]), float(lat[i]))
        assert np.isscalar(s[0])
        assert s == (glon[i], glat[i])
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    assert wlon.shape == (50,)
    np.testing.assert_allclose(wlon, lon, atol=1e-9)
    np.testing.assert_allclose(wlat, lat, atol=1e-9)
    blon, blat = wgs84_to_bd09(lon, lat)
    assert blon.shape == (50,)
    np.testing.assert_allclose(np.stack(bd09_to_wgs84(blon, blat)), np.stack([lon, lat]), atol=1e-9)


def test_mixed_inside_outside_array() -> None:
    lon = np.array([121.47, 2.35])
    lat = np.array([31.23, 48.85])
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert glon[0] != lon[0]
    assert (glon[1], glat[1]) == (lon[1], lat[1])
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    np.testing.assert_allclose(wlon, lon, atol=1e-9)
    np.testing.assert_allclose(wlat, lat, atol=1e-9)


def test_nan_passes_through() -> None:
    lon, _lat = gcj02_to_wgs84(np.array([np.nan, 121.0]), np.array([31.0, 31.0]))
    assert np.isnan(lon[0])
    assert np.isfinite(lon[1])
