"""The catalog page's HTTP endpoints: streamed uploads and downloads (thin Tornado handlers).

``POST /catalog/upload?name=FILE`` takes the raw file as the request body, streamed to a
private directory under the workspace's ``tmp/uploads`` and never held whole in memory; the
size limit (``ingest.max_file_mb``) is checked against ``Content-Length`` before a byte is read
and again while reading. It needs the session cookie of a user who may ingest layers *and* the
page's upload ticket (``X-Citytwin-Upload``): an HMAC of the user and an expiry under the
server's secret, which a page from another origin cannot know (no cross-site upload), and which
any server process can check (``--num-procs``).

``GET /catalog/download?layer=L&version=V&format=gpkg|geojson|csv`` writes that version with
its metadata (:func:`twin.catalog.export_layer`) and sends it as an attachment.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import time
import urllib.parse
from pathlib import Path
from typing import Any

import tornado.web

from dashboards.security import request_user
from twin.errors import AuthError, TwinError
from twin.users import UnknownUserError, Users, require

__all__ = ["UPLOADS", "catalog_patterns", "check_ticket", "make_ticket", "safe_name",
           "upload_path"]

UPLOADS = "uploads"
_TICKET_HOURS = 12
_NAME = re.compile(r"^[\w\u4e00-\u9fff][\w\u4e00-\u9fff .()+-]{0,150}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


#: Room left on the disk beyond an upload's own size (for the ingest that follows it).
_SPARE_BYTES = 64 * 2**20


def _disk_full(size: int, free: int) -> str:
    return (f"服务器磁盘空间不足，未保存任何内容 · the server's disk is full: the upload needs "
            f"{size / 2**20:,.1f} MB and {free / 2**20:,.1f} MB are free; nothing was kept. "
            "Ask the administrator to free space in the workspace's disk, then upload again")


def make_ticket(secret: str, user: str, *, hours: float = _TICKET_HOURS) -> str:
    """An upload ticket for ``user``: ``EXPIRY.HMAC``."""
    expiry = str(int(time.time() + hours * 3600))
    mac = hmac.new(secret.encode(), f"{user}\n{expiry}".encode(), hashlib.sha256).hexdigest()
    return f"{expiry}.{mac}"


def check_ticket(secret: str, user: str, ticket: str | None) -> bool:
    """Whether ``ticket`` was made for ``user`` under ``secret`` and has not expired."""
    if not ticket or "." not in ticket:
        return False
    expiry, _, mac = ticket.partition(".")
    if not expiry.isdigit() or int(expiry) < time.time():
        return False
    good = hmac.new(secret.encode(), f"{user}\n{expiry}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(good, mac)


def safe_name(name: str) -> str:
    """The file's own name if it is a plain file name (no folder, no control characters).

    Raises
    ------
    ValueError
        For a path, an empty or hidden name, or characters a file name should not have.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if base != name.strip() or not _NAME.match(base) or base.startswith("."):
        raise ValueError(f"{name!r} is not a plain file name; rename the file to letters, "
                         "digits, '.', '-' or '_' (Chinese characters are fine) and upload it "
                         "again")
    return base


def upload_path(workspace: Any, upload_id: str) -> Path:
    """The file an upload wrote (raises ValueError for an unknown or malformed id)."""
    if not _ID.match(upload_id or ""):
        raise ValueError("unknown upload")
    folder = Path(workspace.tmp_dir) / UPLOADS / upload_id
    files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    if len(files) != 1:
        raise ValueError("unknown upload")
    return files[0]


class _UserHandler(tornado.web.RequestHandler):
    def initialize(self, workspace: Any, secret: str) -> None:
        self.workspace, self.secret = workspace, secret

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")

    def _user(self) -> Any:
        # The user of an open server-side session only (a revoked one's cookie opens nothing).
        name = request_user(self, self.workspace)
        try:
            user = Users(self.workspace).get(name) if name else None
        except UnknownUserError:
            user = None
        require(user, "ingest_layers")
        return user

    def _fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"description": message}, ensure_ascii=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self._fail(status_code, self._reason)


