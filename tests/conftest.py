"""Shared fixtures; test data is generated here, never committed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from twin import Workspace

#: The `twin` console script of the interpreter running the tests.
TWIN = str(Path(sys.executable).with_name("twin"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail a run in which no test passed (e.g. everything skipped or deselected)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and exitstatus == 0 and not reporter.stats.get("passed"):
        reporter.write_line("error: no test passed; a run that tests nothing is a failure",
                            red=True)
        session.exitstatus = 1


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A fresh workspace around the demo city's area."""
    return Workspace.init(tmp_path / "ws", "示范市", name_en="Demo City",
                          bbox=(121.30, 31.10, 121.65, 31.40))


def make_buildings(n: int, *, seed: int = 0) -> gpd.GeoDataFrame:
    """``n`` small rectangular buildings in EPSG:4326 near 31.2N 121.5E."""
    rng = np.random.default_rng(seed)
    x = 121.40 + rng.random(n) * 0.1
    y = 31.20 + rng.random(n) * 0.1
    uses = np.array(["residential", "commercial", "office", "public"])
    return gpd.GeoDataFrame(
        {"id": [f"B{i:07d}" for i in range(n)], "use": uses[rng.integers(0, 4, n)],
         "floors": rng.integers(1, 33, n)},
        geometry=shapely.box(x, y, x + 0.0002, y + 0.0001), crs=4326)


#: Fused demo cities built in this test session: (size, seed) -> (directory, manifest).
_FUSED_DEMOS: dict[tuple[str, int], tuple[Path, dict]] = {}


def _build_fused_demo(root: Path, size: str, seed: int) -> dict:
    from ingest import ingest_manifest
    from twin.demo import generate_demo_city
    from twin.fuse import fuse

    manifest = generate_demo_city(root / "city", size=size, seed=seed)
    ws = Workspace.init(root / "ws", "示范市", name_en="Demo City",
                        bbox=tuple(manifest["city"]["bbox"]))
    reports = ingest_manifest(ws, root / "city" / "manifest.json")
    assert all(r.status == "published" for r in reports), [r.to_text() for r in reports]
    assert fuse(ws).status == "fused"
    return manifest


def fused_demo(root: Path, *, size: str = "small", seed: int = 0) -> tuple[Workspace, dict]:
    """The demo city generated, ingested into a new workspace and fused, under ``root``.

    Each (size, seed) is built once per test session (about 20 s for ``small``); every
    caller gets its own copy of the source files and the workspace (paths inside a workspace
    are relative), so tests that change it do not see each other's changes.
    """
    import copy
    import shutil
    import tempfile

    key = (size, seed)
    if key not in _FUSED_DEMOS:
        built = Path(tempfile.mkdtemp(prefix=f"citytwin-demo-{size}-{seed}-"))
        _FUSED_DEMOS[key] = (built, _build_fused_demo(built, size, seed))
    built, manifest = _FUSED_DEMOS[key]
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("city", "ws"):
        shutil.copytree(built / sub, root / sub, symlinks=True)
    manifest = copy.deepcopy(manifest)
    return Workspace.open(root / "ws"), manifest


@pytest.fixture(scope="session", autouse=True)
def _remove_fused_demos() -> Iterator[None]:
    """Delete the session's fused demo builds at the end."""
    import shutil

    yield
    for built, _ in _FUSED_DEMOS.values():
        shutil.rmtree(built, ignore_errors=True)


def run_twin(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``twin`` console script; never raises on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if k != "TWIN_DEBUG"}
    return subprocess.run([TWIN, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300, check=False)
