"""Browser fixtures: headless Chromium, a request-recording page, a served subprocess.

Playwright drives Debian's Chromium at ``/usr/bin/chromium`` (``scripts/setup --test`` installs
it); Playwright's own browser download is never used. Every page routes requests for hosts
other than the local machine to ``abort()``, so nothing leaves the machine, and records every
URL it asked for; :func:`requests_outside_localhost` lists the ones that tried to.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
#: Headless Chromium flags. WebGL (deck.gl needs WebGL2) runs on SwiftShader through ANGLE
#: (renderer "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero)))"). Headless Chromium 156
#: falls back to it by itself even with --disable-gpu; ``--use-angle=swiftshader`` and
#: ``--enable-unsafe-swiftshader`` make that explicit, so a Chromium that stops falling back to
#: software WebGL automatically still draws. ``--disable-webgl`` makes the deck test fail, as it
#: should. The rest keep the browser from calling home (updates, sync, metrics, QUIC) or using a
#: proxy, and from filling a container's small /dev/shm.
CHROMIUM_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-domain-reliability", "--disable-breakpad",
    "--disable-client-side-phishing-detection", "--disable-features=OptimizationHints,Translate,"
    "MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    "--metrics-recording-only", "--no-first-run", "--no-default-browser-check",
    "--no-pings", "--disable-quic", "--no-proxy-server", "--mute-audio",
)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Schemes that never touch the network.
LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome-extension", "devtools", "chrome"})
DEFAULT_VIEWPORT = (1920, 1080)


def is_local(url: str) -> bool:
    """True for URLs that stay on this machine (loopback hosts or network-free schemes)."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return (parts.hostname or "") in LOCAL_HOSTS


def requests_outside_localhost(recorded: Sequence[str]) -> list[str]:
    """The recorded request URLs whose host is not 127.0.0.1 / localhost / [::1]
    (``data:``, ``blob:``, ``about:``, ``chrome-extension:`` and ``devtools:`` are ignored)."""
    return [url for url in recorded if not is_local(url)]


def nonblank(png_bytes: bytes, box: tuple[int, int, int, int] | None = None) -> float:
    """Share of pixels in ``box`` = ``(left, top, right, bottom)`` of a PNG screenshot whose
    colour differs from the region's dominant colour (0.0: a flat region, nothing drawn).

    Decodes with Pillow (a dependency of bokeh, hence of panel).
    """
    pixels = png_pixels(png_bytes, box)
    flat = pixels.reshape(-1, pixels.shape[-1])
    if flat.size == 0:
        return 0.0
    _, counts = np.unique(flat, axis=0, return_counts=True)
    return 1.0 - counts.max() / len(flat)


def colour_share(png_bytes: bytes, rgb: Sequence[int], box: tuple[int, int, int, int] | None
                 = None, *, tolerance: int = 3) -> float:
    """Share of pixels in ``box`` within ``tolerance`` (per channel) of ``rgb``."""
    pixels = png_pixels(png_bytes, box)[..., :3].astype(np.int16)
    near = np.all(np.abs(pixels - np.asarray(rgb[:3], dtype=np.int16)) <= tolerance, axis=-1)
    return float(near.mean()) if near.size else 0.0


