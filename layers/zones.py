"""Closure zones: fills and outlines by tier (GeoJsonLayer)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import shapely

from layers.labels import STATUSES, TIERS, check_lang, pick
from layers.maplayer import MapLayer, feature_collection, make_layer
from layers.scales import TIER_COLORS, CategoricalScale
from twin.zones import outline_of

__all__ = ["TIER_FILL_ALPHA", "TIER_LINE_WIDTH", "zone_areas"]

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