@tornado.web.stream_request_body
class UploadHandler(_UserHandler):
    """Streams one file into ``tmp/uploads/ID/NAME``."""

    def prepare(self) -> None:
        self.folder: Path | None = None
        self.handle = None
        self.received = 0
        limits = self.workspace.config.ingest_limits
        self.limit = int(float(limits["max_file_mb"]) * 1024 * 1024)
        try:
            self.user = self._user()
        except AuthError as exc:
            self._fail(403, str(exc))
            return
        if self.request.method != "POST":
            self._fail(405, "POST the file")
            return
        if not check_ticket(self.secret, self.user.name,
                            self.request.headers.get("X-Citytwin-Upload")):
            self._fail(403, "this upload did not come from the catalog page (no valid upload "
                       "ticket); reload /catalog and upload again")
            return
        try:
            name = safe_name(urllib.parse.unquote(self.get_query_argument("name", "")))
        except ValueError as exc:
            self._fail(400, str(exc))
            return
        length = self.request.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._fail(411, "send the file with its length (Content-Length)")
            return
        if int(length) > self.limit:
            self._fail(413, f"the file is {int(length) / 2**20:,.1f} MB, more than the "
                       f"{self.limit / 2**20:,.0f} MB limit (ingest.max_file_mb in twin.toml)")
            return
        self.request.connection.set_max_body_size(self.limit)
        uploads = Path(self.workspace.tmp_dir) / UPLOADS
        free = shutil.disk_usage(uploads if uploads.is_dir() else self.workspace.tmp_dir).free
        if int(length) + _SPARE_BYTES > free:
            self._fail(507, _disk_full(int(length), free))
            return
        upload_id = secrets.token_urlsafe(18)
        self.folder = uploads / upload_id
        try:
            self.folder.mkdir(parents=True, mode=0o700)
            self.path = self.folder / name
            self.handle = open(self.path, "xb")  # noqa: SIM115 - closed in post/on_finish
        except OSError as exc:
            self._stop(exc)
            return
        self.upload_id = upload_id

    def data_received(self, chunk: bytes) -> None:
        if self.handle is None:
            return
        self.received += len(chunk)
        if self.received > self.limit:
            self._discard()
            self._fail(413, f"the file is larger than the {self.limit / 2**20:,.0f} MB limit")
            return
        try:
            self.handle.write(chunk)
        except OSError as exc:
            self._stop(exc)

    def _stop(self, exc: OSError) -> None:
        """The disk (or the file system) refused a write: keep nothing, say why."""
        self._discard()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(self.workspace.tmp_dir).free
            self._fail(507, _disk_full(self.received, free))
        else:
            self._fail(500, f"the server could not store the upload ({exc.strerror}); nothing "
                       "was kept; tell the administrator")

    def post(self) -> None:
        if self.handle is None:
            return
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
        except OSError as exc:
            self._stop(exc)
            return
        self.handle = None
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"upload": self.upload_id, "name": self.path.name,
                                "bytes": self.received}, ensure_ascii=False))

    def _discard(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def on_connection_close(self) -> None:  # the browser went away mid-upload
        self._discard()


class DownloadHandler(_UserHandler):
    """``GET /catalog/download?layer=L[&version=N]&format=F`` for a layer version, or
    ``?collection=C[&datetime=D]&format=F`` for the fused facts at a level or the zones (the
    OGC API's collections, with the same privacy for the user's role)."""

    async def get(self) -> None:
        from twin.catalog import EXPORT_FORMATS, export_collection, export_layer

        try:
            user = self._user()
        except AuthError as exc:
            self._fail(403, str(exc))
            return
        layer = self.get_query_argument("layer", "")
        collection = self.get_query_argument("collection", "")
        window = self.get_query_argument("datetime", "") or None
        fmt = self.get_query_argument("format", "gpkg")
        version = self.get_query_argument("version", "")
        if fmt not in EXPORT_FORMATS or (version and not version.isdigit()):
            self._fail(400, f"format is one of {', '.join(EXPORT_FORMATS)}; version a number")
            return
        if bool(layer) == bool(collection):
            self._fail(400, "name either a layer (layer=…) or a collection (collection=…)")
            return
        folder = Path(self.workspace.tmp_dir) / UPLOADS / f"dl-{secrets.token_urlsafe(12)}"
        folder.mkdir(parents=True, mode=0o700)
        suffix = {"geojson": ".geojson", "gpkg": ".gpkg", "csv": ".csv"}[fmt]
        target = folder / f"export{suffix}"

        def export() -> tuple[Path, str]:
            if collection:
                out = export_collection(self.workspace, collection, target, role=user.role,
                                        fmt=fmt, datetime=window, actor=user.name)
                day = f"-{window.replace('/', '_')}" if window else ""
                return out, safe_name(f"{collection}{day}{suffix}")
            out = export_layer(self.workspace, layer, target, fmt=fmt,
                               version=int(version) if version else None, actor=user.name)
            entry = self.workspace.version(layer, int(version) if version else None)
            return out, safe_name(f"{layer}-v{entry.version}{suffix}")

        try:
            path, filename = await asyncio.get_running_loop().run_in_executor(None, export)
            self.set_header("Content-Type", {"gpkg": "application/geopackage+sqlite3",
                                             "geojson": "application/geo+json",
                                             "csv": "text/csv; charset=utf-8"}[fmt])
            self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    self.write(chunk)
                    await self.flush()
            self.finish()
        except AuthError as exc:
            self._fail(403, str(exc))
        except (TwinError, ValueError) as exc:
            not_found = isinstance(exc, KeyError) or getattr(exc, "not_found", False)
            self._fail(404 if not_found else 400, str(exc))
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(folder)


def catalog_patterns(workspace: Any, secret: str) -> list[tuple[str, type, dict[str, Any]]]:
    """The Tornado routes of the catalog page's endpoints."""
    kwargs = {"workspace": workspace, "secret": secret}
    return [(r"/catalog/upload", UploadHandler, kwargs),
            (r"/catalog/download", DownloadHandler, kwargs)]
