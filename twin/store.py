"""The workspace store: a catalog of named, versioned layers on disk.

A workspace is a directory::

    twin.toml            configuration (see twin/defaults.toml)
    twin.db              SQLite catalog in WAL mode: layers, versions, audit log
    layers/NAME/*.parquet  immutable GeoParquet (or Parquet) files, one per layer version
    tmp/                 files of publishes in progress
    .publish.lock        coordinates publishers with the cleanup of crashed publishes

Publishing is atomic. The file is written under ``tmp/``, fsynced, renamed into ``layers/``
(and the directory fsynced), then one transaction adds the version row and makes it current.
A crash before the commit leaves the previous version current; the orphaned file is removed the
next time the workspace is opened. Publishers hold a shared lock on ``.publish.lock`` for the
whole protocol and the cleanup takes it exclusively without waiting, so a cleanup never removes
the files of a publish that is still running in another process.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from twin import db
from twin.config import Config, load_config, render_config
from twin.errors import (
    KindMismatchError,
    LayerNotFoundError,
    OutputError,
    SchemaError,
    StoreCorruptError,
    VersionNotFoundError,
    WorkspaceExistsError,
    WorkspaceNotFoundError,
    os_reason,
)
from twin.schema import KINDS, get_kind, schema_problems

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

__all__ = [
    "CLAIM_NAME",
    "FactSet",
    "LayerInfo",
    "LayerVersion",
    "Workspace",
    "audit",
    "check_layer_name",
    "claim_dir",
    "default_author",
    "sha256_file",
    "utc_now",
    "write_layer_parquet",
]

CONFIG_NAME = "twin.toml"
DB_NAME = "twin.db"
LOCK_NAME = ".publish.lock"
#: A file in a directory under ``tmp/`` that a live process holds a lock on: the directory
#: is in use, and :meth:`Workspace.recover` leaves it alone until that process is gone.
CLAIM_NAME = ".claim"

_LAYER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class LayerVersion:
    """One immutable version of a layer, as recorded in the catalog.

    ``row_count`` is the number of records of a table, or of pixels of a raster.
    """

    layer: str
    version: int
    kind: str
    file: str
    format: str
    file_sha256: str
    file_bytes: int
    source_name: str | None
    source_sha256: str | None
    source_crs: str | None
    row_count: int
    bounds: tuple[float, float, float, float] | None
    content_key: str | None
    created_at: str
    author: str
    note: str
    current: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return asdict(self)


@dataclass(frozen=True)
class LayerInfo:
    """A layer and its current version."""

    name: str
    kind: str
    current_version: int
    versions: int
    created_at: str
    updated_at: str
    current: LayerVersion

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return asdict(self)


@dataclass(frozen=True)
class FactSet:
    """One immutable set of fused cell facts (a directory of Parquet files)."""

    id: int
    path: Path
    created_at: str
    sources: dict[str, Any]
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {**asdict(self), "path": str(self.path)}


def claim_dir(path: Path) -> int:
    """Claim the directory ``path`` for this process: returns the descriptor whose shared
    lock is the claim (close it to let go). :meth:`Workspace.recover` skips claimed
    directories."""
    fd = os.open(path / CLAIM_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def _in_use(entry: Path) -> bool:
    """Whether a directory in ``tmp/`` is claimed by a live process (see :func:`claim_dir`)."""
    try:
        fd = os.open(entry / CLAIM_NAME, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def default_author() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in containers without /etc/passwd entries
        return "unknown"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MB chunks (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Workspace:
    """An open citytwin workspace.

    Create one with :meth:`init`, open an existing one with :meth:`open`. Every method opens
    its own short-lived database connection, so one ``Workspace`` may be shared by threads and
    several processes may use the same directory at once.
    """

    def __init__(self, root: Path, config: Config) -> None:
        self.root = root
        self.config = config
        #: Leftover files of interrupted publishes removed when the workspace was opened.
        self.recovered: list[str] = []

    # -- paths ---------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        """``twin.toml``."""
        return self.root / CONFIG_NAME

    @property
    def db_path(self) -> Path:
        """The SQLite catalog."""
        return self.root / DB_NAME

    @property
    def layers_dir(self) -> Path:
        """Directory of the immutable layer files."""
        return self.root / "layers"

    @property
    def tmp_dir(self) -> Path:
        """Directory of publishes in progress."""
        return self.root / "tmp"

    @property
    def facts_dir(self) -> Path:
        """Directory of the fused fact sets."""
        return self.root / "facts"

    # -- creating and opening ------------------------------------------------------------
    @classmethod
    def init(cls, path: str | os.PathLike[str], name: str, *, name_en: str = "",
             language: str = "zh",
             bbox: tuple[float, float, float, float] | None = None) -> Workspace:
        """Create a new workspace at ``path`` (which must not exist or be empty).

        The workspace is built in a hidden sibling directory and renamed into place, so an
        interrupted ``init`` leaves nothing behind.

        Raises
        ------
        WorkspaceExistsError
            When ``path`` is a file or a non-empty directory.
        ConfigError
            For an invalid name, language or bounding box.
        """
        root = Path(path).absolute()
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            what = "a workspace" if (root / CONFIG_NAME).exists() else (
                "a non-empty directory" if root.is_dir() else "a file")
            raise WorkspaceExistsError(
                f"{root} is already {what}; choose a new path or an empty directory")
        text = render_config(name, name_en=name_en, language=language, bbox=bbox)
        try:
            root.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the workspace {root}: {os_reason(exc)}; choose "
                              "a path in a folder you may write to") from None
        staging = root.parent / f".{root.name}.init-{secrets.token_hex(4)}"
        try:
            staging.mkdir()
            (staging / "layers").mkdir()
            (staging / "tmp").mkdir()
            (staging / LOCK_NAME).touch()
            (staging / CONFIG_NAME).write_text(text, encoding="utf-8")
            conn = db.connect(staging / DB_NAME, timeout=0.0)
            try:
                db.create_schema(conn)
                audit(conn, actor=default_author(), action="init", target=str(root),
                       detail={"name": name})
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
            for leftover in ("-wal", "-shm"):
                (staging / (DB_NAME + leftover)).unlink(missing_ok=True)
            _fsync_dir(staging)
            if root.exists():
                root.rmdir()
            staging.rename(root)
            _fsync_dir(root.parent)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return cls.open(root)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Workspace:
        """Open an existing workspace and clean up after interrupted publishes.

        Raises
        ------
        WorkspaceNotFoundError
            When ``path`` is not a workspace.
        ConfigError
            When ``twin.toml`` is invalid.
        StoreCorruptError
            When the database is missing or damaged.
        """
        root = Path(path).absolute()
        if root.exists() and not root.is_dir():
            raise WorkspaceNotFoundError(
                f"no workspace at {root}: it is a file, not a workspace directory; give the "
                "directory made by `twin init`")
        if not root.is_dir():
            raise WorkspaceNotFoundError(
                f"no workspace at {root}: the directory does not exist; create one with "
                f"`twin init {path} --name NAME`")
        if not (root / CONFIG_NAME).is_file():
            raise WorkspaceNotFoundError(
                f"{root} is not a citytwin workspace (it has no {CONFIG_NAME}); create one "
                f"with `twin init PATH --name NAME` or give the right path")
        config = load_config(root / CONFIG_NAME)
        if not (root / DB_NAME).is_file():
            raise StoreCorruptError(
                f"the workspace database {root / DB_NAME} is missing; restore it from a backup "
                "(the layer files under layers/ are kept)")
        ws = cls(root, config)
        for sub in (ws.layers_dir, ws.tmp_dir, ws.facts_dir):
            sub.mkdir(exist_ok=True)
        with ws.connect() as conn:
            if db.check_schema(conn, ws.db_path) < db.SCHEMA_VERSION:
                db.migrate(conn, timeout=config.busy_timeout_s)
        ws.recovered = ws.recover()
        return ws

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection to the workspace database, closed at the end of the ``with`` block."""
        conn = db.connect(self.db_path, timeout=self.config.busy_timeout_s)
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _publish_lock(self, *, exclusive: bool) -> Iterator[bool]:
        """Hold the publish lock; exclusive requests do not wait and yield whether they got it."""
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the lock

    @contextmanager
    def scratch_dir(self, prefix: str) -> Iterator[Path]:
        """A private directory under ``tmp/`` (mode 0700) for one job, removed at the end.

        While the job runs it is claimed (a lock held on its ``.claim``), so another process
        opening the workspace leaves it alone; if the job is killed, the lock goes with it
        and the next :meth:`open` removes the directory with the other leftovers.
        """
        import tempfile

        # Made and claimed under the shared publish lock: recover() (which needs it
        # exclusively) never sees the directory unclaimed.
        with self._publish_lock(exclusive=False):
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.tmp_dir))
            fd = claim_dir(path)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            os.close(fd)

    def claim_tmp(self, name: str) -> int:
        """Make ``tmp/NAME/`` if needed and claim it for this process (e.g. the server's
        uploads, which live between requests); returns the descriptor holding the claim."""
        with self._publish_lock(exclusive=False):
            path = self.tmp_dir / name
            path.mkdir(mode=0o700, exist_ok=True)
            return claim_dir(path)

    def recover(self) -> list[str]:
        """Remove the leftovers of publishes that crashed; return what was removed.

        Runs only when no publish is in progress in any process (it does not wait for one).
        """
        removed: list[str] = []
        with self._publish_lock(exclusive=True) as free:
            if not free:
                return removed
            for leftover in sorted(self.tmp_dir.iterdir()):
                if _in_use(leftover):
                    continue
                _remove(leftover)
                removed.append(leftover.relative_to(self.root).as_posix())
            with self.connect() as conn:
                referenced = {r[0] for r in conn.execute("SELECT file FROM layer_versions")}
                fact_dirs = {r[0] for r in conn.execute("SELECT dir FROM fact_sets")}
            for file in sorted(self.layers_dir.glob("*/*")):
                rel = file.relative_to(self.root).as_posix()
                if rel not in referenced:
                    _remove(file)
                    removed.append(rel)
            for folder in sorted(self.facts_dir.iterdir()):
                rel = folder.relative_to(self.root).as_posix()
                if rel not in fact_dirs:
                    _remove(folder)
                    removed.append(rel)
        return removed

    # -- reading the catalog -------------------------------------------------------------
    def layers(self) -> list[LayerInfo]:
        """Return every layer with its current version, by name."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT l.*, (SELECT COUNT(*) FROM layer_versions v WHERE v.layer = l.name) "
                "AS n FROM layers l ORDER BY l.name").fetchall()
            return [LayerInfo(name=r["name"], kind=r["kind"],
                              current_version=r["current_version"], versions=r["n"],
                              created_at=r["created_at"], updated_at=r["updated_at"],
                              current=self._version(conn, r["name"], r["current_version"]))
                    for r in rows]

    def versions(self, name: str) -> list[LayerVersion]:
        """Return every version of layer ``name``, oldest first.

        Raises
        ------
        LayerNotFoundError
            When there is no such layer.
        """
        with self.connect() as conn:
            current = self._current(conn, name)
            rows = conn.execute("SELECT * FROM layer_versions WHERE layer = ? ORDER BY version",
                                (name,)).fetchall()
            return [_row_to_version(r, current) for r in rows]

    def version(self, name: str, version: int | None = None) -> LayerVersion:
        """Return the catalog entry of one version (the current one by default)."""
        with self.connect() as conn:
            return self._version(conn, name, version)

    def _current(self, conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT current_version FROM layers WHERE name = ?",
                           (name,)).fetchone()
        if row is None:
            known = [r[0] for r in conn.execute("SELECT name FROM layers ORDER BY name")]
            raise LayerNotFoundError(_unknown_layer_message(name, known))
        return row[0]

    def _version(self, conn: sqlite3.Connection, name: str,
                 version: int | None) -> LayerVersion:
        current = self._current(conn, name)
        wanted = current if version is None else version
        row = conn.execute("SELECT * FROM layer_versions WHERE layer = ? AND version = ?",
                           (name, wanted)).fetchone()
        if row is None:
            have = [r[0] for r in conn.execute(
                "SELECT version FROM layer_versions WHERE layer = ? ORDER BY version", (name,))]
            raise VersionNotFoundError(
                f"layer {name!r} has no version {wanted}; it has versions "
                f"{_ranges(have)}; see `twin layers versions WORKSPACE {name}`")
        return _row_to_version(row, current)

    def read(self, name: str, version: int | None = None, *,
             geometry_only: bool = False) -> gpd.GeoDataFrame | pd.DataFrame:
        """Read a version of a layer (the current one by default).

        Returns a GeoDataFrame in EPSG:4326 for geometry layers, a DataFrame for tables;
        ``geometry_only`` reads a geometry layer's geometries and no attribute.

        Raises
        ------
        LayerNotFoundError, VersionNotFoundError
            When the layer or version does not exist.
        StoreCorruptError
            When the version's file is missing or unreadable.
        """
        entry = self.version(name, version)
        if entry.format == "geotiff":
            raise SchemaError(f"layer {name!r} version {entry.version} is a raster; open its "
                              "file from Workspace.raster_path")
        path = self._file_of(entry)
        try:
            if entry.format == "geoparquet":
                import geopandas as gpd

                columns = None
                if geometry_only:
                    columns = [_geometry_column(path)]
                return gpd.read_parquet(path, columns=columns)
            import pandas as pd

            return pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise StoreCorruptError(
                f"the file of layer {name!r} version {entry.version} is unreadable ({path}: "
                f"{exc}); restore it from a backup or roll back to another version") from None

    def _file_of(self, entry: LayerVersion) -> Path:
        path = self.root / entry.file
        if not path.is_file():
            raise StoreCorruptError(
                f"the file of layer {entry.layer!r} version {entry.version} is missing "
                f"({path}); restore it from a backup or roll back to another version")
        return path

    def audit_log(self, limit: int = 100, *, since: str | None = None,
                  user: str | None = None, action: str | None = None
                  ) -> list[dict[str, Any]]:
        """Return the newest ``limit`` audit rows, newest first.

        Parameters
        ----------
        since
            Only rows at or after this UTC time or date (ISO 8601, e.g. ``2026-12-01`` or
            ``2026-12-01T08:00``).
        user
            Only rows this user (or token) made or that concern them (actor or target).
        action
            Only actions starting with this, e.g. ``users.`` or ``zones.save``.
        """
        sql, args = "SELECT * FROM audit WHERE 1 = 1", []
        if since:
            sql += " AND at >= ?"
            args.append(since)
        if user:
            sql += " AND (actor = ? OR target = ?)"
            args.extend([user, user])
        if action:
            sql += " AND action LIKE ? ESCAPE '\\'"
            args.append(action.replace("\\", "\\\\").replace("%", "\\%")
                        .replace("_", "\\_") + "%")
        with self.connect() as conn:
            rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    # -- writing -------------------------------------------------------------------------
    def publish(self, name: str, kind: str, frame: pd.DataFrame, *,
                source_name: str | None = None, source_sha256: str | None = None,
                source_crs: str | None = None, content_key: str | None = None,
                author: str | None = None, note: str = "") -> LayerVersion:
        """Publish ``frame`` as the new current version of layer ``name``.

        Parameters
        ----------
        name
            Layer name: lowercase letters, digits, ``_`` and ``-``, starting with a letter.
        kind
            Canonical kind (see :mod:`twin.schema`); a layer keeps its kind for life.
        frame
            A GeoDataFrame in EPSG:4326, or a DataFrame for table kinds such as stocks.
        source_name, source_sha256, source_crs
            Provenance: the source file's name, its SHA-256 and its original CRS.
        content_key
            A key of the source content and the options it was read with; see
            :meth:`find_content`.
        author, note
            Who publishes and why; recorded in the catalog and the audit log.

        Returns
        -------
        LayerVersion
            The new version, already current.

        Raises
        ------
        SchemaError
            When the name is malformed or the frame does not fit the kind's schema.
        KindMismatchError
            When the layer exists with another kind.
        StoreBusyError
            When another process kept the database busy; nothing was changed.
        """
        import geopandas as gpd

        check_layer_name(name)
        spec = get_kind(kind)
        is_geo = isinstance(frame, gpd.GeoDataFrame)
        if is_geo:
            geom_types = frame.geom_type.value_counts(dropna=True).to_dict()
            columns = [c for c in frame.columns if c != frame.geometry.name]
        else:
            geom_types, columns = None, list(frame.columns)
        problems = schema_problems(spec, columns, geom_types, frame.crs if is_geo else None)
        if problems:
            raise SchemaError(f"cannot publish layer {name!r}: " + "; ".join(problems))
        bounds = tuple(float(v) for v in frame.total_bounds) if is_geo and len(frame) else None
        if bounds is not None and not all(map(math.isfinite, bounds)):
            raise SchemaError(f"cannot publish layer {name!r}: its geometries have non-finite "
                              "coordinates; drop or repair them first")
        return self._publish(
            name, kind, lambda fh: _write_parquet(frame, fh), suffix=".parquet",
            fmt="geoparquet" if is_geo else "parquet", row_count=len(frame), bounds=bounds,
            source_name=source_name, source_sha256=source_sha256, source_crs=source_crs,
            content_key=content_key, author=author, note=note)

    def publish_parquet(self, name: str, kind: str, path: str | os.PathLike[str], *,
                        source_name: str | None = None, source_sha256: str | None = None,
                        source_crs: str | None = None, content_key: str | None = None,
                        author: str | None = None, note: str = "") -> LayerVersion:
        """Publish a (Geo)Parquet file written by :func:`write_layer_parquet`, as it is.

        The file is checked against the kind's schema from its metadata alone (columns,
        geometry types, CRS, bounds) and copied in by the same atomic protocol as
        :meth:`publish`: a clean ingest result of millions of features is published without
        being decoded and encoded again.

        Raises
        ------
        SchemaError
            When the file is not Parquet, or its layout does not fit the kind's schema.
        KindMismatchError, StoreBusyError
            As :meth:`publish`.
        """
        check_layer_name(name)
        spec = get_kind(kind)
        source = Path(path)
        columns, geom_types, crs, rows, bounds = _parquet_layout(source)
        problems = schema_problems(spec, columns, geom_types, crs)
        if problems:
            raise SchemaError(f"cannot publish layer {name!r}: " + "; ".join(problems))
        if bounds is not None and not all(map(math.isfinite, bounds)):
            raise SchemaError(f"cannot publish layer {name!r}: its geometries have non-finite "
                              "coordinates; drop or repair them first")

        def copy(fh: BinaryIO) -> None:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, fh, 1 << 22)

        return self._publish(
            name, kind, copy, suffix=".parquet",
            fmt="geoparquet" if geom_types is not None else "parquet", row_count=rows,
            bounds=bounds, source_name=source_name, source_sha256=source_sha256,
            source_crs=source_crs, content_key=content_key, author=author, note=note)

    def publish_raster(self, name: str, kind: str, path: str | os.PathLike[str], *,
                       source_name: str | None = None, source_sha256: str | None = None,
                       source_crs: str | None = None, content_key: str | None = None,
                       author: str | None = None, note: str = "") -> LayerVersion:
        """Publish a GeoTIFF as the new current version of raster layer ``name``.

        The file is copied as it is and keeps its own CRS: resampling it to EPSG:4326 would
        change the totals it holds, so fusion reads it in its native grid.

        Raises
        ------
        SchemaError
            When the kind takes no rasters or the file is not a georeferenced GeoTIFF.
        """
        import rasterio
        from rasterio.warp import transform_bounds

        check_layer_name(name)
        spec = get_kind(kind)
        if not spec.raster:
            raise SchemaError(f"kind {kind!r} takes no rasters; rasters are accepted for "
                              + ", ".join(k for k, v in KINDS.items() if v.raster))
        path = Path(path)
        try:
            with rasterio.open(path) as src:
                if src.driver != "GTiff" or src.crs is None:
                    raise SchemaError(f"cannot publish raster layer {name!r}: {path.name} is not "
                                      "a georeferenced GeoTIFF")
                bounds = tuple(float(v) for v in transform_bounds(src.crs, "EPSG:4326",
                                                                  *src.bounds))
                pixels = src.width * src.height
        except rasterio.errors.RasterioError as exc:
            raise SchemaError(f"cannot publish raster layer {name!r}: {exc}") from None

        def copy(fh: BinaryIO) -> None:
            with open(path, "rb") as src_fh:
                shutil.copyfileobj(src_fh, fh, 1 << 20)

        return self._publish(
            name, kind, copy, suffix=".tif", fmt="geotiff", row_count=pixels, bounds=bounds,
            source_name=source_name, source_sha256=source_sha256, source_crs=source_crs,
            content_key=content_key, author=author, note=note)

    def raster_path(self, name: str, version: int | None = None) -> Path:
        """Return the GeoTIFF file of a raster layer version (the current one by default).

        Raises
        ------
        SchemaError
            When the version is not a raster.
        StoreCorruptError
            When the file is missing.
        """
        entry = self.version(name, version)
        if entry.format != "geotiff":
            raise SchemaError(f"layer {name!r} version {entry.version} is a table, not a "
                              "raster; read it with Workspace.read")
        return self._file_of(entry)

    def find_content(self, name: str, content_key: str) -> LayerVersion | None:
        """Return the newest version of ``name`` published with ``content_key``, if any."""
        with self.connect() as conn:
            row = conn.execute("SELECT version FROM layer_versions WHERE layer = ? AND "
                               "content_key = ? ORDER BY version DESC LIMIT 1",
                               (name, content_key)).fetchone()
            return None if row is None else self._version(conn, name, row[0])

    def _publish(self, name: str, kind: str, write: Callable[[BinaryIO], None], *,
                 suffix: str, fmt: str, row_count: int,
                 bounds: tuple[float, ...] | None, source_name: str | None,
                 source_sha256: str | None, source_crs: str | None,
                 content_key: str | None, author: str | None, note: str) -> LayerVersion:
        """The atomic protocol: write temp, fsync, rename, fsync dir, one transaction."""
        author = author or default_author()
        token = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
        part = self.tmp_dir / f"{token}{suffix}.part"
        final_dir = self.layers_dir / name
        final = final_dir / f"{token}{suffix}"
        rel = final.relative_to(self.root).as_posix()
        with self._publish_lock(exclusive=False):
            committed = False
            try:
                with open(part, "xb") as fh:
                    write(fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                file_sha256, file_bytes = sha256_file(part), part.stat().st_size
                final_dir.mkdir(exist_ok=True)
                part.replace(final)
                _fsync_dir(final_dir)
                with self.connect() as conn, db.write_transaction(
                        conn, timeout=self.config.busy_timeout_s):
                    version = self._insert_version(
                        conn, name=name, kind=kind, file=rel, fmt=fmt,
                        file_sha256=file_sha256, file_bytes=file_bytes,
                        source_name=source_name, source_sha256=source_sha256,
                        source_crs=source_crs, content_key=content_key, row_count=row_count,
                        bounds=bounds, author=author, note=note)
                committed = True
            finally:
                if not committed:
                    part.unlink(missing_ok=True)
                    final.unlink(missing_ok=True)
        return self.version(name, version)

    def _insert_version(self, conn: sqlite3.Connection, *, name: str, kind: str, file: str,
                        fmt: str, file_sha256: str, file_bytes: int, source_name: str | None,
                        source_sha256: str | None, source_crs: str | None,
                        content_key: str | None, row_count: int,
                        bounds: tuple[float, ...] | None, author: str, note: str) -> int:
        now = utc_now()
        row = conn.execute("SELECT kind FROM layers WHERE name = ?", (name,)).fetchone()
        if row is not None and row[0] != kind:
            raise KindMismatchError(
                f"layer {name!r} holds {row[0]}, not {kind}; publish under another name")
        version = conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM layer_versions "
                               "WHERE layer = ?", (name,)).fetchone()[0]
        if row is None:
            conn.execute("INSERT INTO layers (name, kind, current_version, created_at, "
                         "updated_at) VALUES (?, ?, ?, ?, ?)", (name, kind, version, now, now))
        minx, miny, maxx, maxy = bounds if bounds is not None else (None,) * 4
        conn.execute(
            "INSERT INTO layer_versions (layer, version, kind, file, format, file_sha256, "
            "file_bytes, source_name, source_sha256, source_crs, row_count, content_key, minx, "
            "miny, maxx, maxy, created_at, author, note) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (name, version, kind, file, fmt, file_sha256, file_bytes, source_name,
             source_sha256, source_crs, row_count, content_key, minx, miny, maxx, maxy, now,
             author, note))
        conn.execute("UPDATE layers SET current_version = ?, updated_at = ? WHERE name = ?",
                     (version, now, name))
        audit(conn, actor=author, action="publish", target=f"{name}@{version}",
               detail={"kind": kind, "rows": row_count, "source": source_name, "note": note})
        return version

    def rollback(self, name: str, version: int, *, author: str | None = None,
                 note: str = "") -> LayerVersion:
        """Make an earlier (or any existing) version of ``name`` current again.

        No version is deleted: rolling forward again is another rollback.

        Raises
        ------
        LayerNotFoundError, VersionNotFoundError
            When the layer or version does not exist.
        """
        author = author or default_author()
        with self.connect() as conn, db.write_transaction(
                conn, timeout=self.config.busy_timeout_s):
            previous = self._current(conn, name)
            target = self._version(conn, name, version)
            conn.execute("UPDATE layers SET current_version = ?, updated_at = ? WHERE name = ?",
                         (target.version, utc_now(), name))
            audit(conn, actor=author, action="rollback", target=f"{name}@{target.version}",
                   detail={"from": previous, "note": note})
        return self.version(name)

    # -- fact sets -----------------------------------------------------------------------
    def current_facts(self) -> FactSet | None:
        """The current fused fact set, or ``None`` before the first ``twin fuse``."""
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM fact_sets WHERE current = 1").fetchone()
        return None if row is None else self._fact_set(row)

    def _fact_set(self, row: sqlite3.Row) -> FactSet:
        return FactSet(id=row["id"], path=self.root / row["dir"], created_at=row["created_at"],
                       sources=json.loads(row["sources"]), summary=json.loads(row["summary"]))

    def publish_facts(self, build: Callable[[Path], dict[str, Any]], *,
                      sources: dict[str, Any], author: str | None = None,
                      keep: int = 2) -> FactSet:
        """Build a new fact set with ``build(directory)`` and make it current atomically.

        ``build`` writes the set's files into an empty directory and returns a JSON-ready
        summary. The directory is fsynced and renamed into ``facts/``, then one transaction
        makes it current: readers see the old set or the new one, never half of either. Sets
        beyond the newest ``keep`` are deleted.
        """
        author = author or default_author()
        token = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
        staging = self.tmp_dir / f"facts-{token}"
        final = self.facts_dir / token
        rel = final.relative_to(self.root).as_posix()
        with self._publish_lock(exclusive=False):
            committed = False
            try:
                staging.mkdir()
                summary = build(staging)
                for file in staging.iterdir():
                    with open(file, "rb") as fh:
                        os.fsync(fh.fileno())
                _fsync_dir(staging)
                staging.replace(final)
                _fsync_dir(self.facts_dir)
                with self.connect() as conn, db.write_transaction(
                        conn, timeout=self.config.busy_timeout_s):
                    conn.execute("UPDATE fact_sets SET current = 0 WHERE current = 1")
                    cursor = conn.execute(
                        "INSERT INTO fact_sets (dir, created_at, sources, summary, current) "
                        "VALUES (?, ?, ?, ?, 1)",
                        (rel, utc_now(), json.dumps(sources, ensure_ascii=False),
                         json.dumps(summary, ensure_ascii=False, default=str)))
                    audit(conn, actor=author, action="fuse", target=f"facts@{cursor.lastrowid}",
                           detail={"sources": sources})
                    old = conn.execute("SELECT id, dir FROM fact_sets ORDER BY id DESC LIMIT -1 "
                                       "OFFSET ?", (keep,)).fetchall()
                    conn.executemany("DELETE FROM fact_sets WHERE id = ?",
                                     [(r["id"],) for r in old])
                committed = True
            finally:
                if not committed:
                    _remove(staging)
                    _remove(final)
            for r in old:
                _remove(self.root / r["dir"])
        facts = self.current_facts()
        assert facts is not None  # just committed
        return facts

    # -- checking ------------------------------------------------------------------------
    def check(self, *, hashes: bool = True) -> list[str]:
        """Return every integrity problem of the workspace (empty when it is sound).

        Checks ``PRAGMA integrity_check``, that every version's file exists with its recorded
        size (and SHA-256 when ``hashes``), that every layer's current version exists, and
        that every fact set's directory exists.
        """
        problems = []
        with self.connect() as conn:
            result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            if result != ["ok"]:
                problems.extend(f"database: {r}" for r in result)
            for r in conn.execute("SELECT l.name, l.current_version FROM layers l WHERE NOT "
                                  "EXISTS (SELECT 1 FROM layer_versions v WHERE v.layer = "
                                  "l.name AND v.version = l.current_version)"):
                problems.append(f"layer {r[0]!r}: current version {r[1]} does not exist")
            rows = conn.execute("SELECT layer, version, file, file_bytes, file_sha256 "
                                "FROM layer_versions ORDER BY layer, version").fetchall()
            fact_dirs = [r[0] for r in conn.execute("SELECT dir FROM fact_sets ORDER BY id")]
        problems.extend(f"fact set {d}: directory is missing" for d in fact_dirs
                        if not (self.root / d).is_dir())
        for r in rows:
            path = self.root / r["file"]
            where = f"layer {r['layer']!r} version {r['version']}"
            if not path.is_file():
                problems.append(f"{where}: file {r['file']} is missing")
            elif path.stat().st_size != r["file_bytes"]:
                problems.append(f"{where}: file {r['file']} has {path.stat().st_size} bytes, "
                                f"expected {r['file_bytes']}")
            elif hashes and sha256_file(path) != r["file_sha256"]:
                problems.append(f"{where}: file {r['file']} has been modified (SHA-256 differs)")
        return problems


def write_layer_parquet(frame: pd.DataFrame, target: BinaryIO | str | os.PathLike[str]) -> None:
    """Write ``frame`` as the store keeps layers: GeoParquet for a GeoDataFrame, else Parquet.

    Geometries use GeoArrow encoding: readers get flat coordinate arrays without decoding WKB
    (see :mod:`twin.geoarrow`), and geopandas reads it back as usual. Ingest's sandbox writes
    its clean result this way, so that :meth:`Workspace.publish_parquet` publishes the file as
    it is.
    """
    import geopandas as gpd

    if isinstance(frame, gpd.GeoDataFrame):
        frame.to_parquet(target, index=False, compression="zstd", geometry_encoding="geoarrow")
    else:
        frame.to_parquet(target, index=False, compression="zstd")


def _write_parquet(frame: pd.DataFrame, fh: BinaryIO) -> None:
    write_layer_parquet(frame, fh)


def _geometry_column(path: Path) -> str:
    """The primary geometry column named in a GeoParquet file's metadata."""
    import pyarrow.parquet as pq

    return json.loads(pq.read_schema(path).metadata[b"geo"])["primary_column"]


