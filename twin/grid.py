"""The H3 grid: every call into an H3 library lives in this module.

Cells are ``uint64`` numpy arrays inside citytwin; hexadecimal strings appear only at the edges
(pydeck, exports) through :func:`cells_to_strings` and :func:`strings_to_cells`.

Speed matters here: fusion indexes millions of points. h3-py 4 has no vectorised lat/lng → cell
(a Python loop over its integer API manages ~2.4 M points/s on this machine); h3ronpy calls
H3's C kernel over whole arrays and releases the GIL, so :func:`points_to_cells` splits the
work over a thread per core (measured: 3.2 M points/s on one thread, 6.5 M/s on two). Parents
and resolutions are plain bit operations on the 64-bit index (500k cells in well under 1 ms).
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import h3
import h3ronpy
import numpy as np
import pyarrow as pa
from h3ronpy import vector as h3v

from twin.errors import CellError

__all__ = [
    "NO_CELL",
    "average_cell_area_m2",
    "cell_boundaries_wkb",
    "cell_centres",
    "cell_parents",
    "cell_resolution",
    "cells_outline",
    "cells_to_strings",
    "disk_distances",
    "fill_polygons",
    "grid_disk",
    "path_cells",
    "points_to_cells",
    "polygon_to_cells",
    "strings_to_cells",
]

#: The value of "no cell" (H3's null index), e.g. for a point with NaN coordinates.
NO_CELL = np.uint64(0)

_RES_SHIFT = np.uint64(52)
_RES_MASK = np.uint64(0xF) << _RES_SHIFT
_CHUNK = 1 << 20


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


@functools.cache
def average_cell_area_m2(resolution: int) -> float:
    """Average area of an H3 cell at ``resolution``, in square metres."""
    return float(h3.average_hexagon_area(resolution, unit="m^2"))


def _to_numpy(array: object) -> np.ndarray:
    return np.asarray(pa.array(array))


def points_to_cells(lng: np.ndarray, lat: np.ndarray, resolution: int) -> np.ndarray:
    """The cell containing each point (WGS84 degrees), as ``uint64``.

    Points with non-finite coordinates get :data:`NO_CELL`.
    """
    lng = np.ascontiguousarray(lng, dtype=np.float64)
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    out = np.zeros(len(lng), dtype=np.uint64)
    valid = np.isfinite(lng) & np.isfinite(lat)
    if not valid.all():
        out[valid] = points_to_cells(lng[valid], lat[valid], resolution)
        return out
    if len(lng) == 0:
        return out
    bounds = range(0, len(lng), _CHUNK)

    def work(start: int) -> None:
        stop = min(start + _CHUNK, len(lng))
        out[start:stop] = _to_numpy(h3v.coordinates_to_cells(lat[start:stop], lng[start:stop],
                                                             resolution))

    if len(bounds) == 1:
        work(0)
    else:
        with ThreadPoolExecutor(_threads()) as pool:
            list(pool.map(work, bounds))
    return out


def cell_resolution(cells: np.ndarray) -> np.ndarray:
    """Resolution of each cell (bits 52-55 of the index)."""
    return ((np.asarray(cells, dtype=np.uint64) & _RES_MASK) >> _RES_SHIFT).astype(np.int8)


def cell_parents(cells: np.ndarray, resolution: int) -> np.ndarray:
    """The parent of each cell at the coarser ``resolution``, by bit arithmetic.

    The index keeps 3 bits per resolution digit; a parent has its resolution field set and the
    digits below it set to 7 (unused). Cells already coarser than ``resolution`` are refused.
    """
    cells = np.asarray(cells, dtype=np.uint64)
    if len(cells) and int(cell_resolution(cells[:1])[0]) < resolution:
        raise ValueError(f"cells of resolution {int(cell_resolution(cells[:1])[0])} have no "
                         f"parent at the finer resolution {resolution}")
    unused = np.uint64((1 << (3 * (15 - resolution))) - 1)
    parents = (cells & ~_RES_MASK) | (np.uint64(resolution) << _RES_SHIFT) | unused
    parents[cells == NO_CELL] = NO_CELL
    return parents


def cell_centres(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (degrees) of each cell's centre."""
    cells = np.asarray(cells, dtype=np.uint64)
    if len(cells) == 0:
        return np.empty(0), np.empty(0)
    batch = h3v.cells_to_coordinates(pa.array(cells, type=pa.uint64()))
    table = pa.record_batch(batch)
    return (table.column("lng").to_numpy(zero_copy_only=False),
            table.column("lat").to_numpy(zero_copy_only=False))


def cell_boundaries_wkb(cells: np.ndarray) -> np.ndarray:
    """Each cell's hexagon (or pentagon) as WKB polygons, for exports and maps."""
    cells = np.asarray(cells, dtype=np.uint64)
    return np.asarray(pa.array(h3v.cells_to_wkb_polygons(pa.array(cells, type=pa.uint64())))
                      .to_pylist(), dtype=object)


def cells_outline(cells: np.ndarray) -> object:
    """The dissolved outline of cells of one resolution as one shapely (Multi)Polygon.

    One call into H3's linked polygons (h3ronpy's ``link_cells``), about 8× faster than a
    shapely union of the hexagons; holes are kept. ``None`` for no cells.
    """
    import shapely

    cells = np.unique(np.asarray(cells, dtype=np.uint64))
    if len(cells) == 0:
        return None
    parts = shapely.from_wkb(np.asarray(pa.array(h3v.cells_to_wkb_polygons(
        pa.array(cells, type=pa.uint64()), link_cells=True)).to_pylist(), dtype=object))
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(list(parts))


