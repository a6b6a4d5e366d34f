"""Atomic publishing under SIGKILL, and two processes publishing at once.

Real child processes are killed with SIGKILL at each point of the publish protocol; after each
kill the previous version must still be current, no half-written version may be visible, the
database must pass PRAGMA integrity_check, and the next open must clean the leftovers.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pandas.testing import assert_frame_equal

from tests.conftest import make_buildings
from twin import Workspace
from twin.errors import StoreBusyError

ROOT = Path(__file__).resolve().parents[1]


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.publish_child", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_ready(proc: subprocess.Popen[str], point: str) -> None:
    line = proc.stdout.readline()  # blocks until the child pauses (or dies)
    if line.strip() != f"READY {point}":
        proc.kill()
        raise AssertionError(f"child did not reach {point}: {line!r} {proc.stderr.read()}")


def _raw_catalog(root: Path) -> tuple[list[tuple[int, int]], list[str]]:
    """Versions and current pointer as any reader sees them, without the store's recovery."""
    conn = sqlite3.connect(f"file:{root / 'twin.db'}?mode=ro", uri=True)
    try:
        versions = conn.execute("SELECT version, row_count FROM layer_versions "
                                "WHERE layer='buildings' ORDER BY version").fetchall()
        current = conn.execute("SELECT current_version FROM layers").fetchall()
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()
    return versions, [str(c[0]) for c in current] + integrity


@pytest.mark.parametrize("point", ["write", "renamed", "transaction"])
def test_kill_during_publish_keeps_previous_version(workspace: Workspace, point: str) -> None:
    baseline = make_buildings(100, seed=1)
    workspace.publish("buildings", "buildings", baseline, note="baseline")

    proc = _child(str(workspace.root), f"pause-{point}")
    _wait_ready(proc, point)
    # the kill lands where we meant it to: the leftovers of that point are on disk
    tmp_files = list(workspace.tmp_dir.iterdir())
    layer_files = sorted((workspace.root / "layers" / "buildings").iterdir())
    if point == "write":
        assert len(tmp_files) == 1 and tmp_files[0].stat().st_size > 0
        assert len(layer_files) == 1
    else:
        assert tmp_files == [] and len(layer_files) == 2
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL

    # any reader, before recovery, sees only the previous version, and a sound database
    versions, state = _raw_catalog(workspace.root)
    assert versions == [(1, 100)]
    assert state == ["1", "ok"]

    reopened = Workspace.open(workspace.root)
    assert len(reopened.recovered) == 1  # the half-written or orphaned file, cleaned up
    assert list(workspace.tmp_dir.iterdir()) == []
    assert [v.version for v in reopened.versions("buildings")] == [1]
    assert_frame_equal(reopened.read("buildings"), baseline, check_dtype=False)
    assert reopened.check() == []
    # and the workspace keeps working
    assert reopened.publish("buildings", "buildings", make_buildings(7)).version == 2


def test_kill_after_commit_keeps_the_new_version(workspace: Workspace) -> None:
    workspace.publish("buildings", "buildings", make_buildings(100, seed=1))
    proc = _child(str(workspace.root), "pause-committed", "2000")
    _wait_ready(proc, "committed")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    reopened = Workspace.open(workspace.root)
    assert reopened.recovered == []
    assert [(v.version, v.row_count, v.current) for v in reopened.versions("buildings")] == [
        (1, 100, False), (2, 2000, True)]
    assert_frame_equal(reopened.read("buildings"), make_buildings(2000, seed=99),
                       check_dtype=False)
    assert reopened.check() == []


def test_cleanup_never_touches_a_publish_in_progress(workspace: Workspace) -> None:
    """Opening the workspace while another process is mid-publish removes nothing."""
    workspace.publish("buildings", "buildings", make_buildings(10))
    proc = _child(str(workspace.root), "pause-renamed")
    try:
        _wait_ready(proc, "renamed")
        before = sorted(p.name for p in (workspace.root / "layers" / "buildings").iterdir())
        assert Workspace.open(workspace.root).recovered == []
        after = sorted(p.name for p in (workspace.root / "layers" / "buildings").iterdir())
        assert before == after and len(after) == 2
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert len(Workspace.open(workspace.root).recovered) == 1


