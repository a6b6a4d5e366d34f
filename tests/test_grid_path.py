"""``twin.grid.path_cells``: the cells under a brush stroke leave no gaps."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from twin import grid

LON, LAT = 121.47, 31.23


def _connected(cells: np.ndarray) -> bool:
    """Whether the cells form one group of neighbours."""
    todo, seen = [int(cells[0])], {int(cells[0])}
    members = set(map(int, cells))
    while todo:
        here = todo.pop()
        for near in grid.grid_disk(np.array([here], np.uint64), 1).tolist():
            if near in members and near not in seen:
                seen.add(near)
                todo.append(near)
    return seen == members


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-0.01, 0.01), st.floats(-0.01, 0.01)), min_size=1,
                max_size=6))
def test_a_stroke_through_any_points_is_one_connected_run_of_cells(offsets) -> None:
    points = np.array([[LON + dx, LAT + dy] for dx, dy in offsets])
    cells = grid.path_cells(points, 10)
    assert len(cells) >= 1
    assert set(map(int, grid.points_to_cells(points[:, 0], points[:, 1], 10))) <= set(
        map(int, cells))
    assert _connected(cells)


def test_a_wider_brush_adds_rings_and_bad_points_are_skipped() -> None:
    points = np.array([[LON, LAT], [np.nan, LAT], [LON + 0.002, LAT]])
    thin, wide = grid.path_cells(points, 10), grid.path_cells(points, 10, k=1)
    assert set(map(int, thin)) < set(map(int, wide))
    assert np.array_equal(wide, grid.grid_disk(thin, 1))
    assert len(grid.path_cells(np.empty((0, 2)), 10)) == 0
