"""City outline, centres, street grid and nested administrative boundaries (all in UTM 51N).

Everything geometric is built in a metric CRS (EPSG:32651) around a fixed centre near
Shanghai and only transformed to each file's CRS when written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer

from twin.demo.names import unique_names
from twin.demo.sizes import DemoSize

__all__ = [
    "CENTRE_LONLAT",
    "UTM_CRS",
    "Admin",
    "Centres",
    "Grid",
    "make_admin",
    "make_centres",
    "make_grid",
    "make_outline",
    "to_crs",
]

#: Centre of the demo city (WGS84 longitude, latitude), near People's Square in Shanghai.
CENTRE_LONLAT = (121.47, 31.23)
UTM_CRS = "EPSG:32651"

#: Half widths (m) of the road classes, used to set blocks back from the road centre line.
ROAD_CLASSES = ("快速路", "主干路", "次干路", "支路")
ROAD_HALF_WIDTH = np.array([25.0, 18.0, 12.0, 7.0])
ROAD_SPEED = np.array([80, 60, 40, 30])


def to_crs(x: np.ndarray, y: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Transform UTM 51N coordinates to another CRS (x/y order: lon, lat for geographic)."""
    tr = Transformer.from_crs(UTM_CRS, crs, always_xy=True)
    return tr.transform(x, y)


def centre_utm() -> tuple[float, float]:
    """UTM coordinates of :data:`CENTRE_LONLAT`."""
    tr = Transformer.from_crs("EPSG:4326", UTM_CRS, always_xy=True)
    x, y = tr.transform(*CENTRE_LONLAT)
    return float(x), float(y)


def make_outline(rng: np.random.Generator, size: DemoSize) -> shapely.Polygon:
    """An irregular blob of the requested area around the centre.

    The radius is a sum of a few low harmonics with random phases, so the outline is smooth,
    star-shaped (hence valid) and clearly not a rectangle or circle.
    """
    cx, cy = centre_utm()
    theta = np.linspace(0.0, 2.0 * np.pi, 721)[:-1]
    r = np.ones_like(theta)
    for k, amp in ((2, 0.12), (3, 0.08), (4, 0.05), (5, 0.04), (7, 0.025), (11, 0.015)):
        r += amp * rng.uniform(0.5, 1.0) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    # Area of a star-shaped polar curve: 1/2 * integral r^2 dtheta.
    area = 0.5 * np.sum(r**2) * (theta[1] - theta[0])
    r *= np.sqrt(size.area_km2 * 1e6 / area)
    ring = np.column_stack([cx + r * np.cos(theta), cy + r * np.sin(theta)])
    return shapely.polygons(np.vstack([ring, ring[:1]]))


@dataclass(frozen=True)
class Centres:
    """Dense cores of the city: the main centre and secondary ones, each with a radius.

    ``distance(x, y)`` is the scaled distance to the nearest core (0 at a core, about 1 at
    the city edge); it drives block size, land use, floors and density.
    """

    xy: np.ndarray
    radius: np.ndarray

    def distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Scaled distance to the nearest centre (dimensionless)."""
        x = np.asarray(x, dtype=float)[..., None]
        y = np.asarray(y, dtype=float)[..., None]
        d = np.hypot(x - self.xy[:, 0], y - self.xy[:, 1]) / self.radius
        return d.min(axis=-1)


def make_centres(rng: np.random.Generator, size: DemoSize, outline: shapely.Polygon) -> Centres:
    """The main centre plus ``size.n_subcentres`` secondary cores inside the outline."""
    cx, cy = centre_utm()
    big_r = np.sqrt(size.area_km2 * 1e6 / np.pi)
    xy = [(cx, cy)]
    radius = [big_r]
    shapely.prepare(outline)
    while len(xy) < 1 + size.n_subcentres:
        ang = rng.uniform(0, 2 * np.pi)
        dist = rng.uniform(0.35, 0.75) * big_r
        px, py = cx + dist * np.cos(ang), cy + dist * np.sin(ang)
        far = all(np.hypot(px - qx, py - qy) > 0.3 * big_r for qx, qy in xy)
        if far and shapely.contains_xy(outline, px, py):
            xy.append((px, py))
            radius.append(big_r * rng.uniform(0.3, 0.45))
    return Centres(np.array(xy), np.array(radius))


def density(centres: Centres, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Relative residential density (1 at a core, ~0.15 at the edge)."""
    d = centres.distance(x, y)
    return 0.15 + 0.85 * np.exp(-1.8 * d**2)


