"""A tiny Panel app serving one :class:`dashboards.zone_map.ZoneMap` (no workspace needed).

Run as ``python tests/browser/zone_map_app.py PORT``; the browser tests start it in a
subprocess. The map shows resolution-10 H3 cells around 31.2N 121.5E. Query arguments:
``mode=`` the starting mode (default ``view``), ``outline=1`` gives it :data:`OUTLINE` to edit.
Every message the map sends to Python is appended as one JSON line ``{"event": kind, "data":
payload}`` to the file named by the environment variable ``ZONE_MAP_EVENTS`` (if set).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import panel as pn

import layers
from dashboards.zone_map import ZoneMap, to_wire
from twin import grid

CENTRE = (121.5, 31.2)
#: The view: about 3 km across on a 1920 px wide map, so res-10 cells (~66 m) are visible.
VIEW = {"longitude": CENTRE[0], "latitude": CENTRE[1], "zoom": 14.0, "pitch": 0, "bearing": 0}
#: A square of ~1 km around the centre, editable with ``?outline=1``.
OUTLINE = {"type": "FeatureCollection", "features": [{
    "type": "Feature", "properties": {"name": "test zone"},
    "geometry": {"type": "Polygon", "coordinates": [[
        [121.495, 31.195], [121.505, 31.195], [121.505, 31.205], [121.495, 31.205],
        [121.495, 31.195]]]}}]}

_lock = threading.Lock()


def cells_layer() -> layers.MapLayer:
    """Residents per resolution-10 cell within 12 rings of the centre (made-up counts)."""
    centre = grid.points_to_cells(np.array([CENTRE[0]]), np.array([CENTRE[1]]), 10)
    cells = np.unique(grid.grid_disk(centre, 12))
    residents = (np.arange(len(cells)) * 37) % 1500 + 50
    return layers.residents_hexes(pd.DataFrame({"cell": cells, "residents": residents}), "en")


def record(kind: str, payload: dict[str, Any]) -> None:
    """Append one received event to the ``ZONE_MAP_EVENTS`` file."""
    path = os.environ.get("ZONE_MAP_EVENTS")
    if not path:
        return
    with _lock, Path(path).open("a", encoding="utf-8") as out:
        out.write(json.dumps({"event": kind, "data": payload}) + "\n")


def page() -> ZoneMap:
    """One session's map, its mode and outline from the query arguments."""
    args = pn.state.session_args or {}
    mode = (args.get("mode") or [b"view"])[0].decode()
    with_outline = (args.get("outline") or [b"0"])[0] == b"1"
    layer = cells_layer()
    spec = layers.deck_spec([layer], view=None, bounds=(121.49, 31.19, 121.51, 31.21))
    zone_map = ZoneMap(base_layers=[to_wire(s) for s in spec["layers"]], view=dict(VIEW),
                       tooltips=layers.tooltips([layer]), mode=mode,
                       outline=OUTLINE if with_outline else None,
                       sizing_mode="stretch_both", min_height=600)
    zone_map.on_polygon(lambda geometry: record("polygon", geometry))
    zone_map.on_stroke(lambda stroke: record("stroke", stroke))
    zone_map.on_outline(lambda geometry: record("outline", geometry))
    zone_map.param.watch(lambda event: record("ready", {"ready": event.new}), "ready")
    return zone_map


def main(port: int) -> None:
    os.environ.setdefault("BOKEH_RESOURCES", "server")  # offline: Panel's bundles from here
    pn.serve({"zone_map": page}, port=port, address="127.0.0.1", show=False,
             title="zone map test", websocket_origin=[f"127.0.0.1:{port}", f"localhost:{port}"])


if __name__ == "__main__":
    main(int(sys.argv[1]))
