"""Commands on the workspace store: ``init``, ``check``, ``layers`` and ``audit``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from twin.cli._common import WorkspaceFirstGroup, emit, json_option, table, writing
from twin.config import LANGUAGES, parse_bbox
from twin.errors import ConfigError
from twin.store import LayerVersion, Workspace

__all__ = ["register"]


def _bbox(_ctx: click.Context, _param: click.Parameter, value: str | None):
    if value is None:
        return None
    try:
        return parse_bbox(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("init")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="City name, e.g. 示范市.")
@click.option("--name-en", default="", help="English city name (optional).")
@click.option("--bbox", callback=_bbox, metavar="MINLON,MINLAT,MAXLON,MAXLAT",
              help="City area in WGS84; ingest uses it to catch wrong coordinates.")
@click.option("--language", type=click.Choice(LANGUAGES), default="zh", show_default=True,
              help="Default label language.")
@json_option
def init_cmd(path: Path, name: str, name_en: str, bbox, language: str, as_json: bool) -> None:
    """Create a workspace at PATH: twin.toml with documented defaults and an empty catalog.

    PATH must not exist or be an empty directory. Edit PATH/twin.toml afterwards to change
    resolutions, risk weights, zone rules or resource needs.
    """
    ws = Workspace.init(path, name, name_en=name_en, language=language, bbox=bbox)
    data = {"workspace": str(ws.root), "name": ws.config.name, "language": ws.config.language,
            "bbox": ws.config.bbox, "base_resolution": ws.config.base_resolution,
            "rollups": list(ws.config.rollups)}
    emit(data, as_json, lambda: (
        f"created workspace {ws.root}\n"
        f"  city: {ws.config.name}  language: {ws.config.language}  "
        f"H3 resolution {ws.config.base_resolution} (rollups "
        f"{', '.join(map(str, ws.config.rollups))})\n"
        f"  configuration: {ws.config_path}"))


@click.command("check")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--no-hashes", is_flag=True, help="Skip re-hashing layer files (faster).")
@json_option
def check_cmd(workspace: Path, no_hashes: bool, as_json: bool) -> None:
    """Check a workspace's integrity: database, layer files and their hashes.

    Exits 1 when a problem is found.
    """
    ws = Workspace.open(workspace)
    problems = ws.check(hashes=not no_hashes)
    lines = [f"problem: {p}" for p in problems] or [f"{ws.root}: ok"]
    if ws.recovered:
        lines.insert(0, f"cleaned {len(ws.recovered)} leftover file(s) of interrupted publishes")
    emit({"workspace": str(ws.root), "problems": problems, "recovered": ws.recovered},
         as_json, "\n".join(lines))
    if problems:
        click.echo(f"error: {len(problems)} integrity problem(s) in {ws.root} (listed "
                   "above); restore the named files from a backup, or roll the layer back to "
                   "a sound version with `twin layers rollback`", err=True)
        raise SystemExit(1)


@click.group("layers", cls=WorkspaceFirstGroup)
def layers_group() -> None:
    """List layers, their versions and freshness; metadata, differences, exports, rollback."""


@layers_group.command("list")
@click.argument("workspace", type=click.Path(path_type=Path))
@json_option
def layers_list(workspace: Path, as_json: bool) -> None:
    """List the workspace's layers with their current versions."""
    from twin.catalog import freshness

    ws = Workspace.open(workspace)
    layers = ws.layers()
    fresh = {i.name: freshness(ws, i.name) for i in layers}
    emit([{**layer.to_dict(), "freshness": fresh[layer.name]} for layer in layers], as_json,
         lambda: table(
             [(i.name, i.kind, i.current_version, i.versions, i.current.row_count,
               i.current.source_name or "", i.updated_at[:19].replace("T", " "),
               f"{fresh[i.name]['label_zh']} {fresh[i.name]['state']}") for i in layers],
             ["layer", "kind", "current", "versions", "rows", "source", "updated_at",
              "新鲜度 freshness"])
         if layers else f"{ws.root}: no layers yet")


def _version_rows(versions: list[LayerVersion]) -> str:
    return table([("*" if v.current else "", v.version, v.row_count, v.source_name or "",
                   v.source_crs or "", v.created_at[:19].replace("T", " "), v.author, v.note)
                  for v in versions],
                 ["current", "version", "rows", "source", "source_crs", "created_at",
                  "author", "note"])