def _parquet_layout(path: Path) -> tuple[list[str], dict[str, int] | None, Any, int,
                                         tuple[float, ...] | None]:
    """Columns, geometry types, CRS, row count and bounds of a (Geo)Parquet file's metadata."""
    import pyarrow.parquet as pq
    from pyproj import CRS

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path} is not a readable Parquet file ({exc})") from None
    schema = parquet.schema_arrow
    rows = parquet.metadata.num_rows
    raw = (schema.metadata or {}).get(b"geo")
    if raw is None:
        return list(schema.names), None, None, rows, None
    try:
        geo = json.loads(raw)
        primary = geo["primary_column"]
        column = geo["columns"][primary]
        types = [str(t).removesuffix(" Z") for t in column.get("geometry_types", [])]
        crs = CRS.from_user_input(column["crs"]) if column.get("crs") else None
        bbox = tuple(float(v) for v in column["bbox"]) if column.get("bbox") else None
    except (ValueError, KeyError, TypeError) as exc:
        raise SchemaError(f"{path} has malformed GeoParquet metadata ({exc})") from None
    if rows and not types:
        raise SchemaError(f"{path} does not list its geometry types in its GeoParquet "
                          "metadata; write it with write_layer_parquet")
    columns = [c for c in schema.names if c != primary]
    return columns, dict.fromkeys(types, 1), crs, rows, bbox if rows else None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def audit(conn: sqlite3.Connection, *, actor: str, action: str, target: str,
           detail: dict[str, Any]) -> None:
    conn.execute("INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                 (utc_now(), actor, action, target, json.dumps(detail, ensure_ascii=False)))


def _row_to_version(row: sqlite3.Row, current: int) -> LayerVersion:
    bounds = None if row["minx"] is None else (row["minx"], row["miny"], row["maxx"], row["maxy"])
    return LayerVersion(
        layer=row["layer"], version=row["version"], kind=row["kind"], file=row["file"],
        format=row["format"], file_sha256=row["file_sha256"], file_bytes=row["file_bytes"],
        source_name=row["source_name"], source_sha256=row["source_sha256"],
        source_crs=row["source_crs"], row_count=row["row_count"], bounds=bounds,
        content_key=row["content_key"], created_at=row["created_at"], author=row["author"],
        note=row["note"], current=row["version"] == current)


def check_layer_name(name: str) -> None:
    """Refuse a layer name that is not safe as a directory name (raises SchemaError)."""
    if not _LAYER_NAME.match(name):
        suggestion = re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_-") or "layer"
        if not suggestion[0].isalpha():
            suggestion = f"layer_{suggestion}"
        raise SchemaError(
            f"layer name {name!r} is not allowed: use lowercase letters, digits, '_' and '-', "
            f"starting with a letter, at most 63 characters (e.g. {suggestion[:63]!r})")


def _unknown_layer_message(name: str, known: list[str]) -> str:
    import difflib

    hint = difflib.get_close_matches(name, known, n=1)
    if hint:
        return f"no layer named {name!r}; did you mean {hint[0]!r}?"
    if known:
        return f"no layer named {name!r}; the layers are {', '.join(known)}"
    return f"no layer named {name!r}; the workspace has no layers yet (load one with ingest)"


def _ranges(values: list[int]) -> str:
    if not values:
        return "none"
    if values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}" if len(values) > 1 else str(values[0])
    return ", ".join(map(str, values))


