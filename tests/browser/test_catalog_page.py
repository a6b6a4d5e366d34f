"""The GIS staff's catalog page ``/catalog`` in a real browser, and its upload endpoint.

On the small demo served once for the module (``twin serve``, with a known cookie secret so
that the tests can sign upload tickets as the page does), with a GIS user, a planner and the
demo viewer:

1. the GIS user uploads the demo's buildings zip: published as a new version, listed, fused;
2. a cases CSV with an ambiguous date column: the report says so, nothing is published; the
   date format typed in the mapping form makes the dry run clean, the mapping downloads as
   TOML, and the file publishes;
3. rolling back with a note makes the earlier version current again;
4. a GeoPackage download reads back with pyogrio;
5. the viewer and the planner get the refusal page;
6. hostile uploads through the endpoint (path traversal in a zip, a GeoJSON whose CRS links to
   a URL, a 1 GB body over the limit, a name with a folder, no ticket) are refused with a clear
   message, write nothing outside the workspace, and the server still answers.

No request of the browser may leave the machine; a 1920×1080 screenshot is taken.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import io
import json
import sys
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyogrio
import pytest

from tests.browser.conftest import requests_outside_localhost, served
from tests.conftest import fused_demo

pytestmark = pytest.mark.browser

TWIN = str(Path(sys.executable).with_name("twin"))
PASSWORD = "catalog-pass-1"
SECRET = "test-secret-" + "0" * 40
_TEXT = """el => { const root = el.shadowRoot || el;
  return [...root.children].filter(c => !['STYLE', 'LINK', 'SCRIPT'].includes(c.tagName))
    .map(c => c.innerText || '').join('\\n'); }"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Path]]:
    from dashboards.demo import prepare_demo
    from twin.users import Users

    root = tmp_path_factory.mktemp("catalog-page")
    ws, _ = fused_demo(root)
    prepare_demo(ws, password=PASSWORD)
    for name, role in (("gis", "gis"), ("plan", "planner")):
        Users(ws).add(name, role, PASSWORD, actor="test")
    # A lower upload limit, so that a body over it is cheap to send.
    text = ws.config_path.read_text(encoding="utf-8")
    ws.config_path.write_text(text.replace("max_file_mb = 2048", "max_file_mb = 64"),
                              encoding="utf-8")
    with served([TWIN, "serve", str(ws.root), "--port", "{port}", "--address", "127.0.0.1"],
                ready_path="/login", timeout=90, env={"TWIN_COOKIE_SECRET": SECRET}) as base:
        yield base, ws, root / "city"


def _log_in(page: Any, base: str, user: str, target: str = "/catalog") -> None:
    page.goto(f"{base}/login?next={target}")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click(".ct-login-submit")
    page.wait_for_url(f"{base}{target}*", timeout=60_000)


def _text(page: Any, selector: str) -> str:
    return page.locator(selector).first.evaluate(_TEXT)


def _upload(page: Any, path: Path) -> None:
    page.set_input_files(".ct-upload-input", str(path))
    page.wait_for_selector("text=MB ✓", timeout=30_000)


def _report(page: Any, status: str) -> str:
    page.wait_for_selector(f".ct-status-{status}", timeout=120_000)
    return _text(page, ".ct-report")


@pytest.fixture(scope="module")
def gis_page(chromium: Any, app: tuple[str, Any, Path]) -> Iterator[Any]:
    recorded: list[str] = []
    context = chromium.new_context(viewport={"width": 1920, "height": 1080},
                                   device_scale_factor=1, locale="zh-CN",
                                   accept_downloads=True)
    context.set_default_timeout(30_000)
    context.on("request", lambda req: recorded.append(req.url))
    try:
        page = context.new_page()
        _log_in(page, app[0], "gis")
        page.wait_for_selector(".ct-upload-input", state="attached", timeout=60_000)
        yield page
    finally:
        context.close()
    outside = requests_outside_localhost(recorded)
    assert not outside, f"requests left localhost: {outside}"


