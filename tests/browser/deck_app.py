"""A tiny Panel app serving one DeckGL pane built by :mod:`layers` (no cockpit needed).

Run as ``python tests/browser/deck_app.py PORT``; the browser tests start it in a subprocess.
"""

from __future__ import annotations

import sys

import geopandas as gpd
import panel as pn
import shapely

import layers


def spec() -> dict:
    """Two districts (land fill + outlines) and three roads near 31.2N 121.5E."""
    districts = gpd.GeoDataFrame(
        {"code": ["310101", "310104"], "name": ["黄浦区", "徐汇区"],
         "level": ["district", "district"]},
        geometry=[shapely.box(121.40, 31.15, 121.50, 31.25),
                  shapely.box(121.50, 31.15, 121.60, 31.25)], crs="EPSG:4326")
    roads = gpd.GeoDataFrame(
        {"class": ["expressway", "arterial", "local"], "name": ["延安高架", "中山路", "小路"]},
        geometry=[shapely.LineString([(121.40, 31.20), (121.60, 31.20)]),
                  shapely.LineString([(121.50, 31.15), (121.50, 31.25)]),
                  shapely.LineString([(121.42, 31.16), (121.58, 31.24)])], crs="EPSG:4326")
    # The view is wider than the data so the land fill covers part of the map, not all of it.
    return layers.deck_spec([layers.boundaries(districts, "zh"), layers.roads(roads, "zh")],
                            bounds=(121.30, 31.10, 121.70, 31.30))


def main(port: int) -> None:
    pn.extension("deckgl")
    pane = pn.pane.DeckGL(spec(), sizing_mode="stretch_both", min_height=600)
    pn.serve({"x": pane}, port=port, address="127.0.0.1", show=False, title="deck test",
             websocket_origin=[f"127.0.0.1:{port}", f"localhost:{port}"])


if __name__ == "__main__":
    main(int(sys.argv[1]))
