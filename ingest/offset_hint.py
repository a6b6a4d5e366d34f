"""Catch a Chinese web map's offset that nobody declared.

A file exported from a Chinese web map (AMap, Tencent: GCJ-02; Baidu: BD-09) and loaded as
plain WGS84 validates: it is inside the city, only 300–700 m off. The check compares the new
features with the layers already in the workspace (boundaries, roads, then buildings): when
they sit much nearer to those layers once the GCJ-02 or BD-09 offset is undone than as given,
the file most likely carries that offset, and the report says so with the ``--coords`` to use.
"""

from __future__ import annotations

import numpy as np
import shapely

from ingest.report import Report
from twin.offsets import bd09_to_wgs84, gcj02_to_wgs84
from twin.store import Workspace

__all__ = ["REFERENCE_KINDS", "check_offset", "nearest_distances_m", "sample_points"]

#: Layers the new features are compared with, in order of preference.
REFERENCE_KINDS = ("boundaries", "roads", "buildings")
_SAMPLE = 2000
_REFERENCE_ROWS = 20000
# As given, the features must be this far from the reference (median), and undoing an
# offset must bring them at least this many times nearer. The floor is low because the
# nearest street of a grid shifted by 500 m may be only ~50 m away; the gain is what tells.
_MIN_MEDIAN_M = 20.0
_MIN_GAIN = 3.0
_M_PER_DEG = 111_320.0


def nearest_distances_m(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Distance in metres from each point (lon, lat rows) to the nearest reference geometry.

    A local equirectangular projection is exact enough for the few hundred metres at stake.
    """
    lat0 = float(np.nanmedian(points[:, 1])) if len(points) else 0.0
    scale = np.array([_M_PER_DEG * np.cos(np.radians(lat0)), _M_PER_DEG])

    def local(xy: np.ndarray) -> np.ndarray:
        return xy * scale

    tree = shapely.STRtree(shapely.transform(reference, local))
    _, distance = tree.query_nearest(shapely.points(local(points)), return_distance=True,
                                     all_matches=False)
    return distance


def sample_points(geoms: np.ndarray, seed: int = 0) -> np.ndarray:
    """Up to 2,000 vertices of ``geoms``, as (lon, lat) rows, drawn from 2,000 features."""
    rng = np.random.default_rng(seed)
    if len(geoms) > _SAMPLE:
        geoms = geoms[rng.choice(len(geoms), _SAMPLE, replace=False)]
    coords = shapely.get_coordinates(geoms)
    if len(coords) > _SAMPLE:
        coords = coords[rng.choice(len(coords), _SAMPLE, replace=False)]
    return coords


def _reference(workspace: Workspace) -> tuple[str, np.ndarray] | None:
    # The target layer's own current version counts too: a new version that sits off the
    # old one in the offset's direction is caught, and one that corrects an offset old
    # version moves the other way, so it is not.
    by_kind: dict[str, str] = {}
    for info in workspace.layers():
        if info.kind in REFERENCE_KINDS:
            by_kind.setdefault(info.kind, info.name)
    for kind in REFERENCE_KINDS:
        if kind in by_kind:
            frame = workspace.read(by_kind[kind], geometry_only=True)
            geoms = np.asarray(frame.geometry.values, dtype=object)
            if len(geoms) > _REFERENCE_ROWS:
                geoms = geoms[np.random.default_rng(0).choice(len(geoms), _REFERENCE_ROWS,
                                                              replace=False)]
            if kind == "boundaries":  # compare with the lines, not the areas they enclose
                geoms = shapely.boundary(geoms)
            return by_kind[kind], geoms
    return None


def check_offset(points: np.ndarray, workspace: Workspace, layer: str, report: Report, *,
                 count: int) -> None:
    """Warn ``offset_suspected`` when features loaded as WGS84 look GCJ-02 or BD-09 shifted.

    Parameters
    ----------
    points
        (lon, lat) rows sampled from the clean features (:func:`sample_points`).
    workspace
        Its other layers are the reference.
    layer
        The target layer (named in the report's facts).
    report
        Receives the warning, and ``info["offset_check"]`` with the median distances.
    count
        The number of features, for the warning.
    """
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    if not len(points):
        return
    reference = _reference(workspace)
    if reference is None:
        return
    name, geoms = reference
    if not len(geoms):
        return
    medians = {"wgs84": float(np.median(nearest_distances_m(points, geoms)))}
    for coords, undo in (("gcj02", gcj02_to_wgs84), ("bd09", bd09_to_wgs84)):
        lon, lat = undo(points[:, 0], points[:, 1])
        medians[coords] = float(np.median(nearest_distances_m(np.column_stack([lon, lat]),
                                                              geoms)))
    report.info["offset_check"] = {"layer": layer, "reference": name,
                                   **{k: round(v, 1) for k, v in medians.items()}}
    best = min(("gcj02", "bd09"), key=medians.__getitem__)
    if medians["wgs84"] >= _MIN_MEDIAN_M and medians[best] * _MIN_GAIN <= medians["wgs84"]:
        label = {"gcj02": "GCJ-02 (AMap, Tencent)", "bd09": "BD-09 (Baidu)"}[best]
        report.warning(
            "offset_suspected",
            f"the features sit a median {medians['wgs84']:,.0f} m from layer {name!r}, but "
            f"only {medians[best]:,.0f} m once the {label} offset of Chinese web maps is "
            f"undone: the file most likely comes from such a map; load it again with "
            f"--coords {best}", count=count)
