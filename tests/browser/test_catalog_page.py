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
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyogrio
import pytest

from tests.browser.conftest import requests_outside_localhost, served, watch_csp
from tests.conftest import fused_demo
from tests.logins import login_cookie

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
    violations = watch_csp(context)
    try:
        page = context.new_page()
        _log_in(page, app[0], "gis")
        page.wait_for_selector(".ct-upload-input", state="attached", timeout=60_000)
        yield page
    finally:
        context.close()
    outside = requests_outside_localhost(recorded)
    assert not outside, f"requests left localhost: {outside}"
    assert not violations, f"the content security policy blocked: {violations}"


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
    versions, deadline = "", time.monotonic() + 30
    while "uploaded on the catalog page" not in versions and time.monotonic() < deadline:
        versions = _text(gis_page, ".ct-versions")
        gis_page.wait_for_timeout(300)
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


def _kpis(page: Any) -> str:
    page.wait_for_selector(".ct-kpi-value", timeout=60_000)
    return " | ".join(page.locator(".ct-kpi").all_inner_texts())


def test_2b_the_date_format_fixed_in_the_mapping_form_then_published(
        gis_page: Any, app: tuple[str, Any, Path], tmp_path: Path) -> None:
    base, ws, _ = app
    before = len(ws.versions("cases"))
    # A cockpit left open in another tab: it must show the new cases without a reload.
    cockpit = gis_page.context.new_page()
    cockpit.goto(f"{base}/cockpit")
    shown_before = _kpis(cockpit)
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
    gis_page.wait_for_selector("text=完成融合", timeout=120_000)
    deadline = time.monotonic() + 90
    while _kpis(cockpit) == shown_before and time.monotonic() < deadline:
        cockpit.wait_for_timeout(1000)
    assert _kpis(cockpit) != shown_before, "the open cockpit never showed the published cases"
    cockpit.close()


def test_2c_value_synonyms_typed_in_the_form_keep_every_record(
        gis_page: Any, app: tuple[str, Any, Path], tmp_path: Path) -> None:
    csv = tmp_path / "阳性.csv"
    csv.write_text("编号,经度,纬度,报告日期,状态\n"
                   "Y1,121.47,31.23,2026-05-03,阳性病例\nY2,121.471,31.231,2026-05-04,确诊\n",
                   encoding="utf-8")
    _upload(gis_page, csv)
    gis_page.locator(".ct-kind select").select_option(label="病例 cases")
    gis_page.click(".ct-check button")
    report = _report(gis_page, "validated")
    assert "unknown_value" in report and "阳性病例" in report and "rows_kept: 1" in report
    gis_page.fill(".ct-values-status input", "阳性病例=confirmed")
    gis_page.click(".ct-apply-mapping button")
    deadline = time.monotonic() + 60
    while "rows_kept: 2" not in report and time.monotonic() < deadline:
        gis_page.wait_for_timeout(500)
        report = _text(gis_page, ".ct-report")
    assert "rows_kept: 2" in report and "unknown_value" not in report
    # A malformed pair is refused on the page before anything runs.
    gis_page.fill(".ct-values-status input", "阳性病例")
    gis_page.click(".ct-apply-mapping button")
    gis_page.wait_for_selector("text=is not source=canonical", timeout=30_000)


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


def _tab(page: Any, name: str) -> None:
    page.locator(".bk-tab", has_text=name).first.click()


