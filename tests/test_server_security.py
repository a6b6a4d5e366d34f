"""The server as an attacker on the loopback would try it (issue 13), against a real
``twin serve``: each finding of the issue becomes a test here as it is fixed."""

from __future__ import annotations

import http.client
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboards.app import local_path
from tests.conftest import fused_demo

TWIN = str(Path(sys.executable).with_name("twin"))
PASSWORD = "hardening-pass-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    from tests.browser.conftest import served
    from twin.users import Users

    ws, _ = fused_demo(tmp_path_factory.mktemp("security"))
    for name in ("plan", "victim"):
        Users(ws).add(name, "planner", PASSWORD, actor="test")
    with served([TWIN, "serve", str(ws.root), "--port", "{port}", "--address", "127.0.0.1"],
                ready_path="/login", timeout=90) as url:
        yield url, ws


def _login(base: str, cookie: str = "", user: str = "plan", password: str = PASSWORD
           ) -> tuple[int, str]:
    """POST the login form; the status and the Location, unquoted (redirects not followed)."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    body = urllib.parse.urlencode({"username": user, "password": password})
    try:
        conn.request("POST", "/login", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
        answer = conn.getresponse()
        answer.read()
        return answer.status, urllib.parse.unquote(answer.getheader("Location", ""))
    finally:
        conn.close()


def test_the_login_follows_next_url_only_to_this_site(server: tuple[str, Any]) -> None:
    base = server[0]
    for evil in ("http://evil.example/", "//evil.example/x", "https:evil.example"):
        status, location = _login(base, f"next_url={evil}")
        assert status == 302 and location == "/cockpit", (evil, location)
    assert _login(base, "next_url=/zones") == (302, "/zones")


@pytest.mark.parametrize("target", ["http://evil.example/", "//evil.example", "/\\evil.example",
                                    "/x\r\nSet-Cookie: a=b", "zones", "", None])
def test_off_site_or_malformed_targets_are_not_local(target: str | None) -> None:
    assert local_path(target) is None


@pytest.mark.parametrize("target", ["/zones", "/catalog?lang=en", "/cockpit?kiosk=1#x"])
def test_paths_on_this_site_are_kept(target: str) -> None:
    assert local_path(target) == target


def _get(base: str, path: str, headers: dict[str, str] | None = None
         ) -> tuple[int, http.client.HTTPMessage, bytes]:
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.headers, answer.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/login", "/cockpit", "/ogc", "/static/js/bokeh.min.js",
                                  "/cockpit/autoload.js?bokeh-autoload-element=x"])
def test_every_answer_carries_the_security_headers(server: tuple[str, Any], path: str) -> None:
    """Finding: no security headers anywhere, and autoload.js granted any origin access
    with credentials."""
    status, headers, _ = _get(server[0], path, {"Origin": "http://evil.example"})
    assert status < 500, (path, status)
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "same-origin"
    assert not [h for h in headers if h.lower().startswith("access-control-allow-")], path


def test_the_session_cookies_are_samesite_and_httponly(server: tuple[str, Any]) -> None:
    url = urllib.parse.urlsplit(server[0])
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request("POST", "/login", body=urllib.parse.urlencode(
            {"username": "plan", "password": PASSWORD}),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        answer = conn.getresponse()
        answer.read()
        cookies = answer.headers.get_all("Set-Cookie") or []
    finally:
        conn.close()
    session = [c for c in cookies if c.startswith(("user=", "id_token="))]
    assert len(session) == 2, cookies
    assert all("SameSite=Lax" in c and "HttpOnly" in c for c in session), session


def test_the_cookie_secret_is_kept_in_the_workspace(server: tuple[str, Any]) -> None:
    """Finding: a random secret per start logged every 30-day kiosk screen out on restart."""
    from dashboards.security import SECRET_FILE, cookie_secret

    ws = server[1]
    path = ws.root / SECRET_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert cookie_secret(ws.root) == path.read_text(encoding="ascii").strip()
    assert len(path.read_text(encoding="ascii").strip()) == 64


def test_thirty_wrong_passwords_then_the_right_one_is_refused(server: tuple[str, Any]) -> None:
    """Finding: 30 wrong passwords in 1.5 s, then the right one was accepted. (Last in the
    module: it leaves the loopback address throttled.)"""
    base, ws = server
    answers = [_login(base, user="victim", password=f"guess-{i}")[1] for i in range(30)]
    assert all("wrong user name or password" in a for a in answers[:5]), answers[:5]
    assert all("too many failed logins" in a for a in answers[5:]), answers[5:]
    status, location = _login(base, user="victim")
    assert status == 302 and "too many failed logins" in location
    # An unknown name from the same address gets the same answer.
    assert "too many failed logins" in _login(base, user="ghost", password="x")[1]
    with ws.connect() as conn:
        actions = [r[0] for r in conn.execute(
            "SELECT action FROM audit WHERE target = 'victim' ORDER BY id")]
    assert actions.count("users.login_failed") == 5
    assert actions.count("users.login_throttled") == 26
    assert "users.login" not in actions
