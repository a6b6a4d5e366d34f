"""Tests of :class:`dashboards.zone_map.ZoneMap` in the harness app
(``tests/browser/zone_map_app.py``): the bundle is served by our server, the map draws, and
drawing, brushing and modifying reach Python as checked messages.

Positions come from the map's own ``project()`` (lon/lat -> viewport pixels). Mouse events
land on whole pixels, so the expected lon/lat of a click is ``unproject()`` of the pixel
clicked.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dashboards import zone_map as zm
from tests.browser.conftest import nonblank, served

APP = Path(__file__).with_name("zone_map_app.py")
DEGREES = 1e-5


SQUARE = {"type": "Polygon", "coordinates": [[[121.49, 31.19], [121.51, 31.19], [121.51, 31.21],
                                               [121.49, 31.19]]]}


def test_to_wire_sends_columns_with_nulls_and_drops_the_panel_marker() -> None:
    frame = pd.DataFrame({"hex": ["8a3", None], "v": [1.5, np.nan], "r": np.array([1, 2], np.uint8),
                          "_cells": np.zeros(2, np.uint8)})
    wire = zm.to_wire({"@@type": "H3HexagonLayer", "id": "cells", "data": frame})
    assert wire["data"] == {"@@columns": {"hex": ["8a3", None], "v": [1.5, None], "r": [1, 2]}}
    assert type(wire["data"]["@@columns"]["r"][0]) is int
    geojson = {"type": "FeatureCollection", "features": []}
    assert zm.to_wire({"id": "g", "data": geojson})["data"] is geojson
    json.dumps(wire)  # JSON as it is


def test_missing_bundle_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(zm.ZoneMap, "_bundle", tmp_path / "ZoneMap.bundle.js")
    with pytest.raises(FileNotFoundError, match=r"run \./scripts/setup"):
        zm.ZoneMap()


def test_messages_are_checked_before_callbacks_see_them(caplog: pytest.LogCaptureFixture) -> None:
    if not zm._BUNDLE.is_file():
        pytest.skip("bundle not built (./scripts/setup)")
    assert zm.ZoneMap._importmap == {}
    zone_map = zm.ZoneMap(outline={"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "a"}, "geometry": SQUARE}]})
    got: dict[str, list[Any]] = {"polygon": [], "stroke": [], "outline": []}
    zone_map.on_polygon(got["polygon"].append)
    zone_map.on_stroke(got["stroke"].append)
    zone_map.on_outline(got["outline"].append)
    zone_map.on_stroke(lambda stroke: 1 / 0)  # logged, not raised; the others still run
    for msg in [
        {"kind": "nonsense"}, "text", None,
        {"kind": "stroke", "stroke": 1, "mode": "add", "points": [[200.0, 31.2]], "final": True},
        {"kind": "stroke", "stroke": 1, "mode": "add", "points": [[121.5, float("nan")]],
         "final": True},
        {"kind": "stroke", "stroke": 1, "mode": "add", "points": [[121.5, 31.2]] * 5001,
         "final": False},
        {"kind": "stroke", "stroke": True, "mode": "add", "points": [], "final": True},
        {"kind": "stroke", "stroke": 2, "mode": "paint", "points": [], "final": True},
        {"kind": "polygon", "geometry": {"type": "Polygon", "coordinates": [[[121.5, 31.2]]]}},
        {"kind": "polygon", "geometry": {"type": "Point", "coordinates": [121.5, 31.2]}},
    ]:
        zone_map._handle_msg(msg)
    assert got == {"polygon": [], "stroke": [], "outline": []}
    with caplog.at_level("ERROR"):
        zone_map._handle_msg({"kind": "stroke", "stroke": 3, "mode": "remove",
                              "points": [[121.5, 31.2]] * 5000, "final": True})
    assert len(got["stroke"]) == 1 and len(got["stroke"][0]["points"]) == 5000
    assert "callback" in caplog.text
    zone_map._handle_msg({"kind": "polygon", "geometry": {
        "type": "Polygon", "coordinates": [[[121.49, 31.19], [121.51, 31.19], [121.5, 31.2]]]}})
    assert got["polygon"][0]["coordinates"][0][-1] == [121.49, 31.19]  # closed here
    moved = {"type": "Polygon", "coordinates": [[[121.49, 31.19], [121.52, 31.18],
                                                 [121.51, 31.21], [121.49, 31.19]]]}
    zone_map._handle_msg({"kind": "outline", "index": 0, "geometry": moved})
    assert got["outline"] == [moved]
    assert zone_map.outline["features"][0]["geometry"] == moved
    assert zone_map.outline["features"][0]["properties"] == {"name": "a"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The harness app (one server for the module) and its events file."""
    events = tmp_path_factory.mktemp("zone_map") / "events.jsonl"
    events.touch()
    with served([sys.executable, str(APP), "{port}"], ready_path="/zone_map",
                env={"ZONE_MAP_EVENTS": str(events)}, cwd=Path(__file__).parents[2]) as base:
        yield base, events