def png_pixels(png_bytes: bytes, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The RGB pixels of a PNG (optionally cropped to ``box``) as an ``(h, w, 3)`` uint8 array."""
    from PIL import Image

    with Image.open(io.BytesIO(png_bytes)) as image:
        rgb = image.convert("RGB")
        if box is not None:
            rgb = rgb.crop(box)
        return np.asarray(rgb)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers(url: str) -> bool:
    try:
        with _NO_PROXY.open(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is up
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def served(command: Sequence[str], *, port: int | None = None, ready_path: str = "/",
           timeout: float = 60.0, env: dict[str, str] | None = None,
           cwd: str | os.PathLike[str] | None = None, stop_timeout: float = 10.0,
           log_path: str | os.PathLike[str] | None = None) -> Iterator[str]:
    """Run ``command`` (``"{port}"`` in an argument is replaced by a free port) in its own
    process group, wait (at most ``timeout`` s) until ``http://127.0.0.1:PORT{ready_path}``
    answers HTTP, yield ``http://127.0.0.1:PORT`` and stop the whole group at the end
    (SIGTERM, then SIGKILL after ``stop_timeout`` s). Its output goes to ``log_path`` if
    given (for a test to read), else to a temporary file.

    Fails with the command's output if it exits or does not answer in time.
    """
    port = free_port() if port is None else port
    argv = [str(arg).replace("{port}", str(port)) for arg in command]
    base = f"http://127.0.0.1:{port}"
    full_env = {**os.environ, **(env or {})}
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        full_env.pop(name, None)
    log_file = open(log_path, "w+b") if log_path else tempfile.TemporaryFile()  # noqa: SIM115
    with log_file as log:  # a file, not a pipe: a chatty server never blocks
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=full_env, cwd=cwd,
                                start_new_session=True)

        def output() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")[-4000:]

        try:
            deadline = time.monotonic() + timeout
            while not _answers(base + ready_path):
                if proc.poll() is not None:
                    pytest.fail(f"{argv} exited with {proc.returncode} before answering:\n"
                                f"{output()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{argv} did not answer on {base}{ready_path} within "
                                f"{timeout:.0f} s:\n{output()}")
                time.sleep(0.2)
            yield base
        finally:
            _stop_group(proc, stop_timeout)


def _stop_group(proc: subprocess.Popen[bytes], stop_timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, stop_timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """Headless Debian Chromium driven by Playwright (skips if either is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run ./scripts/setup --test (installs chromium)")
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS),
                                             timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


_CSP_MARK = "citytwin-csp-violation"


def watch_csp(context: Any) -> list[str]:
    """Record every content-security-policy violation of ``context``'s pages (the list
    fills as they happen): the server's policy must allow what the pages need."""
    violations: list[str] = []
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        f"'{_CSP_MARK} ' + e.violatedDirective + ' ' + e.blockedURI + ' ' + "
        "(e.sourceFile || '') + ':' + e.lineNumber))")

    def on_console(message: Any) -> None:
        if message.text.startswith(_CSP_MARK):
            violations.append(message.text.removeprefix(_CSP_MARK).strip())

    context.on("console", on_console)
    return violations


@pytest.fixture
def recorded() -> list[str]:
    """Every URL the ``page`` fixture's page requested, in order."""
    return []


def _route_local_only(route: object) -> None:
    if is_local(route.request.url):  # type: ignore[attr-defined]
        route.continue_()  # type: ignore[attr-defined]
    else:
        route.abort("blockedbyclient")  # type: ignore[attr-defined]


@pytest.fixture
def page(request: pytest.FixtureRequest, chromium: object, recorded: list[str]) -> Iterator[object]:
    """A page in a fresh context with a 1920×1080 viewport (parametrize ``page`` indirectly
    with ``(width, height)`` for another), recording every request URL into ``recorded`` and
    aborting those for other hosts than the local machine.

    At teardown it fails the test if any request left localhost; a test that provokes one on
    purpose clears ``recorded`` after checking it.
    """
    width, height = getattr(request, "param", DEFAULT_VIEWPORT)
    context = chromium.new_context(  # type: ignore[attr-defined]
        viewport={"width": width, "height": height}, device_scale_factor=1,
        service_workers="block", locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(30_000)
    context.route("**/*", _route_local_only)
    violations = watch_csp(context)
    new_page = context.new_page()
    new_page.on("request", lambda req: recorded.append(req.url))
    try:
        yield new_page
    finally:
        context.close()
    outside = requests_outside_localhost(recorded)
    assert not outside, f"requests left localhost: {outside}"
    assert not violations, f"the content security policy blocked: {violations}"
