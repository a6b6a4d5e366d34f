"""`twin serve --tls-cert/--tls-key` serves HTTPS with Secure cookies; `--behind-https`
marks cookies Secure and takes the client address from the proxy's X-Forwarded-For."""

from __future__ import annotations

import http.client
import shutil
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fused_demo

TWIN = str(Path(sys.executable).with_name("twin"))
PASSWORD = "tls-pass-1"


def _login(conn: http.client.HTTPConnection, headers: dict[str, str] | None = None
           ) -> tuple[int, list[str]]:
    """GET the login page for its CSRF cookie, POST the form; status and Set-Cookie lines."""
    conn.request("GET", "/login", headers=headers or {})
    page = conn.getresponse()
    page.read()
    xsrf = next(c.split(";", 1)[0].split("=", 1)[1] for c in page.headers.get_all("Set-Cookie")
                if c.startswith("_xsrf="))
    conn.request("POST", "/login", body=urllib.parse.urlencode(
        {"username": "plan", "password": PASSWORD, "_xsrf": xsrf}),
        headers={**(headers or {}), "Content-Type": "application/x-www-form-urlencoded",
                 "Cookie": f"_xsrf={xsrf}"})
    answer = conn.getresponse()
    answer.read()
    return answer.status, answer.headers.get_all("Set-Cookie") or []


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from twin.users import Users

    ws, _ = fused_demo(tmp_path_factory.mktemp("tls"))
    Users(ws).add("plan", "planner", PASSWORD, actor="test")
    return ws


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_with_secure_cookies(workspace: Any, tmp_path: Path) -> None:
    from tests.browser.conftest import _stop_group, free_port

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen([TWIN, "serve", str(workspace.root), "--port", str(port),
                             "--tls-cert", str(cert), "--tls-key", str(key)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    try:
        deadline = time.monotonic() + 90
        while True:
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
            try:
                status, cookies = _login(conn)
                break
            except (OSError, StopIteration):
                assert time.monotonic() < deadline and proc.poll() is None, "no HTTPS answer"
                time.sleep(0.5)
            finally:
                conn.close()
        assert status == 302
        session = [c for c in cookies if c.startswith(("user=", "citytwin_session="))]
        assert len(session) == 2 and all("Secure" in c for c in session), cookies
    finally:
        _stop_group(proc, 10)


def test_behind_an_https_proxy(workspace: Any) -> None:
    from tests.browser.conftest import served

    with served([TWIN, "serve", str(workspace.root), "--port", "{port}", "--behind-https"],
                ready_path="/login", timeout=90) as base:
        url = urllib.parse.urlsplit(base)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        try:
            status, cookies = _login(conn, {"X-Forwarded-For": "10.9.8.7",
                                            "X-Forwarded-Proto": "https"})
        finally:
            conn.close()
    assert status == 302
    assert all("Secure" in c for c in cookies if c.startswith(("user=", "citytwin_session=")))
    login = next(r for r in workspace.audit_log(20) if r["action"] == "users.login")
    assert login["detail"]["address"] == "10.9.8.7"


def test_a_request_body_over_the_limit_is_refused_unread(workspace: Any) -> None:
    """``security.max_body_mb`` (10): a larger body is refused from its Content-Length."""
    from tests.browser.conftest import served

    with served([TWIN, "serve", str(workspace.root), "--port", "{port}"],
                ready_path="/login", timeout=90) as base:
        url = urllib.parse.urlsplit(base)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        try:
            conn.putrequest("POST", "/login")
            conn.putheader("Content-Type", "application/x-www-form-urlencoded")
            conn.putheader("Content-Length", str(11 * 2**20))
            conn.endheaders()  # and not a byte of the body
            answer = conn.getresponse()
            assert answer.status in (400, 413), answer.status
        finally:
            conn.close()
        with urllib.request.urlopen(f"{base}/login", timeout=30) as again:  # still serving
            assert again.status == 200
