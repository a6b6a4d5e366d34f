"""The cockpit driven headlessly (no browser): state, privacy, roles, auth and offline HTML."""

from __future__ import annotations

import datetime as dt
import http.cookiejar
import re
import socket
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import fused_demo
from tests.logins import form_token

PASSWORD = "demo-pass-123"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    from dashboards.demo import prepare_demo
    from twin.users import Users

    ws, _ = fused_demo(tmp_path_factory.mktemp("cockpit"))
    info = prepare_demo(ws, password=PASSWORD)
    Users(ws).add("plan", "planner", PASSWORD, actor="test")
    return ws, info


def test_prepare_demo_activates_zones_and_makes_a_viewer(demo) -> None:
    from twin.users import Users

    ws, info = demo
    assert info["activated"], info
    assert info["account"] == {"user": "demo", "password": PASSWORD}
    assert Users(ws).authenticate("demo", PASSWORD).role == "viewer"


def test_kpis_follow_the_date(demo) -> None:
    from dashboards.state import INFECTIONS, CockpitState
    from twin.facts import Facts
    from twin.risk import risk
    from twin.zones import Zones, impact

    ws, _ = demo
    state = CockpitState(ws, role="planner", lang="en")
    facts = Facts(ws)
    daily = facts.daily("district")
    infections = daily[list(INFECTIONS)].sum(axis=1)
    for day in (state.end, state.end - dt.timedelta(days=10), state.start):
        state.date = day
        kpis = state.kpis()
        assert kpis["new_cases"]["value"] == int(infections.get(np.datetime64(day), 0))
        for tier in ("lockdown", "control"):
            zones = [z for z in Zones(ws).list(status="active")
                     if z.tier == tier and z.valid_from[:10] <= day.isoformat()]
            cells = (np.concatenate([z.cells for z in zones]) if zones
                     else np.empty(0, np.uint64))
            expected = impact(facts, cells).totals.get("residents", 0.0)
            assert kpis[f"{tier}_residents"]["value"] == pytest.approx(expected)
        assert kpis["high_risk_communities"]["value"] == risk(
            facts, level="community", date=day).counts()["high"]
    state.date = state.end
    assert state.kpis()["lockdown_residents"]["value"] > 0
    assert list(state.top10()["score"]) == sorted(state.top10()["score"], reverse=True)
    assert state.trend().index.max().date() == state.end


def test_play_steps_and_wraps(demo) -> None:
    from dashboards.state import CockpitState

    ws, _ = demo
    state = CockpitState(ws)
    state.date = state.end - dt.timedelta(days=1)
    state.step()
    assert state.date == state.end
    state.step()
    assert state.date == state.start


def test_viewer_sees_res8_with_small_counts_hidden(demo) -> None:
    from dashboards.state import CockpitState
    from twin import grid

    ws, _ = demo
    viewer = CockpitState(ws, role="viewer", lang="en")
    planner = CockpitState(ws, role="planner", lang="en")
    seen, fine = viewer.case_counts(), planner.case_counts()
    assert len(seen) and len(fine)
    assert set(grid.cell_resolution(seen["cell"].to_numpy(np.uint64)).tolist()) == {8}
    small = seen[(seen["cases"] > 0) & (seen["cases"] < 10)]
    assert len(small) and set(small["display"]) == {"<10"}
    assert seen["cases"].sum() == fine["cases"].sum()
    assert set(grid.cell_resolution(fine["cell"].to_numpy(np.uint64)).tolist()) == {10}
    assert "<10" not in set(fine["display"])
    # the city-wide count on a quiet day is hidden for viewers too
    viewer.date = planner.date = viewer.start
    value = viewer.kpis()["new_cases"]["value"]
    if 0 < value < 10:
        assert viewer.kpis()["new_cases"]["display"] == "<10"
        assert planner.kpis()["new_cases"]["display"] == str(value)


