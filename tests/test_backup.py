"""`twin backup` / `twin restore`: a round trip, a backup taken while another process
publishes, and damaged or misplaced backups refused with nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_buildings
from twin import Workspace
from twin.backup import MANIFEST, backup, restore
from twin.errors import StoreCorruptError, UserInputError
from twin.users import Users

ROOT = Path(__file__).resolve().parents[1]
TWIN = str(Path(sys.executable).with_name("twin"))


def _picture(ws: Workspace) -> dict:
    """What a restore must give back: layers and versions, users, the audit trail."""
    with ws.connect() as conn:
        return {
            "versions": [tuple(r) for r in conn.execute(
                "SELECT layer, version, file_sha256 FROM layer_versions ORDER BY 1, 2")],
            "current": [tuple(r) for r in conn.execute(
                "SELECT name, current_version FROM layers ORDER BY 1")],
            "users": [tuple(r) for r in conn.execute(
                "SELECT name, role, password_hash FROM users ORDER BY 1")],
            "audit": conn.execute("SELECT count(*) FROM audit").fetchone()[0],
        }


@pytest.fixture
def filled(workspace: Workspace) -> Workspace:
    workspace.publish("buildings", "buildings", make_buildings(300))
    workspace.publish("buildings", "buildings", make_buildings(200, seed=1))
    Users(workspace).add("ops", "admin", "backup-pass-1", actor="test")
    (workspace.root / "cookie_secret").write_text("ab" * 32)
    (workspace.root / "cookie_secret").chmod(0o600)
    return workspace


def test_backup_and_restore_round_trip(filled: Workspace, tmp_path: Path) -> None:
    out = subprocess.run([TWIN, "backup", str(filled.root), str(tmp_path / "bk"), "--json"],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    manifest = json.loads(out.stdout)
    assert manifest["format"] == "citytwin-backup" and len(manifest["files"]) >= 4
    assert (tmp_path / "bk").stat().st_mode & 0o777 == 0o700
    done = subprocess.run([TWIN, "restore", str(tmp_path / "bk"), str(tmp_path / "again")],
                          check=True, capture_output=True, text=True, cwd=ROOT)
    assert "twin check` ok" in done.stdout
    again = Workspace.open(tmp_path / "again")
    assert again.check() == []
    assert _picture(again) == _picture(filled)
    assert (tmp_path / "again" / "cookie_secret").read_text() == "ab" * 32
    assert (tmp_path / "again" / "cookie_secret").stat().st_mode & 0o777 == 0o600
    Users(again).authenticate("ops", "backup-pass-1")


def test_a_backup_taken_while_another_process_publishes_is_sound(
        filled: Workspace, tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-m", "tests.publish_child", str(filled.root),
                              "loop", "1", "25"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    backups = []
    try:
        while child.poll() is None and len(backups) < 20:
            target = tmp_path / f"bk{len(backups)}"
            backup(filled, target)
            backups.append(target)
    finally:
        child.communicate(timeout=120)
    assert child.returncode == 0
    assert backups
    for i, target in enumerate(backups):
        restored = restore(target, tmp_path / f"rs{i}")
        ws = Workspace.open(restored["path"])
        assert ws.check() == [], target
    # The last backup, after the publisher finished, holds everything it published.
    backup(filled, tmp_path / "final")
    restore(tmp_path / "final", tmp_path / "final-rs")
    assert _picture(Workspace.open(tmp_path / "final-rs")) == _picture(filled)


def test_a_damaged_backup_is_refused_and_nothing_is_restored(
        filled: Workspace, tmp_path: Path) -> None:
    backup(filled, tmp_path / "bk")
    manifest = json.loads((tmp_path / "bk" / MANIFEST).read_text())
    layer_file = next(rel for rel in manifest["files"] if rel.startswith("layers/"))
    path = tmp_path / "bk" / layer_file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match=layer_file):
        restore(tmp_path / "bk", tmp_path / "rs")
    assert not (tmp_path / "rs").exists()
    assert not list(tmp_path.glob(".rs.partial-*"))
    with pytest.raises(StoreCorruptError, match="not a citytwin backup"):
        restore(tmp_path, tmp_path / "rs2")


def test_backups_and_restores_never_overwrite(filled: Workspace, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match="not an empty directory"):
        backup(filled, tmp_path / "full")
    with pytest.raises(UserInputError, match="outside the workspace"):
        backup(filled, filled.root / "backups")
    backup(filled, tmp_path / "bk")
    with pytest.raises(UserInputError, match="not an empty directory"):
        restore(tmp_path / "bk", tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
