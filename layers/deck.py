"""Assemble map layers into a deck: no map provider, no map style, no URL.

Two forms: :func:`deck` gives a ``pdk.Deck`` (``map_provider=None, map_style=None``);
:func:`deck_spec` gives the deck.gl JSON dict to hand to Panel's ``DeckGL`` pane, with
``"mapStyle": None`` kept explicitly (Panel drops ``None`` attributes of a ``pdk.Deck`` and
then shows a blank map) and each layer's payload kept as a DataFrame so Panel sends its
numeric columns as binary. Tooltips are per layer (Panel's DeckGL accepts a dict keyed by layer
id); :func:`tooltips` builds it.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pydeck as pdk

from layers.errors import LayerInputError
from layers.labels import check_lang
from layers.maplayer import MapLayer, bounds_of

__all__ = ["deck", "deck_spec", "legends", "tooltips", "view_for_bounds"]

#: deck.gl's web-mercator world is 512 pixels wide at zoom 0 (not the 256 of raster tiles).
_TILE = 512.0


def _merc_y(lat: float) -> float:
    lat = max(min(lat, 85.0), -85.0)
    return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def view_for_bounds(bounds: Sequence[float], *, width: int = 1920, height: int = 1080,
                    padding: float = 0.05, pitch: float = 0.0, bearing: float = 0.0,
                    max_zoom: float = 18.0) -> pdk.ViewState:
    """A view centred on ``(west, south, east, north)`` and zoomed to fit a viewport."""
    west, south, east, north = (float(b) for b in bounds)
    if not all(map(math.isfinite, (west, south, east, north))) or east < west or north < south:
        raise LayerInputError(f"bad bounds {tuple(bounds)}")
    lon_span = max(east - west, 1e-6) * (1 + 2 * padding)
    y_span = max(_merc_y(north) - _merc_y(south), 1e-8) * (1 + 2 * padding)
    zoom_x = math.log2(width * 360.0 / (lon_span * _TILE))
    zoom_y = math.log2(height * 2 * math.pi / (y_span * _TILE))
    zoom = min(zoom_x, zoom_y, max_zoom)
    centre_y = (_merc_y(north) + _merc_y(south)) / 2
    lat = math.degrees(2 * math.atan(math.exp(centre_y)) - math.pi / 2)
    return pdk.ViewState(longitude=round((west + east) / 2, 6), latitude=round(lat, 6),
                         zoom=round(zoom, 2), pitch=pitch, bearing=bearing, min_zoom=8,
                         max_zoom=max_zoom)


def _union_bounds(layers: Sequence[MapLayer]) -> tuple[float, float, float, float] | None:
    boxes = [b for b in (bounds_of(layer.data) for layer in layers) if b is not None]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
            max(b[3] for b in boxes))


def _check(layers: Sequence[MapLayer]) -> None:
    ids = [layer.id for layer in layers]
    if len(set(ids)) != len(ids):
        raise LayerInputError(f"layer ids must be unique, got {ids}")


def tooltips(layers: Sequence[MapLayer]) -> dict[str, dict[str, Any]]:
    """Tooltip templates keyed by layer id (layers without one show none)."""
    return {layer.id: layer.tooltip for layer in layers if layer.tooltip is not None}


def legends(layers: Sequence[MapLayer], lang: str | None = None) -> list[dict[str, Any]]:
    """The layers' legends as JSON-ready dicts (both languages when ``lang`` is None)."""
    return [layer.legend.to_dict(lang) for layer in layers if layer.legend is not None]


def _view(layers: Sequence[MapLayer], bounds: Sequence[float] | None,
          view: pdk.ViewState | None, pitch: float) -> pdk.ViewState:
    if view is not None:
        return view
    box = bounds if bounds is not None else _union_bounds(layers)
    if box is None:
        raise LayerInputError("no bounds: give bounds= or a layer with data")
    return view_for_bounds(box, pitch=pitch)


def deck(layers: Sequence[MapLayer], *, bounds: Sequence[float] | None = None,
         view: pdk.ViewState | None = None, pitch: float = 0.0) -> pdk.Deck:
    """A ``pdk.Deck`` of ``layers`` (drawn in order, first at the bottom) with no base map
    provider or style, a view fitted to ``bounds`` (default: the layers' data) and per-layer
    tooltips."""
    _check(layers)
    full = []
    for layer in layers:
        with_records = copy.copy(layer.layer)
        with_records.data = layer.data  # pydeck's records, for its own JSON and HTML
        full.append(with_records)
    return pdk.Deck(layers=full,
                    initial_view_state=_view(layers, bounds, view, pitch),
                    map_provider=None, map_style=None, tooltip=tooltips(layers) or False)


def deck_spec(layers: Sequence[MapLayer], *, bounds: Sequence[float] | None = None,
              view: pdk.ViewState | None = None, pitch: float = 0.0,
              lang: str | None = None) -> dict[str, Any]:
    """The deck.gl JSON dict for Panel: ``pn.pane.DeckGL(spec, tooltips=tooltips(layers))``.

    ``mapStyle`` is ``None`` (Panel then draws no base map instead of failing), and each layer's
    ``data`` is its payload DataFrame (sent as binary columns) or GeoJSON dict.
    """
    _check(layers)
    if lang is not None:
        check_lang(lang)
        mixed = [layer.id for layer in layers if layer.lang != lang]
        if mixed:
            raise LayerInputError(f"layers {mixed} were built for another language than {lang}")
    specs = []
    for layer in layers:
        spec = json.loads(layer.layer.to_json())  # the properties; make_layer kept no records
        spec.pop("data", None)
        data = layer.data
        if isinstance(data, pd.DataFrame):
            # Panel matches a layer to its previous data source by the set of column names:
            # two layers with the same columns (both border layers) would swap sources and be
            # re-sent whole on every update. A marker column named after the layer keeps
            # each source its own, so unchanged layers send nothing.
            data = data.assign(**{f"_{layer.id}": np.zeros(len(data), dtype=np.uint8)})
        spec["data"] = data
        specs.append(spec)
    state = json.loads(_view(layers, bounds, view, pitch).to_json())
    return {"initialViewState": state, "layers": specs, "mapStyle": None,
            "views": [{"@@type": "MapView", "controller": True}]}

