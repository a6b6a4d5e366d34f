"""A minimal Panel page with one H3HexagonLayer of many res-10 hexes (for bench/cockpit.py).

Run as ``python bench/cockpit_hexes_app.py PORT [--n 60000] [--center LNG,LAT] [--numeric]``.
The cells are the ``n`` res-10 cells nearest ``--center`` (from a regular grid of points through
:func:`twin.grid.points_to_cells`), with random residents; the layer is
:func:`layers.residents_hexes` (hex ids as H3 strings, the way the cockpit sends them).

With ``--numeric`` the string ``hex`` column is replaced by two ``uint32`` columns (the high
and low halves of the uint64 cell): the payload is the numeric alternative, but deck.gl cannot
draw it (``getHexagon`` needs strings), so it only serves to measure websocket bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import layers  # noqa: E402
from twin import grid  # noqa: E402

RESOLUTION = 10


def nearest_cells(n: int, lng0: float, lat0: float, *, step_m: float = 40.0,
                  ) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The ``n`` distinct res-10 cells nearest (lng0, lat0), as uint64, and their bounds
    (of the grid points that found them)."""
    area_m2 = grid.average_cell_area_m2(RESOLUTION) * n * 1.6  # margin for the square's corners
    half_m = np.sqrt(area_m2) / 2.0
    k = int(np.ceil(half_m / step_m))
    offsets = np.arange(-k, k + 1) * step_m
    dx, dy = np.meshgrid(offsets, offsets)
    dx, dy = dx.ravel(), dy.ravel()
    lat = lat0 + dy / 111_320.0
    lng = lng0 + dx / (111_320.0 * np.cos(np.radians(lat0)))
    cells = grid.points_to_cells(lng, lat, RESOLUTION)
    dist = dx * dx + dy * dy
    order = np.argsort(dist, kind="stable")
    _, first = np.unique(cells[order], return_index=True)
    keep = order[np.sort(first)]  # each cell's nearest point, nearest cells first
    if len(keep) < n:
        raise SystemExit(f"only {len(keep)} cells around the centre, wanted {n}")
    keep = keep[:n]
    bounds = (float(lng[keep].min()), float(lat[keep].min()), float(lng[keep].max()),
              float(lat[keep].max()))
    return cells[keep], bounds


def spec(n: int, lng0: float, lat0: float, *, numeric: bool = False, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    cells, bounds = nearest_cells(n, lng0, lat0)
    frame = pd.DataFrame({"cell": cells,
                          "residents": rng.integers(1, 600, size=n).astype(np.int64)})
    layer = layers.residents_hexes(frame, "zh")
    result = layers.deck_spec([layer], bounds=bounds)
    if numeric:
        data = result["layers"][0]["data"].drop(columns=["hex"])
        data.insert(0, "hex_hi", (cells >> np.uint64(32)).astype(np.uint32))
        data.insert(1, "hex_lo", (cells & np.uint64(0xFFFFFFFF)).astype(np.uint32))
        result["layers"][0]["data"] = data
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--center", default="121.475,31.25", help="LNG,LAT")
    parser.add_argument("--numeric", action="store_true")
    args = parser.parse_args()
    lng0, lat0 = (float(v) for v in args.center.split(","))
    pn.extension("deckgl")
    pane = pn.pane.DeckGL(spec(args.n, lng0, lat0, numeric=args.numeric),
                          sizing_mode="stretch_both", min_height=600)
    pn.serve({"x": pane}, port=args.port, address="127.0.0.1", show=False, title="hexes bench",
             websocket_origin=[f"127.0.0.1:{args.port}", f"localhost:{args.port}"])


if __name__ == "__main__":
    main()