def test_1_upload_the_buildings_zip_publishes_a_new_version(
        gis_page: Any, app: tuple[str, Any, Path], tmp_path_factory: Any) -> None:
    _, ws, city = app
    before = len(ws.versions("buildings"))
    facts_before = ws.current_facts().id
    _upload(gis_page, city / "buildings.zip")
    gis_page.click(".ct-publish button")
    report = _report(gis_page, "published")
    assert "已发布" in report and f"v{before + 1}" in report
    gis_page.wait_for_selector("text=完成融合", timeout=120_000)
    assert len(ws.versions("buildings")) == before + 1
    assert ws.versions("buildings")[-1].author == "gis"
    assert ws.current_facts().id != facts_before  # fused: the cockpit reads the new facts
    versions = _text(gis_page, ".ct-versions")
    assert "uploaded on the catalog page" in versions
    shot = tmp_path_factory.mktemp("shots") / "catalog-1920x1080.png"
    gis_page.screenshot(path=str(shot))


def test_2_an_ambiguous_date_is_reported_and_nothing_is_published(
        gis_page: Any, app: tuple[str, Any, Path], tmp_path: Path) -> None:
    _, ws, _ = app
    csv = tmp_path / "病例.csv"
    csv.write_text("编号,经度,纬度,报告日期,状态\n"
                   "X1,121.47,31.23,03/05/2026,确诊\nX2,121.471,31.231,04/05/2026,确诊\n",
                   encoding="utf-8")
    before = len(ws.versions("cases"))
    _upload(gis_page, csv)
    gis_page.locator(".ct-kind select").select_option(label="病例 cases")
    gis_page.click(".ct-publish button")
    report = _report(gis_page, "refused")
    assert "已拒绝，未发布任何内容" in report
    assert "ambiguous_date" in report and "%d/%m/%Y" in report
    assert len(ws.versions("cases")) == before


def test_2b_the_date_format_fixed_in_the_mapping_form_then_published(
        gis_page: Any, app: tuple[str, Any, Path], tmp_path: Path) -> None:
    _, ws, _ = app
    before = len(ws.versions("cases"))
    gis_page.fill(".ct-date-report_date input", "%d/%m/%Y")
    gis_page.click(".ct-apply-mapping button")
    report = _report(gis_page, "validated")  # the dry run is clean now
    assert "ambiguous_date" not in report
    with gis_page.expect_download() as info:
        gis_page.click(".ct-mapping-download button")
    toml = tmp_path / "mapping.toml"
    info.value.save_as(toml)
    assert '"report_date" = "%d/%m/%Y"' in toml.read_text(encoding="utf-8")
    gis_page.click(".ct-publish button")
    report = _report(gis_page, "published")
    assert len(ws.versions("cases")) == before + 1
    assert str(ws.read("cases").query("id == 'X1'")["report_date"].iloc[0])[:10] == "2026-05-03"


def test_3_rollback_with_a_note(gis_page: Any, app: tuple[str, Any, Path]) -> None:
    _, ws, _ = app
    current = ws.version("buildings").version
    gis_page.locator(".ct-layer-select select").select_option("buildings")
    gis_page.locator(".ct-rollback-to select").select_option(str(current - 1))
    gis_page.fill(".ct-rollback-note input", "回退：上传有误")
    gis_page.click(".ct-rollback button")
    gis_page.wait_for_selector(f"text=已回滚到第 {current - 1} 版", timeout=60_000)
    assert ws.version("buildings").version == current - 1
    with ws.connect() as conn:
        note = conn.execute("SELECT detail FROM audit WHERE action = 'rollback' ORDER BY id "
                            "DESC LIMIT 1").fetchone()[0]
    assert "上传有误" in note


def test_4_download_a_geopackage(gis_page: Any, app: tuple[str, Any, Path],
                                 tmp_path: Path) -> None:
    _, ws, _ = app
    gis_page.locator(".ct-layer-select select").select_option("buildings")
    gis_page.wait_for_selector("text=uploaded on the catalog page")
    with gis_page.expect_download() as info:
        gis_page.locator(".ct-download-gpkg").first.click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert path.suffix == ".gpkg"
    frame = pyogrio.read_dataframe(path)
    latest = ws.versions("buildings")[-1]
    assert len(frame) == latest.row_count