@layers_group.command("versions")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("name")
@json_option
def layers_versions(workspace: Path, name: str, as_json: bool) -> None:
    """List every version of layer NAME, oldest first (* marks the current one)."""
    versions = Workspace.open(workspace).versions(name)
    emit([v.to_dict() for v in versions], as_json, lambda: _version_rows(versions))


@layers_group.command("rollback")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@click.option("--note", default="", help="Why you roll back (kept in the audit log).")
@click.option("--author", default=None, help="Who rolls back (default: your login name).")
@json_option
def layers_rollback(workspace: Path, name: str, version: int, note: str, author: str | None,
                    as_json: bool) -> None:
    """Make VERSION of layer NAME current again. No version is deleted."""
    current = Workspace.open(workspace).rollback(name, version, author=author, note=note)
    emit(current.to_dict(), as_json,
         f"layer {name!r} is now at version {current.version} ({current.row_count} rows)")


@layers_group.command("meta")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("name")
@click.option("--title-zh", help="Title in Chinese.")
@click.option("--title-en", help="Title in English.")
@click.option("--department", help="The department that sends the data.")
@click.option("--contact", help="Who to ask about it (name, phone).")
@click.option("--description-zh", help="Description in Chinese.")
@click.option("--description-en", help="Description in English.")
@click.option("--licence", help="Licence or terms of use.")
@click.option("--refresh-hours", type=click.FloatRange(min=0, min_open=True),
              help="Expected refresh interval in hours (freshness and the stale alert).")
@click.option("--actor", default=None, help="Who changes it (default: your login name).")
@json_option
def layers_meta(workspace: Path, name: str, actor: str | None, as_json: bool,
                **changes: Any) -> None:
    """Show layer NAME's metadata, or change the fields given (audited)."""
    from twin.catalog import freshness, get_meta, set_meta
    from twin.store import default_author

    ws = Workspace.open(workspace)
    given = {k: v for k, v in changes.items() if v is not None}
    meta = set_meta(ws, name, actor=actor or default_author(), **given) if given else \
        get_meta(ws, name)
    fresh = freshness(ws, name, meta=meta)
    data = {**meta.to_dict(), "freshness": fresh}

    def text() -> str:
        lines = [f"{k}: {v if v not in ('', None) else '-'}" for k, v in meta.to_dict().items()]
        every = (f", expected every {fresh['refresh_hours']:g} h" if fresh["refresh_hours"]
                 else "")
        lines.append(f"freshness 新鲜度: {fresh['label_zh']} {fresh['state']} "
                     f"({fresh['age_hours']:g} h old{every})")
        return "\n".join(lines)

    emit(data, as_json, text)


@layers_group.command("diff")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("name")
@click.argument("old", type=click.IntRange(min=1))
@click.argument("new", type=click.IntRange(min=1), required=False)
@json_option
def layers_diff(workspace: Path, name: str, old: int, new: int | None, as_json: bool) -> None:
    """What changed in layer NAME from version OLD to NEW (default: the current one)."""
    from twin.catalog import diff_versions

    got = diff_versions(Workspace.open(workspace), name, old, new)

    def text() -> str:
        lines = [f"{name}: version {got['old']} → {got['new']} (rows {got['rows']['old']:,} "
                 f"→ {got['rows']['new']:,}, matched by {got['key'] or 'position'})"]
        for what, zh in (("added", "新增"), ("removed", "删除"), ("changed", "变更")):
            part = got[what]
            sample = f" e.g. {', '.join(part['sample'][:5])}" if part["sample"] else ""
            lines.append(f"  {zh} {what}: {part['count']:,}{sample}")
        for column, value in got["totals"]["new"].items():
            before = got["totals"]["old"].get(column)
            if before is not None and before != value:
                lines.append(f"  total {column}: {before:,.6g} → {value:,.6g}")
        return "\n".join(lines)

    emit(got, as_json, text)


@layers_group.command("export")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("name")
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--version", type=click.IntRange(min=1), help="Version (default: the current).")
@click.option("--format", "fmt", type=click.Choice(["gpkg", "geojson", "csv"]),
              help="Format (default: from OUT's extension).")
