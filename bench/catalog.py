"""Benchmark the OGC API Features endpoint: first-page latency and items throughput.

Builds (or opens) a fused demo workspace, makes a gis token, starts ``twin serve`` in its own
process and, as a GIS client would, asks for a 100k-feature collection (``layer-buildings`` of
the ``city`` demo: 102,851 buildings):

- the first page (``limit=10``) cold, the collection's first request once the server has
  settled (``--settle`` s after it answers: it warms the cockpit's picture first), when the
  collection is built; and warm (median of 20);
- a walk through every page with ``limit=10000`` (features/s, with the GeoJSON bytes);
- the same walk through GDAL's OAPIF driver (``pyogrio.read_dataframe``), as a GIS opens it.

Target (issue 12): the first page within 300 ms. The upload figures of issue 12 (the catalog
page's report for the city's buildings zip and the megacity's GeoParquet) need the /catalog
page, which is not built yet.

Usage: python bench/catalog.py [--workspace PATH] [--collection ID] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import build_demo, machine  # noqa: E402

TWIN = str(Path(sys.executable).with_name("twin"))


def _get(url: str, token: str) -> tuple[dict, int, float]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started = time.perf_counter()
    with opener.open(request, timeout=300) as answer:
        body = answer.read()
    return json.loads(body), len(body), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="a fused workspace (default: build the "
                        "city demo in a temporary folder)")
    parser.add_argument("--collection", default="layer-buildings")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="seconds to wait after the server answers (default 20)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    import pyogrio

    from tests.browser.conftest import served
    from twin import Workspace
    from twin.tokens import Tokens

    with tempfile.TemporaryDirectory() as tmp:
        root = args.workspace or build_demo("city", Path(tmp))
        ws = Workspace.open(root)
        _, token = Tokens(ws).add(f"bench-{int(time.time())}", "gis", actor="bench")
        with served([TWIN, "serve", str(ws.root), "--port", "{port}", "--address",
                     "127.0.0.1"], ready_path="/login", timeout=120) as base:
            time.sleep(args.settle)
            items = f"{base}/ogc/collections/{args.collection}/items"
            first, _, cold = _get(f"{items}?limit=10", token)
            warm = statistics.median(_get(f"{items}?limit=10", token)[2] for _ in range(20))
            matched = first["numberMatched"]
            url, n, size, started = f"{items}?limit=10000", 0, 0, time.perf_counter()
            while url:
                page, nbytes, _ = _get(url, token)
                n, size = n + page["numberReturned"], size + nbytes
                url = next((link["href"] for link in page["links"] if link["rel"] == "next"),
                           None)
            walk = time.perf_counter() - started
            pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": "BEARER",
                                             "GDAL_HTTP_BEARER": token})
            started = time.perf_counter()
            frame = pyogrio.read_dataframe(f"OAPIF:{base}/ogc", layer=args.collection,
                                           PAGE_SIZE=10000)
            gdal = time.perf_counter() - started
    result = {
        "machine": machine(), "collection": args.collection, "features": matched,
        "settle_s": args.settle,
        "first_page_cold_ms": round(cold * 1000), "first_page_warm_ms": round(warm * 1000, 1),
        "walk_limit_10000": {"features": n, "seconds": round(walk, 2),
                             "features_per_s": round(n / walk), "mb": round(size / 1e6, 1)},
        "gdal_oapif": {"features": len(frame), "seconds": round(gdal, 2),
                       "features_per_s": round(len(frame) / gdal)}}
    print(f"{args.collection}: {matched:,} features")
    print(f"first page (limit 10): cold {result['first_page_cold_ms']} ms, warm "
          f"{result['first_page_warm_ms']} ms (target 300 ms)")
    print(f"walk, limit 10000: {n:,} features in {walk:.2f} s = {n / walk:,.0f} features/s "
          f"({size / 1e6:.1f} MB of GeoJSON)")
    print(f"GDAL OAPIF read: {len(frame):,} features in {gdal:.2f} s = "
          f"{len(frame) / gdal:,.0f} features/s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
