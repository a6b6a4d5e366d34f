"""Backups of a workspace, safe while the server runs, and their restore.

A backup is a directory: the database as of one instant (SQLite's online backup, which a
running server's writes do not disturb), every file that snapshot refers to (layer versions
and fact sets, immutable once published, so copying them later is still the snapshot's),
``twin.toml``, the cookie secret, and ``manifest.json`` with each file's size and SHA-256.
Caches and scratch (``cache/``, ``tmp/``) are not kept: they are rebuilt.

Both directions write into a hidden sibling directory first and rename it into place only
after ``Workspace.check`` (every file's hash included) passes on the result: a crash or a
failed check leaves nothing half-written under the name asked for.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twin import db
from twin.errors import StoreCorruptError, UserInputError
from twin.store import CONFIG_NAME, DB_NAME, Workspace, sha256_file

__all__ = ["MANIFEST", "backup", "restore", "verify_backup"]

MANIFEST = "manifest.json"
FORMAT = "citytwin-backup"
#: Files of the workspace root kept besides the database and the referenced data.
_ROOT_FILES = (CONFIG_NAME, "cookie_secret")


def _empty_target(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserInputError(f"{what} {path} already exists and is not an empty directory; "
                             "name a new directory (nothing was written)")


def _partial(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent / f".{target.name}.partial-{os.getpid()}"


def _copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, dest)


def _referenced(db_file: Path) -> list[str]:
    """The workspace-relative files a database refers to (layer files, fact set files)."""
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        files = [r[0] for r in conn.execute("SELECT file FROM layer_versions ORDER BY file")]
        dirs = [r[0] for r in conn.execute("SELECT dir FROM fact_sets ORDER BY dir")]
    finally:
        conn.close()
    return files + dirs


def _fsync_tree(root: Path) -> None:
    for path in [*root.rglob("*"), root]:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _verified(root: Path) -> list[str]:
    """``Workspace.check`` of a copy (hashes included), without touching anything else."""
    ws = Workspace.open(root)
    problems = ws.check(hashes=True)
    shutil.rmtree(ws.tmp_dir, ignore_errors=True)  # made by the open, not part of the data
    _tidy(root)
    return problems


def _tidy(root: Path) -> None:
    """Remove what opening a copy leaves (lock file, an empty write-ahead log)."""
    wal = root / f"{DB_NAME}-wal"
    if wal.exists() and wal.stat().st_size == 0:  # every connection is closed: nothing in it
        wal.unlink()
        with contextlib.suppress(FileNotFoundError):
            (root / f"{DB_NAME}-shm").unlink()
    with contextlib.suppress(FileNotFoundError):
        (root / ".publish.lock").unlink()


def backup(workspace: Workspace, out: str | os.PathLike[str], *,
           on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Back ``workspace`` up into the new directory ``out``; returns the manifest.

    Raises
    ------
    UserInputError
        When ``out`` exists and is not empty, or lies inside the workspace.
    StoreCorruptError
        When the copy fails its check (nothing is left under ``out``).
    """
    started = time.perf_counter()
    target = Path(out).absolute()
    if target.is_relative_to(workspace.root.absolute()):
        raise UserInputError(f"back up to a directory outside the workspace, not {target}")
    _empty_target(target, "backup directory")
    partial = _partial(target)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700)
    try:
        # One instant of the database, whatever the server writes meanwhile.
        source = db.connect(workspace.db_path, timeout=workspace.config.busy_timeout_s)
        dest = sqlite3.connect(partial / DB_NAME)
        try:
            source.backup(dest)
        finally:
            dest.close()
            source.close()
        wanted = _referenced(partial / DB_NAME)
        files: list[str] = [name for name in _ROOT_FILES if (workspace.root / name).is_file()]
        for rel in wanted:
            path = workspace.root / rel
            if path.is_dir():
                files.extend(p.relative_to(workspace.root).as_posix()
                             for p in sorted(path.rglob("*")) if p.is_file())
            else:
                files.append(rel)
        entries: dict[str, dict[str, Any]] = {}
        for i, rel in enumerate(files):
            _copy(workspace.root / rel, partial / rel)
            entries[rel] = {"bytes": (partial / rel).stat().st_size,
                            "sha256": sha256_file(partial / rel)}
            if on_progress is not None:
                on_progress(i + 1, len(files))
        problems = _verified(partial)
        if problems:
            raise StoreCorruptError(
                f"the backup of {workspace.root} failed its check: {'; '.join(problems[:5])}; "
                f"run `twin check {workspace.root}` on the workspace itself")
        # Hashed after the check, which opened the copy.
        entries[DB_NAME] = {"bytes": (partial / DB_NAME).stat().st_size,
                            "sha256": sha256_file(partial / DB_NAME)}
        conn = sqlite3.connect(f"file:{partial / DB_NAME}?mode=ro", uri=True)
        try:
            schema = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
        _tidy(partial)
        manifest = {"format": FORMAT, "version": 1, "source": str(workspace.root),
                    "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "schema_version": schema, "files": entries,
                    "bytes": sum(e["bytes"] for e in entries.values())}
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False),
                                        encoding="utf-8")
        _fsync_tree(partial)
        if target.exists():
            target.rmdir()  # empty, checked above
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return {**manifest, "path": str(target), "seconds": round(time.perf_counter() - started, 2)}


def verify_backup(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of the backup at ``path``, after checking every file against it.

    Raises
    ------
    StoreCorruptError
        When the manifest is missing or unreadable, or a file is missing or differs.
    """
    root = Path(path)
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreCorruptError(f"{root} is not a citytwin backup ({MANIFEST} unreadable: "
                                f"{exc}); give the directory `twin backup` wrote") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreCorruptError(f"{root}/{MANIFEST} is not a citytwin backup manifest")
    problems = []
    for rel, entry in manifest.get("files", {}).items():
        file = root / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            problems.append(f"{rel}: not a path inside the backup")
        elif not file.is_file():
            problems.append(f"{rel}: missing")
        elif file.stat().st_size != entry["bytes"] or sha256_file(file) != entry["sha256"]:
            problems.append(f"{rel}: differs from the manifest (damaged or changed)")
    if problems:
        raise StoreCorruptError(f"backup {root} is damaged: {'; '.join(problems[:5])}"
                                + (f" and {len(problems) - 5} more" if len(problems) > 5
                                   else "") + "; restore from another backup")
    return manifest


def restore(backup_dir: str | os.PathLike[str], target: str | os.PathLike[str]
            ) -> dict[str, Any]:
    """Restore the backup at ``backup_dir`` as a new workspace at ``target``.

    Raises
    ------
    UserInputError
        When ``target`` exists and is not empty (move the old workspace aside first).
    StoreCorruptError
        When the backup is damaged or the restored workspace fails its check.
    """
    started = time.perf_counter()
    source = Path(backup_dir)
    dest = Path(target).absolute()
    _empty_target(dest, "restore target")
    manifest = verify_backup(source)
    partial = _partial(dest)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o755)
    try:
        for rel in manifest["files"]:
            _copy(source / rel, partial / rel)
        if (partial / "cookie_secret").exists():
            (partial / "cookie_secret").chmod(0o600)
        problems = _verified(partial)
        if problems:
            raise StoreCorruptError(f"the restored workspace failed its check: "
                                    f"{'; '.join(problems[:5])}; nothing was restored")
        _fsync_tree(partial)
        if dest.exists():
            dest.rmdir()
        partial.rename(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return {"path": str(dest), "files": len(manifest["files"]), "bytes": manifest["bytes"],
            "backup_created_at": manifest["created_at"],
            "seconds": round(time.perf_counter() - started, 2)}
