"""OpenStreetMap extracts as real tools cut them: closed ways and relations cut by the box.

The extract is made here with pyosmium the way ``osmium extract --strategy simple`` makes one:
the nodes inside the box, every way with a node inside (its references to the nodes outside
kept, their nodes gone), every relation with a member kept. GDAL then builds rings of fewer
than four points for the cut buildings, which used to sink the whole file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import osmium
import pytest

from ingest import ingest_file
from ingest._osm import parse_measure
from twin import Workspace

BOX = (121.470, 31.230, 121.480, 31.240)


def _inside(lon: float, lat: float) -> bool:
    return BOX[0] <= lon <= BOX[2] and BOX[1] <= lat <= BOX[3]


def _full_extract(path: Path) -> None:
    """A small city straddling the box's east edge at 121.480."""
    node, way, rel = osmium.osm.mutable.Node, osmium.osm.mutable.Way, osmium.osm.mutable.Relation
    writer = osmium.SimpleWriter(str(path))
    nodes: dict[int, tuple[float, float]] = {}

    def square(first: int, x: float, y: float, d: float = 0.0005) -> list[int]:
        for i, xy in enumerate([(x, y), (x + d, y), (x + d, y + d), (x, y + d)]):
            nodes[first + i] = xy
        return [first, first + 1, first + 2, first + 3, first]

    buildings = {
        100: (square(1, 121.471, 31.231), {"building": "apartments", "building:levels": "2.5"}),
        101: (square(10, 121.472, 31.231), {"building": "museum", "height": "40'"}),
        102: (square(20, 121.473, 31.231), {"building": "chapel", "building:levels": "3-5"}),
        103: (square(30, 121.474, 31.231), {"building": "cathedral"}),
        # Cut by the box: two corners inside, two outside.
        104: (square(40, 121.4798, 31.232, d=0.001), {"building": "house"}),
        # Cut so that only one corner is inside: GDAL gets a 2-point ring.
        105: (square(50, 121.4799, 31.2335, d=0.001), {"building": "yes"}),
        106: (square(60, 121.475, 31.235), {"amenity": "university"}),  # unnamed area
    }
    nodes[70] = (121.476, 31.236)
    nodes[71] = (121.477, 31.236)
    nodes[72] = (121.4785, 31.2365)
    nodes[73] = (121.4815, 31.2365)  # outside
    nodes[74] = (121.4795, 31.2368)
    # A multipolygon whose outer way lies wholly outside the box: a missing member.
    outer = square(80, 121.485, 31.235)
    inner = square(90, 121.4771, 31.2371, d=0.0002)
    for i, xy in sorted(nodes.items()):
        tags = {}
        if i == 70:
            tags = {"amenity": "shelter"}  # a bus-stop roof, not an emergency shelter
        if i == 71:
            tags = {"amenity": "pharmacy", "name": "一号药房"}
        writer.add_node(node(id=i, location=xy, version=1, tags=tags))
    for i, (refs, tags) in buildings.items():
        writer.add_way(way(id=i, nodes=refs, version=1, tags=tags))
    writer.add_way(way(id=200, nodes=[72, 74, 73], version=1,
                       tags={"highway": "primary", "name": "人民路"}))
    writer.add_way(way(id=300, nodes=outer, version=1))
    writer.add_way(way(id=301, nodes=inner, version=1))
    writer.add_relation(rel(id=400, version=1, members=[("w", 300, "outer"), ("w", 301, "inner")],
                            tags={"type": "multipolygon", "building": "school"}))
    writer.close()


def _clip(source: Path, out: Path) -> None:
    """``osmium extract --strategy simple`` by hand."""
    kept_nodes: set[int] = set()
    kept_ways: set[int] = set()
    writer = osmium.SimpleWriter(str(out))
    for obj in osmium.FileProcessor(str(source)):
        if obj.is_node():
            if _inside(obj.location.lon, obj.location.lat):
                kept_nodes.add(obj.id)
                writer.add_node(obj)
        elif obj.is_way():
            if any(n.ref in kept_nodes for n in obj.nodes):
                kept_ways.add(obj.id)
                writer.add_way(obj)
        elif obj.is_relation() and any(m.type == "w" and m.ref in kept_ways
                                       for m in obj.members):
            writer.add_relation(obj)
    writer.close()


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("osm")
    _full_extract(tmp / "full.osm.pbf")
    _clip(tmp / "full.osm.pbf", tmp / "clipped.osm.pbf")
    return tmp / "clipped.osm.pbf"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.init(tmp_path / "ws", "osm", bbox=(121.46, 31.22, 121.49, 31.25))


def _problem(report, code: str):
    found = [p for p in report.problems if p.code == code]
    assert found, f"no {code} in\n{report.to_text()}"
    return found[0]


