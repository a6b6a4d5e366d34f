"""``twin ingest``: load a department's file, or a whole manifest, into a workspace."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from twin.cli._common import emit, json_option, step_progress, table
from twin.schema import KINDS
from twin.store import Workspace

__all__ = ["register"]


@click.command("ingest")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("file", type=click.Path(path_type=Path), required=False)
@click.option("--kind", type=click.Choice(list(KINDS)), help="Canonical kind of the file.")
@click.option("--name", help="Target layer name (default: the kind).")
@click.option("--crs", help="Source CRS when the file has none, e.g. EPSG:4549.")
@click.option("--coords", type=click.Choice(["wgs84", "gcj02", "bd09"]), default="wgs84",
              show_default=True, help="Coordinate offset of Chinese web maps to undo.")
@click.option("--layer", "source_layer", help="Layer of a GeoPackage, or shapefile in a zip.")
@click.option("--mapping", type=click.Path(path_type=Path, dir_okay=False),
              help="TOML file naming source columns, values, date formats and units.")
@click.option("--encoding", help="Text encoding when the file does not say (e.g. GBK).")
@click.option("--manifest", type=click.Path(path_type=Path, dir_okay=False),
              help="Load every file listed in this manifest.json instead of FILE.")
@click.option("--dry-run", is_flag=True, help="Validate and report; publish nothing.")
@click.option("--author", help="Who loads the file (default: your login name).")
@click.option("--note", default="", help="Why; kept with the new version.")
@json_option
def ingest_cmd(workspace: Path, file: Path | None, kind: str | None, name: str | None,
               crs: str | None, coords: str, source_layer: str | None, mapping: Path | None,
               encoding: str | None, manifest: Path | None, dry_run: bool, author: str | None,
               note: str, as_json: bool) -> None:
    """Validate FILE and publish it as a new version of a layer of the workspace.

    Reads GeoJSON, Shapefile (zipped or loose), GeoPackage, GeoParquet, CSV/TSV with coordinate
    or WKT columns, GeoTIFF and OpenStreetMap PBF, in any CRS and in UTF-8 or GBK. Prints a
    report of every problem found: errors refuse the file (exit 1, nothing published),
    warnings do not. Ingesting the same file again publishes nothing new.

    \b
    Examples:
      twin ingest ws buildings.zip --kind buildings
      twin ingest ws shops.csv --kind facilities --coords gcj02 --encoding GBK
      twin ingest ws --manifest demo-city/manifest.json
    """
    from ingest import ingest_file, ingest_manifest

    if (file is None) == (manifest is None):
        raise click.UsageError("give either FILE (with --kind) or --manifest, not both")
    ws = Workspace.open(workspace)
    if manifest is not None:
        with step_progress("ingest", enabled=not as_json) as on_step:
            reports = ingest_manifest(ws, manifest, dry_run=dry_run, author=author,
                                      on_file=on_step)
        emit([r.to_dict() for r in reports], as_json, lambda: _manifest_text(reports))
    else:
        if kind is None:
            raise click.UsageError("--kind is required with FILE (one of "
                                   f"{', '.join(KINDS)})")
        with file_progress(file.name, enabled=not as_json) as on_progress:
            report = ingest_file(ws, file, kind=kind, name=name, crs=crs, coords=coords,
                                 layer=source_layer, mapping=mapping, encoding=encoding,
                                 dry_run=dry_run, author=author, note=note,
                                 on_progress=on_progress)
        reports = [report]
        emit(report.to_dict(), as_json, report.to_text)
    refused = [r.source for r in reports if r.status == "refused"]
    if refused:
        click.echo(f"error: {', '.join(refused)} refused (nothing published from "
                   f"{'it' if len(refused) == 1 else 'them'}); fix the errors the report "
                   "lists and ingest again", err=True)
        raise SystemExit(1)


@contextmanager
def file_progress(label: str, enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """Yield an ``on_progress(stage, done, total)`` that shows one file's ingest on stderr.

    On a terminal: one line redrawn with the stage and the records done (a percentage when the
    total is known); elsewhere, one line per stage.
    """
    from ingest import STAGES

    shown: dict[str, Any] = {"stage": None, "width": 0}
    tty = sys.stderr.isatty()

    def on_progress(stage: str, done: int, total: int) -> None:
        if not enabled:
            return
        zh, en = STAGES.get(stage, (stage, stage))
        if not tty:
            if stage != shown["stage"]:
                click.echo(f"{label}: {en} {zh}", err=True)
            shown["stage"] = stage
            return
        count = (f" {done:,}/{total:,} ({done / total:.0%})" if total and done
                 else f" {done:,}" if done else "")
        line = f"{label}: {en} {zh}{count}"
        width = sum(2 if ord(c) >= 0x2E80 else 1 for c in line)  # CJK takes two columns
        click.echo("\r" + line + " " * max(0, shown["width"] - width), err=True, nl=False)
        shown.update(stage=stage, width=width)

    try:
        yield on_progress
    finally:
        if enabled and tty and shown["width"]:
            click.echo("\r" + " " * shown["width"] + "\r", err=True, nl=False)


def _manifest_text(reports) -> str:
    rows = [(r.layer, r.kind, r.status, r.info.get("rows_kept", ""), len(r.errors),
             len(r.warnings), r.info.get("seconds", "")) for r in reports]
    details = [r.to_text() for r in reports if r.problems]
    return "\n\n".join([table(rows, ["layer", "kind", "status", "rows", "errors", "warnings",
                                     "seconds"]), *details])


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``twin`` group."""
    cli.add_command(ingest_cmd)
