"""Residents' requests on the map: each open event as a dot (dispatchers), or counts per grid
unit with small counts suppressed (everyone else: events hold personal data)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from layers.labels import check_lang
from layers.maplayer import COLOR_ACCESSOR, MapLayer, feature_collection, make_layer, with_colors
from layers.privacy import suppress_small_counts
from layers.scales import CASE_RAMP, OKABE_ITO, CategoricalScale, SequentialScale

__all__ = ["CATEGORY_COLORS", "event_counts", "event_points"]

#: A colour per default category (the tooltip and the queue name it; colour alone cannot
#: tell seven classes apart for everyone). Categories added in twin.toml are grey.
CATEGORY_COLORS: dict[str, tuple[int, int, int]] = {
    "supply": OKABE_ITO["yellow"], "medicine": OKABE_ITO["sky_blue"],
    "medical": OKABE_ITO["vermillion"], "assistance": OKABE_ITO["reddish_purple"],
    "breach": OKABE_ITO["orange"], "delivery": OKABE_ITO["bluish_green"],
    "other": OKABE_ITO["grey"],
}
_OVERDUE_LINE = (255, 80, 80, 255)
_ON_TIME_LINE = (255, 255, 255, 160)


def event_points(frame: pd.DataFrame, labels: dict[str, tuple[str, str]], lang: str = "zh", *,
                 now: pd.Timestamp | None = None, layer_id: str = "events") -> MapLayer:
    """Open events (``Events.table()``: id, category, state, lng, lat, due_at, address) as
    dots coloured by category; overdue ones larger with a red ring.

    ``labels`` maps category codes to (Chinese, English) names (``twin.toml``).
    """
    check_lang(lang)
    now = now or pd.Timestamp.now(tz="UTC")
    due = pd.to_datetime(frame["due_at"], utc=True)
    minutes = np.floor((due - now).dt.total_seconds().to_numpy(float) / 60)
    overdue = minutes < 0
    word = 0 if lang == "zh" else 1
    out = pd.DataFrame({
        "lon": frame["lng"].round(6).to_numpy(float), "lat": frame["lat"].round(6).to_numpy(float),
        "id": frame["id"].to_numpy(np.int64),
        "category": [labels.get(c, (c, c))[word] for c in frame["category"].tolist()],
        "state": frame["state"].astype(str).to_numpy(),
        "due": [_due_text(m, lang) for m in minutes.tolist()],
        "address": frame.get("address", pd.Series([""] * len(frame))).astype(str).to_numpy(),
        "radius": np.where(overdue, 9, 6).astype(np.int8),
    })
    scale = CategoricalScale(CATEGORY_COLORS, {c: labels.get(c, (c, c)) for c in
                                               CATEGORY_COLORS}, alpha=235)
    out = with_colors(out, scale.rgba(frame["category"]))
    ring = np.where(overdue[:, None], np.array(_OVERDUE_LINE), np.array(_ON_TIME_LINE))
    for i, channel in enumerate(("lr", "lg", "lb", "la")):
        out[channel] = ring[:, i].astype(np.uint8) if len(out) else np.empty(0, np.uint8)
    legend = scale.legend(layer_id, ("待办事件", "open events"),
                          note=("红圈为超时", "red ring: overdue"))
    html = "<b>#{id} {category}</b><br/>{state} · {due}<br/>{address}"
    return make_layer("ScatterplotLayer", layer_id, out, legend=legend, tooltip_html=html,
                      lang=lang, get_position="[lon, lat]", get_radius="radius",
                      radius_units="pixels", get_fill_color=COLOR_ACCESSOR, stroked=True,
                      get_line_color="[lr, lg, lb, la]", line_width_min_pixels=2,
                      pickable=True, auto_highlight=True)


def _due_text(minutes: float, lang: str) -> str:
    if not np.isfinite(minutes):
        return ""
    m = int(minutes)
    span = f"{abs(m) // 60} h {abs(m) % 60:02d} min" if abs(m) >= 60 else f"{abs(m)} min"
    if lang == "zh":
        return f"超时 {span}" if m < 0 else f"剩余 {span}"
    return f"overdue {span}" if m < 0 else f"due in {span}"


def event_counts(units: Any, counts: pd.Series, lang: str = "zh", *, suppress_below: int = 10,
                 layer_id: str = "event_counts") -> MapLayer:
    """Open events per grid unit (``units``: a GeoDataFrame with ``code``, ``name``,
    ``geometry``; ``counts``: code -> number) shaded by count; counts from 1 to
    ``suppress_below - 1`` are shown as "<N" and drawn like the lowest class."""
    check_lang(lang)
    frame = units[["code", "name", "geometry"]].copy()
    n = frame["code"].map(counts).fillna(0).astype(int).to_numpy()
    keep = n > 0
    frame, n = frame[keep], n[keep]
    shown = np.where(n < suppress_below, 0, n)
    scale = SequentialScale(CASE_RAMP, domain=(0.0, float(max(shown.max(initial=0), 1))))
    rgba = scale.rgba(shown.astype(float))
    rgba[:, 3] = 150
    texts = suppress_small_counts(n, suppress_below)
    props = pd.DataFrame({"name": frame["name"].astype(str).to_numpy(), "n": texts,
                          "fill": [list(map(int, c)) for c in rgba]})
    data = feature_collection(frame.geometry.to_numpy(), props)
    legend = scale.legend(layer_id, ("待办事件（按网格）", "open events by grid unit"),
                          ("件", "events"))
    html = ("<b>{properties.name}</b><br/>待办 {properties.n} 件" if lang == "zh"
            else "<b>{properties.name}</b><br/>{properties.n} open events")
    return make_layer("GeoJsonLayer", layer_id, data, legend=legend, tooltip_html=html,
                      lang=lang, filled=True, stroked=True, get_fill_color="properties.fill",
                      get_line_color=[255, 255, 255, 60], line_width_min_pixels=1,
                      pickable=True)
