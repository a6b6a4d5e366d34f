"""Progress of an ingest: stages in order, records counted, from the sandbox to the caller."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from ingest import STAGES, ingest_file
from twin import Workspace


def test_progress_reports_the_stages_in_order_and_counts_records(tmp_path: Path) -> None:
    n = 400_000  # a file of a few seconds, so that the parent's polling sees several stages
    rng = np.random.default_rng(0)
    cases = gpd.GeoDataFrame({
        "case_id": [f"C{i}" for i in range(n)], "status": "confirmed",
        "report_date": "2026-03-02"},
        geometry=shapely.points(rng.uniform(121.4, 121.5, n), rng.uniform(31.2, 31.3, n)),
        crs=4326)
    path = tmp_path / "cases.gpkg"
    cases.to_file(path, driver="GPKG")
    ws = Workspace.init(tmp_path / "ws", "p", bbox=(121.3, 31.1, 121.6, 31.4))
    seen: list[tuple[str, int, int]] = []
    report = ingest_file(ws, path, kind="cases", on_progress=lambda *a: seen.append(a))
    assert report.status == "published", report.to_text()
    order = list(STAGES)
    stages = [s for s, _, _ in seen]
    assert stages == sorted(stages, key=order.index), stages  # never backwards
    assert stages[-1] == "publishing"
    assert "reading" in stages
    # A GeoPackage knows its count: the reading stage says how many records of how many.
    reading = [(done, total) for s, done, total in seen if s == "reading"]
    assert all(total == n for _, total in reading if total), reading
    assert all(0 <= done <= n for done, _ in reading)
