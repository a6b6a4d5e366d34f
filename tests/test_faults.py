"""Faults: SIGKILL in the middle of a zone save, and the disk filling up during an upload.

(SIGKILL during a publish: ``tests/test_store_crash.py``.)
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_zones import A
from twin import Workspace
from twin.zones import Zones

ROOT = Path(__file__).resolve().parents[1]
TWIN = str(Path(sys.executable).with_name("twin"))


def _neighbour(cell: int) -> int:
    from h3.api import basic_int as h3i

    return sorted(c for c in h3i.grid_disk(cell, 1) if c != cell)[0]


@pytest.mark.parametrize("point", ["transaction", "committed"])
def test_a_zone_save_killed_midway_is_all_or_nothing(workspace: Workspace, point: str) -> None:
    zone = Zones(workspace).create(cells=[A], tier="lockdown", author="start", reason="start")
    cell = _neighbour(A)
    child = subprocess.Popen([sys.executable, "-m", "tests.zone_child", str(workspace.root),
                              zone.zone_id, str(cell), point], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    if line.strip() != f"READY {point}":
        child.kill()
        raise AssertionError(f"child did not reach {point}: {line!r} {child.stderr.read()}")
    child.send_signal(signal.SIGKILL)
    child.wait()
    reopened = Workspace.open(workspace.root)
    with sqlite3.connect(reopened.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    history = Zones(reopened).history(zone.zone_id)
    saves = [a for a in reopened.audit_log(20) if a["action"] == "zone.save"]
    if point == "transaction":  # nothing of the save is visible, not even its audit row
        assert [h.version for h in history] == [1]
        assert int(cell) not in {int(c) for c in history[-1].cells}
        assert saves == []
    else:  # what was committed is kept
        assert [h.version for h in history] == [1, 2]
        assert int(cell) in {int(c) for c in history[-1].cells}
        assert len(saves) == 1


# -- the disk fills up during an upload -------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 160 MB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); the disk-full "
                    "test needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _send(base: str, cookie: str, ticket: str, total: int, *, fill: Path | None = None,
          fill_bytes: int = 0) -> tuple[int, str]:
    """Stream ``total`` bytes to the upload endpoint; after the first 8 MB, fill the disk."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    chunk = os.urandom(1 << 20)
    try:
        conn.putrequest("POST", "/catalog/upload?name=big.csv")
        for name, value in (("Cookie", cookie), ("X-Citytwin-Upload", ticket),
                            ("Content-Length", str(total)),
                            ("Content-Type", "application/octet-stream")):
            conn.putheader(name, value)
        conn.endheaders()
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, socket.timeout):
            while sent < total:
                conn.send(chunk[:min(len(chunk), total - sent)])
                sent += min(len(chunk), total - sent)
                if fill is not None and sent == 8 << 20:
                    # Someone else fills the disk.
                    with fill.open("wb") as handle, contextlib.suppress(OSError):
                        for _ in range(fill_bytes >> 20):
                            handle.write(chunk)
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


def test_a_full_disk_during_an_upload_gives_a_clear_error_and_changes_nothing(
        small_disk: Path) -> None:
    from dashboards.catalog_http import make_ticket
    from dashboards.security import cookie_secret
    from tests.browser.conftest import served
    from tests.conftest import fused_demo
    from tests.logins import login_cookie
    from twin.users import Users

    ws, _ = fused_demo(small_disk / "city")
    Users(ws).add("gis", "gis", "disk-pass-1", actor="test")
    layers = [(layer.name, layer.current_version) for layer in ws.layers()]
    with served([TWIN, "serve", str(ws.root), "--port", "{port}"], ready_path="/login",
                timeout=120) as base:
        cookie = login_cookie(base, "gis", "disk-pass-1")
        ticket = make_ticket(cookie_secret(ws.root), "gis")
        # Larger than the free space: refused before a byte is stored.
        status, text = _send(base, cookie, ticket, 150 << 20)
        assert status == 507 and "disk is full" in text, (status, text)
        # Fits when it starts, then someone else fills the disk: refused midway.
        status, text = _send(base, cookie, ticket, 60 << 20, fill=small_disk / "filler",
                             fill_bytes=160 << 20)
        assert status == 507 and "nothing was kept" in text, (status, text)
        (small_disk / "filler").unlink()
        uploads = ws.tmp_dir / "uploads"
        assert [p.name for p in uploads.iterdir()] == [".claim"]  # no partial upload kept
        assert [(layer.name, layer.current_version) for layer in ws.layers()] == layers
        with urllib.request.urlopen(f"{base}/login", timeout=30) as answer:  # still serving
            assert answer.status == 200
