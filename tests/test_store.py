"""The workspace store: versions, reads, rollback, integrity, and clear errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from pandas.testing import assert_frame_equal

from tests.conftest import make_buildings
from twin import Workspace
from twin.errors import (
    ConfigError,
    KindMismatchError,
    LayerNotFoundError,
    SchemaError,
    StoreCorruptError,
    VersionNotFoundError,
    WorkspaceExistsError,
    WorkspaceNotFoundError,
)


def test_new_workspace_layout(workspace: Workspace) -> None:
    root = workspace.root
    assert {p.name for p in root.iterdir()} >= {"twin.toml", "twin.db", "layers", "tmp"}
    conn = sqlite3.connect(root / "twin.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert workspace.layers() == []
    assert workspace.config.name == "示范市"
    assert workspace.audit_log()[0]["action"] == "init"


def test_publish_read_versions_and_rollback(workspace: Workspace) -> None:
    first, second = make_buildings(50, seed=1), make_buildings(80, seed=2)
    v1 = workspace.publish("buildings", "buildings", first, source_name="楼栋.zip",
                           source_sha256="ab" * 32, source_crs="EPSG:4549", author="gis1",
                           note="housing bureau, March")
    v2 = workspace.publish("buildings", "buildings", second, author="gis2")
    assert (v1.version, v2.version) == (1, 2)
    assert v1.row_count == 50 and v1.source_crs == "EPSG:4549" and v1.author == "gis1"
    assert v1.bounds == pytest.approx(tuple(first.total_bounds))
    assert (workspace.root / v1.file).is_file() and v1.file != v2.file

    assert_frame_equal(workspace.read("buildings"), second, check_dtype=False)
    assert_frame_equal(workspace.read("buildings", 1), first, check_dtype=False)
    assert workspace.read("buildings").crs.to_epsg() == 4326

    back = workspace.rollback("buildings", 1, author="gis1", note="v2 had the wrong district")
    assert back.version == 1 and back.current
    assert_frame_equal(workspace.read("buildings"), first, check_dtype=False)
    assert [v.current for v in workspace.versions("buildings")] == [True, False]
    # versions are immutable: rolling back deletes nothing, publishing continues the numbering
    assert workspace.publish("buildings", "buildings", second).version == 3
    [info] = workspace.layers()
    assert (info.name, info.kind, info.current_version, info.versions) == (
        "buildings", "buildings", 3, 3)
    actions = [(a["action"], a["target"]) for a in workspace.audit_log()]
    assert actions[:4] == [("publish", "buildings@3"), ("rollback", "buildings@1"),
                           ("publish", "buildings@2"), ("publish", "buildings@1")]
    assert workspace.check() == []


def test_table_kind_round_trips(workspace: Workspace) -> None:
    stocks = pd.DataFrame({"facility_id": ["W1", "S2"], "resource": ["grain", "water"],
                           "quantity": [12000.0, 3500.0], "unit": ["kg", "L"],
                           "as_of": pd.to_datetime(["2026-04-30", "2026-04-29"])})
    entry = workspace.publish("stocks", "stocks", stocks)
    assert entry.format == "parquet" and entry.bounds is None
    assert_frame_equal(workspace.read("stocks"), stocks, check_dtype=False)


def test_same_name_other_kind_is_refused(workspace: Workspace) -> None:
    workspace.publish("city", "buildings", make_buildings(3))
    points = gpd.GeoDataFrame({"id": ["a"], "kind": ["hospital"], "name": ["市一医院"]},
                              geometry=[shapely.Point(121.5, 31.2)], crs=4326)
    with pytest.raises(KindMismatchError, match="holds buildings, not facilities"):
        workspace.publish("city", "facilities", points)
    assert [v.version for v in workspace.versions("city")] == [1]
    assert list((workspace.root / "layers" / "city").iterdir()) == [
        workspace.root / workspace.version("city").file]


@pytest.mark.parametrize(("change", "message"), [
    (lambda g: g.drop(columns="use"), "missing required field use"),
    (lambda g: g.to_crs(32651), "is in EPSG:32651, but the store keeps layers in EPSG:4326"),
    (lambda g: g.set_geometry(g.representative_point()), "takes polygon geometries, found point"),
    (lambda g: pd.DataFrame(g.drop(columns="geometry")), "no geometry column"),
    (lambda g: g.set_crs(None, allow_override=True), "has no CRS"),
], ids=["missing-field", "wrong-crs", "wrong-geometry", "no-geometry", "no-crs"])
def test_frames_that_break_the_schema_are_refused(workspace: Workspace, change,
                                                  message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        workspace.publish("buildings", "buildings", change(make_buildings(5)))
    assert workspace.layers() == []
    assert list(workspace.tmp_dir.iterdir()) == []


def test_unknown_kind_suggests(workspace: Workspace) -> None:
    with pytest.raises(SchemaError, match="did you mean 'buildings'"):
        workspace.publish("b", "buildngs", make_buildings(1))


@pytest.mark.parametrize("name", ["", "Buildings", "../etc", "a/b", "楼栋", "1st", "x" * 64])
def test_layer_names_are_safe(workspace: Workspace, name: str) -> None:
    with pytest.raises(SchemaError, match="is not allowed"):
        workspace.publish(name, "buildings", make_buildings(1))


def test_unknown_layer_and_version(workspace: Workspace) -> None:
    with pytest.raises(LayerNotFoundError, match="no layers yet"):
        workspace.read("buildings")
    workspace.publish("buildings", "buildings", make_buildings(2))
    with pytest.raises(LayerNotFoundError, match="did you mean 'buildings'"):
        workspace.versions("buildngs")
    with pytest.raises(VersionNotFoundError, match="has no version 7; it has versions 1"):
        workspace.read("buildings", 7)
    with pytest.raises(VersionNotFoundError):
        workspace.rollback("buildings", 7)
    assert workspace.version("buildings").version == 1


def test_check_finds_damaged_and_missing_files(workspace: Workspace) -> None:
    v1 = workspace.publish("buildings", "buildings", make_buildings(20))
    v2 = workspace.publish("buildings", "buildings", make_buildings(20, seed=5))
    data = bytearray((workspace.root / v1.file).read_bytes())
    data[100] ^= 0xFF
    (workspace.root / v1.file).write_bytes(bytes(data))
    (workspace.root / v2.file).unlink()
    problems = workspace.check()
    assert problems == [
        f"layer 'buildings' version 1: file {v1.file} has been modified (SHA-256 differs)",
        f"layer 'buildings' version 2: file {v2.file} is missing",
    ]
    with pytest.raises(StoreCorruptError, match="version 2 is missing"):
        workspace.read("buildings")


def test_init_refuses_occupied_paths(tmp_path: Path, workspace: Workspace) -> None:
    with pytest.raises(WorkspaceExistsError, match="is already a workspace"):
        Workspace.init(workspace.root, "x")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("keep me")
    with pytest.raises(WorkspaceExistsError, match="non-empty directory"):
        Workspace.init(tmp_path / "notes", "x")
    assert (tmp_path / "notes" / "a.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    assert Workspace.init(tmp_path / "empty", "x").layers() == []


def test_failed_init_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Workspace.init(tmp_path / "ws", "示范市", bbox=(121.6, 31.1, 121.3, 31.4))
    assert list(tmp_path.iterdir()) == []


def test_open_errors_say_what_to_do(tmp_path: Path, workspace: Workspace) -> None:
    with pytest.raises(WorkspaceNotFoundError, match="does not exist; create one with"):
        Workspace.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(WorkspaceNotFoundError, match="not a citytwin workspace"):
        Workspace.open(tmp_path / "plain")

    toml = workspace.config_path
    good = toml.read_text(encoding="utf-8")
    toml.write_text(good.replace("base_resolution = 10", "base_resolution = 99"),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="H3 resolutions run from 0 to 15"):
        Workspace.open(workspace.root)
    toml.write_text(good, encoding="utf-8")

    db = workspace.db_path
    db.rename(db.with_suffix(".bak"))
    with pytest.raises(StoreCorruptError, match=r"database .* is missing; restore it"):
        Workspace.open(workspace.root)
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreCorruptError, match="not a readable citytwin database"):
        Workspace.open(workspace.root)
    db.unlink()
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(StoreCorruptError, match="not a citytwin database"):
        Workspace.open(workspace.root)


def test_newer_database_layout_is_refused(workspace: Workspace) -> None:
    conn = sqlite3.connect(workspace.db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorruptError, match="written by a newer citytwin"):
        Workspace.open(workspace.root)


def test_errors_are_also_builtin_errors(workspace: Workspace) -> None:
    with pytest.raises(KeyError):
        workspace.read("nothing")
    with pytest.raises(FileNotFoundError):
        Workspace.open(workspace.root / "nothing")
    with pytest.raises(ValueError):
        workspace.publish("BAD", "buildings", make_buildings(1))


def test_older_database_is_migrated(workspace: Workspace, monkeypatch) -> None:
    """A workspace of an older layout is upgraded in one transaction when opened."""
    from twin import db

    current = db.SCHEMA_VERSION
    monkeypatch.setattr(db, "MIGRATIONS", [*db.MIGRATIONS, "CREATE TABLE extra_test (x)"])
    monkeypatch.setattr(db, "SCHEMA_VERSION", current + 1)
    Workspace.open(workspace.root)
    conn = sqlite3.connect(workspace.db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == current + 1
    assert conn.execute("SELECT COUNT(*) FROM extra_test").fetchone()[0] == 0
    conn.close()
    Workspace.open(workspace.root)  # already current: nothing to do
