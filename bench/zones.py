"""Benchmark zone impact: the sum of a 5,000-cell zone's facts, warm, median and p95 of 50 runs.

Usage::

    python bench/zones.py [--workspace PATH] [--size city|small|megacity] [--cells 5000]
                          [--runs 50] [--json FILE]

Without ``--workspace`` the demo city of ``--size`` (default ``city``) is generated, ingested and
fused into a temporary directory. The zone is a compact disk of base cells around the most
populated cell, cut to ``--cells`` cells. The first call (which reads the base table and builds
the index, once per fact set and process) is reported separately as ``cold``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))

from bench._common import build_demo, machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--size", default="city")
    parser.add_argument("--cells", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import numpy as np

    from twin import Workspace, grid
    from twin.facts import Facts
    from twin.zones import impact

    tmp = None
    root = args.workspace
    if root is None:
        tmp = tempfile.TemporaryDirectory(prefix="zonesbench-")
        t0 = time.perf_counter()
        root = build_demo(args.size, Path(tmp.name))
        print(f"built the {args.size} demo in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    facts = Facts(Workspace.open(root))
    base = facts.static(facts.base, ["residents"])
    centre = base["cell"].to_numpy(np.uint64)[int(base["residents"].to_numpy().argmax())]
    k = 1
    while 3 * k * (k + 1) + 1 < args.cells:
        k += 1
    disk = grid.grid_disk(np.array([centre], np.uint64), k)
    lng, lat = grid.cell_centres(disk)
    c_lng, c_lat = grid.cell_centres(np.array([centre], np.uint64))
    zone = disk[np.argsort((lng - c_lng[0]) ** 2 + (lat - c_lat[0]) ** 2)[:args.cells]]

    t0 = time.perf_counter()
    first = impact(facts, zone)
    cold = time.perf_counter() - t0
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        impact(facts, zone)
        times.append(time.perf_counter() - t0)
    times.sort()
    result = {
        "workspace": str(root), "base_cells": len(base), "zone_cells": len(zone),
        "zone_cells_with_facts": first.cells - first.cells_without_facts,
        "zone_residents": round(first.totals.get("residents", 0.0)),
        "cold_ms": round(cold * 1000, 2),
        "median_ms": round(statistics.median(times) * 1000, 3),
        "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))] * 1000, 3),
        "runs": args.runs, "machine": machine()}
    print(f"zone impact, {len(zone):,} cells on {len(base):,} base cells "
          f"({result['zone_cells_with_facts']:,} with facts, "
          f"{result['zone_residents']:,} residents): median {result['median_ms']} ms, "
          f"p95 {result['p95_ms']} ms over {args.runs} runs (cold {result['cold_ms']} ms, "
          f"index build included)")
    print(f"machine: {result['machine']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
