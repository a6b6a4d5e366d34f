"""Benchmark the workspace store: publish and read times of a buildings layer.

Prints wall time per step for layers of several sizes: a plain ``to_parquet`` of the same frame
with WKB and with GeoArrow geometry (what the store writes), and ``publish``, whose extra cost
over the GeoArrow write is the atomic protocol (fsync, rename, SHA-256, catalog transaction).

Usage: python bench/store.py [ROWS ...]   (default: 10000 100000 1000000)
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from twin import Workspace


def buildings(n: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(0)
    x = 121.3 + rng.random(n) * 0.3
    y = 31.1 + rng.random(n) * 0.3
    return gpd.GeoDataFrame(
        {"id": np.char.add("B", np.arange(n).astype(str)),
         "use": rng.choice(["residential", "commercial", "office"], n),
         "floors": rng.integers(1, 33, n)},
        geometry=shapely.box(x, y, x + 2e-4, y + 1e-4), crs=4326)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")
    print(f"{'rows':>10} {'WKB write s':>12} {'GeoArrow s':>11} {'publish s':>10} "
          f"{'protocol':>9} {'read s':>8} {'MB':>7}")
    for n in args.rows:
        frame = buildings(n)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            started = time.perf_counter()
            frame.to_parquet(root / "plain.parquet", index=False, compression="zstd")
            plain = time.perf_counter() - started
            started = time.perf_counter()
            frame.to_parquet(root / "arrow.parquet", index=False, compression="zstd",
                             geometry_encoding="geoarrow")
            arrow = time.perf_counter() - started
            ws = Workspace.init(root / "ws", "bench")
            started = time.perf_counter()
            entry = ws.publish("buildings", "buildings", frame)
            publish = time.perf_counter() - started
            started = time.perf_counter()
            ws.read("buildings")
            read = time.perf_counter() - started
        print(f"{n:>10,} {plain:>12.3f} {arrow:>11.3f} {publish:>10.3f} "
              f"{publish / arrow:>8.2f}x {read:>8.3f} {entry.file_bytes / 1e6:>7.1f}")


if __name__ == "__main__":
    main()
