"""What every answer of the server carries, and the cookie secret a restart keeps.

- :class:`SecurityHeaders`, a Tornado output transform, so that no handler (ours, Panel's or
  Bokeh's) can forget them: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``
  with ``Content-Security-Policy: frame-ancestors 'none'`` (no page may be framed by another
  site), ``Referrer-Policy: same-origin``, and no ``Access-Control-Allow-*`` header at all:
  Bokeh's ``autoload.js`` answers any origin, with credentials, and nothing here is meant to
  be read across sites. The content security policy allows our own origin only; what else
  it allows is what the pages were seen to need in Chromium (``tests/browser``' ``page``
  fixture fails a test on any violation): inline scripts and styles (Bokeh's document and
  component styles), ``blob:`` scripts and fetches (Panel's ES-module shims compile our
  components into blobs) and ``wasm-unsafe-eval`` (deck.gl's loaders). No other origin, no
  ``eval``, no plugins, no framing, forms post only here.
- :func:`cookie_secret`: the secret that signs session cookies, kept in the workspace
  (``cookie_secret``, mode 0600), so that a restart does not log every kiosk screen out.
- :func:`request_user`: the user of a request, only while its server-side session is open
  (:class:`twin.sessions.Sessions`): the signed ``user`` cookie alone opens nothing.
- :func:`harden_routes`: two of Panel's handlers answered hostile requests with a traceback
  in the log and a 500: ``autoload.js`` without a login (it awaited the login redirect), and
  ``/components/..%2f…`` (it imported whatever module the URL named). Their routes get
  stricter subclasses: no login, 403; a module outside our own packages, 404.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import Any

import tornado.httputil
import tornado.web

from twin.sessions import Sessions

__all__ = ["SECRET_FILE", "SECURITY_HEADERS", "SESSION_COOKIE", "SecurityHeaders",
           "cookie_secret", "harden_routes", "request_session", "request_user"]

#: Packages whose components' resources (``/components/MODULE/CLASS/…``) pages may load.
COMPONENT_PACKAGES = frozenset({"panel", "bokeh", "dashboards", "layers"})
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

#: The cookie holding the server-side session's id (signed, HttpOnly, SameSite=Lax).
SESSION_COOKIE = "citytwin_session"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "; ".join([
        "default-src 'self'", "script-src 'self' 'unsafe-inline' blob: 'wasm-unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:", "font-src 'self' data:", "connect-src 'self' blob: data:",
        "worker-src 'self' blob:", "object-src 'none'", "base-uri 'self'",
        "form-action 'self'", "frame-ancestors 'none'"]),
}
#: The cookie secret's file in the workspace.
SECRET_FILE = "cookie_secret"  # noqa: S105 (a file name, not a secret)


class SecurityHeaders(tornado.web.OutputTransform):
    """Add :data:`SECURITY_HEADERS` to every response and drop cross-origin grants."""

    def transform_first_chunk(self, status_code: int, headers: tornado.httputil.HTTPHeaders,
                              chunk: bytes, finishing: bool) -> tuple[int, Any, bytes]:
        for name in [n for n in headers if n.lower().startswith("access-control-allow-")]:
            del headers[name]
        for name, value in SECURITY_HEADERS.items():
            if name not in headers:
                headers[name] = value
        return status_code, headers, chunk


def cookie_secret(root: str | os.PathLike[str]) -> str:
    """The workspace's cookie secret, made once (64 hex digits, readable by its owner only).

    Two processes starting at once agree: the file is created exclusively, and the loser
    reads the winner's.
    """
    path = Path(root) / SECRET_FILE
    with contextlib.suppress(FileNotFoundError):
        text = path.read_text(encoding="ascii").strip()
        if len(text) >= 32:
            return text
    value = secrets.token_hex(32)
    tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(value)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails if another process made it first
        except FileExistsError:
            return path.read_text(encoding="ascii").strip()
    finally:
        tmp.unlink(missing_ok=True)
    return value


def request_session(handler: tornado.web.RequestHandler, max_age_days: float) -> str | None:
    """The session id the request's signed cookie carries (None when absent or forged)."""
    raw = handler.get_secure_cookie(SESSION_COOKIE, max_age_days=max_age_days)
    return raw.decode("ascii", "replace") if raw else None


def request_user(handler: tornado.web.RequestHandler, workspace: Any) -> str | None:
    """The name of the request's user while its session is open, else None.

    Both signed cookies must agree: the ``user`` one Panel reads for ``pn.state.user`` and
    the session id, whose row in the workspace database says whether it is still open.
    """
    days = float(workspace.config["security"]["session_days"])
    raw = handler.get_secure_cookie("user", max_age_days=days)
    session = request_session(handler, days)
    if not raw or not session:
        return None
    name = raw.decode("utf-8", "replace")
    return name if Sessions(workspace).check(session) == name else None


def _strict_components(base: type) -> type:
    class StrictComponentResources(base):  # type: ignore[misc, valid-type]
        """Panel's component resources, for modules of our own packages only."""

        def parse_url_path(self, path: str) -> str:
            module = path.split("/", 1)[0]
            if not _MODULE.fullmatch(module) or module.split(".")[0] not in COMPONENT_PACKAGES:
                raise tornado.web.HTTPError(404, "Component not found")
            return str(super().parse_url_path(path))

    return StrictComponentResources


def _guarded_autoload(base: type) -> type:
    class GuardedAutoload(base):  # type: ignore[misc, valid-type]
        """Bokeh's autoload script, refused with 403 (not a 500) without a login."""

        async def get(self, *args: Any, **kwargs: Any) -> None:
            if self.current_user is None:
                self.send_error(403)
                return
            await super().get(*args, **kwargs)

    return GuardedAutoload


def harden_routes(app: tornado.web.Application) -> int:
    """Swap Panel's autoload and component handlers for stricter ones; returns how many."""
    from panel.io.server import AutoloadJsHandler, ComponentResourceHandler

    swapped = 0

    def walk(router: Any) -> None:
        nonlocal swapped
        for rule in getattr(router, "rules", []):
            target = rule.target
            if isinstance(target, type) and issubclass(target, ComponentResourceHandler):
                rule.target = _strict_components(target)
                swapped += 1
            elif isinstance(target, type) and issubclass(target, AutoloadJsHandler):
                rule.target = _guarded_autoload(target)
                swapped += 1
            elif not isinstance(target, type):
                walk(target)

    walk(app.default_router)
    return swapped
