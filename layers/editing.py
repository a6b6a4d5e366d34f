"""Layers of the zone editor: the zone being drawn, a diff between versions, conflicts.

They change on every stroke, so each is one lean ``H3HexagonLayer`` of hexadecimal cells and
four colour columns; outlines are left to deck.gl's cell edges (``stroked``) rather than
dissolved on the server, which would cost more than the stroke itself at 5,000 cells.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from layers.hexes import hex_ids
from layers.labels import TIERS, check_lang, pick
from layers.maplayer import COLOR_ACCESSOR, MapLayer, make_layer, with_colors
from layers.scales import TIER_COLORS, CategoricalScale, Legend, LegendStop

__all__ = ["DIFF_COLORS", "conflict_cells", "diff_cells", "draft_cells"]

#: Cells added (green) and removed (magenta) between two versions; conflicts (orange-white).
DIFF_COLORS: dict[str, tuple[int, int, int]] = {
    "added": (0, 200, 120), "removed": (230, 60, 200), "conflict": (255, 140, 0)}

_DIFF_LABELS = {"added": ("新增单元", "cells added"), "removed": ("移除单元", "cells removed"),
                "conflict": ("冲突单元", "conflicting cells")}


def _legend(key: str, title: tuple[str, str], item: tuple[str, str],
            rgba: tuple[int, int, int, int]) -> Legend:
    return Legend(key, title[0], title[1], "", "", "categorical",
                  (LegendStop(item[1], rgba, item[0], item[1]),))


def _cells_frame(cells: Any, rgba: tuple[int, int, int, int]) -> pd.DataFrame:
    cells = np.asarray(cells, dtype=np.uint64)
    frame = pd.DataFrame({"hex": hex_ids(cells)})
    return with_colors(frame, np.tile(np.asarray(rgba, dtype=np.uint8), (len(frame), 1)))


def draft_cells(cells: Any, tier: str, lang: str = "zh", *,
                layer_id: str = "draft") -> MapLayer:
    """The zone as it is being edited: its cells in the tier's colour, each drawn a little
    smaller than the cell (``coverage``) so that single brushed cells stand apart.

    No outlines: unstroked hexagons of one resolution are drawn by deck.gl as one instanced
    hexagon, while stroked ones become polygons, which took over a second per stroke for a
    5,000-cell zone in software WebGL.
    """
    check_lang(lang)
    scale = CategoricalScale(TIER_COLORS, TIERS, alpha=255,
                             order=("lockdown", "control", "prevention"))
    rgb = scale.color(tier)[:3]
    # One colour for every cell: a constant accessor, not four columns per cell, halves what
    # each stroke sends for a 5,000-cell zone.
    frame = pd.DataFrame({"hex": hex_ids(np.asarray(cells, dtype=np.uint64))})
    name = pick(TIERS, tier, lang)
    legend = _legend(layer_id, ("正在编辑", "being edited"),
                     (pick(TIERS, tier, "zh"), pick(TIERS, tier, "en")), (*rgb, 170))
    return make_layer("H3HexagonLayer", layer_id, frame, legend=legend,
                      tooltip_html=("编辑中 " if lang == "zh" else "editing ") + name,
                      lang=lang, get_hexagon="hex", get_fill_color=[*rgb, 170],
                      filled=True, stroked=False, coverage=0.88, extruded=False,
                      pickable=False)


def diff_cells(added: Any, removed: Any, lang: str = "zh", *,
               layer_id: str = "diff") -> list[MapLayer]:
    """Cells added and removed between two versions of a zone (two layers)."""
    check_lang(lang)
    out = []
    for kind, cells in (("added", added), ("removed", removed)):
        rgb = DIFF_COLORS[kind]
        frame = _cells_frame(cells, (*rgb, 190))
        zh, en = _DIFF_LABELS[kind]
        legend = _legend(f"{layer_id}_{kind}", ("版本差异", "difference"), (zh, en),
                         (*rgb, 190))
        out.append(make_layer("H3HexagonLayer", f"{layer_id}_{kind}", frame, legend=legend,
                              tooltip_html=zh if lang == "zh" else en, lang=lang,
                              get_hexagon="hex", get_fill_color=COLOR_ACCESSOR,
                              get_line_color=[255, 255, 255, 255], filled=True, stroked=True,
                              line_width_units="pixels", get_line_width=1.5,
                              line_width_min_pixels=1, extruded=False, pickable=True))
    return out


def conflict_cells(cells: Any, lang: str = "zh", *, layer_id: str = "conflicts") -> MapLayer:
    """Cells that one planner added and another removed: drawn bright, on top."""
    check_lang(lang)
    rgb = DIFF_COLORS["conflict"]
    zh, en = _DIFF_LABELS["conflict"]
    legend = _legend(layer_id, ("保存冲突", "save conflict"), (zh, en), (*rgb, 230))
    return make_layer("H3HexagonLayer", layer_id, _cells_frame(cells, (*rgb, 230)),
                      legend=legend, tooltip_html=zh if lang == "zh" else en, lang=lang,
                      get_hexagon="hex", get_fill_color=COLOR_ACCESSOR,
                      get_line_color=[255, 255, 255, 255], filled=True, stroked=True,
                      line_width_units="pixels", get_line_width=2, line_width_min_pixels=2,
                      extruded=False, pickable=True)
