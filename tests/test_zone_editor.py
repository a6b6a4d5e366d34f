"""The zone editor's state without a browser: what a planner's strokes, polygons and clicks do.

Runs on the small demo (prepared like ``twin demo``); every decision goes through
:mod:`twin.zones`, so the saved zones are checked in the workspace itself.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import fused_demo
from twin import grid
from twin.users import AuthError, Users


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from dashboards.demo import prepare_demo

    ws, _ = fused_demo(tmp_path_factory.mktemp("zone-editor"))
    prepare_demo(ws, password="demo-password-2")
    users = Users(ws)
    for name, role in (("plan", "planner"), ("plan2", "planner"), ("gis", "gis")):
        users.add(name, role, "planner-pass-1", actor="test")
    return ws


def _state(ws: Any, name: str = "plan") -> Any:
    from dashboards.zones_state import ZoneEditorState

    return ZoneEditorState(ws, user=Users(ws).get(name))


def _square(ws: Any, half: float = 0.004, dx: float = 0.0) -> dict[str, Any]:
    west, south, east, north = ws.config.bbox
    cx, cy = (west + east) / 2 + dx, (south + north) / 2
    ring = [[cx - half, cy - half], [cx + half, cy - half], [cx + half, cy + half],
            [cx - half, cy + half], [cx - half, cy - half]]
    return {"type": "Polygon", "coordinates": [ring]}


def test_only_planners_and_admins_may_open_the_editor(demo) -> None:
    from dashboards.zones_state import ZoneEditorState

    for name in ("demo", "gis"):
        with pytest.raises(AuthError, match="may not edit zones"):
            ZoneEditorState(demo, user=Users(demo).get(name))
    assert _state(demo).role == "planner"


def test_a_drawn_polygon_becomes_its_cells_and_is_saved_with_its_outline(demo) -> None:
    import shapely
    import shapely.geometry

    from twin.zones import Zones

    s = _state(demo)
    s.new_zone("control")
    poly = _square(demo)
    added = s.add_polygon(poly)
    want = np.unique(grid.polygon_to_cells(shapely.geometry.shape(poly), s.base_res))
    assert added == len(want) > 10
    assert np.array_equal(s.draft.cells, want)
    assert s.impact()["residents"] > 0
    made = s.save("test: drawn by hand")
    zone = Zones(demo).get(made.zone_id)
    assert np.array_equal(zone.cells, want)
    assert zone.author == "plan" and zone.reason == "test: drawn by hand"
    outline = shapely.from_wkb(zone.outline)
    assert np.array_equal(np.unique(grid.polygon_to_cells(outline, s.base_res)), want)


def test_a_brush_stroke_is_one_undo_step_and_leaves_no_gaps(demo) -> None:
    s = _state(demo)
    s.new_zone("lockdown")
    west, south, _east, north = demo.config.bbox
    y = (south + north) / 2
    xs = np.linspace(west + 0.01, west + 0.03, 5)
    # one stroke in two batches (a fast drag: points far apart)
    s.apply_stroke({"stroke": 7, "mode": "add", "points": [[xs[0], y], [xs[2], y]],
                    "final": False})
    s.apply_stroke({"stroke": 7, "mode": "add", "points": [[xs[2], y], [xs[4], y]],
                    "final": True})
    cells = s.draft.cells
    # no gaps: every cell of the stroke touches another one
    assert len(cells) > 5
    assert all(np.isin(grid.grid_disk(cells[i:i + 1], 1), cells).sum() >= 2
               for i in range(len(cells)))
    s.brush_k = 1
    s.apply_stroke({"stroke": 8, "mode": "remove", "points": [[xs[2], y]], "final": True})
    assert len(s.draft.cells) < len(cells)
    assert s.undo() and np.array_equal(s.draft.cells, cells)  # the removal
    assert s.undo() and len(s.draft.cells) == 0  # the whole two-batch stroke at once
    assert not s.undo()
    assert s.redo() and np.array_equal(s.draft.cells, cells)
    assert s.redo() and len(s.draft.cells) < len(cells)
    assert not s.redo()


def test_edit_outline_replaces_the_cells(demo) -> None:
    import shapely.geometry

    s = _state(demo)
    s.new_zone("control")
    s.add_polygon(_square(demo))
    outline = s.outline_geojson()
    assert outline["features"]
    bigger = _square(demo, half=0.006)
    s.set_outline(bigger)
    want = np.unique(grid.polygon_to_cells(shapely.geometry.shape(bigger), s.base_res))
    assert np.array_equal(s.draft.cells, want)


def test_two_planners_merge_and_a_real_conflict_waits_for_a_choice(demo) -> None:
    from twin.zones import Zones

    a, b = _state(demo, "plan"), _state(demo, "plan2")
    a.new_zone("control")
    a.add_polygon(_square(demo, dx=0.01))
    zone = a.save("start")
    b.open_zone(zone.zone_id)
    base = zone.cells
    # a adds cells on one side, b removes cells on the other: they merge
    extra = np.setdiff1d(grid.grid_disk(base[:1], 2), base)[:3]
    a.param.update(draft=a.draft.replace(cells=np.union1d(a.draft.cells, extra)))
    result = a.save("a adds three")
    assert result.zone.version == 2
    b.param.update(draft=b.draft.replace(cells=base[5:]))
    merged = b.save("b removes five")
    assert merged.merged_with and merged.merged_with[0][1] == "plan"
    now = Zones(demo).get(zone.zone_id)
    assert set(extra) <= set(now.cells) and not set(base[:5]) & set(now.cells)
    # a real conflict: b removes what a adds back
    a.open_zone(zone.zone_id)
    b.open_zone(zone.zone_id)
    a.param.update(draft=a.draft.replace(cells=np.union1d(a.draft.cells, base[:1])))
    a.save("a puts one back")
    b.set_fields(tier="lockdown")
    a2 = _state(demo, "plan")
    a2.open_zone(zone.zone_id)
    a2.set_fields(tier="prevention")
    b.save("b makes it lockdown")
    before = Zones(demo).get(zone.zone_id).version
    out = a2.save("a makes it prevention")
    assert a2.conflict is not None and out is a2.conflict
    assert a2.conflict.conflicts.tier == ("prevention", "lockdown")
    assert Zones(demo).get(zone.zone_id).version == before  # nothing written
    a2.save("a insists", resolve={"tier": "mine"})
    assert a2.conflict is None
    assert Zones(demo).get(zone.zone_id).tier == "prevention"


def test_accept_reject_and_the_cockpit_sees_it(demo) -> None:
    from twin.situation import Situation, fingerprint
    from twin.zones import Zones

    s = _state(demo)
    props = s.proposals()
    assert props and all(p["residents"] >= 0 for p in props)
    first, second = props[0], props[1]
    day = dt.date.fromisoformat(first["valid_from"][:10])
    s.accept(first["zone_id"], day)
    zones = Zones(demo)
    assert zones.get(first["zone_id"]).status == "active"
    assert zones.get(first["zone_id"]).valid_from == day.isoformat()
    situation = Situation(demo, fingerprint(demo))
    assert first["zone_id"] in {z.zone_id for z in situation.zones_on(day)}
    assert first["zone_id"] not in {z.zone_id for z in situation.zones_on(
        day - dt.timedelta(days=1))}
    s.reject(second["zone_id"], "already isolated")
    rejected = zones.get(second["zone_id"])
    assert rejected.status == "lifted" and "already isolated" in rejected.reason
    assert second["zone_id"] not in {p["zone_id"] for p in s.proposals()}


def test_history_diff_and_export(demo, tmp_path: Path) -> None:
    import geopandas as gpd

    s = _state(demo)
    s.new_zone("control")
    s.add_polygon(_square(demo, dx=-0.012))
    zone = s.save("v1")
    s.apply_stroke({"stroke": 1, "mode": "remove",
                    "points": [list(c) for c in zip(*grid.cell_centres(zone.cells[:2]),
                                                    strict=True)], "final": True})
    s.save("v2 drops two")
    versions = s.history()
    assert [v.version for v in versions] == [1, 2]
    d = s.show_diff(1, 2)
    assert len(d["removed"]) == 2 and not d["added"]
    assert any(layer.id == "diff_removed" for layer in s.edit_layers())
    for fmt in ("geojson", "gpkg"):
        path = s.export(fmt)
        try:
            frame = gpd.read_file(path)
        finally:
            path.unlink()
        assert zone.zone_id in set(frame["zone_id"])
        assert {"tier_zh", "status_zh"} <= set(frame.columns)


def test_a_downgrade_due_applies_with_its_rule_as_reason(demo) -> None:
    from twin.zones import Zones

    s = _state(demo)
    s.date = s.end  # four weeks after the last case: every lockdown has waited long enough
    items = s.downgrades()
    assert items, "the demo's active lockdown zones are due for control after 28 days"
    item = items[0]
    s.apply_downgrade(item)
    zone = Zones(demo).get(item["zone_id"])
    assert zone.tier == item["suggested_tier"]
    assert zone.valid_from == s.end.isoformat()
    assert item["rule"] in zone.reason and item["rule_zh"] in zone.reason


def test_a_5000_cell_draft_updates_fast_enough_to_follow_a_stroke(demo) -> None:
    """Not a timing test (bench/zone_editor.py measures): the work per stroke stays small."""
    s = _state(demo)
    s.new_zone("control")
    west, south, east, north = demo.config.bbox
    centre = grid.points_to_cells(np.array([(west + east) / 2]), np.array([(south + north) / 2]),
                                  s.base_res)
    s.param.update(draft=s.draft.replace(cells=np.unique(grid.grid_disk(centre, 40))))
    assert len(s.draft.cells) > 4800
    s.apply_stroke({"stroke": 3, "mode": "remove", "points": [[(west + east) / 2,
                                                                (south + north) / 2]],
                    "final": True})
    layer = next(x for x in s.edit_layers() if x.id == "draft")
    assert len(layer) == len(s.draft.cells)
