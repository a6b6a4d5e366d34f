"""Facilities by kind (colour by group) with capacity (radius), as a ScatterplotLayer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from layers.labels import FACILITY_KINDS, check_lang, pick
from layers.maplayer import COLOR_ACCESSOR, MapLayer, make_layer, require_columns, with_colors
from layers.scales import FACILITY_GROUPS, CategoricalScale, Legend, LegendStop

__all__ = ["RADIUS_RANGE_M", "facilities", "facility_group", "radius_m"]

#: Marker radius in metres: the smallest facility and the cap (area grows with capacity).
RADIUS_RANGE_M = (25.0, 250.0)
_KIND_GROUP = {kind: group for group, (_, kinds, _, _) in FACILITY_GROUPS.items()
               for kind in kinds}


def facility_group(kind: str) -> str:
    """The colour group of a facility kind (``"other"`` when unknown)."""
    return _KIND_GROUP.get(kind, "other")


def radius_m(capacity: Any, reference: float) -> np.ndarray:
    """Radius in metres: marker area proportional to capacity, ``reference`` -> the cap."""
    cap = np.nan_to_num(np.asarray(capacity, dtype=float), nan=0.0).clip(min=0.0)
    lo, hi = RADIUS_RANGE_M
    ref = reference if reference > 0 else 1.0
    return np.clip(lo + (hi - lo) * np.sqrt(cap / ref), lo, hi)


def facilities(frame: Any, lang: str = "zh", *, kinds: tuple[str, ...] | None = None,
               layer_id: str = "facilities") -> MapLayer:
    """Facilities (``ws.read("facilities")``: id, kind, name, capacity, points) as circles.

    Colour tells the group (medical, daily supplies, warehouses, isolation and care; Okabe-Ito),
    area tells the capacity within each kind's units (radius scaled to the 95th percentile
    capacity). ``kinds`` keeps only those kinds.
    """
    check_lang(lang)
    require_columns(frame, ["kind", "name", "geometry"], "facilities")
    if kinds is not None:
        frame = frame[frame["kind"].isin(kinds)]
    frame = frame[~frame.geometry.is_empty & frame.geometry.notna()]
    capacity = (pd.to_numeric(frame["capacity"], errors="coerce") if "capacity" in frame
                else pd.Series(np.nan, index=frame.index))
    unit = (frame["capacity_unit"].fillna("").astype(str) if "capacity_unit" in frame
            else pd.Series("", index=frame.index))
    kind = frame["kind"].astype(str)
    groups = kind.map(facility_group)
    reference = float(np.nanpercentile(capacity, 95)) if capacity.notna().any() else 1.0
    out = pd.DataFrame({
        "lon": frame.geometry.x.round(6).to_numpy(), "lat": frame.geometry.y.round(6).to_numpy(),
        "radius": radius_m(capacity, reference).round(0).astype(np.int16),
        "name": frame["name"].astype(str).to_numpy(),
        "kind": kind.map(lambda k: pick(FACILITY_KINDS, k, lang)).to_numpy(dtype=object),
        "capacity": [("—" if not np.isfinite(c) else f"{c:,.0f} {u}".strip())
                     for c, u in zip(capacity.to_numpy(dtype=float), unit, strict=True)],
    })
    scale = CategoricalScale({g: c for g, (c, _, _, _) in FACILITY_GROUPS.items()},
                             {g: (zh, en) for g, (_, _, zh, en) in FACILITY_GROUPS.items()},
                             alpha=230)
    out = with_colors(out, scale.rgba(groups))
    base = scale.legend("facilities", ("设施", "facilities"),
                        note=("圆面积表示容量", "circle area shows capacity"))
    stops = []
    for group, stop in zip(FACILITY_GROUPS, base.stops, strict=True):
        members = FACILITY_GROUPS[group][1]
        zh = "、".join(pick(FACILITY_KINDS, k, "zh") for k in members)
        en = ", ".join(pick(FACILITY_KINDS, k, "en") for k in members)
        stops.append(LegendStop(group, stop.color, f"{stop.label_zh}（{zh}）",
                                f"{stop.label_en} ({en})"))
    legend = Legend(base.key, base.title_zh, base.title_en, base.unit_zh, base.unit_en,
                    base.kind, tuple(stops), base.note_zh, base.note_en)
    if lang == "zh":
        html = "<b>{name}</b><br/>{kind}<br/>容量 {capacity}"
    else:
        html = "<b>{name}</b><br/>{kind}<br/>capacity {capacity}"
    return make_layer("ScatterplotLayer", layer_id, out, legend=legend, tooltip_html=html,
                      lang=lang, get_position="[lon, lat]", get_radius="radius",
                      radius_units="meters", radius_min_pixels=3, radius_max_pixels=40,
                      get_fill_color=COLOR_ACCESSOR, stroked=True,
                      get_line_color=[255, 255, 255, 200], line_width_min_pixels=1,
                      pickable=True, auto_highlight=True)
