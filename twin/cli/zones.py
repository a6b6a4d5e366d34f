"""``twin zones``: propose, list, show, edit, save (merge-aware), accept, reject, diff,
downgrade and export control zones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from twin.cli._common import WorkspaceFirstGroup, emit, json_option, table, writing
from twin.schema import OPEN_ZONE_STATUSES, ZONE_STATUSES, ZONE_TIERS
from twin.store import Workspace

__all__ = ["register"]


def _cells(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [c.strip() for c in text.split(",") if c.strip()]


def _zone_rows(zones: list[Any]) -> str:
    from twin.zones import TIER_ZH

    if not zones:
        return "no zones"
    return table([[z.zone_id, z.name, f"{TIER_ZH[z.tier]} {z.tier}", z.status, z.version,
                   len(z.cells), z.valid_from, z.author] for z in zones],
                 ["zone", "name", "tier", "status", "version", "cells", "valid_from", "author"])


@click.group("zones", cls=WorkspaceFirstGroup)
def zones_cmd() -> None:
    """Control zones: lockdown 封控区, control 管控区, prevention 防范区.

    Every change is a new version; the system proposes, people decide.
    """


@zones_cmd.command("propose")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--date", "day", help="Last day of the case window (YYYY-MM-DD; default: the "
              "latest case).")
@click.option("--author", default="system", show_default=True)
@json_option
def propose_cmd(workspace: Path, day: str | None, author: str, as_json: bool) -> None:
    """Propose zones from the infections of the last case_window_days days (status proposed)."""
    from twin.zones import propose

    ws = Workspace.open(workspace)
    result = propose(ws, day, author=author)

    def text() -> str:
        from twin.zones import Zones

        tiers = {z.zone_id: z.tier for z in Zones(ws).list()}
        lines = [f"proposal 建议 for {result['date']} (window "
                 f"{'..'.join(result.get('window', []))}, {result.get('infections', 0)} "
                 "infections); people decide: `twin zones WS accept ZONE --base-version N "
                 "--valid-from DAY` or `twin zones WS reject ZONE --base-version N --reason R`"]
        for key in ("created", "updated", "unchanged", "superseded", "rejected"):
            ids = result[key]
            by_tier = {t: sum(1 for i in ids if tiers.get(i) == t)
                       for t in ZONE_TIERS}
            shown = ", ".join(ids[:8]) + (f", … ({len(ids)} in all)" if len(ids) > 8 else "")
            counts = " / ".join(f"{n} {t}" for t, n in by_tier.items() if n)
            lines.append(f"  {key}: {len(ids)}" + (f" ({counts}): {shown}" if ids else ""))
        if result.get("covered"):
            lines.append(f"  covered 已在生效区内: {result['covered']} (inside active zones of "
                         "the same or a stricter tier; not proposed again)")
        return "\n".join(lines)

    emit(result, as_json, text)


@zones_cmd.command("list")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--status", type=click.Choice(ZONE_STATUSES))
@click.option("--tier", type=click.Choice(ZONE_TIERS))
@json_option
def list_cmd(workspace: Path, status: str | None, tier: str | None, as_json: bool) -> None:
    """The current version of every zone."""
    from twin.zones import Zones

    zones = Zones(Workspace.open(workspace)).list(status=status, tier=tier)
    emit([z.to_dict(cells=False) for z in zones], as_json, lambda: _zone_rows(zones))


@zones_cmd.command("show")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("zone_id")
@click.option("--version", type=int, help="A past version (default: the current one).")
@click.option("--history", "show_history", is_flag=True, help="Also list every version.")
@json_option
def show_cmd(workspace: Path, zone_id: str, version: int | None, show_history: bool,
             as_json: bool) -> None:
    """One zone: its version, cells and impact (residents, buildings, facilities, stocks)."""
    from twin.zones import Zones, facts_or_none, impact

    ws = Workspace.open(workspace)
    zones = Zones(ws)
    zone = zones.get(zone_id, version)
    facts = facts_or_none(ws)
    data = zone.to_dict()
    data["impact"] = impact(facts, zone.cells).to_dict() if facts is not None else None
    if show_history:
        data["history"] = [z.to_dict(cells=False) for z in zones.history(zone_id)]

    def text() -> str:
        lines = [f"{zone.zone_id} {zone.name} · version {zone.version}/"
                 f"{zone.current_version} · {data['tier_zh']} {zone.tier} · "
                 f"{zone.status} · from {zone.valid_from}",
                 f"  by {zone.author} at {zone.created_at}: {zone.reason}",
                 f"  {len(zone.cells)} cells"]
        if data["impact"]:
            imp = data["impact"]
            lines.append(f"  residents 常住人口 {imp['residents']:,.0f} · buildings 建筑 "
                         f"{imp['buildings']['n']:,} · 65+ "
                         f"{imp['groups'].get('age_65_plus', 0):,.0f}")
            for kind, v in imp["facilities"].items():
                lines.append(f"  facility {kind}: {v['n']} (capacity {v['capacity']:,.0f})")
            for res, q in imp["stocks"].items():
                lines.append(f"  stock {res}: {q:,.0f}")
        for h in data.get("history", []):
            lines.append(f"  v{h['version']} {h['created_at']} {h['author']}: {h['tier']} "
                         f"{h['status']} {h['cells_n']} cells — {h['reason']}")
        return "\n".join(lines)

    emit(data, as_json, text)


@zones_cmd.command("edit")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("zone_id")
@click.option("--expect-version", type=int, required=True,
              help="The version your edit is based on; refused if someone saved since.")
@click.option("--add-cells", help="Hexadecimal H3 cells to add, comma-separated.")
@click.option("--remove-cells", help="Hexadecimal H3 cells to remove, comma-separated.")
@click.option("--polygon", "polygon_path", type=click.Path(path_type=Path, dir_okay=False,
                                                           exists=True),
              help="A GeoJSON file (WGS84) whose polygon replaces the cells; kept as outline.")
@click.option("--tier", type=click.Choice(ZONE_TIERS))
@click.option("--status", type=click.Choice(ZONE_STATUSES))
@click.option("--valid-from", help="Date the version takes effect (YYYY-MM-DD).")
@click.option("--reason", required=True, help="Why the zone changes (required).")
@click.option("--author", help="Who makes the change (default: the user name).")
@json_option
def edit_cmd(workspace: Path, zone_id: str, expect_version: int, add_cells: str | None,
             remove_cells: str | None, polygon_path: Path | None, tier: str | None,
             status: str | None, valid_from: str | None, reason: str, author: str | None,
             as_json: bool) -> None:
    """Save an edit of a zone as its next version."""
    from twin.zones import Zones

    polygon = _read_polygon(polygon_path) if polygon_path else None
    from twin.zones import ZoneError, as_cells

    add, remove = _cells(add_cells), _cells(remove_cells)
    for given, hint in ((add, "--add-cells"), (remove, "--remove-cells")):
        try:
            as_cells(given)
        except ZoneError as exc:
            raise click.BadParameter(str(exc), param_hint=hint) from None
    zone = Zones(Workspace.open(workspace)).save(
        zone_id, expect_version, add_cells=add, remove_cells=remove, polygon=polygon, tier=tier,
        status=status, valid_from=valid_from, author=author, reason=reason)
    emit(zone.to_dict(cells=False), as_json,
         f"saved {zone.zone_id} version {zone.version}: {zone.tier} {zone.status}, "
         f"{len(zone.cells)} cells")


def _checked_cells(text: str | None, hint: str) -> list[str] | None:
    from twin.zones import ZoneError, as_cells

    given = _cells(text)
    try:
        as_cells(given)
    except ZoneError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None
    return given


def _saved_text(result: Any) -> str:
    from twin.zones import TIER_ZH

    z = result.zone
    lines = [f"saved {z.zone_id} version {z.version}: {TIER_ZH[z.tier]} {z.tier} {z.status}, "
             f"{len(z.cells)} cells, valid from {z.valid_from}"]
    if result.merged_with:
        t = result.theirs
        changed = [f"+{t['added']} / -{t['removed']} cells"] + [
            f"{k} {' -> '.join(t[k])}" for k in ("tier", "status", "valid_from") if t[k]]
        lines.append("  merged with 已合并 " + ", ".join(
            f"v{v} by {a}" for v, a, _, _ in result.merged_with) + f" ({'; '.join(changed)})")
    if result.resolved:
        lines.append("  conflicts resolved 冲突处理: " + ", ".join(
            f"{k}: {side}" for k, side in result.resolved.items()))
    if result.lock_retries:
        lines.append(f"  waited for the database lock {result.lock_retries} times")
    return "\n".join(lines)


def _conflict_text(exc: Any) -> str:
    c = exc.conflicts
    lines = [f"conflict 冲突 on {exc.zone_id}: your edit of version {exc.expected} against "
             f"version {exc.current_version}; nothing was saved"]
    for v, a, t, r in exc.changes:
        lines.append(f"  saved since: v{v} by {a} at {t[:19].replace('T', ' ')} UTC ({r})")
    for key, mine, theirs in (("added_here_removed_there", "add", "removed"),
                              ("removed_here_added_there", "remove", "added")):
        cells = getattr(c, key)
        if len(cells):
            from twin import grid

            shown = ", ".join(grid.cells_to_strings(cells[:5]).tolist())
            lines.append(f"  cells 单元: you {mine} {len(cells)} that "
                         f"{' and '.join(c.by.get(key, ())) or 'they'} {theirs}: {shown}"
                         + (" …" if len(cells) > 5 else ""))
    for key in ("tier", "status", "valid_from"):
        pair = getattr(c, key)
        if pair is not None:
            lines.append(f"  {key}: mine {pair[0]} · theirs {pair[1]} "
                         f"({' and '.join(c.by.get(key, ()))})")
    lines.append("  choose a side with --on-conflict mine|theirs, or reload the zone and "
                 "edit its current version")
    return "\n".join(lines)


@zones_cmd.command("save")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("zone_id")
@click.option("--base-version", type=int, required=True,
              help="The version your edit started from; later saves are merged in.")
@click.option("--add-cells", help="Hexadecimal H3 cells to add, comma-separated.")
@click.option("--remove-cells", help="Hexadecimal H3 cells to remove, comma-separated.")
@click.option("--polygon", "polygon_path", type=click.Path(path_type=Path, dir_okay=False,
                                                           exists=True),
              help="A GeoJSON file (WGS84) whose polygon's cells replace the base version's "
                   "cells (then --add-cells/--remove-cells apply); kept as outline while the "
                   "saved cells are exactly its cells.")
@click.option("--tier", type=click.Choice(ZONE_TIERS))
@click.option("--status", type=click.Choice(ZONE_STATUSES))
@click.option("--valid-from", help="Date the version takes effect (YYYY-MM-DD).")
@click.option("--reason", required=True, help="Why the zone changes (required).")
@click.option("--author", help="Who makes the change (default: the user name).")
@click.option("--on-conflict", type=click.Choice(["fail", "mine", "theirs"]), default="fail",
              show_default=True,
              help="What a conflict takes: fail (save nothing and show both sides), mine or "
                   "theirs.")
@json_option
def save_cmd(workspace: Path, zone_id: str, base_version: int, add_cells: str | None,
             remove_cells: str | None, polygon_path: Path | None, tier: str | None,
             status: str | None, valid_from: str | None, reason: str, author: str | None,
             on_conflict: str, as_json: bool) -> None:
    """Save an edit of an older version, merged with what others saved since (merge-aware).

    Changes to different cells merge; a cell you add that they removed (or the reverse), or
    tier, status or valid_from changed by both to different values, is a conflict: with
    --on-conflict fail nothing is written and both sides are shown.
    """
    from twin.errors import ZoneMergeConflict
    from twin.zones import CONFLICT_KINDS, ZoneEdit, Zones, as_cells, save_edit

    add = _checked_cells(add_cells, "--add-cells")
    remove = _checked_cells(remove_cells, "--remove-cells")
    ws = Workspace.open(workspace)
    outline = None
    if polygon_path is not None:
        import numpy as np

        from twin import grid

        outline = _read_polygon(polygon_path)
        base = Zones(ws).get(zone_id, base_version)
        drawn = np.unique(grid.polygon_to_cells(outline, int(ws.config.base_resolution))
                          .astype(np.uint64))
        target = np.setdiff1d(np.union1d(drawn, as_cells(add or [])),
                              as_cells(remove or []))
        if not np.array_equal(target, drawn):
            outline = None  # the saved cells are no longer the drawn polygon's
        add, remove = np.setdiff1d(target, base.cells), np.setdiff1d(base.cells, target)
    edit = ZoneEdit(base_version, add, remove, tier=tier, status=status,  # type: ignore[arg-type]
                    valid_from=valid_from, outline=outline)
    resolve = None if on_conflict == "fail" else dict.fromkeys(CONFLICT_KINDS, on_conflict)
    try:
        result = save_edit(ws, zone_id, edit, author=author, reason=reason, resolve=resolve)
    except ZoneMergeConflict as exc:
        _report_conflict(exc, as_json)
    emit(result.to_dict(), as_json, lambda: _saved_text(result))


def _report_conflict(exc: Any, as_json: bool) -> None:
    """Show both sides of a merge conflict and exit 1 (nothing was written)."""
    if as_json:
        click.echo(json.dumps({"error": {
            "type": type(exc).__name__, "message": str(exc), "retryable": False,
            "zone_id": exc.zone_id, "base_version": exc.expected,
            "current_version": exc.current_version, "conflicts": exc.conflicts.to_dict(),
            "changes": [{"version": v, "author": a, "created_at": t, "reason": r}
                        for v, a, t, r in exc.changes]}}, ensure_ascii=False, indent=2))
    else:
        click.echo(_conflict_text(exc))
    click.echo(f"error: {exc}", err=True)
    raise click.exceptions.Exit(1)


@zones_cmd.command("accept")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("zone_id")
@click.option("--base-version", type=int, required=True,
              help="The version of the proposal you reviewed; later re-proposals merge in.")
@click.option("--valid-from", required=True,
              help="The day the zone takes effect (YYYY-MM-DD).")
@click.option("--reason", help="Why (default: 采纳建议 accepted proposal).")
@click.option("--author", help="Who decides (default: the user name).")
@json_option
def accept_cmd(workspace: Path, zone_id: str, base_version: int, valid_from: str,
               reason: str | None, author: str | None, as_json: bool) -> None:
    """Accept a proposed zone: it becomes active 生效 from --valid-from."""
    from twin.zones import accept

    result = accept(Workspace.open(workspace), zone_id, base_version, valid_from=valid_from,
                    author=author, reason=reason)
    emit(result.to_dict(), as_json, lambda: _saved_text(result))


@zones_cmd.command("reject")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("zone_id")
@click.option("--base-version", type=int, required=True,
              help="The version of the proposal you reviewed.")
@click.option("--reason", required=True, help="Why the proposal is rejected (required).")
@click.option("--author", help="Who decides (default: the user name).")
@json_option
def reject_cmd(workspace: Path, zone_id: str, base_version: int, reason: str,
               author: str | None, as_json: bool) -> None:
    """Reject a proposed zone: it is lifted 解除 and the same proposal is not made again."""
    from twin.zones import reject

    result = reject(Workspace.open(workspace), zone_id, base_version, reason=reason,
                    author=author)
    emit(result.to_dict(), as_json, lambda: _saved_text(result))


def _read_polygon(path: Path) -> Any:
    import shapely
    import shapely.geometry

    from twin.errors import ZoneError

    fix = "give a GeoJSON file (WGS84) holding a Polygon or MultiPolygon"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ZoneError(f"cannot read {path} as GeoJSON ({exc}); {fix}") from None
    try:
        if data.get("type") == "FeatureCollection":
            geoms = [shapely.geometry.shape(f["geometry"]) for f in data.get("features", [])]
            if not geoms:
                raise click.BadParameter(f"{path} holds no feature")
            return shapely.union_all(geoms)
        if data.get("type") == "Feature":
            return shapely.geometry.shape(data["geometry"])
        return shapely.geometry.shape(data)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError,
            shapely.errors.GEOSException) as exc:
        raise ZoneError(f"{path} is not a GeoJSON geometry, feature or feature collection "
                        f"({type(exc).__name__}: {exc}); {fix}") from None


@zones_cmd.command("diff")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("zone_id")
@click.argument("old", type=int)
@click.argument("new", type=int, required=False)
@json_option
def diff_cmd(workspace: Path, zone_id: str, old: int, new: int | None, as_json: bool) -> None:
    """Cells added and removed between two versions (NEW defaults to the current one)."""
    from twin.zones import diff

    d = diff(Workspace.open(workspace), zone_id, old, new)

    def text() -> str:
        def res(v: float | None) -> str:
            return "?" if v is None else f"{v:,.0f}"

        return "\n".join([
            f"{zone_id} version {d['from_version']} -> {d['to_version']}: tier "
            f"{' -> '.join(d['tier'])}, status {' -> '.join(d['status'])}",
            f"  added {len(d['added'])} cells ({res(d['residents_added'])} residents): "
            f"{', '.join(d['added'][:10])}",
            f"  removed {len(d['removed'])} cells ({res(d['residents_removed'])} residents): "
            f"{', '.join(d['removed'][:10])}"])

    emit(d, as_json, text)


@zones_cmd.command("downgrades")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--date", "day", help="The day to judge (YYYY-MM-DD; default: today).")
@json_option
def downgrades_cmd(workspace: Path, day: str | None, as_json: bool) -> None:
    """Suggested downgrades of active zones (lockdown -> control -> prevention).

    Lockdown -> control lockdown_clear_days after the last infection inside; control ->
    prevention control_clear_days after the later of the last infection and the day the zone
    became control, never sooner than lockdown_clear_days + control_clear_days after the last
    infection, and never while a lockdown zone it touches is still in lockdown.
    """
    from twin.zones import downgrades

    items = downgrades(Workspace.open(workspace), day)
    emit(items, as_json, lambda: "no downgrade is due 无到期降级" if not items else "\n".join(
        f"{s['zone_id']} {s['name']}: {s['tier_zh']} -> {s['suggested_tier_zh']} "
        f"({s['tier']} -> {s['suggested_tier']}) · last infection "
        f"{s['last_infection'] or 'none'} · {s['tier']} since {s['became_tier_on']} · "
        f"reached on {s['reached_on']}\n  {s['rule_zh']}\n  {s['rule']}"
        for s in items))


@zones_cmd.command("export")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(ZONE_STATUSES),
              help="Zones of these statuses (repeatable; default: proposed and active).")
@json_option
def export_cmd(workspace: Path, out: Path, statuses: tuple[str, ...], as_json: bool) -> None:
    """Write zones with dissolved outlines to OUT (.geojson or .gpkg)."""
    from twin.zones import export

    ws = Workspace.open(workspace)
    with writing(out):
        n = export(ws, out, statuses=statuses or OPEN_ZONE_STATUSES)
    emit({"path": str(out), "zones": n}, as_json, f"wrote {n} zones to {out}")


def register(cli: click.Group) -> None:
    """Add ``twin zones`` to the ``twin`` group."""
    cli.add_command(zones_cmd)
