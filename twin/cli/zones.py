"""``twin zones``: propose, list, show, edit, diff, downgrade and export control zones."""

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
                 "infections); people decide: activate with `twin zones WS edit … --status "
                 "active`"]
        for key in ("created", "updated", "unchanged", "superseded"):
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