def test_two_processes_publishing_at_once(workspace: Workspace) -> None:
    count = 12
    procs = [_child(str(workspace.root), "loop", str(child), str(count)) for child in (1, 2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    published = [p for r in results for p in r["published"]]
    # nothing lost: every publish has its own version, numbered without gaps
    assert sorted(p["version"] for p in published) == list(range(1, 2 * count + 1))
    ws = Workspace.open(workspace.root)
    by_version = {v.version: v for v in ws.versions("shared")}
    for p in published:
        entry = by_version[p["version"]]
        assert (entry.row_count, entry.note) == (p["rows"], p["note"])
    assert ws.version("shared").version == 2 * count
    for version in (1, count, 2 * count):
        assert len(ws.read("shared", version)) == by_version[version].row_count
    assert ws.check() == []
    assert ws.recovered == [] and list(ws.tmp_dir.iterdir()) == []


def test_busy_database_gives_a_retryable_error(workspace: Workspace) -> None:
    toml = workspace.config_path
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        "busy_timeout_s = 30.0", "busy_timeout_s = 0.2"), encoding="utf-8")
    ws = Workspace.open(workspace.root)
    blocker = sqlite3.connect(ws.db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreBusyError, match="run the command again") as info:
            ws.publish("buildings", "buildings", make_buildings(5))
        assert info.value.retryable
        assert time.monotonic() - started < 5
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    # the refused publish left nothing behind, and a retry succeeds
    assert list(ws.tmp_dir.iterdir()) == []
    assert not (ws.root / "layers" / "buildings").exists() or not any(
        (ws.root / "layers" / "buildings").iterdir())
    assert ws.publish("buildings", "buildings", make_buildings(5)).version == 1


def test_a_killed_ingest_leaves_its_scratch_in_the_workspace_and_the_next_open_cleans_it(
        workspace: Workspace, tmp_path: Path) -> None:
    """Finding: a killed `twin ingest` left `citytwin-ingest-*` (sandbox request, log, result
    Parquet) in the system temp directory in about a third of kills; nothing cleaned it."""
    import tempfile

    source = tmp_path / "buildings.gpkg"
    make_buildings(60_000).to_file(source, driver="GPKG")
    system_tmp = Path(tempfile.gettempdir())
    before = set(system_tmp.glob("citytwin-ingest-*"))
    twin = str(Path(sys.executable).with_name("twin"))
    proc = subprocess.Popen([twin, "ingest", str(workspace.root), str(source), "--kind",
                             "buildings", "--name", "buildings"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    scratch: list[Path] = []
    while not scratch and proc.poll() is None and time.monotonic() < deadline:
        scratch = list(workspace.tmp_dir.glob("ingest-*"))
        time.sleep(0.01)
    assert scratch, "the ingest made no scratch directory under the workspace's tmp/"
    time.sleep(0.3)  # into the sandbox's work
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert set(system_tmp.glob("citytwin-ingest-*")) == before
    assert scratch[0].exists()
    reopened = Workspace.open(workspace.root)
    assert scratch[0].relative_to(workspace.root).as_posix() in reopened.recovered
    assert not scratch[0].exists()
    assert reopened.layers() == []


def test_a_scratch_directory_in_use_survives_another_process_opening_the_workspace(
        workspace: Workspace) -> None:
    with workspace.scratch_dir("ingest-") as scratch:
        (scratch / "request.json").write_text("{}")
        child = subprocess.run(
            [sys.executable, "-c", "import sys; from twin import Workspace; "
             "print(Workspace.open(sys.argv[1]).recovered)", str(workspace.root)],
            capture_output=True, text=True, check=True, cwd=ROOT)
        assert child.stdout.strip() == "[]"
        assert (scratch / "request.json").exists()
    assert not scratch.exists()
