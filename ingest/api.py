"""Load departments' files into a workspace: the public API of ``ingest``.

:func:`ingest_file` reads one file in a sandboxed child process (memory and time limits, no
network), maps it to its kind's schema, validates it, and publishes it as a new layer version
only when the report has no errors. :func:`ingest_manifest` loads a whole set described by a
``manifest.json`` (the demo city writes one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest.errors import IngestError, ParseError, SourceNotFoundError
from ingest.report import Report
from twin.errors import SchemaError
from twin.schema import get_kind
from twin.store import Workspace, check_layer_name

__all__ = ["COORDS", "ingest_file", "ingest_manifest"]

#: Coordinate offsets ingest can undo.
COORDS = ("wgs84", "gcj02", "bd09")


def ingest_file(workspace: Workspace, path: str | Path, *, kind: str, name: str | None = None,
                crs: str | None = None, coords: str = "wgs84", layer: str | None = None,
                mapping: str | Path | None = None, encoding: str | None = None,
                dry_run: bool = False, author: str | None = None, note: str = "",
                on_progress: Callable[[str, int, int], None] | None = None) -> Report:
    """Validate one file and, when it passes, publish it as a new version of a layer.

    Parameters
    ----------
    workspace
        The open workspace.
    path
        The department's file (any supported format; a zipped Shapefile as ``.zip``).
    kind
        Canonical kind: boundaries, buildings, facilities, population, cases, stocks, roads.
    name
        Target layer name (default: the kind).
    crs
        Source CRS when the file has none (e.g. ``"EPSG:4549"``); must agree with the file's
        own CRS when it has one.
    coords
        Coordinate offset of the source: ``"wgs84"`` (none), ``"gcj02"`` or ``"bd09"``.
    layer
        Layer inside a multi-layer file (GeoPackage) or shapefile inside an archive.
    mapping
        A mapping file (TOML) overriding field guesses; see :mod:`ingest.mapping`.
    encoding
        Text encoding when the file does not declare it (CSV, Shapefile without .cpg).
    dry_run
        Validate only; publish nothing.
    author, note
        Recorded with the new version.
    on_progress
        Called as ``on_progress(stage, done, total)`` while the file is read and checked
        (stages and their labels: :data:`ingest.STAGES`; ``total`` 0 when unknown), a few
        times a second at most.

    Returns
    -------
    Report
        Every problem found; ``status`` says whether a version was published.

    Raises
    ------
    SchemaError, IngestError
        For invalid arguments (unknown kind, bad layer name, unreadable mapping file, a GDAL
        virtual-file, driver-prefix or URL path). Problems of the file itself are reported,
        not raised.
    SourceNotFoundError
        When nothing exists at ``path`` (an :class:`IngestError` and a
        :class:`FileNotFoundError`).
    """
    from ingest._sandbox import run_sandboxed
    from ingest.mapping import load_mapping

    spec = get_kind(kind)
    name = name or spec.name
    check_layer_name(name)
    if coords not in COORDS:
        raise SchemaError(f"unknown coordinate offset {coords!r}; use one of "
                          f"{', '.join(COORDS)}")
    _refuse_gdal_tricks(str(path))
    source = Path(path)
    digest = _source_digest(source)
    mapping_spec = load_mapping(Path(mapping)) if mapping is not None else None
    mapping_dict = dataclasses.asdict(mapping_spec) if mapping_spec is not None else None
    options = {"kind": spec.name, "crs": crs, "coords": coords, "layer": layer,
               "mapping": mapping_dict, "encoding": encoding}
    content_key = hashlib.sha256(
        (digest + json.dumps(options, sort_keys=True, default=str)).encode()).hexdigest()

    if not dry_run:
        existing = workspace.find_content(name, content_key)
        if existing is not None:
            return _already_there(workspace, existing, source.name, spec.name, name,
                                  author=author)

    limits = workspace.config.ingest_limits
    request = {"input": str(source.absolute()), "source_name": source.name, "kind": spec.name,
               "name": name, "crs": crs, "coords": coords, "layer": layer,
               "mapping": mapping_dict, "encoding": encoding, "limits": limits,
               "bbox": list(workspace.config.bbox) if workspace.config.bbox else None,
               "base_resolution": workspace.config.base_resolution}
    # Under the workspace's tmp/, claimed while this runs: a killed ingest leaves nothing in
    # the system's temporary directory, and the next open of the workspace cleans it up.
    with workspace.scratch_dir("ingest-") as workdir:
        request["workdir"] = str(workdir)
        try:
            result = run_sandboxed(
                "ingest._pipeline:run", request, workdir=workdir,
                memory_mb=limits["memory_mb"], timeout_s=limits["timeout_s"],
                on_progress=None if on_progress is None else
                (lambda p: on_progress(p["stage"], p.get("done", 0), p.get("total", 0))))
        except IngestError as exc:
            report = Report(source=source.name, kind=spec.name, layer=name)
            report.error(_code(exc), str(exc))
            return report
        report = Report.from_dict(result["report"])
        sample = report.info.pop("offset_sample", None)
        if coords == "wgs84" and sample and report.ok:
            from ingest.offset_hint import check_offset

            check_offset(sample, workspace, name, report,
                         count=int(report.info.get("rows_kept") or 0))
        if not report.ok:
            report.status = "refused"
        elif dry_run:
            report.status = "validated"
        else:
            if on_progress is not None:
                on_progress("publishing", 0, 0)
            report.version = _publish(workspace, result, spec.name, name, report,
                                      content_key=content_key, author=author, note=note)
            report.status = "published"
        return report


def _publish(workspace: Workspace, result: dict[str, Any], kind: str,
             name: str, report: Report, *, content_key: str, author: str | None,
             note: str) -> dict[str, Any]:
    provenance = {"source_name": report.source, "source_sha256": result["source_sha256"],
                  "source_crs": report.info.get("source_crs"), "content_key": content_key,
                  "author": author, "note": note}
    if result["result_type"] == "raster":
        entry = workspace.publish_raster(name, kind, result["result"], **provenance)
    else:
        entry = workspace.publish_parquet(name, kind, result["result"], **provenance)
    return entry.to_dict()


def _already_there(workspace: Workspace, existing: Any, source_name: str, kind: str,
                   name: str, *, author: str | None) -> Report:
    report = Report(source=source_name, kind=kind, layer=name)
    if existing.current:
        report.status = "unchanged"
    else:
        # The same content was published before and later replaced: make it current again
        # instead of storing a second copy.
        existing = workspace.rollback(name, existing.version, author=author,
                                      note=f"re-ingested {source_name}: identical content")
        report.status = "published"
        report.info["restored_version"] = existing.version
    report.version = existing.to_dict()
    report.info["rows_kept"] = existing.row_count
    return report


def _code(exc: IngestError) -> str:
    names = {"UnsafeFileError": "unsafe_file", "UnsupportedFormatError": "unsupported_format",
             "LimitExceededError": "limit_exceeded", "ParseError": "unreadable_file",
             "SandboxError": "parser_stopped"}
    return names.get(type(exc).__name__, "ingest_error")


def _refuse_gdal_tricks(path: str) -> None:
    """Raise UnsafeFileError for /vsi… paths, DRIVER: prefixes, URLs and control characters."""
    from ingest._sniff import format_from_name
    from ingest.errors import UnsupportedFormatError

    # An unknown extension is a problem of the file, reported by the pipeline.
    with contextlib.suppress(UnsupportedFormatError):
        format_from_name(path)


def _source_digest(path: Path) -> str:
    """SHA-256 of the user's file(s), as staging hashes them, for de-duplication."""
    from ingest._staging import source_files

    try:
        info = path.lstat()
    except FileNotFoundError:
        raise SourceNotFoundError(_missing("file", path)) from None
    except OSError as exc:
        raise ParseError(f"cannot look at {path}: {exc.strerror or exc}; check the path and "
                         "the permissions of its folders") from None
    if stat.S_ISDIR(info.st_mode):
        raise ParseError(f"{path} is a directory, not a file; give the path of one data file "
                         "in it (a zipped Shapefile as its .zip), or load a whole set with "
                         "--manifest manifest.json")
    if not stat.S_ISREG(info.st_mode):
        raise ParseError(f"{path} is not a regular file; give the path of a data file")
    digest = hashlib.sha256()
    try:
        for part in source_files(path):
            with open(part, "rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(chunk)
    except OSError as exc:
        raise ParseError(f"cannot read {exc.filename or path}: {exc.strerror or exc}; check "
                         "that you may read the file (e.g. `ls -l`) and that it is complete") \
            from None
    return digest.hexdigest()


def _missing(what: str, path: Path) -> str:
    where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
    parent = path.absolute().parent
    folder = ("" if parent.is_dir() else
              f"; its folder {parent} does not exist either")
    return (f"no {what} at {path}{where}: the path does not exist{folder}; check the "
            "spelling, the folder and the file extension")


def ingest_manifest(workspace: Workspace, manifest: str | Path, *, dry_run: bool = False,
                    author: str | None = None,
                    on_file: Callable[[int, int, str], None] | None = None) -> list[Report]:
    """Ingest every file listed in a ``manifest.json``, in order; return their reports.

    Each entry gives ``path`` (relative to the manifest), ``kind``, and optionally ``name``,
    ``layer``, ``crs``, ``coords`` and ``encoding``. A file that is refused does not stop the
    others.

    Raises
    ------
    SourceNotFoundError
        When there is no manifest at ``manifest``.
    ParseError
        When the manifest itself is unreadable or an entry lacks ``path`` or ``kind``.
    """
    manifest = Path(manifest)
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        entries = data["files"]
    except FileNotFoundError:
        raise SourceNotFoundError(_missing("manifest", manifest)) from None
    except OSError as exc:
        raise ParseError(f"cannot read the manifest {manifest}: {exc.strerror or exc}; give "
                         "the path of a readable manifest.json file") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise ParseError(f"{manifest} is not a citytwin manifest ({exc}); it needs a 'files' "
                         "list of {path, kind, …} entries") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ParseError(f"{manifest} is not a citytwin manifest: 'files' must be a list of "
                         "{path, kind, …} objects")
    problems = [f"entry {i + 1} lacks {key!r}" for i, entry in enumerate(entries)
                for key in ("path", "kind") if key not in entry]
    if problems:
        raise ParseError(f"{manifest}: " + "; ".join(problems))
    reports = []
    for i, entry in enumerate(entries, start=1):
        if on_file is not None:
            on_file(i, len(entries), entry.get("name") or entry["path"])
        fmt = entry.get("format", "")
        reports.append(ingest_file(
            workspace, manifest.parent / entry["path"], kind=entry["kind"],
            name=entry.get("name"), crs=entry.get("crs"), coords=entry.get("coords") or "wgs84",
            layer=entry.get("layer"),
            encoding=entry.get("encoding") if fmt in ("csv", "tsv", "shapefile") else None,
            dry_run=dry_run, author=author, note=f"from manifest {manifest.name}"))
    return reports
