"""The :class:`MapLayer` every layer function returns, and the helpers they share.

A :class:`MapLayer` holds the ``pdk.Layer``, its lean payload (a DataFrame of numeric columns
where possible, so Panel sends it as binary; a GeoJSON dict for polygons and lines), its legend
and its tooltip template. Colours travel as four ``uint8`` columns ``r, g, b, a`` read by the
accessor ``[r, g, b, a]`` (GeoJSON features carry ``properties.fill`` / ``properties.line``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pydeck as pdk

from layers.errors import LayerInputError
from layers.scales import Legend

__all__ = ["COLOR_ACCESSOR", "TOOLTIP_STYLE", "MapLayer", "bounds_of", "feature_collection",
           "make_layer", "outline_segments", "require_columns", "with_colors"]

#: deck.gl accessor reading the four colour columns.
COLOR_ACCESSOR = "[r, g, b, a]"
#: The tooltip box: dark, readable on a big screen, no external fonts.
TOOLTIP_STYLE: dict[str, str] = {
    "backgroundColor": "rgba(20, 24, 32, 0.92)", "color": "#f0f0f0", "fontSize": "14px",
    "padding": "6px 8px", "borderRadius": "4px", "maxWidth": "360px", "whiteSpace": "normal",
}
#: Decimal places of coordinates sent to the browser (~0.1 m).
COORD_DIGITS = 6


@dataclass(frozen=True)
class MapLayer:
    """One map layer: the pydeck layer, its payload, legend and tooltip (in ``lang``).

    ``data`` is the payload the layer draws — the same rows as ``layer.data`` but kept as a
    DataFrame (typed numeric columns) or a GeoJSON dict; dashboards pass it to Panel through
    :func:`layers.deck.deck_spec`.
    """

    id: str
    layer: pdk.Layer
    data: pd.DataFrame | dict[str, Any]
    legend: Legend | None
    tooltip: dict[str, Any] | None
    lang: str

    def __len__(self) -> int:
        if isinstance(self.data, pd.DataFrame):
            return len(self.data)
        return len(self.data.get("features", []))


def make_layer(kind: str, layer_id: str, data: pd.DataFrame | dict[str, Any], *,
               legend: Legend | None, tooltip_html: str | None, lang: str,
               **props: Any) -> MapLayer:
    """Build the ``pdk.Layer`` and wrap it.

    pydeck turns every string property into a JavaScript expression (``"@@=pixels"``, which
    deck.gl evaluates to ``undefined``); only accessors (``get_*``) are expressions here, so
    the other strings (units, fonts, character sets) are passed as literal strings.
    """
    props = {k: (pdk.types.String(v) if isinstance(v, str) and not k.startswith("get_")
                 else v) for k, v in props.items()}
    # The records are attached only where a whole pydeck Deck is built (layers.deck):
    # pydeck turns a DataFrame into a list of dicts, which Panel never reads (deck_spec
    # sends the frame's columns) and which costs a fifth of a second per 20,000 rows.
    layer = pdk.Layer(kind, None, id=layer_id, **props)
    tooltip = ({"html": tooltip_html, "style": dict(TOOLTIP_STYLE)}
               if tooltip_html is not None else None)
    return MapLayer(layer_id, layer, data, legend, tooltip, lang)


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise :class:`LayerInputError` naming the columns ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LayerInputError(f"{what} needs column(s) {', '.join(missing)}; got "
                              f"{', '.join(map(str, frame.columns))}")


def with_colors(frame: pd.DataFrame, rgba: np.ndarray) -> pd.DataFrame:
    """``frame`` with ``r, g, b, a`` uint8 columns from an ``(n, 4)`` array."""
    rgba = np.asarray(rgba, dtype=np.uint8).reshape(-1, 4)
    out = frame.copy()
    for i, channel in enumerate("rgba"):
        out[channel] = rgba[:, i]
    return out


def _native(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def feature_collection(geometries: Any, properties: pd.DataFrame | None = None, *,
                       digits: int = COORD_DIGITS) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of shapely ``geometries`` (WGS84) with rounded coordinates.

    Empty and missing geometries are dropped with their properties.
    """
    import json

    import shapely

    geoms = np.asarray(geometries, dtype=object)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    geoms = shapely.transform(geoms[keep], lambda xy: np.round(xy, digits))
    texts = shapely.to_geojson(geoms)
    records: list[dict[str, Any]]
    if properties is None:
        records = [{} for _ in range(len(geoms))]
    else:
        props = properties.loc[keep] if len(properties) == len(keep) else properties
        records = [{k: _native(v) for k, v in row.items()}
                   for row in props.to_dict(orient="records")]
    features = [{"type": "Feature", "geometry": json.loads(t), "properties": p}
                for t, p in zip(texts, records, strict=True)]
    return {"type": "FeatureCollection", "features": features}


def bounds_of(data: pd.DataFrame | dict[str, Any]) -> tuple[float, float, float, float] | None:
    """``(west, south, east, north)`` of a payload (``lon``/``lat`` columns or GeoJSON)."""
    if isinstance(data, pd.DataFrame):
        if {"lon", "lat"} <= set(data.columns) and len(data):
            return (float(data["lon"].min()), float(data["lat"].min()),
                    float(data["lon"].max()), float(data["lat"].max()))
        return None
    import shapely

    geoms = [shapely.geometry.shape(f["geometry"]) for f in data.get("features", [])
             if f.get("geometry")]
    if not geoms:
        return None
    b = shapely.total_bounds(np.asarray(geoms, dtype=object))
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


def outline_segments(geometries: Any, owner: Any = None, *, digits: int = COORD_DIGITS,
                     dedupe: bool = True) -> pd.DataFrame:
    """The rings of polygons as straight segments ``x0, y0, x1, y1`` (one row each).

    Segments are plain numeric columns, so Panel sends them as binary buffers and later
    updates only what changed, where GeoJSON travels as text with every change of the map
    (a ``LineLayer`` draws them). With ``dedupe`` a border shared by two polygons is kept
    once; ``owner`` (one value per geometry) adds an ``owner`` column (then no dedupe).
    """
    import shapely

    geoms = np.asarray(geometries, dtype=object)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    rings = shapely.get_rings(shapely.get_parts(geoms[keep]))
    if owner is not None:
        parts, part_of = shapely.get_parts(geoms[keep], return_index=True)
        rings, ring_of = shapely.get_rings(parts, return_index=True)
        owners = np.asarray(owner, dtype=object)[keep][part_of][ring_of]
    coords, ring_index = shapely.get_coordinates(rings, return_index=True)
    coords = np.round(coords, digits)
    same = ring_index[1:] == ring_index[:-1]
    seg = np.column_stack([coords[:-1][same], coords[1:][same]])
    frame = pd.DataFrame(seg, columns=["x0", "y0", "x1", "y1"])
    if owner is not None:
        frame["owner"] = owners[ring_index[:-1][same]]
        return frame.reset_index(drop=True)
    if dedupe and len(frame):
        a = seg[:, :2]
        b = seg[:, 2:]
        flip = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
        canon = np.where(flip[:, None], np.column_stack([b, a]), seg)
        _, first = np.unique(canon, axis=0, return_index=True)
        frame = frame.iloc[np.sort(first)]
    return frame.reset_index(drop=True)

