"""Benchmark ingest: time and peak memory to ingest each file of a demo city.

Generates the demo city (default size ``city``), creates a workspace, and ingests every
manifest entry in its own fresh process, printing wall time and peak RSS (the process and its
sandboxed parser child) per file.

Usage: python bench/ingest.py [--size small|city|megacity] [--json FILE]
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

from twin import Workspace

_CHILD = """
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="city", choices=["small", "city", "megacity"])
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source"
        # Generate in another process: a child's peak RSS counts its parent's high-water mark
        # from before exec, so this process must stay small.
        subprocess.run([str(Path(sys.executable).with_name("twin")), "demo-data", str(source),
                        "--size", args.size], check=True, capture_output=True)
        manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
        ws = Workspace.init(Path(tmp) / "ws", "bench", bbox=tuple(manifest["city"]["bbox"]))
        print(f"{'layer':<20} {'MB':>7} {'rows':>10} {'time s':>8} {'peak MB':>8}  status")
        for entry in manifest["files"]:
            path = source / entry["path"]
            started = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(ws.root),
                                     json.dumps(entry), str(path)], stdout=subprocess.PIPE)
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - started
            outcome = json.loads(out) if os.waitstatus_to_exitcode(status) == 0 else {
                "status": "failed"}
            row = {"layer": entry["name"], "file": entry["path"],
                   "mb": round(path.stat().st_size / 1e6, 1), "rows": outcome.get("rows"),
                   "seconds": round(seconds, 2), "peak_mb": round(usage.ru_maxrss / 1024),
                   **outcome}
            results.append(row)
            print(f"{row['layer']:<20} {row['mb']:>7} {row['rows'] or '':>10} "
                  f"{row['seconds']:>8} {row['peak_mb']:>8}  {row['status']}")
    total = sum(r["seconds"] for r in results)
    print(f"total {total:.1f} s for {len(results)} files ({args.size})")
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "machine": platform.platform(),
                                         "files": results}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
