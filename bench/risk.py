"""Benchmark the forecast, the risk and the backtest; print the backtest tables.

Usage::

    python bench/risk.py [--workspace PATH] [--size city|small|megacity] [--parts ...]
                         [--simulated PATH] [--json FILE]

Parts (each in its own child process, so that its peak memory is its own):

``risk``
    Forecast and risk of every base (res-10) cell on the last date: cold (a new process:
    reading the case series, building the neighbour pairs, fitting) and warm (the series
    read, a new date fitted and scored). Targets: city 1 s, megacity 10 s.
``backtest``
    ``twin backtest`` over 30 consecutive dates at res 9 (target: city 30 s), and the capture
    at 10 % of residents, twin vs naive, with coverage and WIS at every date.
``simulated``
    The same backtest on an outbreak from ``tests/outbreak.py`` (commuting between districts,
    super-spreading venues, lockdowns: not the demo generator's clusters), on a copy of the
    workspace (or ``--simulated PATH``, a workspace that already holds one).

Without ``--workspace`` the demo city of ``--size`` is generated, ingested and fused into a
temporary directory first.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import build_demo, machine  # noqa: E402

PARTS = ("risk", "backtest", "simulated")
TARGETS = {"risk_city_s": 1.0, "risk_megacity_s": 10.0, "backtest_30_city_s": 30.0}




def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024




# -- the parts, run in a child process ---------------------------------------------------------
def part_risk(workspace: Path) -> dict[str, Any]:
    """Cold and warm forecast + risk of every base cell."""
    import scipy.optimize
    import scipy.stats  # noqa: F401

    from twin import Workspace
    from twin.facts import Facts
    from twin.forecast import case_series
    from twin.risk import risk

    facts = Facts(Workspace.open(workspace))
    t0 = time.perf_counter()
    series = case_series(facts)
    t_series = time.perf_counter() - t0
    last = series.last
    t1 = time.perf_counter()
    table = risk(facts, level="cell", date=last)
    t_cold = time.perf_counter() - t0
    t_fit_score = time.perf_counter() - t1
    import datetime as dt

    t2 = time.perf_counter()
    warm = risk(facts, level="cell", date=last - dt.timedelta(days=1))
    t_warm = time.perf_counter() - t2
    return {"cells": len(table), "case_rows": len(series.case_n),
            "neighbour_pairs": len(series.near_src), "series_s": round(t_series, 3),
            "cold_s": round(t_cold, 3), "fit_and_score_s": round(t_fit_score, 3),
            "warm_s": round(t_warm, 3), "grades": table.counts(),
            "warm_grades": warm.counts(), "peak_rss_mb": round(_peak_mb())}


def _backtest(workspace: Path, days: int) -> dict[str, Any]:
    import datetime as dt

    from twin import Workspace
    from twin.backtest import backtest
    from twin.facts import Facts
    from twin.forecast import case_series

    facts = Facts(Workspace.open(workspace))
    series = case_series(facts)
    end = series.last - dt.timedelta(days=7)
    start = max(series.first + dt.timedelta(days=21), end - dt.timedelta(days=days - 1))
    t0 = time.perf_counter()
    result = backtest(facts, start=start, end=end, level=9, budget=0.10)
    took = time.perf_counter() - t0
    mean = result[["capture_twin", "capture_naive", "lead", "coverage50", "coverage90",
                   "wis_twin", "wis_naive"]].mean()
    return {"dates": len(result), "seconds": round(took, 2),
            "seconds_per_date": round(took / max(len(result), 1), 3),
            "lead_min": round(float(result["lead"].min()), 2),
            "mean": {k: round(float(v), 4) for k, v in mean.items()},
            "rows": json.loads(result.round(4).to_json(orient="records")),
            "peak_rss_mb": round(_peak_mb())}


def part_backtest(workspace: Path) -> dict[str, Any]:
    return _backtest(workspace, 30)


def part_simulated(workspace: Path) -> dict[str, Any]:
    return _backtest(workspace, 30)


def _child(part: str, workspace: Path) -> dict[str, Any]:
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
            f"sys.path.insert(0, {str(HERE.parent)!r}); import risk as b; "
            f"print('@@' + json.dumps(b.part_{part}(__import__('pathlib').Path("
            f"{str(workspace)!r}))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"part {part} failed:\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("@@"))
    return json.loads(line[2:])


def _table(rows: list[dict[str, Any]], every: int = 1) -> str:
    out = ["| date | next 7 days' infections | twin | naive | lead (points) | 50 % cover | "
           "90 % cover | WIS twin | WIS naive |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows[::every]:
        out.append(f"| {r['date']} | {r['cases_next']:,.0f} | {r['capture_twin']:.1%} | "
                   f"{r['capture_naive']:.1%} | {r['lead']:+.1f} | {r['coverage50']:.0%} | "
                   f"{r['coverage90']:.0%} | {r['wis_twin']:.2f} | {r['wis_naive']:.2f} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--size", default="city", choices=["small", "city", "megacity"])
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--simulated", type=Path,
                        help="A workspace already holding a simulated outbreak.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the simulated outbreak.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="citytwin-bench-risk-"))
    try:
        workspace = args.workspace or build_demo(args.size, tmp)
        result: dict[str, Any] = {"machine": machine(), "size": args.size,
                                  "workspace": str(workspace), "targets": TARGETS}
        for part in args.parts:
            if part == "simulated":
                sim = args.simulated
                if sim is None:
                    from tests.outbreak import simulate_outbreak

                    copy = tmp / "simulated"
                    shutil.copytree(Path(workspace).parent, copy, symlinks=True)
                    sim = copy / Path(workspace).name
                    summary = simulate_outbreak(sim, seed=args.seed)
                    result["simulated_outbreak"] = {
                        k: summary[k] for k in ("seed", "total_cases", "infection_cases",
                                                "first_date", "last_date")}
                result[part] = _child(part, sim)
            else:
                result[part] = _child(part, Path(workspace))
            print(f"{part}: " + json.dumps({k: v for k, v in result[part].items()
                                            if k != "rows"}), flush=True)
        for part in ("backtest", "simulated"):
            if part in result:
                print(f"\n{part} (capture at 10 % of residents, res 9):")
                print(_table(result[part]["rows"]))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                                 encoding="utf-8")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