def polygon_to_cells(polygon: object, resolution: int) -> np.ndarray:
    """The cells whose centre lies inside a WGS84 polygon (any ``__geo_interface__`` object)."""
    import h3ronpy

    return _to_numpy(h3v.geometry_to_cells(
        polygon, resolution, containment_mode=h3ronpy.ContainmentMode.ContainsCentroid))


def fill_polygons(polygons: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Every cell whose centre lies in one of ``polygons`` (WGS84), with that polygon's index.

    One vectorised call over all polygons; returns ``(cells, polygon_index)`` sorted by cell.
    """
    import h3ronpy
    import shapely

    lists = pa.array(h3v.wkb_to_cells(
        pa.array(shapely.to_wkb(polygons)), resolution,
        containment_mode=h3ronpy.ContainmentMode.ContainsCentroid, flatten=False))
    counts = np.diff(np.asarray(lists.offsets))
    cells = np.asarray(lists.flatten())
    owner = np.repeat(np.arange(len(polygons)), counts)
    order = np.argsort(cells, kind="stable")
    return cells[order], owner[order]


def path_cells(points: np.ndarray, resolution: int, k: int = 0) -> np.ndarray:
    """The cells a path through ``points`` (``(n, 2)`` lon/lat) passes over (sorted, unique).

    Consecutive points are joined by samples a third of a cell edge apart, so a fast brush
    stroke leaves no gaps; ``k`` > 0 widens the path by ``k`` rings. Non-finite points are
    skipped.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    points = points[np.isfinite(points).all(axis=1)]
    if not len(points):
        return np.empty(0, np.uint64)
    edge_m = math.sqrt(2.0 * average_cell_area_m2(resolution) / (3.0 * math.sqrt(3.0)))
    lon, lat = points[:, 0], points[:, 1]
    if len(points) > 1:
        dx = np.diff(lon) * 111_320.0 * np.cos(np.radians(lat[:-1]))
        dy = np.diff(lat) * 110_540.0
        steps = np.minimum(np.maximum(1, np.ceil(np.hypot(dx, dy) / (edge_m / 3.0))), 10_000)
        lon = np.concatenate([*(np.linspace(lon[i], lon[i + 1], int(n), endpoint=False)
                                for i, n in enumerate(steps)), lon[-1:]])
        lat = np.concatenate([*(np.linspace(lat[i], lat[i + 1], int(n), endpoint=False)
                                for i, n in enumerate(steps)), lat[-1:]])
    cells = np.unique(points_to_cells(lon, lat, resolution))
    return grid_disk(cells, k) if k > 0 else cells


def grid_disk(cells: np.ndarray, k: int) -> np.ndarray:
    """All cells within ``k`` steps of any of ``cells`` (sorted, unique)."""
    found: set[int] = set()
    for cell in np.unique(np.asarray(cells, dtype=np.uint64)).tolist():
        found.update(h3.api.basic_int.grid_disk(cell, k))
    return np.array(sorted(found), dtype=np.uint64)


def disk_distances(cells: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every cell within ``k`` steps of each of ``cells``, with its distance in steps.

    Returns three aligned arrays: the position in ``cells`` of the origin (``int64``), the
    cell near it (``uint64``) and the grid distance (``int8``, 0 for the origin itself). One
    vectorised call into H3 (h3ronpy's ``grid_disk_distances``) for all origins.
    """
    cells = np.asarray(cells, dtype=np.uint64)
    if len(cells) == 0 or k < 0:
        return np.empty(0, np.int64), np.empty(0, np.uint64), np.empty(0, np.int8)
    batch = pa.record_batch(h3ronpy.grid_disk_distances(pa.array(cells, type=pa.uint64()), k,
                                                        flatten=False))
    near = batch.column("cell")
    steps = batch.column("k")
    offsets = np.asarray(near.offsets)
    origin = np.repeat(np.arange(len(cells), dtype=np.int64), np.diff(offsets))
    return (origin, np.asarray(near.values, dtype=np.uint64),
            np.asarray(steps.values).astype(np.int8))


def cells_to_strings(cells: np.ndarray) -> np.ndarray:
    """Hexadecimal H3 strings for the edges (pydeck, exports)."""
    return np.array([format(int(c), "x") for c in np.asarray(cells, dtype=np.uint64)],
                    dtype=object)


def strings_to_cells(strings: np.ndarray | list[str]) -> np.ndarray:
    """``uint64`` cells from hexadecimal H3 strings.

    Raises
    ------
    CellError
        Naming the strings that are not H3 cells (also a :class:`ValueError`).
    """
    values, bad = [], []
    for s in strings:
        try:
            value = int(str(s), 16)
        except ValueError:
            value = 0
        if not 0 < value < 2**64 or not h3.api.basic_int.is_valid_cell(value):
            bad.append(s)
        values.append(value)
    if bad:
        raise CellError(f"not H3 cells: {', '.join(map(repr, bad[:5]))}"
                        + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))
    return np.array(values, dtype=np.uint64)
