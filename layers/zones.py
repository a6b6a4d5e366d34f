"""Closure zones: fills and outlines by tier (GeoJsonLayer)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import shapely

from layers.hexes import hex_ids
from layers.labels import STATUSES, TIERS, check_lang, pick
from layers.maplayer import (
    COLOR_ACCESSOR,
    MapLayer,
    feature_collection,
    make_layer,
    outline_segments,
    with_colors,
)
from layers.scales import TIER_COLORS, CategoricalScale
from twin.zones import outline_of

__all__ = ["TIER_FILL_ALPHA", "TIER_LINE_WIDTH", "zone_areas", "zone_layers"]

#: Fill opacity by status: proposed zones are fainter than active ones.
TIER_FILL_ALPHA = {"active": 110, "proposed": 50, "lifted": 20}
#: Outline width in pixels by tier (the stricter, the heavier).
TIER_LINE_WIDTH = {"lockdown": 3.0, "control": 2.0, "prevention": 1.5}


def _geometry(zone: Any) -> Any:
    if getattr(zone, "outline", None) is not None:
        return shapely.from_wkb(zone.outline)
    cells = np.asarray(zone.cells, dtype=np.uint64)
    return outline_of(cells) if len(cells) else None


def zone_areas(zones: Iterable[Any], lang: str = "zh", *, layer_id: str = "zones",
               statuses: tuple[str, ...] = ("proposed", "active")) -> MapLayer:
    """Zones (``twin.zones.ZoneVersion``) as tier-coloured fills with outlines.

    The drawn outline is used when the zone has one, else the dissolved outline of its cells.
    Lockdown draws on top of control on top of prevention.
    """
    check_lang(lang)
    order = {"prevention": 0, "control": 1, "lockdown": 2}
    chosen = sorted((z for z in zones if z.status in statuses),
                    key=lambda z: (order.get(z.tier, -1), z.zone_id))
    scale = CategoricalScale(TIER_COLORS, TIERS, alpha=255,
                             order=("lockdown", "control", "prevention"))
    geoms, rows = [], []
    for zone in chosen:
        rgb = scale.color(zone.tier)[:3]
        geoms.append(_geometry(zone))
        rows.append({"id": zone.zone_id, "name": zone.name, "tier": pick(TIERS, zone.tier, lang),
                     "status": pick(STATUSES, zone.status, lang), "version": int(zone.version),
                     "cells": len(zone.cells), "valid_from": zone.valid_from,
                     "fill": [*rgb, TIER_FILL_ALPHA.get(zone.status, 60)], "line": [*rgb, 255],
                     "w": TIER_LINE_WIDTH.get(zone.tier, 1.0)})
    data = feature_collection(np.asarray(geoms, dtype=object), pd.DataFrame(rows))
    legend = scale.legend("zones", ("管控区域", "zones"),
                          note=("实色为生效，浅色为建议", "solid: active; faint: proposed"))
    if lang == "zh":
        html = ("<b>{properties.tier}</b>（{properties.status}）<br/>{properties.name}<br/>"
                "{properties.cells} 个网格 · 自 {properties.valid_from} 起 · 第 "
                "{properties.version} 版")
    else:
        html = ("<b>{properties.tier}</b> ({properties.status})<br/>{properties.name}<br/>"
                "{properties.cells} cells · from {properties.valid_from} · version "
                "{properties.version}")
    return make_layer("GeoJsonLayer", layer_id, data, legend=legend, tooltip_html=html,
                      lang=lang, filled=True, stroked=True, get_fill_color="properties.fill",
                      get_line_color="properties.line", get_line_width="properties.w",
                      line_width_units="pixels", line_width_min_pixels=1, pickable=True,
                      auto_highlight=True)


def zone_layers(zones: Iterable[Any], outlines: Iterable[Any], lang: str = "zh", *,
                layer_id: str = "zones", faint: bool = False) -> list[MapLayer]:
    """Zones as two lean layers: their cells filled by tier (``H3HexagonLayer``) and their
    outlines (``LineLayer`` of the dissolved ``outlines``, one geometry per zone).

    Both are numeric or short-text columns that Panel sends once and then diffs, unlike
    GeoJSON; :func:`zone_areas` is the GeoJSON form for exports and small maps. ``faint``
    draws proposals lightly. Lockdown cells win over control over prevention where zones
    overlap.
    """
    check_lang(lang)
    zones = list(zones)
    geoms = list(outlines)
    order = {"prevention": 0, "control": 1, "lockdown": 2}
    scale = CategoricalScale(TIER_COLORS, TIERS, alpha=255,
                             order=("lockdown", "control", "prevention"))
    rows = []
    for zone in zones:
        cells = np.asarray(zone.cells, dtype=np.uint64)
        rows.append(pd.DataFrame({"cell": cells, "rank": order.get(zone.tier, -1),
                                  "zone": zone.zone_id}))
    cells = (pd.concat(rows, ignore_index=True) if rows
             else pd.DataFrame({"cell": np.empty(0, np.uint64), "rank": [], "zone": []}))
    cells = cells.sort_values("rank", kind="stable").drop_duplicates("cell", keep="last")
    by_id = {z.zone_id: z for z in zones}
    alpha = 45 if faint else 95
    fill = pd.DataFrame({"hex": hex_ids(cells["cell"].to_numpy(np.uint64))})
    fill["zone"] = [f"{by_id[z].name} · {pick(TIERS, by_id[z].tier, lang)}"
                    for z in cells["zone"]]
    rgba = np.array([[*scale.color(by_id[z].tier)[:3], alpha] for z in cells["zone"]],
                    dtype=np.uint8).reshape(-1, 4)
    fill = with_colors(fill, rgba)
    note = (("虚线浅色为建议区域", "faint: proposed") if faint
            else ("按所选日期生效", "as valid on the chosen date"))
    legend = scale.legend(layer_id, ("建议区域", "proposed zones") if faint
                          else ("管控区域", "zones"), note=note)
    html = "{zone}"
    out = [make_layer("H3HexagonLayer", f"{layer_id}_cells", fill, legend=legend,
                      tooltip_html=html, lang=lang, get_hexagon="hex",
                      get_fill_color=COLOR_ACCESSOR, filled=True, stroked=False,
                      extruded=False, pickable=True)]
    lines = outline_segments(np.asarray(geoms, dtype=object),
                             owner=[z.tier for z in zones])
    width = np.array([TIER_LINE_WIDTH.get(t, 1.0) for t in lines["owner"]], dtype=np.float32)
    colors = np.array([[*scale.color(t)[:3], 150 if faint else 255] for t in lines["owner"]],
                      dtype=np.uint8).reshape(-1, 4)
    lines = with_colors(lines.drop(columns="owner"), colors)
    lines["w"] = width * (0.6 if faint else 1.0)
    out.append(make_layer("LineLayer", f"{layer_id}_lines", lines, legend=None,
                          tooltip_html=None, lang=lang, get_source_position=["x0", "y0"],
                          get_target_position=["x1", "y1"], get_color=COLOR_ACCESSOR,
                          get_width="w", width_units="pixels", width_min_pixels=1,
                          pickable=False))
    return out

