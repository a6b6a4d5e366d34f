"""Road network along the block grid, clipped to the city and split at every intersection."""

from __future__ import annotations

import numpy as np
import shapely

from twin.demo.layout import ROAD_CLASSES, ROAD_SPEED, Grid

__all__ = ["make_roads"]


def make_roads(
    grid: Grid, outline: shapely.Polygon
) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    """Road segments between consecutive grid intersections, in UTM.

    Returns
    -------
    tuple
        ``(geometries, names, classes, speeds)``: LineStrings (UTM), road names, Chinese
        classes (快速路/主干路/次干路/支路) and speed limits in km/h.  Segments crossing the
        outline are cut at it; a segment the outline cuts twice gives two rows.
    """
    nu, nv = len(grid.u_lines), len(grid.v_lines)
    # Lines of constant u: segments between consecutive v lines (and vice versa).
    iu, jv = np.meshgrid(np.arange(nu), np.arange(nv - 1), indexing="ij")
    iu, jv = iu.ravel(), jv.ravel()
    a_u = np.stack([np.full(len(iu), 0.0) + grid.u_lines[iu]] * 2, axis=1)
    a_v = np.stack([grid.v_lines[jv], grid.v_lines[jv + 1]], axis=1)
    ju, iv = np.meshgrid(np.arange(nu - 1), np.arange(nv), indexing="ij")
    ju, iv = ju.ravel(), iv.ravel()
    b_u = np.stack([grid.u_lines[ju], grid.u_lines[ju + 1]], axis=1)
    b_v = np.stack([grid.v_lines[iv]] * 2, axis=1)
    su = np.concatenate([a_u, b_u])
    sv = np.concatenate([a_v, b_v])
    x, y = grid.to_xy(su, sv)
    names = np.array([*np.array(grid.u_names)[iu], *np.array(grid.v_names)[iv]], dtype=object)
    cls = np.concatenate([grid.u_class[iu], grid.v_class[iv]])

    segs = shapely.linestrings(np.stack([x, y], axis=-1))
    shapely.prepare(outline)
    hit = shapely.intersects(outline, segs)
    segs, names, cls = segs[hit], names[hit], cls[hit]
    inside = shapely.contains(outline, segs)
    clipped = segs.copy()
    clipped[~inside] = shapely.intersection(segs[~inside], outline)
    parts, idx = shapely.get_parts(clipped, return_index=True)
    keep = (shapely.get_type_id(parts) == 1) & (shapely.length(parts) > 1.0)
    parts, idx = parts[keep], idx[keep]
    return (
        parts,
        names[idx].tolist(),
        np.array(ROAD_CLASSES)[cls[idx]].tolist(),
        ROAD_SPEED[cls[idx]],
    )