@json_option
def layers_export(workspace: Path, name: str, out: Path, version: int | None, fmt: str | None,
                  as_json: bool) -> None:
    """Write a version of layer NAME to OUT with its metadata (CSV made formula-safe)."""
    from twin.catalog import export_layer
    from twin.store import default_author

    with writing(out):
        path = export_layer(Workspace.open(workspace), name, out, fmt=fmt, version=version,
                            actor=default_author())
    emit({"path": str(path)}, as_json, f"wrote {path}")


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A date or a time (ISO 8601; local times without a zone are taken as UTC), as the
    audit log stores times."""
    import datetime as dt

    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date or time; use e.g. 2026-12-01 or "
                                 "2026-12-01T08:00 (UTC)") from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when.isoformat(timespec="microseconds") + "Z"


@click.command("audit")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--since", callback=_since, metavar="DATE|TIME",
              help="Only entries at or after this UTC date or time, e.g. 2026-12-01.")
@click.option("--user", default=None,
              help="Only entries this user or token made, or that concern them.")
@click.option("--action", default=None,
              help="Only actions starting with this, e.g. users. or zones.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
              help="At most this many entries (the newest).")
@json_option
def audit_cmd(workspace: Path, since: str | None, user: str | None, action: str | None,
              limit: int, as_json: bool) -> None:
    """The audit log, oldest first: who did what, when and from where (logins and logouts,
    failed logins and lockouts, sessions revoked, token use, every zone and catalog change).
    """
    rows = Workspace.open(workspace).audit_log(limit, since=since, user=user, action=action)
    rows.reverse()

    def text() -> str:
        if not rows:
            return "no audit entries match 无匹配的审计记录"
        return table([[r["at"][:19].replace("T", " "), r["actor"], r["action"], r["target"],
                       r["detail"].get("address", "") if isinstance(r["detail"], dict) else "",
                       _detail_text(r["detail"])] for r in rows],
                     ["时间 at (UTC)", "操作者 actor", "操作 action", "对象 target",
                      "地址 address", "详情 detail"])

    emit(rows, as_json, text)


def _detail_text(detail: Any, width: int = 60) -> str:
    import json

    if not isinstance(detail, dict):
        return str(detail)[:width]
    rest = {k: v for k, v in detail.items() if k != "address"}
    text = json.dumps(rest, ensure_ascii=False, default=str) if rest else ""
    return text if len(text) <= width else text[:width - 1] + "…"


@click.command("backup")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@json_option
def backup_cmd(workspace: Path, out: Path, as_json: bool) -> None:
    """Back WORKSPACE up into the new directory OUT, safely while `twin serve` runs.

    OUT gets the database as of one instant, every layer and fact file it refers to,
    twin.toml, the cookie secret and a manifest of hashes; the copy is checked before it is
    named OUT. Keep backups where only administrators can read them (OUT is mode 0700).
    """
    from twin.backup import backup

    ws = Workspace.open(workspace)
    with click.progressbar(length=1, label="备份 backing up", file=_progress_file(as_json),
                           show_pos=True) as bar:
        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        result = backup(ws, out, on_progress=progress)
    emit(result, as_json, f"backed up {ws.root} to {result['path']}: "
                          f"{len(result['files'])} files, {result['bytes'] / 2**20:.1f} MB, "
                          f"checked, in {result['seconds']:.1f} s")


@click.command("restore")
@click.argument("backup_dir", metavar="BACKUP", type=click.Path(path_type=Path))
@click.argument("target", type=click.Path(path_type=Path))
@json_option
def restore_cmd(backup_dir: Path, target: Path, as_json: bool) -> None:
    """Restore BACKUP (a directory `twin backup` wrote) as a new workspace at TARGET.

    Every file is checked against the backup's manifest, and the restored workspace passes
    `twin check` before it is named TARGET. TARGET must not exist or be empty: to replace a
    workspace, stop `twin serve`, move the old one aside, restore, and start it again.
    """
    from twin.backup import restore

    result = restore(backup_dir, target)
    emit(result, as_json, f"restored {result['files']} files "
                          f"({result['bytes'] / 2**20:.1f} MB) from the backup of "
                          f"{result['backup_created_at']} to {result['path']}; `twin check` ok")


def _progress_file(as_json: bool) -> Any:
    """Progress to standard error on a terminal only (never into --json output)."""
    import io
    import sys

    return sys.stderr if sys.stderr.isatty() and not as_json else io.StringIO()


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``twin`` group."""
    for command in (init_cmd, check_cmd, layers_group, audit_cmd, backup_cmd, restore_cmd):
        cli.add_command(command)