def test_a_clipped_extract_loads_its_buildings_and_names_what_was_cut(
        extract: Path, ws: Workspace) -> None:
    report = ingest_file(ws, extract, kind="buildings")
    assert report.status == "published", report.to_text()
    buildings = ws.read("buildings").set_index("id")
    # The whole buildings inside the box are there, with the reviewed uses.
    assert buildings.loc["way/100", "use"] == "residential"
    assert buildings.loc[["way/101", "way/102", "way/103"], "use"].tolist() == ["public"] * 3
    # Fractional levels and ranges, heights in feet.
    assert buildings.loc["way/100", "floors"] == 3
    assert buildings.loc["way/102", "floors"] == 5
    assert buildings.loc["way/101", "height_m"] == pytest.approx(12.192)
    # The building cut to one corner could not be built: named by its OSM id, not fatal.
    problems = {p.code for p in report.problems}
    assert problems & {"ring_closed", "unrepairable_geometry", "geometry_unreadable"}, \
        report.to_text()
    named = [i for p in report.problems for i in p.ids]
    assert "way/105" in named, report.to_text()
    assert "way/105" not in buildings.index


def test_a_clipped_extract_loads_facilities_without_the_bus_shelter(
        extract: Path, ws: Workspace) -> None:
    report = ingest_file(ws, extract, kind="facilities")
    assert report.status == "published", report.to_text()
    facilities = ws.read("facilities").set_index("id")
    assert facilities.loc["node/71", "kind"] == "pharmacy"
    assert "node/70" not in facilities.index  # amenity=shelter is not ours
    assert facilities.loc["way/106", "kind"] == "school"
    assert "way/106" in facilities.loc["way/106", "name"]  # unnamed → kind and id, flagged
    assert "way/106" in _problem(report, "name_filled").ids


def test_a_clipped_extract_loads_its_roads(extract: Path, ws: Workspace) -> None:
    report = ingest_file(ws, extract, kind="roads")
    assert report.status == "published", report.to_text()
    assert ws.read("roads")["id"].tolist() == ["way/200"]


@pytest.mark.parametrize(("text", "unit", "expected"), [
    ("3", "", 3.0), ("2.5", "", 2.5), ("3-5", "", 5.0), ("3;4", "", 4.0), ("2,5", "", 2.5),
    ("12 m", "m", 12.0), ("40'", "m", 12.192), ("40 ft", "m", 12.192), ("many", "", np.nan),
    (None, "", np.nan)])
def test_parse_measure(text, unit, expected) -> None:
    value = parse_measure(text, unit=unit)
    assert value == pytest.approx(expected, nan_ok=True)


def test_a_ring_geos_refuses_is_one_record_not_the_file(tmp_path: Path, ws: Workspace) -> None:
    """The message that sank real extracts, on a GeoJSON: one feature, not the file."""
    bad = tmp_path / "buildings.geojson"
    bad.write_text("""{"type": "FeatureCollection", "features": [
      {"type": "Feature", "properties": {"id": "B1", "use": "residential", "floors": 3},
       "geometry": {"type": "Polygon", "coordinates": [[[121.471, 31.231], [121.472, 31.231]]]}},
      {"type": "Feature", "properties": {"id": "B2", "use": "residential", "floors": 3},
       "geometry": {"type": "Polygon", "coordinates": [[[121.471, 31.231], [121.472, 31.231],
                                                        [121.472, 31.232]]]}},
      {"type": "Feature", "properties": {"id": "B3", "use": "residential", "floors": 3},
       "geometry": {"type": "Polygon", "coordinates": [[[121.473, 31.231], [121.474, 31.231],
                                                        [121.474, 31.232], [121.473, 31.231]]]}}
    ]}""", encoding="utf-8")
    report = ingest_file(ws, bad, kind="buildings")
    assert report.status == "published", report.to_text()
    assert sorted(ws.read("buildings")["id"]) == ["B2", "B3"]  # B2's open ring was closed
    assert _problem(report, "ring_closed").count == 2
    assert 1 in _problem(report, "unrepairable_geometry").rows


def test_roads_cut_by_the_extract_are_named_not_published_silently(
        extract: Path, ws: Workspace) -> None:
    report = ingest_file(ws, extract, kind="roads")
    cut = _problem(report, "way_truncated")
    assert cut.ids == ["way/200"]
    assert report.info["osm_ways_truncated"] == 1


def test_buildings_cut_by_the_extract_and_incomplete_relations_are_reported(
        extract: Path, ws: Workspace) -> None:
    report = ingest_file(ws, extract, kind="buildings")
    cut = _problem(report, "way_truncated")
    # way/104 lost two corners and was published as what remained; way/105 could not be built
    # at all and is reported by the geometry checks, not as published short.
    assert "way/104" in cut.ids
    assert "way/100" not in cut.ids
    relation = _problem(report, "relation_incomplete")
    assert relation.ids == ["relation/400"]
    assert report.info["osm_relations_incomplete"] == 1


def test_a_whole_extract_has_no_cut_ways(tmp_path: Path, ws: Workspace) -> None:
    _full_extract(tmp_path / "full.osm.pbf")
    report = ingest_file(ws, tmp_path / "full.osm.pbf", kind="roads")
    assert report.status == "published", report.to_text()
    assert not [p for p in report.problems if p.code in ("way_truncated",
                                                          "relation_incomplete")]
