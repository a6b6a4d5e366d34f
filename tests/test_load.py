"""Load against a real ``twin serve`` on the loopback, bounded in count and time.

- 50 browser-less screens (the Bokeh websocket protocol, as the page speaks it) open the
  cockpit at once against ``--num-procs 2``: every document arrives; p50/p95 are printed.
- 5 uploads at once while 10 cockpits stay open: every upload is stored whole, every screen
  stays connected, and a cockpit opened meanwhile still arrives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import http.client
import os
import statistics
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bokeh_client import open_document, open_many
from tests.conftest import fused_demo
from tests.logins import login_cookie

TWIN = str(Path(sys.executable).with_name("twin"))
PASSWORD = "load-pass-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    from tests.browser.conftest import served
    from twin.users import Users

    ws, _ = fused_demo(tmp_path_factory.mktemp("load"))
    Users(ws).add("wall", "viewer", PASSWORD, actor="test")
    Users(ws).add("gis", "gis", PASSWORD, actor="test")
    with served([TWIN, "serve", str(ws.root), "--port", "{port}", "--num-procs", "2"],
                ready_path="/login", timeout=120) as url:
        yield url, ws


def _run(coro: Any, timeout: float) -> Any:
    """Run ``coro`` on an event loop of its own thread (a browser test may own this one)."""
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, bounded()).result()


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def test_fifty_screens_open_the_cockpit_at_once(server: tuple[str, Any]) -> None:
    base = server[0]
    cookie = login_cookie(base, "wall", PASSWORD)
    _run(open_many(base, cookie, 2), 300)  # each process computes today's picture once
    started = time.perf_counter()
    results = _run(open_many(base, cookie, 50), 600)
    wall = time.perf_counter() - started
    times = [t for t, _ in results]
    sizes = [b for _, b in results]
    print(f"\n50 cockpits at once, --num-procs 2, {os.cpu_count()} cores: "
          f"p50 {statistics.median(times):.1f} s, p95 {_p95(times):.1f} s, "
          f"all in {wall:.1f} s, document {statistics.median(sizes) / 1000:.0f} kB")
    assert len(results) == 50
    assert min(sizes) > 0.8 * max(sizes) > 50_000  # every document arrived whole


def _upload(base: str, cookie: str, ticket: str, name: str, body: bytes) -> tuple[int, str]:
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    try:
        conn.request("POST", f"/catalog/upload?name={urllib.parse.quote(name)}", body=body,
                     headers={"Cookie": cookie, "X-Citytwin-Upload": ticket,
                              "Content-Type": "application/octet-stream"})
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


def test_five_uploads_at_once_while_ten_cockpits_are_open(server: tuple[str, Any]) -> None:
    import json

    from dashboards.catalog_http import check_ticket, make_ticket, upload_path
    from dashboards.security import cookie_secret

    base, ws = server
    wall = login_cookie(base, "wall", PASSWORD)
    gis = login_cookie(base, "gis", PASSWORD)
    ticket = make_ticket(cookie_secret(ws.root), "gis")
    assert check_ticket(cookie_secret(ws.root), "gis", ticket)
    bodies = [os.urandom(24 * 2**20) for _ in range(5)]

    async def scenario() -> tuple[list[Any], list[tuple[int, str]], float, list[bool]]:
        from tornado.httpclient import AsyncHTTPClient

        AsyncHTTPClient.configure(None, max_clients=20)
        screens = await asyncio.gather(*(open_document(base, wall, keep_open=True)
                                         for _ in range(10)))
        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            uploads = [loop.run_in_executor(pool, _upload, base, gis, ticket, f"part{i}.csv",
                                            body) for i, body in enumerate(bodies)]
            await asyncio.sleep(0.2)
            fresh, _ = await open_document(base, wall)  # opened while the uploads run
            answers = await asyncio.gather(*uploads)
        still_open = [s.open for s in screens]
        for screen in screens:
            screen.close()
        return screens, answers, fresh, still_open

    screens, answers, fresh, still_open = _run(scenario(), 600)
    print(f"\n5 uploads of 24 MB with 10 cockpits open: a cockpit opened meanwhile took "
          f"{fresh:.1f} s (the 10 took p50 {statistics.median(s.seconds for s in screens):.1f} s)")
    assert all(still_open)
    for (status, text), body in zip(answers, bodies, strict=True):
        assert status == 200, text
        stored = upload_path(ws, json.loads(text)["upload"])
        assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(body).digest()


def test_twenty_planners_save_zone_edits_through_the_page(server: tuple[str, Any]) -> None:
    """Each planner does on /zones what the browser sends when a person picks the zone,
    brushes a cell, types a reason and clicks save: all 20 edits of one zone are kept."""
    from h3.api import basic_int as h3i

    from twin.users import Users
    from twin.zones import Zones

    base, ws = server
    minx, miny, maxx, maxy = ws.config.bbox
    lat = (miny + maxy) / 2
    # On a line south of the zone's first cell, far enough apart that no brush overlaps.
    points = [[minx + (maxx - minx) * (0.2 + 0.03 * i), miny + (maxy - miny) * 0.3]
              for i in range(20)]
    start = int(h3i.latlng_to_cell(lat, (minx + maxx) / 2, ws.config.base_resolution))
    zone = Zones(ws).create(cells=[start], tier="control", author="start", reason="start",
                            name="二十人同编")
    label = f"{zone.zone_id} · 二十人同编"
    cookies = []
    for i in range(20):
        Users(ws).add(f"plan{i:02d}", "planner", PASSWORD, actor="test")
        cookies.append(login_cookie(base, f"plan{i:02d}", PASSWORD))

    async def planner(i: int) -> float:
        screen = await open_document(base, cookies[i], "/zones", keep_open=True)
        screen.keep_frames = True
        drain = asyncio.ensure_future(screen.drain())
        try:
            ids = {key: screen.find(None, css) for key, css in (
                ("picker", "ct-zone-picker"), ("map", "ct-zones-map"),
                ("reason", "ct-reason"), ("save", "ct-save"))}
            assert all(ids.values()), ids
            await screen.ready()
            # The page fills the zone list once it is ready; a person waits to see it.
            assert await screen.wait_for(label, 120), "the zone list never arrived"
            started = time.perf_counter()
            await screen.change(ids["picker"], "value", label)
            await asyncio.sleep(1.5)
            await screen.event("data_event", ids["map"], data={
                "kind": "stroke", "stroke": 1, "mode": "add", "points": [points[i]],
                "final": True})
            await screen.change(ids["reason"], "value", f"第{i}位 planner {i}")
            await asyncio.sleep(1.0)
            await screen.event("button_click", ids["save"])
            mine = f"plan{i:02d}"
            deadline = time.monotonic() + 180
            while not any(v.author == mine for v in Zones(ws).history(zone.zone_id)):
                assert time.monotonic() < deadline, (
                    f"{mine}'s save never landed; the page said: "
                    + " | ".join(f[-300:] for f in screen.frames if '"text"' in f)[-1500:])
                await asyncio.sleep(0.5)
            return time.perf_counter() - started
        finally:
            screen.close()
            await asyncio.gather(drain, return_exceptions=True)

    async def everyone() -> list[float]:
        from tornado.httpclient import AsyncHTTPClient

        AsyncHTTPClient.configure(None, max_clients=25)
        return list(await asyncio.gather(*(planner(i) for i in range(20))))

    times = _run(everyone(), 900)
    history = Zones(ws).history(zone.zone_id)
    final = {int(c) for c in history[-1].cells}
    print(f"\n20 planners saving one zone through /zones: all saved; from pick to saved "
          f"p50 {statistics.median(times):.1f} s, p95 {_p95(times):.1f} s; "
          f"{len(history) - 1} versions")
    assert len(history) == 21
    for point in points:
        cell = int(h3i.latlng_to_cell(point[1], point[0], ws.config.base_resolution))
        assert cell in final
