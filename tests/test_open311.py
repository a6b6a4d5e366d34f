"""Open311 GeoReport v2 at /open311/v2, against a real `twin serve`, with a real HTTP client."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import fused_demo

TWIN = str(Path(sys.executable).with_name("twin"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    from dashboards.demo import prepare_demo
    from tests.browser.conftest import served
    from twin.tokens import Tokens

    ws, _ = fused_demo(tmp_path_factory.mktemp("open311"))
    prepare_demo(ws, password="demo-pass-123")
    tokens = {role: Tokens(ws).add(f"dept-{role}", role, actor="test")[1]
              for role in ("viewer", "planner")}
    with served([TWIN, "serve", str(ws.root), "--port", "{port}", "--address", "127.0.0.1"],
                ready_path="/login") as base:
        yield ws, f"{base}/open311/v2", tokens


def _call(url: str, token: str | None = None, form: dict[str, str] | None = None,
          *, as_json: bool = False) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if form is not None:
        if as_json:
            data = json.dumps(form).encode()
            headers["Content-Type"] = "application/json"
        else:
            data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _place(ws) -> tuple[float, float]:
    from twin import grid
    from twin.facts import Facts

    cell = Facts(ws).read(10)["cell"].to_numpy(np.uint64)[:1]
    lng, lat = grid.cell_centres(cell)
    return float(lng[0]), float(lat[0])


def test_tokens_are_required_and_viewers_refused(server) -> None:
    _, base, tokens = server
    status, body = _call(f"{base}/services.json")
    assert status == 401 and "API token is required" in body[0]["description"]
    assert _call(f"{base}/services.json", "ct_wrong")[0] == 401
    status, body = _call(f"{base}/requests.json", tokens["viewer"])
    assert status == 403 and "personal data" in body[0]["description"]


def test_services_list_the_categories(server) -> None:
    _, base, tokens = server
    status, services = _call(f"{base}/services.json", tokens["planner"])
    assert status == 200
    codes = [s["service_code"] for s in services]
    assert codes[:3] == ["supply", "medicine", "medical"] and "other" in codes
    medicine = services[1]
    assert medicine["service_name"] == "药品需求 medicine" and medicine["type"] == "realtime"


def test_post_then_read_back_and_a_repeat_is_linked(server) -> None:
    ws, base, tokens = server
    lng, lat = _place(ws)
    form = {"service_code": "medicine", "lat": f"{lat:.6f}", "long": f"{lng:.6f}",
            "address_string": "示范路1号", "description": "需要降压药", "first_name": "秀英",
            "last_name": "王", "phone": "13900001111"}
    status, created = _call(f"{base}/requests.json", tokens["planner"], form)
    assert status == 201, created
    request_id = created[0]["service_request_id"]
    assert "assigned to grid unit" in created[0]["service_notice"]
    status, found = _call(f"{base}/requests/{request_id}.json", tokens["planner"])
    assert status == 200 and len(found) == 1
    r = found[0]
    assert (r["status"], r["service_code"], r["description"], r["address"]) == (
        "open", "medicine", "需要降压药", "示范路1号")
    assert r["agency_responsible"] and abs(r["lat"] - lat) < 1e-6
    assert "phone" not in r and "王" not in json.dumps(r, ensure_ascii=False)
    assert r["requested_datetime"].endswith("+08:00")
    # The same caller again, as JSON: linked as a duplicate, closed with a note.
    status, again = _call(f"{base}/requests.json", tokens["planner"], form, as_json=True)
    assert status == 201 and f"duplicate of request {request_id}" in again[0]["service_notice"]
    status, both = _call(f"{base}/requests.json?service_request_id={request_id},"
                         f"{again[0]['service_request_id']}", tokens["planner"])
    assert {x["status"] for x in both} == {"open", "closed"}
    status, open_ = _call(f"{base}/requests.json?status=open&service_code=medicine",
                          tokens["planner"])
    assert status == 200 and request_id in {x["service_request_id"] for x in open_}
    from twin.events.store import Events

    event = Events(ws).get(int(request_id))
    assert (event.channel, event.created_by, event.reporter) == (
        "department", "token:dept-planner", "王 秀英")
    assert ws.audit_log(action="events.intake")[0]["actor"] == "token:dept-planner"


def test_bad_requests_get_open311_errors(server) -> None:
    ws, base, tokens = server
    lng, lat = _place(ws)
    status, body = _call(f"{base}/requests.json", tokens["planner"],
                         {"service_code": "spaceship", "lat": str(lat), "long": str(lng)})
    assert status == 400 and "not a category" in body[0]["description"]
    status, body = _call(f"{base}/requests.json", tokens["planner"], {"service_code": "supply"})
    assert status == 400 and "needs its place" in body[0]["description"]
    status, body = _call(f"{base}/requests.json", tokens["planner"],
                         {"service_code": "supply", "lat": "39.9", "long": "116.4"})
    assert status == 400 and "outside the city" in body[0]["description"]
    status, body = _call(f"{base}/requests/999999.json", tokens["planner"])
    assert status == 404 and "no event 999999" in body[0]["description"]
    status, body = _call(f"{base}/requests.json?status=maybe", tokens["planner"])
    assert status == 400
    # api_key in the form works as the token, as Open311 clients send it.
    status, _ = _call(f"{base}/requests.json", None, {"api_key": tokens["planner"],
                                                      "service_code": "other",
                                                      "lat": str(lat), "long": str(lng)})
    assert status == 201
