"""What every answer of the server carries, and the cookie secret a restart keeps.

- :class:`SecurityHeaders`, a Tornado output transform, so that no handler (ours, Panel's or
  Bokeh's) can forget them: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``
  with ``Content-Security-Policy: frame-ancestors 'none'`` (no page may be framed by another
  site), ``Referrer-Policy: same-origin``, and no ``Access-Control-Allow-*`` header at all:
  Bokeh's ``autoload.js`` answers any origin, with credentials, and nothing here is meant to
  be read across sites. A fuller CSP is still to come.
- :func:`cookie_secret`: the secret that signs session cookies, kept in the workspace
  (``cookie_secret``, mode 0600), so that a restart does not log every kiosk screen out.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any

import tornado.httputil
import tornado.web

__all__ = ["SECRET_FILE", "SECURITY_HEADERS", "SecurityHeaders", "cookie_secret"]

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "frame-ancestors 'none'",
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
