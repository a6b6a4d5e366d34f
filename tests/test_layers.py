"""The layers package: pure functions from twin data to pydeck layers (no browser)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pydeck as pdk
import pytest

import layers as L  # noqa: N812
from layers import scales
from twin import grid


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from tests.conftest import fused_demo
    from twin.facts import Facts
    from twin.zones import Zones, propose

    ws, _ = fused_demo(tmp_path_factory.mktemp("layers"))
    propose(ws)
    return ws, Facts(ws), Zones(ws).list()


@pytest.fixture(scope="module")
def risk10(demo):
    from twin.risk import risk

    return risk(demo[1], level=10)


def _compact(obj) -> int:
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


def _colors(frame: pd.DataFrame) -> np.ndarray:
    return frame[["r", "g", "b", "a"]].to_numpy()


# -- scales and legends ------------------------------------------------------------------------
def test_sequential_scale_ends_and_clamping() -> None:
    s = scales.SequentialScale(scales.VIRIDIS, (0.0, 10.0), alpha=(50, 250))
    assert s.color(0.0) == (*scales.VIRIDIS[0], 50)
    assert s.color(10.0) == (*scales.VIRIDIS[-1], 250)
    assert s.color(-5) == s.color(0) and s.color(99) == s.color(10)
    assert tuple(s.rgba([np.nan])[0]) == scales.NO_DATA
    r = scales.SequentialScale(scales.CIVIDIS, (0.0, 7.0), reverse=True)
    assert r.color(0.0)[:3] == scales.CIVIDIS[-1] and r.color(7.0)[:3] == scales.CIVIDIS[0]
    with pytest.raises(ValueError):
        scales.SequentialScale(scales.VIRIDIS, (1.0, 1.0))


@pytest.mark.parametrize("ramp", [scales.VIRIDIS, scales.INFERNO, scales.CIVIDIS])
@pytest.mark.parametrize("kind", [None, "deuteranopia", "protanopia"])
def test_ramps_keep_order_under_colour_blindness(ramp, kind) -> None:
    """Lightness rises monotonically along each ramp, also as seen with a CVD."""
    rgb = np.asarray(ramp, dtype=float)
    if kind:
        rgb = scales.simulate_cvd(rgb, kind)
    lightness = scales._lab(rgb)[:, 0]
    assert np.all(np.diff(lightness) > 0)


@pytest.mark.parametrize("palette", [scales.TIER_COLORS,
                                     {g: v[0] for g, v in scales.FACILITY_GROUPS.items()}])
@pytest.mark.parametrize("kind", [None, "deuteranopia", "protanopia"])
def test_categorical_palettes_stay_apart(palette, kind) -> None:
    names = list(palette)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert scales.color_difference(palette[a], palette[b], kind) > 25, (a, b, kind)


def test_legend_format() -> None:
    s = scales.SequentialScale(scales.VIRIDIS, (0.0, 100.0))
    legend = s.legend("x", ("标题", "title"), ("人", "persons"))
    both = legend.to_dict()
    assert both["title_zh"] == "标题" and both["title_en"] == "title"
    assert both["unit_zh"] == "人" and both["unit_en"] == "persons"
    assert both["stops"][0]["color"] == list(s.color(0.0))
    assert legend.to_dict("en")["title"] == "title" and legend.to_dict("zh")["unit"] == "人"
    html = legend.to_html("zh")
    assert "标题" in html and "http" not in html


# -- hexes -------------------------------------------------------------------------------------
def test_resolution_for_zoom_is_monotone() -> None:
    zooms = np.arange(8.0, 20.0, 0.25)
    res = [L.resolution_for_zoom(z) for z in zooms]
    assert all(b >= a for a, b in itertools.pairwise(res))
    assert res[0] == 7 and res[-1] == 10
    assert L.resolution_for_zoom(14, levels=(8, 9)) in (8, 9)
    with pytest.raises(L.LayerInputError):
        L.resolution_for_zoom(12, levels=())


def test_risk_hexes(risk10) -> None:
    frame = risk10.frame
    layer = L.risk_hexes(risk10, "zh")
    assert isinstance(layer.layer, pdk.Layer) and layer.layer.type == "H3HexagonLayer"
    assert list(layer.data.columns) == ["hex", "score", "grade", "residents", "factor",
                                        "r", "g", "b", "a"]
    assert len(layer) == len(frame)
    assert list(layer.data["hex"]) == list(grid.cells_to_strings(
        frame["cell"].to_numpy(dtype=np.uint64)))
    assert np.array_equal(grid.strings_to_cells(layer.data["hex"].to_numpy()),
                          frame["cell"].to_numpy(dtype=np.uint64))
    # Colours come from the legend's scale: the top and bottom of the domain.
    scale = scales.SequentialScale(scales.INFERNO, L.hexes.RISK_DOMAIN, alpha=(70, 220))
    for value in (0.0, 1.0):
        stop = next(s for s in layer.legend.stops if s.value == value)
        assert stop.color == scale.color(value)
    row = layer.data.iloc[0]
    assert tuple(_colors(layer.data)[0]) == scale.color(row["score"])
    assert layer.legend.title_zh == "风险得分" and layer.legend.title_en == "risk score"
    assert layer.legend.unit_zh and layer.legend.unit_en
    assert "得分" in layer.tooltip["html"]
    assert "score" in L.risk_hexes(risk10, "en").tooltip["html"]
    assert set(layer.data["grade"]) <= {"高风险", "中风险", "低风险"}
    graded = L.risk_hexes(risk10, "en", color_by="grade")
    medium = graded.data[graded.data["grade"] == "medium risk"]
    assert tuple(_colors(medium)[0])[:3] == scales.GRADE_COLORS["medium"]


def test_risk_payload_is_lean(risk10) -> None:
    layer = L.risk_hexes(risk10, "en")
    per_hex = _compact(layer.data.to_dict(orient="records")) / len(layer)
    assert per_hex < 130, per_hex
    assert layer.data["score"].map(lambda v: round(v, 2) == v).all()
    assert {c: str(t) for c, t in layer.data.dtypes.items() if c in "rgba"} == dict.fromkeys(
        "rgba", "uint8")


def test_residents_hexes(demo) -> None:
    frame = demo[1].read(9, columns=["residents"])
    layer = L.residents_hexes(frame, "en")
    assert layer.layer.type == "H3HexagonLayer"
    assert len(layer) == int((frame["residents"] > 0).sum())
    area = grid.average_cell_area_m2(9) / 1e6
    dens = layer.data["density"].to_numpy()
    assert np.allclose(dens, (layer.data["residents"] / area).round(), atol=area and 1 / area + 1)
    top = layer.data.loc[layer.data["density"].idxmax()]
    scale = scales.SequentialScale(scales.VIRIDIS, L.hexes.RESIDENTS_DOMAIN, alpha=(90, 210))
    assert tuple(top[["r", "g", "b", "a"]]) == scale.color(top["density"])
    assert layer.legend.unit_en == "persons/km²" and layer.legend.unit_zh == "人/平方公里"
    assert "人口" in L.residents_hexes(frame, "zh").tooltip["html"]
    with pytest.raises(L.LayerInputError):
        L.residents_hexes(frame.drop(columns="residents"))


def test_case_hexes_follow_the_privacy_rule(demo) -> None:
    cases = demo[1].read(10, columns=["residents"])[["cell", "cases"]]
    layer = L.case_hexes(cases, "zh")
    assert set(grid.cell_resolution(grid.strings_to_cells(layer.data["hex"].to_numpy()))) == {8}
    total = L.aggregate_cases_for_viewers(cases)
    shown = total[total["cases"] > 0]
    assert len(layer) == len(shown)
    small = layer.data["cases"] == "<10"
    assert small.sum() == ((shown["cases"] > 0) & (shown["cases"] < 10)).sum()
    # Every suppressed count has one colour: the colour tells nothing finer than "<10".
    assert len({tuple(c) for c in _colors(layer.data[small])}) <= 1
    with pytest.raises(L.PrivacyError):
        L.case_hexes(cases, resolution=9)
    exact = L.case_hexes(cases, "en", viewer=False)
    assert len(exact) == int((cases["cases"] > 0).sum())


# -- privacy -----------------------------------------------------------------------------------
def test_suppress_small_counts() -> None:
    assert L.suppress_small_counts([0, 1, 5, 9, 10, 11, 250]) == [
        "0", "<10", "<10", "<10", "10", "11", "250"]
    assert L.suppress_small_counts([np.nan, 3.0], below=5) == ["0", "<5"]


def test_aggregate_cases_for_viewers() -> None:
    lng, lat = np.array([121.47, 121.4701, 121.60]), np.array([31.23, 31.2301, 31.30])
    cells = grid.points_to_cells(lng, lat, 10)
    frame = pd.DataFrame({"cell": cells, "cases": [4, 7, 3]})
    out = L.aggregate_cases_for_viewers(frame)
    assert set(grid.cell_resolution(out["cell"].to_numpy(dtype=np.uint64))) == {8}
    assert out["cases"].sum() == 14
    assert sorted(out["display"]) == ["11", "<10"]
    admin = L.aggregate_cases_for_viewers(pd.DataFrame({"code": ["a", "a", "b"],
                                                        "cases": [0, 12, 0]}))
    assert dict(zip(admin["code"], admin["display"], strict=True)) == {"a": "12", "b": "0"}
    with pytest.raises(L.PrivacyError):
        L.aggregate_cases_for_viewers(frame, resolution=10)


# -- zones, facilities, supply, base map --------------------------------------------------------
def test_zone_areas_by_tier(demo) -> None:
    zones = demo[2]
    layer = L.zone_areas(zones, "zh")
    assert layer.layer.type == "GeoJsonLayer" and len(layer) == len(zones)
    by_tier: dict[str, set] = {}
    for feature in layer.data["features"]:
        p = feature["properties"]
        by_tier.setdefault(p["tier"], set()).add(tuple(p["line"]))
        assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert all(len(c) == 1 for c in by_tier.values())
    colors = [next(iter(c)) for c in by_tier.values()]
    assert len(set(colors)) == len(colors) >= 2
    assert set(by_tier) <= {"封控区", "管控区", "防范区"}
    assert {s.label_en for s in layer.legend.stops} == {"lockdown zone", "control zone",
                                                        "prevention zone"}
    assert "{properties.tier}" in L.zone_areas(zones, "en").tooltip["html"]


def test_facilities(demo) -> None:
    frame = demo[0].read("facilities")
    layer = L.facilities(frame, "en")
    assert layer.layer.type == "ScatterplotLayer" and len(layer) == len(frame)
    assert {"lon", "lat", "radius", "name", "kind", "capacity", "r", "g", "b", "a"} == set(
        layer.data.columns)
    hospital = layer.data[layer.data["kind"] == "hospital"].iloc[0]
    assert tuple(hospital[["r", "g", "b"]]) == scales.FACILITY_GROUPS["medical"][0]
    from layers.facilities import RADIUS_RANGE_M

    lo, hi = RADIUS_RANGE_M
    assert layer.data["radius"].between(lo, hi).all()
    assert layer.data["radius"].nunique() > 1
    assert "容量" in L.facilities(frame, "zh").tooltip["html"]
    assert set(L.facilities(frame, "zh").data["kind"]) & {"医院", "药店"}


def test_cover_areas_and_dispatch(demo) -> None:
    from twin.dispatch import dispatch
    from twin.supply import workspace_gaps

    ws = demo[0]
    gaps = workspace_gaps(ws)
    communities = ws.read("communities")
    layer = L.cover_areas(gaps, communities, "water", "zh")
    assert layer.layer.type == "GeoJsonLayer"
    assert len(layer) == gaps[gaps["resource"] == "water"]["area"].nunique()
    scale = scales.SequentialScale(scales.CIVIDIS, L.supply.COVER_DOMAIN_DAYS,
                                   alpha=(110, 200), reverse=True)
    water = gaps[gaps["resource"] == "water"].set_index("area")["days_of_cover"]
    expected = communities["code"].astype(str).map(water).dropna()
    for feature, days in zip(layer.data["features"], expected, strict=True):
        assert tuple(feature["properties"]["fill"]) == scale.color(days)
    assert layer.legend.unit_zh == "天" and "water" in layer.legend.title_en
    assert "天" in layer.tooltip["html"] and "L" in L.cover_areas(
        gaps, communities, "water", "en").tooltip["html"]
    with pytest.raises(L.LayerInputError):
        L.cover_areas(gaps, communities, "gold")

    routes = dispatch(ws).routes
    lines = L.dispatch_routes(routes, "en")
    arcs = L.dispatch_arcs(routes, "zh")
    assert lines.layer.type == "GeoJsonLayer" and len(lines) == len(routes)
    assert arcs.layer.type == "ArcLayer" and len(arcs) == len(routes)
    assert {"sx", "sy", "tx", "ty", "w", "quantity"} <= set(arcs.data.columns)
    assert "公里" in arcs.tooltip["html"] and "km" in lines.tooltip["html"]


def test_base_map(demo) -> None:
    ws = demo[0]
    districts = L.boundaries(ws.read("districts"), "zh")
    communities = L.boundaries(ws.read("communities"), "en")
    assert districts.layer.type == "GeoJsonLayer" and len(districts) == len(ws.read("districts"))
    assert districts.layer.filled and not communities.layer.filled
    roads = L.roads(ws.read("roads"), "en")
    widths = {f["properties"]["class"]: f["properties"]["w"] for f in roads.data["features"]}
    assert widths["expressway"] > widths["arterial"] > widths["local"]
    frame = ws.read("buildings")
    b = L.buildings(frame, "en")
    assert b.layer.type == "GeoJsonLayer" and b.layer.extruded and len(b) == len(frame)
    heights = [f["properties"]["h"] for f in b.data["features"][:50]]
    assert np.allclose(heights, frame["height_m"].iloc[:50].round(1))
    assert len(L.buildings(frame, min_height_m=20)) < len(frame)
    coords = b.data["features"][0]["geometry"]["coordinates"][0][0]
    assert all(len(str(c).split(".")[-1]) <= 6 for c in coords)


# -- the deck ----------------------------------------------------------------------------------
def test_deck_has_no_map_provider_and_no_url(demo, risk10) -> None:
    ws = demo[0]
    layers = [L.boundaries(ws.read("districts"), "en"), L.roads(ws.read("roads"), "en"),
              L.risk_hexes(risk10, "en"), L.zone_areas(demo[2], "en"),
              L.facilities(ws.read("facilities"), "en")]
    deck = L.deck(layers)
    assert deck.map_provider is None and not deck.map_style
    text = deck.to_json()
    assert "http" not in text and "mapbox" not in text.lower() and "carto" not in text.lower()
    spec = json.loads(text)
    assert spec.get("mapStyle") is None and "mapProvider" not in spec
    assert [layer["id"] for layer in spec["layers"]] == [m.id for m in layers]
    view = spec["initialViewState"]
    west, south, east, north = ws.read("districts").total_bounds
    assert west < view["longitude"] < east and south < view["latitude"] < north
    assert 10 < view["zoom"] < 17

    panel_spec = L.deck_spec(layers, lang="en")
    assert "mapStyle" in panel_spec and panel_spec["mapStyle"] is None
    hexes = panel_spec["layers"][2]
    assert isinstance(hexes["data"], pd.DataFrame) and hexes["getHexagon"] == "@@=hex"
    assert "http" not in json.dumps({**panel_spec, "layers": [
        {k: v for k, v in layer.items() if k != "data"} for layer in panel_spec["layers"]]})
    tips = L.tooltips(layers)
    assert set(tips) == {m.id for m in layers if m.tooltip}
    assert all("html" in t for t in tips.values())
    legends = L.legends(layers)
    assert all(g["title_zh"] and g["title_en"] for g in legends)
    with pytest.raises(L.LayerInputError):
        L.deck([layers[0], layers[0]])
    with pytest.raises(L.LayerInputError):
        L.deck_spec(layers, lang="zh")


def test_layer_functions_are_pure(risk10) -> None:
    before = risk10.frame.copy()
    L.risk_hexes(risk10, "zh")
    pd.testing.assert_frame_equal(before, risk10.frame)
    with pytest.raises(L.LayerInputError):
        L.risk_hexes(risk10, "fr")


def test_a_preview_samples_a_large_layer_and_says_so() -> None:
    import geopandas as gpd
    import shapely

    points = gpd.GeoDataFrame(geometry=[shapely.Point(121.4 + i * 1e-5, 31.2)
                                        for i in range(25_000)], crs=4326)
    big = L.preview(points, "en", max_features=10_000)
    assert len(big) == 10_000
    assert big.legend.stops[0].label("en") == "10,000 of 25,000 features shown"
    coords = [f["geometry"]["coordinates"][0] for f in big.data["features"]]
    assert coords[0] == pytest.approx(121.4) and coords[-1] == pytest.approx(121.4 + 24_999e-5)
    small = L.preview(points.head(3), "zh")
    assert len(small) == 3 and small.legend.stops[0].label("zh") == "3 个要素"
    spec = L.deck_spec([small], lang="zh")
    assert spec["layers"][0]["@@type"] == "GeoJsonLayer"
    with pytest.raises(L.LayerInputError):
        L.preview(pd.DataFrame({"a": [1]}), "zh")