def open_map(page: Any, app: tuple[str, Path], query: str = "") -> Path:
    """Open the map page, wait for its first frame; forget earlier events."""
    base, events = app
    events.write_text("")
    page.goto(f"{base}/zone_map{query}", wait_until="load")
    page.locator(".ct-zone-map[data-ready='1']").wait_for(timeout=20_000)
    return events


def read_events(events: Path, done: Callable[[list[dict[str, Any]]], bool],
                timeout: float = 5.0) -> list[dict[str, Any]]:
    """The events received so far, once ``done(events)`` or after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        lines = events.read_text(encoding="utf-8").splitlines()
        received = [json.loads(line) for line in lines if line.strip()]
        if done(received) or time.monotonic() > deadline:
            return received
        time.sleep(0.05)


def project(page: Any, lon: float, lat: float) -> tuple[float, float]:
    x, y = page.evaluate("p => window.ctZoneMap.project(p)", [lon, lat])
    return float(x), float(y)


def pixel(page: Any, lon: float, lat: float) -> tuple[int, int]:
    """The whole viewport pixel nearest ``lon, lat`` (mouse events land on whole pixels)."""
    x, y = project(page, lon, lat)
    return round(x), round(y)


def unproject(page: Any, x: float, y: float) -> tuple[float, float]:
    lon, lat = page.evaluate("p => window.ctZoneMap.unproject(p)", [x, y])
    return float(lon), float(lat)


def kinds(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["event"] == kind]


@pytest.mark.browser
def test_bundle_is_served_here_and_the_map_draws(page: Any, recorded: list[str], app: Any,
                                                 tmp_path: Path) -> None:
    open_map(page, app)
    bundles = [url for url in recorded if url.endswith("ZoneMap.bundle.js")]
    assert bundles and all(url.startswith("http://127.0.0.1:") for url in bundles), recorded
    assert all("/components/" in url for url in bundles), bundles
    assert page.evaluate("window.ctZoneMap.layerIds()") == ["residents"]
    element = page.locator(".ct-zone-map")
    assert element.get_attribute("data-mode") == "view"
    box = element.bounding_box()
    assert box is not None and box["width"] > 1000 and box["height"] > 500, box
    region = (int(box["x"]), int(box["y"]), int(box["x"] + box["width"]),
              int(box["y"] + box["height"]))
    deadline = time.monotonic() + 10
    while True:  # hexagons may take a frame or two after the first one
        shot = page.screenshot(type="png")
        drawn = nonblank(shot, region)
        if drawn > 0.1 or time.monotonic() > deadline:
            break
        page.wait_for_timeout(200)
    (tmp_path / "zone_map.png").write_bytes(shot)
    assert drawn > 0.1, f"only {drawn:.1%} of the map drawn; see {tmp_path / 'zone_map.png'}"
    assert kinds(read_events(app[1], lambda e: bool(kinds(e, "ready"))), "ready")


@pytest.mark.browser
def test_draw_a_polygon_finished_by_double_click(page: Any, app: Any) -> None:
    events = open_map(page, app, "?mode=draw")
    assert page.locator(".ct-zone-map").get_attribute("data-mode") == "draw"
    corners = [(121.4970, 31.1970), (121.5030, 31.1972), (121.5028, 31.2031),
               (121.4968, 31.2027)]
    pixels = [pixel(page, lon, lat) for lon, lat in corners]
    clicked = [unproject(page, x, y) for x, y in pixels]
    for count, (x, y) in enumerate(pixels, start=1):
        page.mouse.click(x, y)
        # A click counts ~300 ms later (when it is no double-click) and only if no other input
        # came first, so wait for it: software WebGL makes the browser lag behind the mouse.
        page.wait_for_function("n => window.ctZoneMap.drawing().length === n", arg=count)
    page.mouse.dblclick(*pixels[-1])
    polygons = kinds(read_events(events, lambda e: bool(kinds(e, "polygon"))), "polygon")
    assert len(polygons) == 1, polygons
    ring = polygons[0]["coordinates"][0]
    assert polygons[0]["type"] == "Polygon" and ring[0] == ring[-1] and len(ring) == 5, ring
    for (lon, lat), (want_lon, want_lat) in zip(ring[:-1], clicked, strict=True):
        assert abs(lon - want_lon) < DEGREES and abs(lat - want_lat) < DEGREES, (ring, clicked)
    for (lon, lat), (near_lon, near_lat) in zip(ring[:-1], corners, strict=True):
        assert abs(lon - near_lon) < 1e-4 and abs(lat - near_lat) < 1e-4  # within a pixel
    page.wait_for_timeout(300)
    assert len(kinds(read_events(events, lambda e: False, timeout=0), "polygon")) == 1


@pytest.mark.browser
def test_brush_stroke_arrives_in_batches_and_the_map_stays(page: Any, app: Any) -> None:
    events = open_map(page, app, "?mode=brush_add")
    fixed = project(page, 121.5, 31.2)
    start = pixel(page, 121.496, 31.198)
    end = pixel(page, 121.504, 31.202)
    page.mouse.move(*start)
    page.mouse.down()
    moves = 24
    for i in range(1, moves + 1):  # about 0.6 s of dragging: several 50 ms batches
        page.mouse.move(start[0] + (end[0] - start[0]) * i / moves,
                        start[1] + (end[1] - start[1]) * i / moves)
        page.wait_for_timeout(25)
    page.mouse.up()
    received = read_events(events, lambda e: any(s["final"] for s in kinds(e, "stroke")))
    strokes = kinds(received, "stroke")
    assert len(strokes) >= 2, strokes
    assert len({s["stroke"] for s in strokes}) == 1
    assert {s["mode"] for s in strokes} == {"add"}
    assert [s["final"] for s in strokes] == [False] * (len(strokes) - 1) + [True]
    points = [p for s in strokes for p in s["points"]]
    assert len(points) >= moves // 2
    on_screen = page.evaluate("ps => ps.map(p => window.ctZoneMap.project(p))", points)
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0)
    for x, y in on_screen:  # every point on the dragged segment, within a pixel
        assert abs((x1 - x0) * (y0 - y) - (x0 - x) * (y1 - y0)) / length < 1.5, (x, y)
    assert math.dist(on_screen[0], start) < 1.5 and math.dist(on_screen[-1], end) < 1.5
    assert math.dist(project(page, 121.5, 31.2), fixed) < 0.5, "the map panned while brushing"


@pytest.mark.browser
def test_modify_drags_an_outline_vertex(page: Any, app: Any) -> None:
    events = open_map(page, app, "?mode=modify&outline=1")
    vertex = pixel(page, 121.505, 31.195)  # the outline's second vertex
    target = (vertex[0] + 60, vertex[1] - 40)
    page.mouse.move(*vertex)
    page.wait_for_timeout(100)
    page.mouse.down()
    page.mouse.move(*target, steps=20)
    page.mouse.up()
    outlines = kinds(read_events(events, lambda e: bool(kinds(e, "outline"))), "outline")
    assert outlines, "no outline arrived"
    ring = outlines[-1]["coordinates"][0]
    moved = unproject(page, *target)
    assert outlines[-1]["type"] == "Polygon" and len(ring) == 5, ring
    assert abs(ring[1][0] - moved[0]) < DEGREES and abs(ring[1][1] - moved[1]) < DEGREES, ring
    assert ring[0] == [121.495, 31.195] and ring[2] == [121.505, 31.205], ring

