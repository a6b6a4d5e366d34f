"""The H3 grid: every call into the H3 library lives in this module.

Cells are ``uint64`` inside citytwin; hexadecimal strings appear only at the edges (pydeck,
exports), converted here.
"""

from __future__ import annotations

import functools

import h3

__all__ = ["average_cell_area_m2"]


@functools.cache
def average_cell_area_m2(resolution: int) -> float:
    """Average area of an H3 cell at ``resolution``, in square metres."""
    return float(h3.average_hexagon_area(resolution, unit="m^2"))
