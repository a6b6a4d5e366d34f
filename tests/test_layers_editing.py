"""The zone editor's layers: the draft, the diff between versions and conflicts."""

from __future__ import annotations

import numpy as np
import pytest

import layers
from twin import grid


@pytest.fixture
def cells() -> np.ndarray:
    centre = grid.points_to_cells(np.array([121.47]), np.array([31.23]), 10)
    return np.unique(grid.grid_disk(centre, 2))


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_draft_cells_are_one_hexagon_per_cell_in_the_tier_colour(cells, lang) -> None:
    layer = layers.draft_cells(cells, "lockdown", lang)
    assert layer.id == "draft" and len(layer) == len(cells)
    assert set(layer.data["hex"]) == set(grid.cells_to_strings(cells))
    legend = layer.legend.to_dict(lang)
    assert legend["stops"][0]["label"] == ("封控区" if lang == "zh" else "lockdown zone")
    # the lockdown colour (vermillion) with some transparency, one for every cell
    spec = layers.deck_spec([layer], bounds=(121.4, 31.2, 121.5, 31.3))["layers"][0]
    assert spec["getFillColor"] == [213, 94, 0, 170]
    assert spec["coverage"] < 1 and not spec["stroked"]  # one instanced hexagon, no polygons
    assert list(layer.data.columns) == ["hex"]


def test_diff_and_conflict_layers_keep_added_removed_and_disputed_apart(cells) -> None:
    added, removed = layers.diff_cells(cells[:3], cells[3:5], "en")
    assert (added.id, removed.id) == ("diff_added", "diff_removed")
    assert (len(added), len(removed)) == (3, 2)
    assert tuple(added.data[["r", "g", "b"]].iloc[0]) != tuple(removed.data[["r", "g", "b"]]
                                                               .iloc[0])
    conflict = layers.conflict_cells(cells[:1], "zh")
    assert len(conflict) == 1 and conflict.legend.to_dict("zh")["title"] == "保存冲突"
    spec = layers.deck_spec([added, removed, conflict], bounds=(121.4, 31.2, 121.5, 31.3))
    assert [s["@@type"] for s in spec["layers"]] == ["H3HexagonLayer"] * 3


def test_an_empty_draft_is_an_empty_layer() -> None:
    layer = layers.draft_cells(np.empty(0, np.uint64), "control", "zh")
    assert len(layer) == 0
