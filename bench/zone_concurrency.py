"""Benchmark merge-aware zone saves under contention: N editor processes x M edits on one zone.

Usage::

    python bench/zone_concurrency.py [--editors 20] [--edits 5] [--max-sleep 0.02]
                                     [--rounds 3] [--json FILE]

Each editor process reads the zone's current version as its base, sleeps up to
``--max-sleep`` seconds (so that others save meanwhile and its base goes stale), then saves an
edit adding one cell of its own through :func:`twin.zones.save_edit` (its third and fifth edits
also remove one of its earlier cells). The drill is the one of
``tests/test_zone_concurrency.py``, and every round checks that no edit was lost. Reported per
round and over all rounds: saves per second (wall time from the moment every editor is up),
merges (saves whose base was stale), lock retries (waits for the write lock longer than
0.1 s) and the time of one save (p50, p95, max; lock waits included, sleeps excluded).
The workspace is a fresh one without facts, in a temporary directory on the local disk.
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

from bench._common import machine  # noqa: E402
from tests.test_zone_concurrency import (  # noqa: E402
    check_every_edit_is_in,
    drill_cells,
    run_drill,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--editors", type=int, default=20)
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--max-sleep", type=float, default=0.02)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=HERE.parent / "results" /
                        "zone_concurrency.json")
    args = parser.parse_args()

    import sqlite3

    from tests.test_zones import A
    from twin import Workspace
    from twin.zones import Zones

    cells = drill_cells(args.editors, args.edits)
    rounds, busy_timeout = [], None
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="zoneconc-") as folder:
            ws = Workspace.init(Path(folder) / "ws", "基准市", name_en="Bench City",
                                bbox=(121.30, 31.10, 121.65, 31.40))
            zone = Zones(ws).create(cells=[A], tier="lockdown", author="start",
                                    reason="start")
            got = run_drill(ws.root, zone.zone_id, cells, max_sleep=args.max_sleep, seed=i)
            check_every_edit_is_in(ws, zone.zone_id, cells)
            got["versions"] = Zones(ws).get(zone.zone_id).version
            busy_timeout = ws.config.busy_timeout_s
        rounds.append(got)
        print(f"round {i + 1}: {got['saves']} saves in {got['wall_s']} s = "
              f"{got['saves_per_s']} saves/s; {got['merges']} merges, {got['lock_retries']} "
              f"lock retries; save p50 {got['save_p50_ms']} ms, p95 {got['save_p95_ms']} ms, "
              f"max {got['save_max_ms']} ms; {got['versions']} versions, no edit lost")
    result = {
        "editors": args.editors, "edits_per_editor": args.edits, "max_sleep_s": args.max_sleep,
        "rounds": rounds,
        "saves_per_s_median": statistics.median(r["saves_per_s"] for r in rounds),
        "merges_median": statistics.median(r["merges"] for r in rounds),
        "lock_retries_median": statistics.median(r["lock_retries"] for r in rounds),
        "save_p50_ms_median": statistics.median(r["save_p50_ms"] for r in rounds),
        "save_p95_ms_median": statistics.median(r["save_p95_ms"] for r in rounds),
        "every_edit_kept": True, "sqlite": sqlite3.sqlite_version,
        "busy_timeout_s": busy_timeout,
        "machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    print(f"median of {args.rounds} rounds: {result['saves_per_s_median']} saves/s, "
          f"{result['merges_median']} merges, {result['lock_retries_median']} lock retries, "
          f"save p50 {result['save_p50_ms_median']} ms, p95 {result['save_p95_ms_median']} ms")
    print(f"machine: {result['machine']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
