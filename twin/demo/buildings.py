"""Building footprints: one compound per street block, buildings in rows inside it.

Each block of the street grid gets one land use chosen by its distance to the nearest centre
(core: towers, offices, shops; middle: residential; edge: industry, villages, green space).
Buildings of a use-specific template are laid in rows with setbacks; every footprint stays
inside its own row/column cell, so footprints never overlap by construction.  All of it is
vectorised over blocks and buildings (no per-building Python loop).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer

from twin.demo.layout import ROAD_HALF_WIDTH, UTM_CRS, Centres, Grid
from twin.demo.names import _PAIRS, COMPOUND_SUFFIXES
from twin.demo.sizes import DemoSize

__all__ = ["BUILDINGS_CRS", "TEMPLATES", "USES_ZH", "Buildings", "make_buildings"]

#: Output CRS of the buildings file: CGCS2000 / 3-degree Gauss-Kruger CM 120E.
BUILDINGS_CRS = "EPSG:4549"

#: Chinese use labels, in the order of the ``use`` codes.
USES_ZH = ("住宅", "商业", "办公", "工业", "公共", "混合", "其他")

# Building templates: (use code, compound group, bw range, bd range, gx range, gy range,
# floors range, storey height m).  bw/bd are footprint sizes along u/v, gx/gy the gaps.
_T = [
    ("res_tower", 0, "residential", (22, 30), (18, 24), (25, 40), (30, 45), (24, 33), 2.95),
    ("res_slab", 0, "residential", (40, 65), (12, 16), (15, 25), (35, 50), (11, 18), 2.95),
    ("res_mid", 0, "residential", (30, 55), (10, 13), (8, 15), (16, 24), (5, 7), 2.9),
    ("res_low", 0, "residential", (10, 15), (8, 12), (6, 12), (8, 14), (2, 4), 3.0),
    ("commercial", 1, "commercial", (40, 90), (30, 60), (20, 30), (20, 30), (3, 8), 4.5),
    ("office", 2, "office", (30, 45), (25, 40), (30, 45), (30, 45), (12, 45), 3.8),
    ("mixed", 5, "mixed", (30, 50), (18, 28), (18, 28), (20, 30), (8, 25), 3.3),
    ("industrial", 3, "industrial", (60, 120), (30, 60), (15, 25), (15, 25), (1, 3), 6.0),
    ("public", 4, "public", (40, 80), (20, 40), (30, 45), (30, 45), (2, 6), 4.0),
    ("other", 6, "other", (15, 30), (10, 20), (10, 15), (10, 15), (1, 3), 3.5),
    ("green", -1, "", (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), 0.0),
]
TEMPLATES = tuple(t[0] for t in _T)
_USE = np.array([t[1] for t in _T])
_GROUP = [t[2] for t in _T]
_RANGES = np.array([[t[3], t[4], t[5], t[6], t[7]] for t in _T], dtype=float)  # (T, 5, 2)
_STOREY = np.array([t[8] for t in _T])

# Template probabilities in the core (d<0.3), middle (0.3-0.7) and edge (>0.7). Calibrated so
# that residential floor area (mixed-use counted in full) is about 50 m² per resident for the
# `city` size, near China's urban average of ~40 m² of housing per person, with ~100k buildings.
_P = np.array(
    [
        [0.03, 0.02, 0.07, 0.10, 0.15, 0.12, 0.06, 0.00, 0.10, 0.08, 0.27],
        [0.01, 0.01, 0.04, 0.14, 0.05, 0.02, 0.01, 0.10, 0.06, 0.10, 0.46],
        [0.00, 0.005, 0.015, 0.14, 0.02, 0.00, 0.00, 0.25, 0.03, 0.08, 0.46],
    ]
)
_P = _P / _P.sum(axis=1, keepdims=True)


@dataclass
class Buildings:
    """Building arrays (one entry per building) and per-block compound data."""

    u: np.ndarray  # centre in the grid frame (m)
    v: np.ndarray
    w: np.ndarray  # footprint size along u / v (m)
    h: np.ndarray
    x: np.ndarray  # centre in UTM
    y: np.ndarray
    template: np.ndarray  # index into TEMPLATES
    use: np.ndarray  # index into USES_ZH
    floors: np.ndarray
    height: np.ndarray
    block: np.ndarray  # index into block arrays
    area: np.ndarray  # footprint area (m2) in the output CRS
    coords: np.ndarray  # (n, 5, 2) footprint rings in BUILDINGS_CRS
    block_name: np.ndarray  # compound name per block
    block_template: np.ndarray
    block_d: np.ndarray  # scaled distance of the block to the nearest centre
    community: np.ndarray | None = None  # filled in by the caller

    def __len__(self) -> int:
        return len(self.u)

    @property
    def floor_area(self) -> np.ndarray:
        """Gross floor area per building (footprint x floors), m2."""
        return self.area * self.floors


def _shoelace(ring: np.ndarray) -> np.ndarray:
    x, y = ring[..., 0], ring[..., 1]
    return 0.5 * np.abs(np.sum(x[:, :-1] * y[:, 1:] - x[:, 1:] * y[:, :-1], axis=1))


def make_buildings(
    rng: np.random.Generator,
    grid: Grid,
    outline: shapely.Polygon,
    centres: Centres,
    size: DemoSize,
) -> Buildings:
    """Lay out every block of ``grid`` inside ``outline``."""
    shapely.prepare(outline)
    iu, iv = np.meshgrid(
        np.arange(len(grid.u_lines) - 1), np.arange(len(grid.v_lines) - 1), indexing="ij"
    )
    iu, iv = iu.ravel(), iv.ravel()
    cu = 0.5 * (grid.u_lines[iu] + grid.u_lines[iu + 1])
    cv = 0.5 * (grid.v_lines[iv] + grid.v_lines[iv + 1])
    bx, by = grid.to_xy(cu, cv)
    inside = shapely.contains_xy(outline, bx, by)
    iu, iv, cu, cv, bx, by = (a[inside] for a in (iu, iv, cu, cv, bx, by))
    nb = len(iu)

    # Block interior: between the kerbs of the four bounding roads, plus a pavement.
    u0 = grid.u_lines[iu] + ROAD_HALF_WIDTH[grid.u_class[iu]] + 3.0
    u1 = grid.u_lines[iu + 1] - ROAD_HALF_WIDTH[grid.u_class[iu + 1]] - 3.0
    v0 = grid.v_lines[iv] + ROAD_HALF_WIDTH[grid.v_class[iv]] + 3.0
    v1 = grid.v_lines[iv + 1] - ROAD_HALF_WIDTH[grid.v_class[iv + 1]] - 3.0

    d = centres.distance(bx, by)
    zone = np.digitize(d, [0.3, 0.7])
    cum = np.cumsum(_P, axis=1)[zone]
    tmpl = (rng.random(nb)[:, None] > cum).sum(axis=1).clip(max=len(_T) - 1)
    # Size-specific character: a small town has much open land, a megacity's periphery
    # is full of villages.
    r = rng.random(nb)
    tmpl[(zone == 2) & (r < size.village_share)] = TEMPLATES.index("res_low")
    tmpl[(zone >= 1) & (rng.random(nb) < size.green_extra)] = TEMPLATES.index("green")

    lo, hi = _RANGES[tmpl, :, 0], _RANGES[tmpl, :, 1]
    par = lo + (hi - lo) * rng.random((nb, 5))
    bw, bd, gx, gy, base_floors = par.T
    setback = rng.uniform(5.0, 12.0, nb)
    aw = np.maximum(u1 - u0 - 2 * setback, 0.0)
    ah = np.maximum(v1 - v0 - 2 * setback, 0.0)
    green = _USE[tmpl] < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        nx = np.where(green, 0, np.floor((aw + gx) / (bw + gx))).astype(np.int64)
        ny = np.where(green, 0, np.floor((ah + gy) / (bd + gy))).astype(np.int64)
    nx, ny = np.maximum(nx, 0), np.maximum(ny, 0)
    counts = nx * ny

    b = np.repeat(np.arange(nb), counts)
    n = len(b)
    k = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    col, row = k % nx[b], k // nx[b]
    span_u = nx * bw + (nx - 1) * gx
    span_v = ny * bd + (ny - 1) * gy
    start_u = u0 + setback + (aw - span_u) / 2
    start_v = v0 + setback + (ah - span_v) / 2
    # Shrink a little and shift within the slack: rows look hand-made, never overlap.
    w = bw[b] * rng.uniform(0.85, 1.0, n)
    h = bd[b] * rng.uniform(0.85, 1.0, n)
    u = start_u[b] + col * (bw[b] + gx[b]) + bw[b] / 2 + rng.uniform(-0.5, 0.5, n) * (bw[b] - w)
    v = start_v[b] + row * (bd[b] + gy[b]) + bd[b] / 2 + rng.uniform(-0.5, 0.5, n) * (bd[b] - h)

    # Keep buildings whose four corners are inside the city.
    cu4 = u[:, None] + np.array([-0.5, 0.5, 0.5, -0.5]) * w[:, None]
    cv4 = v[:, None] + np.array([-0.5, -0.5, 0.5, 0.5]) * h[:, None]
    x4, y4 = grid.to_xy(cu4, cv4)
    keep = shapely.contains_xy(outline, x4, y4).all(axis=1)
    b, u, v, w, h, x4, y4 = (a[keep] for a in (b, u, v, w, h, x4, y4))
    n = len(b)
    x, y = grid.to_xy(u, v)

    t = tmpl[b]
    flo, fhi = _RANGES[t, 4, 0], _RANGES[t, 4, 1]
    floors = np.clip(np.rint(base_floors[b] + rng.normal(0, 1.2, n)), flo, fhi).astype(np.int32)
    height = np.round(floors * _STOREY[t] + rng.uniform(0.3, 2.5, n), 1)

    tr = Transformer.from_crs(UTM_CRS, BUILDINGS_CRS, always_xy=True)
    gx4, gy4 = tr.transform(x4.ravel(), y4.ravel())
    ring = np.stack([gx4.reshape(n, 4), gy4.reshape(n, 4)], axis=-1)
    ring = np.concatenate([ring, ring[:, :1]], axis=1)
    area = _shoelace(ring)

    # Compound names: a two-character stem plus a suffix fitting the use.
    stems = _PAIRS[rng.integers(0, len(_PAIRS), nb)]
    names = np.empty(nb, dtype=object)
    for ti, group in enumerate(_GROUP):
        sel = tmpl == ti
        if not group or not sel.any():
            names[sel] = ""
            continue
        suf = np.array(COMPOUND_SUFFIXES[group])
        names[sel] = np.char.add(stems[sel], suf[rng.integers(0, len(suf), sel.sum())])

    return Buildings(
        u=u,
        v=v,
        w=w,
        h=h,
        x=x,
        y=y,
        template=t,
        use=_USE[t],
        floors=floors,
        height=height,
        block=b,
        area=area,
        coords=ring,
        block_name=names,
        block_template=tmpl,
        block_d=d,
    )
