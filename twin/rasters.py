"""Rasters of counts (population) onto H3 cells, conserving the total exactly.

Sampling the pixel under each cell centre (what h3ronpy's ``raster_to_dataframe`` does) loses
most of a population total when pixels and cells differ in size. Here mass moves from pixels to
cells, never the other way:

1. **Sub-pixel samples.** Each pixel with a non-zero count is split into ``k × k`` sample points
   on a regular sub-grid, each carrying ``count / k²``; a sample goes to the cell containing it.
   ``k`` grows with the pixel: ``k = ceil(pixel edge / (cell edge / 2))`` (at least 1), so a pixel
   much smaller than a cell is one sample at its centre, and a 100 m pixel in resolution-10
   cells (~76 m edges) becomes 3 × 3 samples. Every pixel's count is handed out in full, so the
   sum over cells equals the raster's sum (up to floating-point rounding).
2. **Dasymetric refinement.** Where residential buildings stand in a pixel, the pixel's count
   is shared among those buildings in proportion to their residential floor area instead, and
   each building's share goes to the cell holding the building's centroid: people live in
   buildings, not evenly over a pixel. The pixel's total is still handed out in full.

The sampling error against an exact area-weighted split (each pixel shared by the areas of its
intersections with the cells) is measured in ``tests/test_rasters.py`` and quoted in the README.

The raster is read in its own CRS and pixels; only sample points are transformed to WGS84.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from pyproj import CRS, Transformer

from twin.grid import points_to_cells

__all__ = ["RasterAllocation", "allocate_raster", "samples_per_side"]

# Average edge length of H3 cells by resolution, metres (H3's published table).
_EDGE_M = {7: 1406.475763, 8: 531.414010, 9: 200.786148, 10: 75.863783, 11: 28.663897,
           12: 10.830188, 13: 4.092010, 14: 1.546100, 15: 0.584169}


@dataclass
class RasterAllocation:
    """Counts of each band per cell, and the share of each building.

    Attributes
    ----------
    cells
        Sorted unique cells that received any count.
    values
        ``{band name: float64 array aligned with cells}``.
    building_values
        ``{band name: float64 array per building}`` (zeros when no buildings were given).
    samples
        Sub-pixel samples per pixel side used (``k``).
    raster_totals
        ``{band name: sum of the raster's valid pixels}``.
    dasymetric_share
        Share of the first band's total that was placed through buildings.
    """

    cells: np.ndarray
    values: dict[str, np.ndarray]
    building_values: dict[str, np.ndarray]
    samples: int
    raster_totals: dict[str, float]
    dasymetric_share: float


def samples_per_side(pixel_m: float, resolution: int) -> int:
    """Sub-pixel samples per side: enough for samples at most half a cell edge apart."""
    edge = _EDGE_M.get(resolution) or 75.863783 * (2.6457 ** (10 - resolution))
    return max(1, math.ceil(pixel_m / (edge / 2)))


def _pixel_size_m(src: rasterio.DatasetReader) -> float:
    t = src.transform
    size = max(abs(t.a), abs(t.e))
    crs = CRS.from_user_input(src.crs)
    if crs.is_geographic:
        # Degrees to metres at the raster's middle latitude (longitude spacing shrinks).
        lat = (src.bounds.bottom + src.bounds.top) / 2
        metres_per_degree = 111_320.0
        return max(abs(t.a) * metres_per_degree * math.cos(math.radians(lat)),
                   abs(t.e) * metres_per_degree)
    return size * crs.axis_info[0].unit_conversion_factor


def allocate_raster(path: Path, resolution: int, *, bands: list[str] | None = None,
                    building_lng: np.ndarray | None = None,
                    building_lat: np.ndarray | None = None,
                    building_weight: np.ndarray | None = None,
                    building_cells: np.ndarray | None = None,
                    samples: int | None = None) -> RasterAllocation:
    """Allocate the counts of a raster's bands to cells at ``resolution``.

    Parameters
    ----------
    path
        A GeoTIFF of counts per pixel (any CRS, any pixel size); nodata and non-finite pixels
        count as zero.
    resolution
        Target H3 resolution.
    bands
        Names for the bands (default: ``band_1``, …).
    building_lng, building_lat, building_weight, building_cells
        Buildings for the dasymetric refinement: centroid in WGS84, weight (residential floor
        area, m²; zero for non-residential buildings) and the cell holding the centroid.
    samples
        Force ``k`` sub-pixel samples per side (default: from the pixel size).
    """
    with rasterio.open(path) as src:
        names = bands or [f"band_{i + 1}" for i in range(src.count)]
        data = np.stack([np.nan_to_num(src.read(i + 1, masked=True).astype(np.float64)
                                       .filled(0.0), nan=0.0, posinf=0.0, neginf=0.0)
                         for i in range(src.count)])
        data[data < 0] = 0.0
        transform, crs = src.transform, CRS.from_user_input(src.crs)
        k = samples or samples_per_side(_pixel_size_m(src), resolution)
    height, width = data.shape[1:]
    to_wgs84 = Transformer.from_crs(crs, 4326, always_xy=True)
    totals = {name: float(data[i].sum()) for i, name in enumerate(names)}

    nonzero = np.flatnonzero(data.sum(axis=0).ravel() > 0)
    per_pixel_total = data.reshape(len(names), -1)[:, nonzero]  # (bands, pixels)

    # Dasymetric part: pixels holding residential buildings share their count among them.
    n_buildings = 0 if building_lng is None else len(building_lng)
    building_values = {name: np.zeros(n_buildings) for name in names}
    via_buildings = np.zeros(len(nonzero), dtype=bool)
    cell_parts: list[np.ndarray] = []
    value_parts: list[np.ndarray] = []
    if n_buildings:
        from_wgs84 = Transformer.from_crs(4326, crs, always_xy=True)
        bx, by = from_wgs84.transform(building_lng, building_lat)
        col, row = ~transform @ (np.asarray(bx), np.asarray(by))
        col, row = np.floor(col).astype(np.int64), np.floor(row).astype(np.int64)
        weight = np.nan_to_num(np.asarray(building_weight, dtype=np.float64))
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height) & (weight > 0)
        pixel = np.where(inside, row * width + col, -1)
        # Position of each building's pixel among the non-zero pixels (-1: none).
        slot = np.full(len(pixel), -1, dtype=np.int64)
        found = np.searchsorted(nonzero, pixel[inside])
        found_ok = (found < len(nonzero)) & (nonzero[np.minimum(found, len(nonzero) - 1)]
                                             == pixel[inside])
        slot[np.flatnonzero(inside)[found_ok]] = found[found_ok]
        has = slot >= 0
        pixel_weight = np.bincount(slot[has], weights=weight[has], minlength=len(nonzero))
        via_buildings = pixel_weight > 0
        share = np.zeros(len(slot))
        share[has] = weight[has] / pixel_weight[slot[has]]
        for i, name in enumerate(names):
            building_values[name][has] = per_pixel_total[i, slot[has]] * share[has]
        cell_parts.append(np.asarray(building_cells, dtype=np.uint64)[has])
        value_parts.append(np.stack([building_values[n][has] for n in names]))

    # Sampled part: the other non-zero pixels, k x k samples each.
    sampled = nonzero[~via_buildings]
    if len(sampled):
        rows, cols = np.divmod(sampled, width)
        offsets = (np.arange(k) + 0.5) / k
        du, dv = np.meshgrid(offsets, offsets)
        sx = (cols[:, None] + du.ravel()[None, :]).ravel()
        sy = (rows[:, None] + dv.ravel()[None, :]).ravel()
        x, y = transform @ (sx, sy)
        lng, lat = to_wgs84.transform(x, y)
        cell_parts.append(points_to_cells(np.asarray(lng), np.asarray(lat), resolution))
        value_parts.append(np.repeat(per_pixel_total[:, ~via_buildings] / (k * k), k * k,
                                     axis=1))

    if cell_parts:
        all_cells = np.concatenate(cell_parts)
        all_values = np.concatenate(value_parts, axis=1)
        cells, inverse = np.unique(all_cells, return_inverse=True)
        values = {name: np.bincount(inverse, weights=all_values[i], minlength=len(cells))
                  for i, name in enumerate(names)}
    else:
        cells, values = np.empty(0, dtype=np.uint64), {name: np.empty(0) for name in names}
    first_total = totals[names[0]] if names else 0.0
    via = float(per_pixel_total[0, via_buildings].sum()) if len(nonzero) else 0.0
    return RasterAllocation(cells=cells, values=values, building_values=building_values,
                            samples=k, raster_totals=totals,
                            dasymetric_share=via / first_total if first_total else 0.0)
