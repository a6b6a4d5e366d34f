"""Measures straight from GeoArrow coordinate buffers, without building GEOS geometries.

Layer versions are GeoParquet with GeoArrow encoding (see :mod:`twin.store`): a polygon column
is nested lists of rings of ``{x, y}`` structs, so pyarrow hands over flat coordinate arrays
with offsets. Fusion needs only points, centroids and areas of millions of features; computing
them here with numpy costs a fraction of decoding WKB into GEOS objects (measured on the
megacity's 2.4 M buildings: 0.3 s against 3 s, and a tenth of the memory). WKB columns (older
versions) fall back to shapely.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["centroids_and_areas", "point_coordinates"]


def _flat(array: pa.Array) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def point_coordinates(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """x and y of a GeoArrow point column (or WKB points), as float64 arrays."""
    array = _flat(column)
    if pa.types.is_struct(array.type):
        return (array.field("x").to_numpy(zero_copy_only=False),
                array.field("y").to_numpy(zero_copy_only=False))
    import shapely

    points = shapely.from_wkb(array.to_numpy(zero_copy_only=False))
    return shapely.get_x(points), shapely.get_y(points)


def centroids_and_areas(column: pa.Array | pa.ChunkedArray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid x, y and planar area of each (multi)polygon of a GeoArrow column.

    Areas are in the coordinates' units squared (degrees² for EPSG:4326); holes subtract.
    Shoelace sums run on coordinates relative to each ring's first vertex, so that the
    products of large absolute coordinates do not eat the precision of small buildings.
    """
    array = _flat(column)
    if pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type):
        return _with_shapely(array)
    depth, node = 0, array.type
    while pa.types.is_list(node) or pa.types.is_large_list(node):
        depth, node = depth + 1, node.value_type
    if depth not in (2, 3):
        raise ValueError(f"not a GeoArrow polygon column: {array.type}")
    if depth == 3:  # multipolygon: geometry -> polygons -> rings -> points
        geometry_offsets = np.asarray(array.offsets)
        polygon_offsets = np.asarray(array.values.offsets)
        rings = array.values.values
    else:  # polygon: each geometry is one polygon
        geometry_offsets = np.arange(len(array) + 1)
        polygon_offsets = np.asarray(array.offsets)
        rings = array.values
    ring_offsets = np.asarray(rings.offsets)
    points = rings.values
    x = points.field("x").to_numpy(zero_copy_only=False)
    y = points.field("y").to_numpy(zero_copy_only=False)

    n_rings = len(ring_offsets) - 1
    start, stop = ring_offsets[:-1], ring_offsets[1:]
    ring_of_point = np.repeat(np.arange(n_rings), stop - start)
    x0, y0 = x[start], y[start]
    dx, dy = x - x0[ring_of_point], y - y0[ring_of_point]
    # Consecutive pairs within a ring: drop the pair that would join one ring to the next.
    cross = dx[:-1] * dy[1:] - dx[1:] * dy[:-1]
    same_ring = ring_of_point[:-1] == ring_of_point[1:]
    cross = np.where(same_ring, cross, 0.0)
    pair_ring = ring_of_point[:-1]
    area2 = np.bincount(pair_ring, weights=cross, minlength=n_rings)
    cx6 = np.bincount(pair_ring, weights=(dx[:-1] + dx[1:]) * cross, minlength=n_rings)
    cy6 = np.bincount(pair_ring, weights=(dy[:-1] + dy[1:]) * cross, minlength=n_rings)

    # The first ring of a polygon is its shell, the others holes.
    ring_polygon = np.repeat(np.arange(len(polygon_offsets) - 1), np.diff(polygon_offsets))
    shell = np.zeros(n_rings, dtype=bool)
    shell[polygon_offsets[:-1][np.diff(polygon_offsets) > 0]] = True
    sign = np.where(shell, 1.0, -1.0)
    ring_area = sign * np.abs(area2) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        ring_cx = np.where(area2 != 0, x0 + cx6 / (3 * area2), x0)
        ring_cy = np.where(area2 != 0, y0 + cy6 / (3 * area2), y0)
    polygon_geometry = np.repeat(np.arange(len(geometry_offsets) - 1),
                                 np.diff(geometry_offsets))
    ring_geometry = polygon_geometry[ring_polygon]
    n = len(geometry_offsets) - 1
    area = np.bincount(ring_geometry, weights=ring_area, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.bincount(ring_geometry, weights=ring_area * ring_cx, minlength=n) / area
        cy = np.bincount(ring_geometry, weights=ring_area * ring_cy, minlength=n) / area
    # Degenerate (zero-area) geometries: the mean of their shell's first vertex.
    flat = np.flatnonzero(~np.isfinite(cx) | ~np.isfinite(cy))
    if len(flat):
        first_polygon = geometry_offsets[:-1][flat]
        has_ring = first_polygon < len(polygon_offsets) - 1
        first_point = ring_offsets[polygon_offsets[first_polygon[has_ring]]]
        cx[flat[has_ring]], cy[flat[has_ring]] = x[first_point], y[first_point]
    return cx, cy, area


def _with_shapely(array: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import shapely

    geometry = shapely.from_wkb(array.to_numpy(zero_copy_only=False))
    centroid = shapely.centroid(geometry)
    return shapely.get_x(centroid), shapely.get_y(centroid), shapely.area(geometry)
