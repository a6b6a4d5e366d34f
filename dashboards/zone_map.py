"""``ZoneMap``: the zone editor's map, a Panel ``JSComponent`` around deck.gl and
``@deck.gl-community/editable-layers``.

The JavaScript lives in ``frontend/zone_map`` and is bundled (npm packages pinned by its
``package-lock.json``) by ``scripts/build-frontend`` into ``dashboards/static/ZoneMap.bundle.js``,
which ``scripts/setup`` runs. In a server session Panel serves that file from our own server
(``/components/...``); no import map, no CDN.

Layers are deck.gl JSON specs as :func:`layers.deck_spec` makes them, in wire form
(:func:`to_wire`). Edits come back as messages: a drawn polygon (``on_polygon``), brush strokes
(``on_stroke``) and the modified outline (``on_outline``); every message is checked here
before a callback sees it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import param
from panel.custom import JSComponent

__all__ = ["MAX_POINTS", "ZoneMap", "to_wire"]

log = logging.getLogger(__name__)

#: Most points accepted in one message from the browser (a stroke batch or a geometry).
MAX_POINTS = 5000
_BUNDLE = Path(__file__).parent / "static" / "ZoneMap.bundle.js"
_STROKE_MODES = frozenset({"add", "remove"})

Callback = Callable[[dict[str, Any]], Any]


def _column(values: pd.Series) -> list[Any]:
    # object dtype turns numpy scalars into Python ones; missing values become None (null).
    objects = values.astype(object)
    return objects.where(values.notna(), None).tolist()


def to_wire(spec: dict[str, Any]) -> dict[str, Any]:
    """One layer spec of ``layers.deck_spec(...)["layers"]`` in the JSON form ZoneMap sends.

    Parameters
    ----------
    spec
        A deck.gl JSON layer spec; its ``data`` is a DataFrame, a GeoJSON dict or a list.

    Returns
    -------
    dict
        A shallow copy whose DataFrame ``data`` became ``{"@@columns": {column: list}}``
        (NaN and other missing values -> ``None``); the marker column ``_<id>`` that
        :func:`layers.deck_spec` adds for Panel's DeckGL pane is dropped. GeoJSON dicts and
        lists pass unchanged.
    """
    out = dict(spec)
    data = out.get("data")
    if isinstance(data, pd.DataFrame):
        marker = f"_{spec.get('id')}"
        frame = data.drop(columns=[marker]) if marker in data.columns else data
        out["data"] = {"@@columns": {str(name): _column(frame[name]) for name in frame.columns}}
    return out


def _json(specs: list[dict[str, Any]]) -> str:
    """Layer specs as compact JSON (NaN and infinities, which JSON lacks, as null)."""
    try:
        return json.dumps(specs, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except ValueError:
        return json.dumps(_finite(specs), separators=(",", ":"), ensure_ascii=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _point(value: Any) -> list[float] | None:
    """``[lon, lat]`` of a position (a third value, a height, is dropped), or None."""
    if not isinstance(value, (list, tuple)) or not 2 <= len(value) <= 3:
        return None
    lon, lat = _number(value[0]), _number(value[1])
    if lon is None or lat is None or not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        return None
    return [lon, lat]


def _points(values: Any, limit: int = MAX_POINTS) -> list[list[float]] | None:
    if not isinstance(values, list) or len(values) > limit:
        return None
    points = [_point(v) for v in values]
    return None if any(p is None for p in points) else points  # type: ignore[return-value]


def _rings(rings: Any, budget: int) -> list[list[list[float]]] | None:
    """Closed rings of at least three distinct positions, or None."""
    if not isinstance(rings, list) or not rings:
        return None
    out = []
    for ring in rings:
        points = _points(ring, budget)
        if points is None:
            return None
        if points and points[0] != points[-1]:
            points.append(list(points[0]))
        if len(points) < 4:
            return None
        budget -= len(points)
        out.append(points)
    return out


def _geometry(value: Any, kinds: frozenset[str]) -> dict[str, Any] | None:
    """A checked copy of a GeoJSON Polygon / MultiPolygon from the browser, or None."""
    if not isinstance(value, dict) or value.get("type") not in kinds:
        return None
    coordinates = value.get("coordinates")
    if value["type"] == "Polygon":
        rings = _rings(coordinates, MAX_POINTS)
        return None if rings is None else {"type": "Polygon", "coordinates": rings}
    if not isinstance(coordinates, list) or not coordinates:
        return None
    polygons, budget = [], MAX_POINTS
    for polygon in coordinates:
        rings = _rings(polygon, budget)
        if rings is None:
            return None
        budget -= sum(len(r) for r in rings)
        polygons.append(rings)
    return {"type": "MultiPolygon", "coordinates": polygons}


def _stroke(msg: dict[str, Any]) -> dict[str, Any] | None:
    stroke, mode, final = msg.get("stroke"), msg.get("mode"), msg.get("final")
    if isinstance(stroke, bool) or not isinstance(stroke, int) or stroke < 0:
        return None
    if mode not in _STROKE_MODES or not isinstance(final, bool):
        return None
    points = _points(msg.get("points"))
    if points is None or (not points and not final):
        return None
    return {"stroke": stroke, "mode": mode, "points": points, "final": final}


class ZoneMap(JSComponent):
    """The zone editor's map: base and draft layers, drawing, brushing and outline editing.

    ``base_layers`` are drawn first (bottom) and change rarely (date, toggles, new data);
    ``zone_layers`` above them change with every zone save; ``draft_layers`` above those
    change on every stroke (only the changed list is rebuilt in the browser); the editing
    layer is on top. Set ``view`` to jump; ``mode`` picks the gesture: ``"view"`` pans,
    ``"draw"`` draws a polygon (click the vertices, finish with a double-click, a click on
    the first or the last vertex, or Enter; Escape cancels), ``"brush_add"`` /
    ``"brush_remove"`` paint strokes (no panning), ``"modify"`` drags, adds (drag a midpoint)
    and removes (click) vertices of ``outline``. Edits of the outline update ``outline``
    here too.

    Raises
    ------
    FileNotFoundError
        When the bundle ``dashboards/static/ZoneMap.bundle.js`` has not been built.
    """

    # The layer lists travel to the browser as JSON text (base_json, zone_json, draft_json,
    # set through the base_layers, zone_layers and draft_layers properties): Bokeh walks
    # every list and dict a model holds after each change, looking for models, which cost
    # over a second per stroke with the city's layers as nested lists; a string it skips.
    base_json = param.String(default="[]", doc="base_layers as JSON.")
    zone_json = param.String(default="[]", doc="zone_layers as JSON.")
    draft_json = param.String(default="[]", doc="draft_layers as JSON.")
    view = param.Dict(default={}, doc="""
        {longitude, latitude, zoom[, pitch, bearing]}: the initial view; a new dict jumps.""")
    mode = param.Selector(default="view",
                          objects=["view", "draw", "brush_add", "brush_remove", "modify"])
    outline = param.Dict(default=None, allow_None=True, doc="""
        GeoJSON FeatureCollection edited in "modify" mode.""")
    tooltips = param.Dict(default={}, doc="""
        {layer_id: {"html": "<b>{name}</b>", "style": {...}}}; {field} placeholders are
        filled (HTML-escaped) from the picked object's fields or its GeoJSON properties.""")
    ready = param.Boolean(default=False, doc="True once the browser drew the first frame.")

    _bundle = _BUNDLE

    def __init__(self, *, base_layers: list[dict[str, Any]] | None = None,
                 zone_layers: list[dict[str, Any]] | None = None,
                 draft_layers: list[dict[str, Any]] | None = None, **params: Any) -> None:
        if not Path(self._bundle).is_file():
            raise FileNotFoundError(
                "the zone editor's map bundle dashboards/static/ZoneMap.bundle.js is missing: "
                "run ./scripts/setup (it builds frontend/zone_map with npm)")
        super().__init__(**params)
        self._lists: dict[str, list[dict[str, Any]]] = {}
        self.base_layers = base_layers or []
        self.zone_layers = zone_layers or []
        self.draft_layers = draft_layers or []
        self._polygon_callbacks: list[Callback] = []
        self._stroke_callbacks: list[Callback] = []
        self._outline_callbacks: list[Callback] = []

    def _set_list(self, name: str, specs: list[dict[str, Any]]) -> None:
        self._lists[name] = list(specs)
        setattr(self, f"{name}_json", _json(self._lists[name]))

    @property
    def base_layers(self) -> list[dict[str, Any]]:
        """deck.gl JSON layer specs (wire form, see :func:`to_wire`), drawn first (bottom);
        change rarely (date, toggles, new data)."""
        return self._lists["base"]

    @base_layers.setter
    def base_layers(self, specs: list[dict[str, Any]]) -> None:
        self._set_list("base", specs)

    @property
    def zone_layers(self) -> list[dict[str, Any]]:
        """Specs drawn above the base layers (the zones and proposals); change per save."""
        return self._lists["zone"]

    @zone_layers.setter
    def zone_layers(self, specs: list[dict[str, Any]]) -> None:
        self._set_list("zone", specs)

    @property
    def draft_layers(self) -> list[dict[str, Any]]:
        """Specs drawn above the zone layers, below the editing layer; change per stroke."""
        return self._lists["draft"]

    @draft_layers.setter
    def draft_layers(self, specs: list[dict[str, Any]]) -> None:
        self._set_list("draft", specs)

    def on_polygon(self, callback: Callback) -> None:
        """Call ``callback(geometry)`` with the GeoJSON Polygon drawn in ``"draw"`` mode."""
        self._polygon_callbacks.append(callback)

    def on_stroke(self, callback: Callback) -> None:
        """Call ``callback(stroke)`` per batch of a brush stroke.

        ``stroke`` is ``{"stroke": id, "mode": "add" | "remove", "points": [[lon, lat], ...],
        "final": bool}``: batches arrive about every 50 ms while dragging and a final one on
        pointer-up (a click is one final batch with one point). A new id per pointer-down.
        """
        self._stroke_callbacks.append(callback)

    def on_outline(self, callback: Callback) -> None:
        """Call ``callback(geometry)`` with the edited Polygon / MultiPolygon after each
        ``"modify"`` gesture (vertex moved, added or removed)."""
        self._outline_callbacks.append(callback)

    def _handle_msg(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            return
        kind = msg.get("kind")
        if kind == "polygon":
            geometry = _geometry(msg.get("geometry"), frozenset({"Polygon"}))
            if geometry is None:
                log.warning("ZoneMap: ignored a malformed polygon from the browser")
                return
            self._emit(self._polygon_callbacks, geometry)
        elif kind == "stroke":
            stroke = _stroke(msg)
            if stroke is None:
                log.warning("ZoneMap: ignored a malformed stroke batch from the browser")
                return
            self._emit(self._stroke_callbacks, stroke)
        elif kind == "outline":
            geometry = _geometry(msg.get("geometry"), frozenset({"Polygon", "MultiPolygon"}))
            if geometry is None:
                log.warning("ZoneMap: ignored a malformed outline from the browser")
                return
            self._keep_outline(msg.get("index"), geometry)
            self._emit(self._outline_callbacks, geometry)
        else:
            log.debug("ZoneMap: ignored a message of kind %r", kind)

    def _keep_outline(self, index: Any, geometry: dict[str, Any]) -> None:
        # The browser already shows the edit; keeping it here makes `outline` the current one.
        features = (self.outline or {}).get("features")
        if (not isinstance(features, list) or isinstance(index, bool)
                or not isinstance(index, int) or not 0 <= index < len(features)):
            return
        edited = list(features)
        edited[index] = {**edited[index], "geometry": geometry}
        self.outline = {**self.outline, "features": edited}

    @staticmethod
    def _emit(callbacks: list[Callback], payload: dict[str, Any]) -> None:
        for callback in list(callbacks):
            try:
                callback(payload)
            except Exception:  # a failing callback must not break the Bokeh session
                log.exception("ZoneMap: callback %r failed", callback)
