"""The layer catalog: metadata, freshness, differences between versions, exports."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyogrio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fused_demo, make_buildings
from twin import Workspace
from twin.catalog import (
    diff_versions,
    export_collection,
    export_layer,
    freshness,
    get_meta,
    neutralise_csv,
    set_meta,
)
from twin.errors import AuthError, FeaturesError, UserInputError


def test_metadata_round_trips_and_is_audited(workspace: Workspace) -> None:
    workspace.publish("buildings", "buildings", make_buildings(10))
    assert get_meta(workspace, "buildings").title_zh == ""
    meta = set_meta(workspace, "buildings", actor="gis1", title_zh="楼栋", title_en="Buildings",
                    department="住建局 Housing", refresh_hours=24.0)
    again = set_meta(workspace, "buildings", actor="gis1", licence="CC-BY 4.0")
    assert again.title_zh == meta.title_zh == "楼栋" and again.licence == "CC-BY 4.0"
    assert get_meta(workspace, "buildings") == again
    with workspace.connect() as conn:
        actions = [r[0] for r in conn.execute(
            "SELECT action FROM audit WHERE target = 'buildings' AND actor = 'gis1'")]
    assert actions == ["catalog.meta", "catalog.meta"]
    for bad in ({"refresh_hours": 0}, {"refresh_hours": "daily"}, {"colour": "red"},
                {"title_zh": "x" * 2001}):
        with pytest.raises(UserInputError):
            set_meta(workspace, "buildings", actor="gis1", **bad)


def test_freshness_by_the_layers_interval_then_the_kinds(workspace: Workspace) -> None:
    entry = workspace.publish("buildings", "buildings", make_buildings(5))
    created = dt.datetime.fromisoformat(entry.created_at.replace("Z", "+00:00"))
    set_meta(workspace, "buildings", actor="t", refresh_hours=10.0)

    def state(hours: float) -> str:
        return freshness(workspace, "buildings", now=created + dt.timedelta(hours=hours))[
            "state"]

    assert [state(h) for h in (0, 10, 10.1, 20, 20.1)] == [
        "fresh", "fresh", "due", "due", "overdue"]
    set_meta(workspace, "buildings", actor="t", refresh_hours=None)
    kind_default = workspace.config["alerts"]["refresh_hours"].get("buildings")
    got = freshness(workspace, "buildings", now=created)
    assert got["refresh_hours"] == (None if kind_default is None else float(kind_default))
    assert got["state"] == ("unknown" if kind_default is None else "fresh")


def test_difference_between_versions_counts_rows_added_removed_and_changed(
        workspace: Workspace) -> None:
    v1 = make_buildings(50)
    workspace.publish("buildings", "buildings", v1)
    v2 = v1.iloc[2:].copy()  # B0000000, B0000001 removed
    v2.loc[v2.index[:4], "floors"] = v2["floors"].iloc[:4] + 1  # 4 changed
    v2 = pd.concat([v2, make_buildings(53).iloc[50:]])  # B0000050..52 added
    v2 = v2.set_crs(4326, allow_override=True)
    workspace.publish("buildings", "buildings", v2)
    got = diff_versions(workspace, "buildings", 1)
    assert (got["old"], got["new"], got["key"]) == (1, 2, "id")
    assert got["rows"] == {"old": 50, "new": 51}
    assert got["removed"] == {"count": 2, "sample": ["B0000000", "B0000001"]}
    assert got["added"]["count"] == 3
    assert got["changed"]["count"] == 4
    assert got["totals"]["new"]["floors"] - got["totals"]["old"]["floors"] == pytest.approx(
        float(v2["floors"].sum() - v1["floors"].sum()))


def test_export_a_version_as_geopackage_geojson_and_safe_csv(workspace: Workspace,
                                                              tmp_path: Path) -> None:
    frame = make_buildings(6)
    frame["name"] = ["=HYPERLINK(\"http://evil.example\")", "+1", "-2", "@SUM(A1)", "plain",
                     "\tx"]
    workspace.publish("buildings", "buildings", frame)
    workspace.publish("buildings", "buildings", make_buildings(3))
    set_meta(workspace, "buildings", actor="t", title_zh="楼栋", department="住建局")
    gpkg = export_layer(workspace, "buildings", tmp_path / "b.gpkg", version=1, actor="gis1")
    back = pyogrio.read_dataframe(gpkg)
    assert len(back) == 6 and back.crs.to_epsg() == 4326
    described = json.loads(pyogrio.read_info(gpkg)["layer_metadata"]["DESCRIPTION"])
    assert (described["title_zh"], described["version"]) == ("楼栋", 1)
    geojson = export_layer(workspace, "buildings", tmp_path / "b.geojson")
    assert len(pyogrio.read_dataframe(geojson)) == 3
    meta = json.loads((tmp_path / "b.geojson.meta.json").read_text(encoding="utf-8"))
    assert meta["version"] == 2 and meta["department"] == "住建局"
    csv = export_layer(workspace, "buildings", tmp_path / "b.csv", version=1)
    read = pd.read_csv(csv, encoding="utf-8-sig", keep_default_na=False)
    assert read["name"].tolist() == ["'=HYPERLINK(\"http://evil.example\")", "'+1", "'-2",
                                     "'@SUM(A1)", "plain", "'\tx"]
    assert read["floors"].dtype.kind == "i"  # numbers stay numbers
    assert read["wkt"].str.startswith("POLYGON").all()
    with workspace.connect() as conn:
        assert conn.execute("SELECT count(*) FROM audit WHERE action = 'catalog.export'"
                            ).fetchone()[0] == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=8), st.integers(-5, 5), st.none()), max_size=20))
def test_no_neutralised_text_cell_starts_a_formula(values: list) -> None:
    frame = pd.DataFrame({"v": pd.Series(values, dtype=object)})
    out = neutralise_csv(frame)["v"].tolist()
    for before, after in zip(values, out, strict=True):
        if isinstance(before, str):
            assert not after.startswith(("=", "+", "-", "@", "\t", "\r"))
            assert after in (before, "'" + before)
        else:
            assert after is before or (after is None and before is None) or (
                isinstance(before, int) and after == before)


def test_export_the_facts_and_zones_as_the_role_may_read_them(tmp_path: Path) -> None:
    from twin.facts import Facts
    from twin.privacy import PrivacyPolicy

    ws, _ = fused_demo(tmp_path)
    facts = Facts(ws)
    csv = export_collection(ws, "facts-community", tmp_path / "c.csv", role="gis",
                            actor="gis1")
    table = pd.read_csv(csv, encoding="utf-8-sig")
    community = facts.read("community")
    assert len(table) == len(community)
    assert table["residents"].sum() == pytest.approx(community["residents"].sum())
    assert table["wkt"].str.startswith(("POLYGON", "MULTIPOLYGON")).all()
    gpkg = export_collection(ws, "facts-r9", tmp_path / "r9.gpkg", role="gis")
    cells = pyogrio.read_dataframe(gpkg)
    assert len(cells) == len(facts.read(9)) and cells.crs.to_epsg() == 4326
    # A window for the case columns travels into the metadata beside the file.
    export_collection(ws, "facts-district", tmp_path / "d.geojson", role="gis",
                      datetime="2026-03-01/2026-03-15")
    meta = json.loads((tmp_path / "d.geojson.meta.json").read_text(encoding="utf-8"))
    assert meta["datetime"] == "2026-03-01/2026-03-15" and meta["facts"]
    # A viewer gets the viewers' privacy: nothing finer than res 8, small counts hidden.
    with pytest.raises(AuthError):
        export_collection(ws, "facts-r9", tmp_path / "v.csv", role="viewer")
    viewer = pd.read_csv(export_collection(ws, "facts-r8", tmp_path / "v8.csv", role="viewer"),
                         encoding="utf-8-sig", dtype=str, keep_default_na=False)
    below = PrivacyPolicy.from_config(ws.config).suppress_below
    assert "cases" in viewer.columns
    shown = [v for column in viewer.columns if column.startswith("cases")
             for v in viewer[column] if v not in ("", "0")]
    assert shown and all(v == f"<{below}" or int(float(v)) >= below for v in shown)
    export_collection(ws, "zones", tmp_path / "z.gpkg", role="viewer")
    with pytest.raises(FeaturesError):
        export_collection(ws, "facts-r99", tmp_path / "x.csv", role="gis")
    with ws.connect() as conn:
        assert conn.execute("SELECT count(*) FROM audit WHERE action = 'catalog.export' AND "
                            "actor = 'gis1'").fetchone()[0] == 1
