"""Benchmark ingest: time and peak memory per file, beside a by-hand floor of the same work.

Generates the demo city (default size ``city``) and a synthetic OpenStreetMap extract clipped
to a box, creates a workspace, and ingests every file in its own fresh process, printing wall
time and peak RSS (the process and its sandboxed parser child). Beside each, in its own fresh
process too, the *floor*: the least a user would do by hand with the libraries underneath,
without our checks, sandbox or store:

- GeoParquet: ``geopandas.read_parquet`` + ``is_valid`` + ``to_crs(4326)``;
- GeoJSON: ``pyogrio.read_dataframe``;
- GeoPackage and (zipped) Shapefile: ``pyogrio.read_dataframe`` + ``to_crs(4326)``;
- OSM PBF: ``pyogrio.read_arrow`` of the layers the kind reads (GDAL's plain read);
- CSV and rasters: none (ingest's own parsing is the work there).

Targets (issue 15): ours within 1.5x of the floor for the megacity's buildings (GeoParquet)
and its 1 M cases (GeoJSON); the OSM extract's peak memory within 2x of the plain read.

Usage: python bench/ingest.py [--size small|city|megacity] [--source DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine

_OURS = """
import json, sys
from ingest import ingest_file
from twin import Workspace
ws = Workspace.open(sys.argv[1])
entry = json.loads(sys.argv[2])
fmt = entry.get("format", "")
report = ingest_file(ws, sys.argv[3], kind=entry["kind"], name=entry.get("name"),
                     crs=entry.get("crs"), coords=entry.get("coords") or "wgs84",
                     layer=entry.get("layer"),
                     encoding=entry.get("encoding") if fmt in ("csv", "tsv") else None)
print(json.dumps({"status": report.status, "rows": report.info.get("rows_kept"),
                  "errors": len(report.errors), "warnings": len(report.warnings)}))
"""

_FLOOR = """
import json, sys
entry = json.loads(sys.argv[2])
path, fmt = sys.argv[3], entry.get("format", "")
if fmt == "geoparquet":
    import geopandas as gpd
    frame = gpd.read_parquet(path)
    frame.geometry.is_valid
    rows = len(frame.to_crs(4326))
elif fmt == "geojson":
    import pyogrio
    rows = len(pyogrio.read_dataframe(path))
elif fmt in ("gpkg", "shapefile", "shapefile-zip"):
    import pyogrio
    encoding = entry.get("encoding") if fmt != "gpkg" else None
    rows = len(pyogrio.read_dataframe(path, layer=entry.get("layer"),
                                      encoding=encoding).to_crs(4326))
elif fmt == "osm-pbf":
    import pyogrio
    layers = {"buildings": ["multipolygons"], "roads": ["lines"],
              "facilities": ["points", "multipolygons"]}[entry["kind"]]
    rows = sum(pyogrio.read_arrow(path, layer=layer)[1].num_rows for layer in layers)
