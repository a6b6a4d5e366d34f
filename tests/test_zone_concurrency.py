"""Many planners saving one zone at once through :func:`twin.zones.save_edit`, without a browser.

Each editor process reads the zone's current version as its base, waits a little (so that
other editors save meanwhile and the base goes stale), and saves an edit that adds one cell of
its own; its third and fifth edits also remove one of its own earlier cells. Every edit must be
in the final version: all additions in, all removals out, one version per edit. The drill is
shared with ``bench/zone_concurrency.py``, which times it.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import random
import statistics
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from h3.api import basic_int as h3i

from tests.test_zones import A
from twin import Workspace
from twin.zones import Zones

#: Edits (0-based) that also remove the editor's own cell of two edits before.
REMOVING = (2, 4)


def _editor(index: int, root: str, zone_id: str, cells: list[int], max_sleep: float,
            seed: int, start: Any, out: Any) -> None:
    """One editor process: ``len(cells)`` merge-aware saves, reported on ``out``."""
    try:
        from twin import Workspace
        from twin.zones import ZoneEdit, Zones, save_edit

        ws = Workspace.open(root)
        zones = Zones(ws)
        rng = random.Random(seed * 1000 + index)
        start.wait(timeout=120)
        records = []
        for k, cell in enumerate(cells):
            base = zones.get(zone_id)
            time.sleep(rng.uniform(0.0, max_sleep))  # others save meanwhile: the base goes stale
            remove = [cells[k - 2]] if k in REMOVING else []
            t0 = time.perf_counter()
            result = save_edit(ws, zone_id, ZoneEdit(base.version, [cell], remove),
                               author=f"editor{index}", reason=f"第{k + 1}次 edit {k + 1}")
            records.append({"seconds": time.perf_counter() - t0, "merged": result.merged,
                            "retries": result.lock_retries, "version": result.zone.version})
        out.put((index, records, None))
    except BaseException:  # reported to the parent, which fails the run
        out.put((index, [], traceback.format_exc()))


def kept_cells(cells: list[int]) -> list[int]:
    """The editor's cells left at the end: every added cell but the removed ones."""
    removed = {cells[k - 2] for k in REMOVING if k < len(cells)}
    return [c for c in cells if c not in removed]


def run_drill(root: Path, zone_id: str, cells: list[list[int]], *, max_sleep: float = 0.02,
              seed: int = 0, context: str = "forkserver") -> dict[str, Any]:
    """Run one editor process per list of ``cells`` on the zone; return timings and counts.

    Raises
    ------
    RuntimeError
        When an editor failed (its traceback is in the message).
    """
    ctx = mp.get_context(context)
    if context == "forkserver":
        ctx.set_forkserver_preload(["twin.zones", "tests.test_zone_concurrency"])
    start, out = ctx.Barrier(len(cells) + 1), ctx.Queue()
    procs = [ctx.Process(target=_editor, args=(i, str(root), zone_id, own, max_sleep, seed,
                                               start, out))
             for i, own in enumerate(cells)]
    for p in procs:
        p.start()
    start.wait(timeout=120)  # every editor is up: the clock starts now
    t0 = time.perf_counter()
    reports = [out.get(timeout=300) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join(timeout=60)
    failed = [f"editor{i}: {err}" for i, _, err in reports if err]
    if failed:
        raise RuntimeError("\n".join(failed))
    records = [r for _, rs, _ in sorted(reports, key=lambda x: x[0]) for r in rs]
    times = sorted(r["seconds"] for r in records)
    return {"editors": len(cells), "edits_per_editor": len(cells[0]), "saves": len(records),
            "wall_s": round(wall, 3), "saves_per_s": round(len(records) / wall, 1),
            "merges": sum(r["merged"] for r in records),
            "lock_retries": sum(r["retries"] for r in records),
            "save_p50_ms": round(statistics.median(times) * 1000, 2),
            "save_p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))] * 1000, 2),
            "save_max_ms": round(times[-1] * 1000, 2), "max_sleep_s": max_sleep,
            "context": context}


def drill_cells(editors: int, edits: int) -> list[list[int]]:
    """Distinct resolution-10 cells around A (not A itself), ``edits`` per editor."""
    ring = 1
    while 3 * ring * (ring + 1) < editors * edits:
        ring += 1
    pool = [c for c in sorted(h3i.grid_disk(A, ring)) if c != A]
    return [pool[i * edits:(i + 1) * edits] for i in range(editors)]


def check_every_edit_is_in(ws: Workspace, zone_id: str, cells: list[list[int]]) -> None:
    """All additions in, all removals out, one version per edit, each its editor's change."""
    zones = Zones(ws)
    final = zones.get(zone_id)
    edits = sum(len(c) for c in cells)
    assert final.version == edits + 1
    want = sorted([A, *itertools.chain.from_iterable(kept_cells(c) for c in cells)])
    assert final.cells.tolist() == want
    history = zones.history(zone_id)
    assert [h.version for h in history] == list(range(1, edits + 2))
    owner = {c: i for i, own in enumerate(cells) for c in own}
    for old, new in itertools.pairwise(history):
        added, removed = np.setdiff1d(new.cells, old.cells), np.setdiff1d(old.cells, new.cells)
        assert len(added) == 1 and len(removed) <= 1, new.version
        assert {owner[int(c)] for c in [*added, *removed]} == {int(new.author[6:])}


def test_twenty_editors_lose_no_edit(workspace: Workspace) -> None:
    cells = drill_cells(20, 5)
    zone = Zones(workspace).create(cells=[A], tier="lockdown", author="start", reason="start")
    t0 = time.perf_counter()
    got = run_drill(workspace.root, zone.zone_id, cells)
    print(f"\n20 editors x 5 edits: {got['saves']} saves in {got['wall_s']} s "
          f"({time.perf_counter() - t0:.1f} s with process start), {got['merges']} merges "
          f"(stale base), {got['lock_retries']} lock retries, p50 {got['save_p50_ms']} ms, "
          f"p95 {got['save_p95_ms']} ms")
    check_every_edit_is_in(workspace, zone.zone_id, cells)
    assert got["saves"] == 100 and got["merges"] > 0  # the bases did go stale
    merged = [a for a in workspace.audit_log(200) if a["action"] == "zone.save"
              and a["detail"]["merged_with"]]
    assert len(merged) == got["merges"]
