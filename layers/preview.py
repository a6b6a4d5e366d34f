"""A plain preview of any vector layer's geometry, for the catalog page.

Whatever the kind, one GeoJSON layer: polygons filled lightly with their outline, lines as
lines, points as small circles, in one colour. A layer larger than ``max_features`` is shown
as an evenly spaced sample of it (the legend says how many of how many), so a 100,000-building
version previews as quickly as a small one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from layers.labels import check_lang
from layers.maplayer import MapLayer, feature_collection, make_layer, require_columns
from layers.scales import Legend, LegendStop

__all__ = ["PREVIEW_COLOR", "preview"]

#: One colour for every kind: a preview shows where the data is, not what it says.
PREVIEW_COLOR = (79, 140, 255, 230)


def preview(frame: Any, lang: str = "zh", *, max_features: int = 20_000,
            layer_id: str = "preview", title: tuple[str, str] = ("图层预览", "layer preview")
            ) -> MapLayer:
    """The geometry of ``frame`` (a GeoDataFrame in WGS84), sampled to ``max_features``.

    Raises
    ------
    LayerInputError
        When ``frame`` has no geometry column.
    """
    check_lang(lang)
    require_columns(frame, ["geometry"], "a layer preview")
    n = len(frame)
    keep = (np.linspace(0, n - 1, max_features).round().astype(np.int64) if n > max_features
            else np.arange(n))
    data = feature_collection(frame.geometry.to_numpy()[keep])
    shown = len(data["features"])
    zh, en = title
    item = ((f"显示 {shown:,} / {n:,} 个要素", f"{shown:,} of {n:,} features shown")
            if shown < n else (f"{n:,} 个要素", f"{n:,} features"))
    legend = Legend(layer_id, zh, en, "", "", "categorical",
                    (LegendStop("feature", PREVIEW_COLOR, *item),))
    return make_layer("GeoJsonLayer", layer_id, data, legend=legend, tooltip_html=None,
                      lang=lang, filled=True, stroked=True, extruded=False,
                      get_fill_color=[*PREVIEW_COLOR[:3], 70], get_line_color=list(PREVIEW_COLOR),
                      line_width_min_pixels=1, point_type="circle",
                      get_point_radius=4, point_radius_units="pixels", pickable=False)