print(json.dumps({"rows": rows}))
"""


def _run(code: str, *args: str) -> tuple[dict, float, int]:
    """Run ``code`` in a fresh interpreter; its JSON output, wall seconds and peak RSS (MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    outcome = json.loads(out) if os.waitstatus_to_exitcode(status) == 0 else {
        "status": "failed"}
    return outcome, seconds, round(usage.ru_maxrss / 1024)


def osm_extract(path: Path, bbox: tuple[float, float, float, float], *,
                buildings: int = 40_000, seed: int = 0) -> None:
    """A synthetic extract as ``osmium extract --strategy simple`` cuts one: buildings, roads
    and tagged nodes, with real-sized ids, some ways crossing the box's east edge (their nodes
    outside left out) and multipolygon relations whose outer ways lie outside."""
    import numpy as np
    import osmium

    rng = np.random.default_rng(seed)
    node, way, rel = osmium.osm.mutable.Node, osmium.osm.mutable.Way, osmium.osm.mutable.Relation
    west, south, east, north = bbox
    writer = osmium.SimpleWriter(str(path))
    nid, wid = 11_000_000_000, 1_200_000_000
    uses = ["yes", "house", "apartments", "school", "retail"]
    ways: list[tuple[int, list[int], dict]] = []
    for i in range(buildings):
        # Buildings near the east edge cross it now and then.
        x = east - rng.random() * (east - west) * (0.02 if i % 50 == 0 else 1.0)
        y = south + rng.random() * (north - south)
        refs = []
        for dx, dy in ((0, 0), (2e-4, 0), (2e-4, 1.5e-4), (0, 1.5e-4)):
            if x + dx <= east:
                writer.add_node(node(id=nid, location=(x + dx, y + dy), version=1))
            refs.append(nid)
            nid += 1
        refs.append(refs[0])
        ways.append((wid, refs, {"building": uses[i % len(uses)],
                                 "building:levels": str(1 + i % 12)}))
        wid += 1
    for i in range(buildings // 8):
        x, y = west + rng.random() * (east - west), south + rng.random() * (north - south)
        refs = []
        for k in range(6):
            if x + k * 1e-3 <= east:
                writer.add_node(node(id=nid, location=(x + k * 1e-3, y), version=1))
            refs.append(nid)
            nid += 1
        ways.append((wid, refs, {"highway": "residential", "name": f"路{i}"}))
        wid += 1
    amenities = ["pharmacy", "bench", "cafe", "clinic", "shelter", "hospital"]
    for i in range(buildings // 2):
        x, y = west + rng.random() * (east - west), south + rng.random() * (north - south)
        writer.add_node(node(id=nid, location=(x, y), version=1,
                             tags={"amenity": amenities[i % len(amenities)]}))
        nid += 1
    for i, refs, tags in ways:
        writer.add_way(way(id=i, nodes=refs, version=1, tags=tags))
    for i in range(buildings // 100):  # outer ways outside the box: not in the extract
        writer.add_relation(rel(id=9_000_000 + i, version=1,
                                members=[("w", 1 + i, "outer"), ("w", 1_200_000_000 + i,
                                                                  "inner")],
                                tags={"type": "multipolygon", "building": "yes"}))
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="city", choices=["small", "city", "megacity"])
    parser.add_argument("--source", type=Path,
                        help="an already generated demo city of --size (skips generating)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        from twin import Workspace

        source = args.source
        if source is None:
            source = Path(tmp) / "source"
            # In another process: a child's peak RSS counts its parent's high-water mark from
            # before exec, so this process must stay small.
            subprocess.run([str(Path(sys.executable).with_name("twin")), "demo-data",
                            str(source), "--size", args.size], check=True, capture_output=True)
        manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
        bbox = tuple(manifest["city"]["bbox"])
        ws = Workspace.init(Path(tmp) / "ws", "bench", bbox=bbox)
        osm = Path(tmp) / "extract.osm.pbf"
        centre = manifest["city"]["centre"]
        osm_box = (centre[0] - 0.05, centre[1] - 0.05, centre[0] + 0.05, centre[1] + 0.05)
        osm_extract(osm, osm_box)
        entries = [(source / e["path"], e) for e in manifest["files"]]
        entries += [(osm, {"name": f"osm_{kind}", "kind": kind, "format": "osm-pbf",
                           "path": osm.name}) for kind in ("buildings", "facilities", "roads")]
        print(f"{'layer':<18} {'MB':>6} {'rows':>9} {'ours s':>7} {'floor s':>7} {'x':>5} "
              f"{'ours MB':>7} {'floor MB':>8}  status")
        for path, entry in entries:
            outcome, seconds, peak = _run(_OURS, str(ws.root), json.dumps(entry), str(path))
            floor = None
            if entry.get("format") in ("geoparquet", "geojson", "gpkg", "shapefile",
                                       "shapefile-zip", "osm-pbf"):
                _, floor_s, floor_mb = _run(_FLOOR, "", json.dumps(entry), str(path))
                floor = {"seconds": round(floor_s, 2), "peak_mb": floor_mb,
                         "time_ratio": round(seconds / floor_s, 2),
                         "memory_ratio": round(peak / floor_mb, 2)}
            row = {"layer": entry["name"], "file": entry["path"],
                   "mb": round(path.stat().st_size / 1e6, 1), "rows": outcome.get("rows"),
                   "seconds": round(seconds, 2), "peak_mb": peak, "floor": floor, **outcome}
            results.append(row)
            f = floor or {}
            print(f"{row['layer']:<18} {row['mb']:>6} {row['rows'] or '':>9} "
                  f"{row['seconds']:>7} {f.get('seconds', ''):>7} {f.get('time_ratio', ''):>5} "
                  f"{row['peak_mb']:>7} {f.get('peak_mb', ''):>8}  {row['status']}")
    total = sum(r["seconds"] for r in results)
    print(f"total {total:.1f} s for {len(results)} files ({args.size})")
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "machine": machine(),
                                         "files": results}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
