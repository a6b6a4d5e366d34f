"""`twin demo-data` and `twin demo` through the real console script."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_twin


def test_demo_data_json_and_refusals(tmp_path: Path) -> None:
    out = tmp_path / "city"
    result = run_twin("demo-data", str(out), "--size", "small", "--seed", "3", "--json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest == json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["city"]["size"], manifest["city"]["seed"]) == ("small", 3)
    assert {f["kind"] for f in manifest["files"]} == {
        "boundaries", "buildings", "population", "facilities", "cases", "stocks", "roads"}

    again = run_twin("demo-data", str(out), "--size", "small")
    assert again.returncode == 1
    assert again.stderr.startswith("error: ") and "--overwrite" in again.stderr
    assert run_twin("demo-data", str(out), "--size", "small", "--overwrite").returncode == 0

    assert run_twin("demo-data", str(tmp_path / "x"), "--size", "huge").returncode == 2


def test_demo_builds_source_and_workspace_and_is_rerunnable(tmp_path: Path) -> None:
    first = run_twin("demo", str(tmp_path / "demo"), "--size", "small", "--no-serve", "--json")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["generated"] is True
    manifest = json.loads((tmp_path / "demo" / "source" / "manifest.json").read_text("utf-8"))
    assert data["totals"] == manifest["totals"]

    assert {r["status"] for r in data["ingest"]} == {"published"}
    assert data["prepared"]["account"]["user"] == "demo"
    assert data["prepared"]["account"]["password"]  # shown once, on the first run
    ws = run_twin("layers", "list", data["workspace"], "--json")
    assert ws.returncode == 0
    assert len(json.loads(ws.stdout)) == len(manifest["files"])
    toml = (Path(data["workspace"]) / "twin.toml").read_text(encoding="utf-8")
    assert 'name = "示范市"' in toml and "bbox = [" in toml

    second = run_twin("demo", str(tmp_path / "demo"), "--size", "small", "--no-serve")
    assert second.returncode == 0, second.stderr
    assert "reused" in second.stdout and "示范市" in second.stdout
    assert "unchanged" in second.stdout and "published" not in second.stdout
