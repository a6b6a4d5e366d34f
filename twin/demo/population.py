"""Residents: per building (by residential floor area), per 100 m pixel and per community."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from rasterio import features
from rasterio.transform import Affine

from twin.demo.buildings import USES_ZH, Buildings
from twin.demo.layout import Admin

__all__ = [
    "NODATA",
    "PIXEL_M",
    "RESIDENTIAL_USES",
    "allocate_residents",
    "assign_communities",
    "community_table",
    "largest_remainder",
    "population_raster",
]

PIXEL_M = 100.0
NODATA = -9999.0
#: Uses whose floor area houses residents (mixed buildings count in full: flats above shops).
RESIDENTIAL_USES = (USES_ZH.index("住宅"), USES_ZH.index("混合"))


def largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``weights`` that sum exactly to ``total``.

    Each entry gets the floor of its quota; the units left over go to the largest fractional
    parts (ties broken by position, so the result is deterministic).
    """
    weights = np.asarray(weights, dtype=np.float64)
    if total == 0 or weights.sum() <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    quota = weights / weights.sum() * total
    base = np.floor(quota).astype(np.int64)
    rest = int(total - base.sum())
    if rest > 0:
        order = np.argsort(-(quota - base), kind="stable")
        base[order[:rest]] += 1
    return base


def allocate_residents(b: Buildings, total: int) -> np.ndarray:
    """Residents per building, proportional to residential floor area, summing to ``total``."""
    w = np.where(np.isin(b.use, RESIDENTIAL_USES), b.floor_area, 0.0)
    return largest_remainder(w, total)


def assign_communities(admin: Admin, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Index of the community containing each UTM point (-1 if none)."""
    tree = shapely.STRtree(admin.community_utm)
    pts = shapely.points(x, y)
    p_idx, c_idx = tree.query(pts, predicate="intersects")
    out = np.full(len(x), -1, dtype=np.int64)
    # A point exactly on a shared edge hits two communities; keep the first (lowest index).
    order = np.lexsort((c_idx, p_idx))
    p_idx, c_idx = p_idx[order], c_idx[order]
    first = np.unique(p_idx, return_index=True)[1]
    out[p_idx[first]] = c_idx[first]
    return out


def population_raster(
    outline: shapely.Polygon, x: np.ndarray, y: np.ndarray, persons: np.ndarray
) -> tuple[np.ndarray, Affine]:
    """Persons per 100 m pixel (UTM) summed at building centroids.

    Pixels touching the city outline are valid (0 where nobody lives), the rest is
    :data:`NODATA`; every centroid inside the city therefore falls in a valid pixel.
    """
    minx, miny, maxx, maxy = outline.bounds
    x0 = np.floor(minx / PIXEL_M) * PIXEL_M
    y1 = np.ceil(maxy / PIXEL_M) * PIXEL_M
    width = int(np.ceil((maxx - x0) / PIXEL_M))
    height = int(np.ceil((y1 - miny) / PIXEL_M))
    transform = Affine(PIXEL_M, 0.0, x0, 0.0, -PIXEL_M, y1)
    inside = features.rasterize(
        [(outline, 1)],
        out_shape=(height, width),
        transform=transform,
        all_touched=True,
        fill=0,
        dtype="uint8",
    ).astype(bool)
    col = np.floor((x - x0) / PIXEL_M).astype(np.int64)
    row = np.floor((y1 - y) / PIXEL_M).astype(np.int64)
    sums = np.bincount(row * width + col, weights=persons, minlength=width * height)
    grid = sums.reshape(height, width)
    if np.any(grid[~inside] != 0):
        raise RuntimeError("residents fell outside the city mask")  # cannot happen: see doc
    out = np.where(inside, grid, NODATA).astype(np.float32)
    return out, transform


def community_table(
    rng: np.random.Generator,
    admin: Admin,
    building_community: np.ndarray,
    residents: np.ndarray,
    community_d: np.ndarray,
) -> pd.DataFrame:
    """Residents and vulnerable groups per community.

    Older neighbourhoods near the centre have more elderly people; the peripheral new towns
    are younger.  Shares vary by community within plausible ranges.
    """
    n = len(admin.community_code)
    pop = np.bincount(building_community, weights=residents, minlength=n).astype(np.int64)
    core = np.clip(1.0 - community_d, 0.0, 1.0)
    s65 = np.clip(0.12 + 0.12 * core + rng.uniform(0.0, 0.06, n), 0.12, 0.30)
    s14 = rng.uniform(0.08, 0.15, n)
    alone = rng.uniform(0.10, 0.25, n)
    chronic = rng.uniform(0.10, 0.20, n)
    n65 = np.rint(pop * s65).astype(np.int64)
    return pd.DataFrame(
        {
            "社区代码": admin.community_code,
            "社区名称": admin.community_name,
            "常住人口": pop,
            "65岁以上": n65,
            "0-14岁": np.rint(pop * s14).astype(np.int64),
            "独居老人": np.rint(n65 * alone).astype(np.int64),
            "慢性病患者": np.rint(pop * chronic).astype(np.int64),
        }
    )