def test_4b_metadata_edited_on_the_page(gis_page: Any, app: tuple[str, Any, Path]) -> None:
    from twin.catalog import freshness, get_meta

    _, ws, _ = app
    gis_page.locator(".ct-layer-select select").select_option("buildings")
    _tab(gis_page, "元数据")
    gis_page.fill(".ct-meta-title_zh input", "楼栋普查")
    gis_page.fill(".ct-meta-title_en input", "Building census")
    gis_page.fill(".ct-meta-department input", "住建局")
    gis_page.fill(".ct-meta-refresh_hours input", "abc")
    gis_page.click(".ct-meta-save button")
    gis_page.wait_for_selector("text=更新周期须为小时数", timeout=30_000)
    assert get_meta(ws, "buildings").title_zh == ""  # nothing saved from a bad form
    gis_page.fill(".ct-meta-refresh_hours input", "0.001")
    gis_page.click(".ct-meta-save button")
    gis_page.wait_for_selector("text=buildings 的元数据已保存", timeout=30_000)
    meta = get_meta(ws, "buildings")
    assert (meta.title_zh, meta.department, meta.refresh_hours) == ("楼栋普查", "住建局", 0.001)
    # The catalog shows the title, and the 3.6 s interval makes the layer overdue at once.
    row = _text(gis_page, ".ct-catalog-table")
    assert "楼栋普查" in row and "住建局" in row
    assert freshness(ws, "buildings")["state"] == "overdue"
    with ws.connect() as conn:
        audited = conn.execute("SELECT actor FROM audit WHERE action = 'catalog.meta' "
                               "ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert audited == "gis"


def test_4c_the_difference_between_two_versions(gis_page: Any,
                                                 app: tuple[str, Any, Path]) -> None:
    from twin.catalog import diff_versions

    _, ws, _ = app
    gis_page.locator(".ct-layer-select select").select_option("buildings")
    _tab(gis_page, "版本差异")
    gis_page.locator(".ct-diff-old select").select_option("1")
    gis_page.locator(".ct-diff-new select").select_option("2")
    gis_page.click(".ct-diff-go button")
    gis_page.wait_for_selector(".ct-diff-added", timeout=30_000)
    expected = diff_versions(ws, "buildings", 1, 2)
    shown = _text(gis_page, ".ct-diff")
    assert "v1 → v2" in shown and "按 id 对应" in shown
    for part, zh in (("added", "新增"), ("removed", "删除"), ("changed", "变更")):
        assert f"{zh}\t{expected[part]['count']:,}" in shown, (part, shown)
    assert f"{expected['rows']['old']:,} → {expected['rows']['new']:,}" in shown


def test_4d_a_preview_map_of_an_earlier_version(gis_page: Any,
                                                app: tuple[str, Any, Path]) -> None:
    _, ws, _ = app
    gis_page.locator(".ct-layer-select select").select_option("buildings")
    _tab(gis_page, "预览地图")
    gis_page.locator(".ct-preview-version select").select_option("2")
    gis_page.click(".ct-preview-go button")
    gis_page.wait_for_selector(".ct-preview-caption", timeout=30_000)
    caption = gis_page.locator(".ct-preview-caption").first.inner_text()
    rows = ws.version("buildings", 2).row_count
    assert "buildings 第 2 版" in caption and f"{rows:,} 个要素" in caption
    canvas = gis_page.locator(".ct-preview-map canvas").first
    canvas.wait_for(state="visible", timeout=60_000)
    box = canvas.bounding_box()
    assert box["width"] > 400 and box["height"] > 300
    # Drawn: the canvas is not one flat colour.
    png = canvas.screenshot()
    from io import BytesIO

    from PIL import Image

    colours = Image.open(BytesIO(png)).convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 10


def test_4e_facts_and_zones_downloads(gis_page: Any, app: tuple[str, Any, Path],
                                      tmp_path: Path) -> None:
    import pandas as pd

    from twin.facts import Facts

    _, ws, _ = app
    _tab(gis_page, "下载事实与封控区")
    with gis_page.expect_download() as info:
        gis_page.locator('.ct-collection[data-collection="facts-community"] '
                         ".ct-collection-csv").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert path.name == "facts-community.csv"
    table = pd.read_csv(path, encoding="utf-8-sig")
    facts = Facts(ws).read("community")
    assert len(table) == len(facts)
    assert table["residents"].sum() == pytest.approx(facts["residents"].sum())
    with gis_page.expect_download() as info:
        gis_page.locator('.ct-collection[data-collection="facts-r9"] .ct-collection-gpkg').click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    cells = pyogrio.read_dataframe(path)
    assert len(cells) == len(Facts(ws).read(9))
    assert "/ogc" in _text(gis_page, ".ct-downloads")


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
    return login_cookie(base, user, PASSWORD)


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