@pytest.mark.parametrize("user", ["demo", "plan"])
def test_5_viewers_and_planners_are_refused(chromium: Any, app: tuple[str, Any, Path],
                                            user: str) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        _log_in(page, app[0], user)
        page.wait_for_selector(".ct-refused", timeout=60_000)
        assert page.locator(".ct-upload-input").count() == 0
    finally:
        context.close()


# -- the upload endpoint, as an attacker on the loopback would use it -------------------------
def _cookie(base: str, user: str) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar),
                                         urllib.request.ProxyHandler({}))
    opener.open(f"{base}/login", data=urllib.parse.urlencode(
        {"username": user, "password": PASSWORD}).encode(), timeout=30).read()
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def _post(base: str, name: str, body: bytes, *, cookie: str, ticket: str | None,
          length: int | None = None) -> tuple[int, dict]:
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    headers = {"Cookie": cookie, "Content-Length": str(len(body) if length is None else length)}
    if ticket:
        headers["X-Citytwin-Upload"] = ticket
    try:
        conn.request("POST", "/catalog/upload?name=" + urllib.parse.quote(name), body=body,
                     headers=headers)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"{}")
    except (ConnectionError, http.client.HTTPException):
        return 0, {}
    finally:
        conn.close()


def _ingest(ws: Any, upload: dict, kind: str) -> Any:
    from dashboards.catalog_http import upload_path
    from ingest import ingest_file

    return ingest_file(ws, upload_path(ws, upload["upload"]), kind=kind, dry_run=True)


def test_6_hostile_uploads_are_refused_and_the_server_still_answers(
        app: tuple[str, Any, Path], tmp_path: Path) -> None:
    from dashboards.catalog_http import make_ticket

    base, ws, _ = app
    cookie = _cookie(base, "gis")
    ticket = make_ticket(SECRET, "gis")
    outside = ws.root.parent / "escaped.txt"
    # A zip whose member climbs out of the folder.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../escaped.txt", "pwned")
        archive.writestr("b.shp", b"\0" * 100)
    status, body = _post(base, "evil.zip", buffer.getvalue(), cookie=cookie, ticket=ticket)
    assert status == 200, body  # stored as bytes; the ingest refuses it
    report = _ingest(ws, body, "buildings")
    assert report.status == "refused" and any(p.code == "unsafe_file" for p in report.errors)
    assert not outside.exists()
    # A GeoJSON whose CRS is a URL: never fetched, refused with a clear message.
    geojson = json.dumps({"type": "FeatureCollection", "crs": {"type": "link", "properties": {
        "href": "http://evil.example/crs.prj", "type": "proj4"}}, "features": [
        {"type": "Feature", "properties": {"id": "b1", "use": "residential", "floors": 3},
         "geometry": {"type": "Point", "coordinates": [121.47, 31.23]}}]}).encode()
    status, body = _post(base, "linked.geojson", geojson, cookie=cookie, ticket=ticket)
    assert status == 200
    report = _ingest(ws, body, "buildings")
    assert report.status == "refused", report.to_text()
    # A body over the limit: refused from its length, before it is read.
    status, body = _post(base, "big.tif", b"", cookie=cookie, ticket=ticket, length=2**30)
    assert status in (413, 0)
    if status:
        assert "64 MB limit" in body["description"]
    # A folder in the name, no ticket, another user's ticket.
    assert _post(base, "../x.csv", b"a", cookie=cookie, ticket=ticket)[0] == 400
    assert _post(base, "x.csv", b"a", cookie=cookie, ticket=None)[0] == 403
    assert _post(base, "x.csv", b"a", cookie=cookie, ticket=make_ticket(SECRET, "plan"))[0] \
        == 403
    assert _post(base, "x.csv", b"a", cookie="", ticket=ticket)[0] == 403
    # Nothing landed outside the workspace's uploads, and the server still answers.
    uploads = ws.tmp_dir / "uploads"
    assert all(p.resolve().is_relative_to(uploads.resolve()) for p in uploads.rglob("*"))
    assert not outside.exists()
    with urllib.request.urlopen(f"{base}/login", timeout=30) as answer:
        assert answer.status == 200
