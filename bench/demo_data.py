"""Benchmark the demo city generator: wall time, peak memory and output size per size.

Usage::

    python bench/demo_data.py                      # small city
    python bench/demo_data.py small city megacity --json bench/results/demo_data.json

Each size runs in a fresh Python subprocess, so imports are counted and peak memory is that
of the generation alone (``ru_maxrss`` of the child, read with ``os.wait4``, which gives the
same figure as ``getrusage(RUSAGE_CHILDREN)`` but per child rather than the maximum over all
children so far).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["machine", "main", "run_size"]

_CHILD = """
import sys
from twin.demo import generate_demo_city
generate_demo_city(sys.argv[1], size=sys.argv[2], seed=int(sys.argv[3]))
"""


def machine() -> dict[str, Any]:
    """Platform, CPU count, RAM and library versions."""
    import numpy
    import pyogrio
    import shapely

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "ram_gb": round(ram / 2**30, 1),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "shapely": shapely.__version__,
        "gdal": pyogrio.__gdal_version_string__,
    }


def run_size(size: str, seed: int, workdir: Path) -> dict[str, Any]:
    """Generate one size in a subprocess and measure it."""
    out = workdir / f"demo-{size}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(out), size, str(seed)])
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"generating {size!r} failed with exit code {proc.returncode}")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    t = manifest["totals"]
    return {
        "size": size,
        "seed": seed,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is in KiB on Linux
        "output_mb": round(sum(files.values()) / 1e6, 1),
        "residents": t["residents"],
        "buildings": t["buildings"],
        "cases": t["cases"],
        "facilities": t["facilities"],
        "communities": t["communities"],
        "roads": t["roads"],
        "files_mb": {k: round(v / 1e6, 2) for k, v in files.items()},
    }


def _table(rows: list[dict[str, Any]]) -> str:
    cols = [
        ("size", "size", "{}"),
        ("wall_s", "time (s)", "{:.1f}"),
        ("peak_rss_mb", "peak RSS (MB)", "{:,.0f}"),
        ("output_mb", "output (MB)", "{:,.1f}"),
        ("residents", "residents", "{:,}"),
        ("buildings", "buildings", "{:,}"),
        ("cases", "cases", "{:,}"),
    ]
    cells = [[fmt.format(r[k]) for k, _, fmt in cols] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h, _) in enumerate(cols)]
    lines = [" | ".join(h.rjust(w) for (_, h, _), w in zip(cols, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sizes", nargs="*", default=["small", "city"], help="sizes to run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also save the results to this JSON file")
    ap.add_argument("--keep", type=Path, help="keep the generated cities in this directory")
    args = ap.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="demo-bench-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for size in args.sizes:
            rows.append(run_size(size, args.seed, workdir))
            print(f"done: {size} in {rows[-1]['wall_s']} s", file=sys.stderr, flush=True)
    info = machine()
    print(_table(rows))
    print(
        f"\nmachine: {info['platform']}, {info['cpu_count']} CPUs, {info['ram_gb']} GB RAM; "
        f"python {info['python']}, numpy {info['numpy']}, shapely {info['shapely']}, "
        f"GDAL {info['gdal']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"benchmark": "demo_data", "machine": info, "results": rows}
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
