"""Conversions between WGS84 and the Chinese web-map offsets GCJ-02 and BD-09.

Chinese map services publish coordinates in GCJ-02 ("Mars coordinates", used by AMap/Gaode,
Tencent and Google inside mainland China) or BD-09 (Baidu), both deliberate, non-linear
offsets of WGS84 of a few hundred metres.  Departments' files frequently carry them, so the
twin needs both directions.

* The forward transform WGS84 -> GCJ-02 is the widely published reverse-engineered algorithm
  (Krasovsky 1940 ellipsoid, ``a = 6378245.0``, ``ee = 0.00669342162296594323``).  Points
  outside mainland China's rough bounding box (longitude 72.004-137.8347, latitude
  0.8293-55.8271) are returned unchanged, as the real services do.
* GCJ-02 -> BD-09 is Baidu's published closed form.
* The inverses have no closed form.  They are computed by fixed-point iteration
  ``x <- x - (f(x) - target)`` starting from ``target``; the offset field is smooth, so the
  error shrinks about a hundredfold per step.  Iteration stops once every point's residual
  ``|f(x) - target|`` is below 1e-9 degrees (at most 30 steps, vectorised over the array).
  Measured on a 0.25-degree grid over 73-135 E, 18-54 N (36,105 points), the round trip
  ``gcj02_to_wgs84(wgs84_to_gcj02(p))`` returns ``p`` to within 8.2e-11 degrees (0.01 mm),
  and ``bd09_to_wgs84(wgs84_to_bd09(p))`` to within 1.3e-10 degrees.  Compare the one-step
  inverse ``p - (f(p) - p)`` found in many libraries, which is off by up to a few metres.

All functions accept floats or array-likes of any (matching) shape and return NumPy arrays of
float64 with the same shape (NumPy float64 scalars, a subclass of ``float``, for scalar
input).
NaN passes through as NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "in_china",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0
_TOL_DEG = 1e-9
_MAX_ITER = 30

Array = NDArray[np.float64]


def _as_arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    lon_a, lat_a = np.broadcast_arrays(
        np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    )
    return lon_a, lat_a


def in_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """Whether points fall inside the rough bounding box where GCJ-02 applies.

    Parameters
    ----------
    lon, lat
        Longitude and latitude in degrees.

    Returns
    -------
    numpy.ndarray of bool
        True inside longitude 72.004-137.8347 and latitude 0.8293-55.8271.
    """
    lon_a, lat_a = _as_arrays(lon, lat)
    return (lon_a >= 72.004) & (lon_a <= 137.8347) & (lat_a >= 0.8293) & (lat_a <= 55.8271)


def _delta(lon: Array, lat: Array) -> tuple[Array, Array]:
    """GCJ-02 minus WGS84 in degrees (before the China test)."""
    x = lon - 105.0
    y = lat - 35.0
    sq_pi = 2.0 / 3.0
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * sq_pi
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlat = dlat + common
    dlat = dlat + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * sq_pi
    dlat = dlat + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * sq_pi
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    dlon = dlon + common
    dlon = dlon + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * sq_pi
    dlon = dlon + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * sq_pi
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Offset WGS84 coordinates to GCJ-02.

    Parameters
    ----------
    lon, lat
        WGS84 longitude and latitude in degrees (floats or arrays of one shape).

    Returns
    -------
    tuple of numpy.ndarray
        GCJ-02 longitude and latitude; points outside China are returned unchanged.
    """
    lon_a, lat_a = _as_arrays(lon, lat)
    dlon, dlat = _delta(lon_a, lat_a)
    inside = in_china(lon_a, lat_a)
    return _out(np.where(inside, lon_a + dlon, lon_a), np.where(inside, lat_a + dlat, lat_a))


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert GCJ-02 coordinates to Baidu's BD-09.

    Parameters
    ----------
    lon, lat
        GCJ-02 longitude and latitude in degrees.

    Returns
    -------
    tuple of numpy.ndarray
        BD-09 longitude and latitude.  Unlike GCJ-02, Baidu applies this everywhere.
    """
    x, y = _as_arrays(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return _out(z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006)


def _bd09_to_gcj02_approx(x: Array, y: Array) -> tuple[Array, Array]:
    """Baidu's published one-step inverse, the iteration's starting point (error ~1e-6 deg)."""
    x = x - 0.0065
    y = y - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def _out(lon: Array, lat: Array) -> tuple[Array, Array]:
    """Unwrap 0-d results so that scalar input gives scalars."""
    return np.asarray(lon)[()], np.asarray(lat)[()]


def _invert(
    forward: Callable[[Array, Array], tuple[Array, Array]],
    lon_t: Array,
    lat_t: Array,
    lon0: Array,
    lat0: Array,
) -> tuple[Array, Array]:
    """Solve ``forward(x) == target`` by fixed-point iteration from ``(lon0, lat0)``."""
    lon = lon0.copy()
    lat = lat0.copy()
    for _ in range(_MAX_ITER):
        flon, flat = forward(lon, lat)
        rlon = flon - lon_t
        rlat = flat - lat_t
        # NaN residuals compare False and so never keep the loop alive.
        if not np.any((np.abs(rlon) > _TOL_DEG) | (np.abs(rlat) > _TOL_DEG)):
            break
        lon = lon - rlon
        lat = lat - rlat
    return lon, lat


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Remove the GCJ-02 offset (exact inverse of :func:`wgs84_to_gcj02` to ~1e-10 degrees).

    Parameters
    ----------
    lon, lat
        GCJ-02 longitude and latitude in degrees.

    Returns
    -------
    tuple of numpy.ndarray
        WGS84 longitude and latitude; points outside China are returned unchanged.
    """
    lon_a, lat_a = _as_arrays(lon, lat)
    return _out(*_invert(wgs84_to_gcj02, lon_a, lat_a, lon_a, lat_a))


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert BD-09 to GCJ-02 (exact inverse of :func:`gcj02_to_bd09` to ~1e-10 degrees).

    Parameters
    ----------
    lon, lat
        BD-09 longitude and latitude in degrees.

    Returns
    -------
    tuple of numpy.ndarray
        GCJ-02 longitude and latitude.
    """
    lon_a, lat_a = _as_arrays(lon, lat)
    lon0, lat0 = _bd09_to_gcj02_approx(lon_a, lat_a)
    return _out(*_invert(gcj02_to_bd09, lon_a, lat_a, lon0, lat0))


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert WGS84 to BD-09 (via GCJ-02).

    Parameters
    ----------
    lon, lat
        WGS84 longitude and latitude in degrees.

    Returns
    -------
    tuple of numpy.ndarray
        BD-09 longitude and latitude.
    """
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert BD-09 to WGS84 (via GCJ-02).

    Parameters
    ----------
    lon, lat
        BD-09 longitude and latitude in degrees.

    Returns
    -------
    tuple of numpy.ndarray
        WGS84 longitude and latitude.
    """
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))
