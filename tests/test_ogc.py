"""OGC API Features at /ogc, against a real server, read by a real client (GDAL's OAPIF)."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest

from tests.conftest import fused_demo

PASSWORD = "demo-pass-123"


TWIN = str(Path(sys.executable).with_name("twin"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """A real `twin serve` in its own process (GDAL holds the GIL while it fetches)."""
    from dashboards.demo import prepare_demo
    from tests.browser.conftest import served
    from twin.tokens import Tokens

    ws, _ = fused_demo(tmp_path_factory.mktemp("ogc"))
    prepare_demo(ws, password=PASSWORD)  # activates zones
    tokens = {role: Tokens(ws).add(f"dept-{role}", role, actor="test")[1]
              for role in ("viewer", "gis")}
    with served([TWIN, "serve", str(ws.root), "--port", "{port}", "--address", "127.0.0.1"],
                ready_path="/login") as base:
        yield ws, f"{base}/ogc", tokens


def _get(url: str, token: str | None) -> tuple[int, Any, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}
                                     if token else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.headers, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


def test_no_token_or_a_bad_one_is_refused(server) -> None:
    _, base, _ = server
    for token in (None, "ctk_not-a-token", "Basic abc"):
        status, headers, body = _get(f"{base}/collections", token)
        assert status == 401, body
        assert headers.get("WWW-Authenticate", "").startswith("Bearer")
        assert "token" in body["description"]


def test_landing_page_and_conformance_claim_what_is_served(server) -> None:
    from dashboards.ogc import CONFORMANCE

    _, base, tokens = server
    status, _, landing = _get(f"{base}/", tokens["gis"])
    assert status == 200
    rels = {link["rel"]: link["href"] for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    for rel in ("service-desc", "conformance", "data"):
        assert _get(rels[rel], tokens["gis"])[0] == 200
    _, _, conformance = _get(f"{base}/conformance", tokens["gis"])
    assert conformance["conformsTo"] == CONFORMANCE
    # Part 2 (crs) is claimed: every collection lists its CRSs, and items honour them.
    _, _, listed = _get(f"{base}/collections", tokens["gis"])
    assert all("http://www.opengis.net/def/crs/EPSG/0/4490" in c["crs"]
               for c in listed["collections"])


def test_gdal_reads_the_collections_and_the_facts_totals_equal_twin_facts(server) -> None:
    from twin.facts import Facts

    ws, base, tokens = server
    # GDAL sends the token as "Authorization: Bearer …" (GDAL_HTTP_AUTH=BEARER, GDAL >= 3.9;
    # its OAPIF driver sets its own headers, so GDAL_HTTP_HEADERS does not reach it).
    pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": "BEARER",
                                     "GDAL_HTTP_BEARER": tokens["gis"]})
    try:
        layers = {str(name) for name, _ in pyogrio.list_layers(f"OAPIF:{base}")}
        assert {"facts-district", "facts-r8", "zones", "layer-buildings"} <= layers, layers
        read = pyogrio.read_dataframe(f"OAPIF:{base}", layer="facts-district")
        # Paging through GDAL, 50 at a time, with a bbox around the city.
        bbox = ws.config.bbox
        cells = pyogrio.read_dataframe(f"OAPIF:{base}", layer="facts-r8", bbox=bbox,
                                       PAGE_SIZE=50)
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": None, "GDAL_HTTP_BEARER": None})
    expected = Facts(ws).read("district")
    assert len(read) == len(expected)
    for column in ("residents", "cases", "buildings_n"):
        assert float(read[column].sum()) == pytest.approx(float(expected[column].sum()))
    facts_r8 = Facts(ws).read(8)
    assert len(cells) == len(facts_r8)
    assert cells["cell"].is_unique
    assert float(cells["residents"].sum()) == pytest.approx(float(facts_r8["residents"].sum()))


def test_paging_walks_every_feature_exactly_once(server) -> None:
    _, base, tokens = server
    url = f"{base}/collections/facts-community/items?limit=37"
    seen: list[str] = []
    matched = None
    while url:
        status, headers, page = _get(url, tokens["gis"])
        assert status == 200, page
        assert headers["Content-Crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
        matched = page["numberMatched"]
        assert page["numberReturned"] == len(page["features"])
        seen += [f["id"] for f in page["features"]]
        nxt = [link["href"] for link in page["links"] if link["rel"] == "next"]
        url = nxt[0] if nxt else None
    assert len(seen) == matched == len(set(seen))


def test_cgcs2000_output_is_latitude_first(server) -> None:
    _, base, tokens = server
    plain = _get(f"{base}/collections/facts-district/items?limit=1", tokens["gis"])[2]
    status, headers, cgcs = _get(
        f"{base}/collections/facts-district/items?limit=1"
        "&crs=http://www.opengis.net/def/crs/EPSG/0/4490", tokens["gis"])
    assert status == 200
    assert headers["Content-Crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4490>"
    lon, lat = plain["features"][0]["geometry"]["coordinates"][0][0][:2]
    assert cgcs["features"][0]["geometry"]["coordinates"][0][0][:2] == [lat, lon]
    bad = _get(f"{base}/collections/facts-district/items?crs=EPSG:3857", tokens["gis"])
    assert bad[0] == 400


def test_a_viewer_token_gets_the_viewers_privacy(server) -> None:
    _, base, tokens = server
    _, _, listed = _get(f"{base}/collections", tokens["viewer"])
    ids = {c["id"] for c in listed["collections"]}
    assert "facts-r8" in ids and "facts-r10" not in ids and "layer-cases" not in ids
    for refused in ("facts-r10", "layer-cases"):
        status, _, body = _get(f"{base}/collections/{refused}/items", tokens["viewer"])
        assert status == 403, body
    _, _, page = _get(f"{base}/collections/facts-r8/items?limit=10000", tokens["viewer"])
    shown = [f["properties"]["cases"] for f in page["features"]]
    assert all(isinstance(v, str) for v in shown)
    assert "<10" in shown  # small counts suppressed
    assert not any(v.isdigit() and 0 < int(v) < 10 for v in shown)


def test_a_revoked_token_is_refused_and_every_use_is_audited(server) -> None:
    from twin.tokens import Tokens

    ws, base, _ = server
    _, secret = Tokens(ws).add("dept-short-lived", "planner", actor="test")
    assert _get(f"{base}/collections", secret)[0] == 200
    Tokens(ws).revoke("dept-short-lived", actor="test")
    assert _get(f"{base}/collections", secret)[0] == 401
    with ws.connect() as conn:
        rows = conn.execute("SELECT action, target FROM audit WHERE actor = ? ORDER BY id",
                            ("token:dept-short-lived",)).fetchall()
    assert [r[0] for r in rows] == ["tokens.use", "tokens.refused"]
    assert rows[0][1] == "/ogc/collections"


def test_one_feature_by_id_and_unknown_ones(server) -> None:
    _, base, tokens = server
    page = _get(f"{base}/collections/zones/items?limit=1", tokens["gis"])[2]
    assert page["features"], "the demo has active zones"
    fid = page["features"][0]["id"]
    status, _, feature = _get(f"{base}/collections/zones/items/{fid}", tokens["gis"])
    assert status == 200 and feature["id"] == fid and feature["type"] == "Feature"
    assert _get(f"{base}/collections/zones/items/no-such-zone", tokens["gis"])[0] == 404
    assert _get(f"{base}/collections/no-such/items", tokens["gis"])[0] == 404
    assert _get(f"{base}/collections/zones/items?limit=0", tokens["gis"])[0] == 400
    assert _get(f"{base}/collections/zones/items?bbox=1,2,x,4", tokens["gis"])[0] == 400


def test_facts_take_a_datetime_window(server) -> None:
    from twin.facts import Facts

    ws, base, tokens = server
    day = str(Facts(ws).cases("district")["date"].max())[:10]
    _, _, page = _get(f"{base}/collections/facts-district/items?limit=100&datetime={day}",
                      tokens["gis"])
    expected = Facts(ws).read("district", start=day, end=day)
    assert sum(f["properties"]["cases"] for f in page["features"]) == int(
        expected["cases"].sum())
    assert np.isclose(sum(f["properties"]["residents"] for f in page["features"]),
                      float(expected["residents"].sum()))