def test_role_check_refuses_a_viewer_on_planner_actions(demo) -> None:
    from dashboards.app import current_user
    from twin.users import AuthError, require

    ws, _ = demo
    viewer = current_user(ws, "demo")
    assert require(viewer, "view_cockpit") is viewer
    with pytest.raises(AuthError):
        require(viewer, "view_fine_cases")
    with pytest.raises(AuthError):
        require(viewer, "edit_zones")
    with pytest.raises(AuthError):
        require(current_user(ws, "nobody"), "view_cockpit")


def test_refresh_sees_new_alerts_without_reload(demo) -> None:
    from dashboards.situation import SharedSituation
    from dashboards.state import CockpitState
    from twin.alerts import Alert, raise_alerts

    ws, _ = demo
    # a situation that looks at the workspace on every call (the server's waits 2 s)
    state = CockpitState(ws, SharedSituation(ws.root, check_s=0, background=False), lang="en")
    assert state.refresh() is False
    day = state.date.isoformat()
    raise_alerts(ws, [Alert(rule="beds", severity="warning", place="test", date=day,
                            message_zh="测试", message_en="test alert", data={})])
    assert state.refresh() is True
    assert state.data_version == 1
    assert state.alerts()[0]["text"] == "test alert"


def test_cockpit_view_builds(demo) -> None:
    from dashboards.cockpit import Cockpit
    from dashboards.state import CockpitState

    ws, _ = demo
    view = Cockpit(state=CockpitState(ws, lang="en"), kiosk=True)
    view.__panel__()
    assert 'class="ct-kpi ct-kpi-new_cases' in view._kpis[0].object
    assert "ct-kpi-value" in view._kpis[0].object
    assert view._map.object["mapStyle"] is None
    view._date.value = view.state.start
    assert view.state.date == view.state.start
    assert not view.state.status, view.state.status


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_URL = re.compile(r"https?://[^\s\"'<>)]+")


def _external(text: str) -> set[str]:
    return {u for u in _URL.findall(text)
            if not re.match(r"https?://(127\.0\.0\.1|localhost)[:/]", u)
            and not u.startswith(("http://www.w3.org/", "https://www.w3.org/"))}


def test_served_pages_log_in_and_load_nothing_external(demo, tmp_path: Path) -> None:
    from dashboards.app import serve

    ws, _ = demo
    port = _free_port()
    server = serve(ws, port=port, threaded=True)
    try:
        base = f"http://127.0.0.1:{port}"
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        for _ in range(50):
            try:
                login = opener.open(f"{base}/login", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert "ct-login" in login and not _external(login)
        # not logged in: the cockpit sends to the login page
        assert "ct-login" in opener.open(f"{base}/cockpit", timeout=10).read().decode()
        token = form_token(login)
        bad = opener.open(f"{base}/login", data=urllib.parse.urlencode(
            {"username": "demo", "password": "wrong-password", "_xsrf": token}).encode(),
            timeout=10)
        assert "error=" in bad.geturl()
        good = opener.open(f"{base}/login", data=urllib.parse.urlencode(
            {"username": "demo", "password": PASSWORD, "_xsrf": token}).encode(), timeout=30)
        assert good.geturl().endswith("/cockpit")
        page = good.read().decode()
        assert "bokeh" in page.lower() and not _external(page), _external(page)
        kiosk = opener.open(f"{base}/cockpit?kiosk=1", timeout=30).read().decode()
        assert not _external(kiosk)
        logout = opener.open(f"{base}/logout", timeout=10).read().decode()
        assert not _external(logout)
    finally:
        server.stop()


def test_risk_hex_resolution_follows_the_control(demo) -> None:
    """The map's resolution control picks the H3 resolution of the risk hexes."""
    import numpy as np

    from dashboards.state import CockpitState
    from twin import grid

    ws, _ = demo
    state = CockpitState(ws, role="viewer")
    for resolution in (7, 9):
        state.hex_resolution = resolution
        risk = next(layer for layer in state.map_layers() if layer.id.startswith("risk"))
        cells = grid.strings_to_cells(list(risk.data["hex"]))
        assert set(np.unique(grid.cell_resolution(cells)).tolist()) == {resolution}