# --------------------------------------------------------------------------- street grid


@dataclass(frozen=True)
class Grid:
    """A rotated street grid; blocks are the cells between consecutive grid lines.

    Coordinates ``u``, ``v`` are in the grid frame: ``x = cx + u cos(a) - v sin(a)``,
    ``y = cy + u sin(a) + v cos(a)``.
    """

    origin: tuple[float, float]
    angle: float
    u_lines: np.ndarray  # positions of lines of constant u (running along v)
    v_lines: np.ndarray
    u_class: np.ndarray  # road class index (into ROAD_CLASSES) of each u line
    v_class: np.ndarray
    u_names: list[str]
    v_names: list[str]

    def to_xy(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid frame to UTM."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        return self.origin[0] + u * c - v * s, self.origin[1] + u * s + v * c

    def to_uv(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """UTM to grid frame."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        dx, dy = np.asarray(x) - self.origin[0], np.asarray(y) - self.origin[1]
        return dx * c + dy * s, -dx * s + dy * c


def _grid_lines(rng: np.random.Generator, half: float, size: DemoSize, big_r: float) -> np.ndarray:
    """Line positions from -half to +half, spacing growing from core to edge."""
    pos = [0.0]
    for sign in (1.0, -1.0):
        p = 0.0
        while abs(p) < half:
            t = min(abs(p) / big_r, 1.0)
            step = (size.block_core_m + (size.block_edge_m - size.block_core_m) * t) * rng.uniform(
                0.85, 1.15
            )
            p += sign * step
            pos.append(p)
    return np.unique(np.round(np.array(pos), 2))


def _line_classes(lines: np.ndarray, size: DemoSize, big_r: float) -> np.ndarray:
    """Road class per grid line: a few expressways, arterials every 4th line, etc."""
    idx = np.arange(len(lines)) - int(np.argmin(np.abs(lines)))
    cls = np.full(len(lines), 3)
    cls[idx % 2 == 0] = 2
    cls[idx % 4 == 0] = 1
    # Expressways roughly every 15 km (at least one per direction), off the centre line.
    n_expr = max(1, round(2 * big_r / 15000.0))
    targets = np.linspace(-big_r, big_r, n_expr + 2)[1:-1] + 0.3 * big_r / max(n_expr, 1)
    for t in targets:
        cls[int(np.argmin(np.abs(lines - t)))] = 0
    return cls


def make_grid(rng: np.random.Generator, size: DemoSize, outline: shapely.Polygon) -> Grid:
    """A slightly rotated grid whose blocks grow from ~150 m in the core to the edge size."""
    cx, cy = centre_utm()
    big_r = np.sqrt(size.area_km2 * 1e6 / np.pi)
    angle = np.deg2rad(rng.uniform(6.0, 18.0))
    minx, miny, maxx, maxy = outline.bounds
    half = max(maxx - minx, maxy - miny) * 0.75
    u_lines = _grid_lines(rng, half, size, big_r)
    v_lines = _grid_lines(rng, half, size, big_r)
    names = unique_names(rng, len(u_lines) + len(v_lines), "")
    u_cls = _line_classes(u_lines, size, big_r)
    v_cls = _line_classes(v_lines, size, big_r)
    suffix = np.array(["快速路", "大道", "路", "路"])
    u_names = [n + suffix[c] for n, c in zip(names[: len(u_lines)], u_cls, strict=True)]
    v_suffix = np.array(["高架路", "大道", "街", "街"])
    v_names = [n + v_suffix[c] for n, c in zip(names[len(u_lines) :], v_cls, strict=True)]
    return Grid((cx, cy), float(angle), u_lines, v_lines, u_cls, v_cls, u_names, v_names)


# --------------------------------------------------------------------- admin boundaries


@dataclass
class Admin:
    """Nested administrative units.  Geometries are UTM; ``*_4490`` ones are CGCS2000."""

    district_code: list[str]
    district_name: list[str]
    street_code: list[str]
    street_name: list[str]
    street_district: np.ndarray  # index into districts
    community_code: list[str]
    community_name: list[str]
    community_street: np.ndarray  # index into streets
    community_utm: np.ndarray  # shapely polygons
    community_4490: np.ndarray
    street_4490: np.ndarray
    district_4490: np.ndarray


def _sample_in(
    rng: np.random.Generator, poly: shapely.Geometry, n: int, centres: Centres
) -> np.ndarray:
    """``n`` random points inside ``poly``, denser near the centres (rejection sampling)."""
    minx, miny, maxx, maxy = poly.bounds
    shapely.prepare(poly)
    out: list[np.ndarray] = []
    got = 0
    while got < n:
        m = max(64, 4 * (n - got))
        x = rng.uniform(minx, maxx, m)
        y = rng.uniform(miny, maxy, m)
        ok = shapely.contains_xy(poly, x, y) & (rng.random(m) < density(centres, x, y))
        pts = np.column_stack([x[ok], y[ok]])
        out.append(pts)
        got += len(pts)
    return np.vstack(out)[:n]


def _split(
    rng: np.random.Generator, poly: shapely.Geometry, n: int, centres: Centres
) -> list[shapely.Geometry]:
    """Split ``poly`` into ``n`` Voronoi cells (one Lloyd step for rounder cells)."""
    if n <= 1:
        return [poly]
    seeds = _sample_in(rng, poly, n, centres)
    for lloyd in range(2):
        cells = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=poly, ordered=True)
        cells = shapely.intersection(shapely.get_parts(cells), poly)
        if lloyd == 0:
            cent = shapely.get_coordinates(shapely.centroid(cells))
            if len(cent) == n and np.all(shapely.contains_xy(poly, cent[:, 0], cent[:, 1])):
                seeds = cent
    return [c for c in cells if not c.is_empty]


def _allocate(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers >= 1 summing to ``total`` proportional to ``weights`` (largest remainder)."""
    k = len(weights)
    quota = weights / weights.sum() * (total - k)
    base = np.floor(quota).astype(int)
    rest = total - k - base.sum()
    order = np.argsort(-(quota - base), kind="stable")
    base[order[:rest]] += 1
    return base + 1


def _children(
    rng: np.random.Generator, parents: list[shapely.Geometry], total: int, centres: Centres
) -> tuple[list[shapely.Geometry], np.ndarray]:
    """Split every parent so that the children number ``total``; children are denser (and
    therefore smaller) near the centres, as in real cities."""
    pts = shapely.get_coordinates(shapely.centroid(np.array(parents)))
    w = shapely.area(np.array(parents)) * density(centres, pts[:, 0], pts[:, 1])
    counts = _allocate(w, total)
    kids: list[shapely.Geometry] = []
    parent_idx: list[int] = []
    for i, (p, n) in enumerate(zip(parents, counts, strict=True)):
        cells = _split(rng, p, int(n), centres)
        kids.extend(cells)
        parent_idx.extend([i] * len(cells))
    return kids, np.array(parent_idx)


def make_admin(
    rng: np.random.Generator, size: DemoSize, outline: shapely.Polygon, centres: Centres
) -> Admin:
    """Districts, streets and communities, nested and tiling exactly.

    Cells are drawn top-down (Voronoi inside the parent), then all boundaries are noded
    together and polygonised, so that neighbouring units share identical vertices.  The
    communities are then the unions of their faces, and streets and districts the unions of
    their communities' faces, in the output CRS: nesting and tiling hold by construction,
    without slivers from floating-point clipping or reprojection.
    """
    districts = _split(rng, outline, size.n_districts, centres)
    # Order districts from the centre outwards, so that 990101 is the central district.
    cx, cy = centre_utm()
    dc = shapely.get_coordinates(shapely.centroid(np.array(districts)))
    districts = [districts[i] for i in np.argsort(np.hypot(dc[:, 0] - cx, dc[:, 1] - cy))]
    streets, street_district = _children(rng, districts, size.n_streets, centres)
    comms, comm_street = _children(rng, streets, size.n_communities, centres)
    comm_arr = np.array(comms)

    # Node every boundary once and polygonise: faces share exact vertices.
    lines = shapely.union_all(shapely.boundary(comm_arr))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    tree = shapely.STRtree(comm_arr)
    f_idx, c_idx = tree.query(faces, predicate="intersects")
    inter = shapely.area(shapely.intersection(faces[f_idx], comm_arr[c_idx]))
    order = np.lexsort((-inter, f_idx))
    first = np.unique(f_idx[order], return_index=True)[1]
    face_comm = np.full(len(faces), -1)
    face_comm[f_idx[order][first]] = c_idx[order][first]
    faces = faces[face_comm >= 0]
    face_comm = face_comm[face_comm >= 0]

    tr = Transformer.from_crs(UTM_CRS, "EPSG:4490", always_xy=True)

    def _tr(xy: np.ndarray) -> np.ndarray:
        lon, lat = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    faces_4490 = shapely.transform(faces, _tr)

    def _union_by(groups: np.ndarray, n: int, geoms: np.ndarray) -> np.ndarray:
        order = np.argsort(groups, kind="stable")
        bounds = np.searchsorted(groups[order], np.arange(n + 1))
        out = [shapely.union_all(geoms[order[bounds[i] : bounds[i + 1]]]) for i in range(n)]
        return shapely.normalize(np.array(out))

    n_comm = len(comms)
    comm_utm = _union_by(face_comm, n_comm, faces)
    comm_4490 = _union_by(face_comm, n_comm, faces_4490)
    face_street = comm_street[face_comm]
    street_4490 = _union_by(face_street, len(streets), faces_4490)
    district_4490 = _union_by(street_district[face_street], len(districts), faces_4490)

    d_names = unique_names(rng, len(districts), "区")
    used = {n[:-1] for n in d_names}
    s_names = unique_names(rng, len(streets), "街道", exclude=used)
    used |= {n[:-2] for n in s_names}
    c_names = unique_names(rng, n_comm, "社区", exclude=used)
    d_codes = [f"9901{i + 1:02d}" for i in range(len(districts))]
    s_codes: list[str] = []
    per_parent: dict[int, int] = {}
    for d in street_district:
        per_parent[int(d)] = per_parent.get(int(d), 0) + 1
        s_codes.append(f"{d_codes[d]}{per_parent[int(d)]:03d}")
    c_codes: list[str] = []
    per_parent = {}
    for s in comm_street:
        per_parent[int(s)] = per_parent.get(int(s), 0) + 1
        c_codes.append(f"{s_codes[s]}{per_parent[int(s)]:03d}")
    return Admin(
        district_code=d_codes,
        district_name=d_names,
        street_code=s_codes,
        street_name=s_names,
        street_district=street_district,
        community_code=c_codes,
        community_name=c_names,
        community_street=comm_street,
        community_utm=comm_utm,
        community_4490=comm_4490,
        street_4490=street_4490,
        district_4490=district_4490,
    )
