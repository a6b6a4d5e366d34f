"""Benchmark the catalog: the /catalog page's upload report and the OGC API Features endpoint.

Builds (or opens) a fused demo workspace and starts ``twin serve`` in its own process.

**Upload → report** (``--part upload``), in Debian's Chromium as a GIS clerk does it: the file
chosen in the page's upload box, streamed to ``/catalog/upload`` (until the page shows it
arrived), then 检查 check (the sandboxed dry-run ingest) until the report is on the screen:

- the city demo's buildings zip (Shapefile, 7.4 MB, 102,851 buildings);
- the megacity demo's buildings GeoParquet (150 MB, 2.4 million buildings; generated with
  ``twin demo-data --size megacity`` unless ``--megacity DIR`` names one already made).

**OGC API** (``--part ogc``): with a gis token, as a GIS client would, a 100k-feature
collection (``layer-buildings`` of the ``city`` demo: 102,851 buildings):

- the first page (``limit=10``) cold, the collection's first request once the server has
  settled (``--settle`` s after it answers: it warms the cockpit's picture first), when the
  collection is built; and warm (median of 20);
- a walk through every page with ``limit=10000`` (features/s, with the GeoJSON bytes);
- the same walk through GDAL's OAPIF driver (``pyogrio.read_dataframe``), as a GIS opens it.

Targets (issue 12): the city upload's report within 5 s; the first OGC page within 300 ms.

Usage: python bench/catalog.py [--part all|upload|ogc] [--workspace PATH] [--megacity DIR]
       [--collection ID] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

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


def upload_report(base: str, user: str, password: str, path: Path, kind: str) -> dict:
    """Time one upload and check on the /catalog page in Chromium, as a clerk does it."""
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
            page.set_default_timeout(300_000)
            page.goto(f"{base}/login?next=/catalog")
            page.fill("#username", user)
            page.fill("#password", password)
            page.click(".ct-login-submit")
            page.wait_for_selector(".ct-upload-input", state="attached")
            page.locator(".ct-kind select").select_option(label=kind)
            started = time.perf_counter()
            page.set_input_files(".ct-upload-input", str(path))
            page.wait_for_selector("text=MB ✓")
            uploaded = time.perf_counter()
            page.click(".ct-check button")
            page.wait_for_selector(".ct-report .ct-verdict")
            shown = time.perf_counter()
            verdict = page.locator(".ct-report .ct-verdict").first.inner_text()
            facts = page.locator(".ct-report .ct-muted").first.inner_text()
            codes = page.locator(".ct-report .ct-problem .ct-code").all_inner_texts()
        finally:
            browser.close()
    return {"file": path.name, "mb": round(path.stat().st_size / 1e6, 1),
            "upload_s": round(uploaded - started, 2), "check_s": round(shown - uploaded, 2),
            "report_s": round(shown - started, 2), "verdict": verdict, "report_facts": facts,
            "problem_codes": codes}


def _upload_part(ws: Any, base: str, demo: Path | None, megacity: Path | None) -> list[dict]:
    from twin.users import Users

    password = f"bench-{int(time.time())}-pass"
    name = f"bench{int(time.time())}"
    Users(ws).add(name, "gis", password, actor="bench")
    out = []
    for path in (demo / "buildings.zip" if demo else None,
                 megacity / "buildings.parquet" if megacity else None):
        if path is None or not path.exists():
            continue
        row = upload_report(base, name, password, path, "楼栋 buildings")
        out.append(row)
        print(f"upload → report: {row['file']} ({row['mb']} MB): upload {row['upload_s']} s + "
              f"check {row['check_s']} s = {row['report_s']} s · {row['verdict']} "
              f"{' '.join(row['problem_codes'])}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="a fused workspace (default: build the "
                        "city demo in a temporary folder)")
    parser.add_argument("--part", default="all", choices=["all", "upload", "ogc"])
    parser.add_argument("--megacity", type=Path, help="a generated megacity demo folder (default: "
                        "generate one for the upload figure)")
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

    result: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workspace or build_demo("city", Path(tmp))
        demo = Path(tmp) / "demo" if not args.workspace else None
        megacity = args.megacity
        if args.part != "ogc" and megacity is None:
            megacity = Path(tmp) / "megacity"
            subprocess.run([TWIN, "demo-data", str(megacity), "--size", "megacity"], check=True,
                           capture_output=True)
        ws = Workspace.open(root)
        _, token = Tokens(ws).add(f"bench-{int(time.time())}", "gis", actor="bench")
        with served([TWIN, "serve", str(ws.root), "--port", "{port}", "--address",
                     "127.0.0.1"], ready_path="/login", timeout=120) as base:
            time.sleep(args.settle)
            if args.part != "ogc":
                result["upload"] = _upload_part(ws, base, demo, megacity)
            if args.part == "upload":
                _write(args.json, result)
                return
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
    result.update({
        "collection": args.collection, "features": matched,
        "settle_s": args.settle,
        "first_page_cold_ms": round(cold * 1000), "first_page_warm_ms": round(warm * 1000, 1),
        "walk_limit_10000": {"features": n, "seconds": round(walk, 2),
                             "features_per_s": round(n / walk), "mb": round(size / 1e6, 1)},
        "gdal_oapif": {"features": len(frame), "seconds": round(gdal, 2),
                       "features_per_s": round(len(frame) / gdal)}})
    print(f"{args.collection}: {matched:,} features")
    print(f"first page (limit 10): cold {result['first_page_cold_ms']} ms, warm "
          f"{result['first_page_warm_ms']} ms (target 300 ms)")
    print(f"walk, limit 10000: {n:,} features in {walk:.2f} s = {n / walk:,.0f} features/s "
          f"({size / 1e6:.1f} MB of GeoJSON)")
    print(f"GDAL OAPIF read: {len(frame):,} features in {gdal:.2f} s = "
          f"{len(frame) / gdal:,.0f} features/s")
    _write(args.json, result)


def _write(path: Path | None, result: dict) -> None:
    if path:
        path.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
