"""``twin gaps`` and ``twin dispatch``: supply gaps per area and the plan that fills them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from twin.cli._common import emit, json_option, table, writing
from twin.errors import NoZonesError
from twin.store import Workspace

__all__ = ["register"]


def _zones(ws: Workspace) -> dict[str, tuple[str, Any]] | None:
    """Active zones as ``{id: (tier, cells)}``, or None when there are none (yet).

    Uses ``twin.zones.active_areas(workspace)`` when that module exists.
    """
    try:
        from twin import zones as zones_module  # type: ignore[attr-defined]
    except ImportError:
        return None
    getter = getattr(zones_module, "active_areas", None)
    if getter is None:
        return None
    found = getter(ws)
    return dict(found) if found else None


def _number(value: float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:,.1f}"


@click.command("gaps")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--horizon", type=click.FloatRange(min=0), help="Planning horizon in days "
              "(default: supply.horizon_days in twin.toml).")
@click.option("--level", type=click.Choice(["zone", "community"]), default="community",
              show_default=True, help="Areas to compute gaps for.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write all rows to this CSV file.")
@json_option
def gaps_cmd(workspace: Path, horizon: float | None, level: str, csv_path: Path | None,
             as_json: bool) -> None:
    """Demand, supply, gap and days of cover per area and resource.

    Demand = residents (chronic patients for medicine) × per-capita daily need × horizon, for
    the resources of the area's zone tier; supply = stocks of the facilities serving the area.
    Without zones every community is planned as a control zone. Hospital beds are one
    city-wide row. Residents' open supply and medicine requests (twin events) inside an area
    add to its demand (column requests).
    """
    from twin.supply import workspace_gaps

    ws = Workspace.open(workspace)
    zones = _zones(ws)
    if level == "zone" and not zones:
        raise NoZonesError("no zones yet: draw or propose zones first, or use "
                           "--level community")
    frame = workspace_gaps(ws, level=level, zones=zones, horizon_days=horizon)
    frame = frame.sort_values(["days_of_cover", "area", "resource"]).reset_index(drop=True)
    if csv_path is not None:
        from twin.catalog import neutralise_csv

        with writing(csv_path):
            neutralise_csv(frame).to_csv(csv_path, index=False, encoding="utf-8-sig")
    records = [{k: (None if isinstance(v, float) and math.isinf(v) else v)
                for k, v in row.items()} for row in frame.to_dict(orient="records")]
    shown = ["area", "tier", "resource", "unit", "daily_demand", "demand", "supply", "gap",
             "days_of_cover", "requests"]
    emit(records, as_json, lambda: table(
        [[_number(v) if isinstance(v, float) else v for v in row]
         for row in frame[shown].itertuples(index=False)], shown))


@click.command("dispatch")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--resource", help="Plan only this resource (default: every resource).")
@click.option("--horizon", type=click.FloatRange(min=0), help="Planning horizon in days.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the shipments to this CSV file.")
@click.option("--geojson", "geojson_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the routes as GeoJSON lines (EPSG:4326) for a map.")
@json_option
def dispatch_cmd(workspace: Path, resource: str | None, horizon: float | None,
                 csv_path: Path | None, geojson_path: Path | None, as_json: bool) -> None:
    """Plan shipments from warehouses to the communities with gaps.

    Fills the areas with the fewest days of cover first, then ships as much as possible over
    the shortest routes; no route enters a lockdown zone (road network when there is a roads
    layer).
    """
    from twin.dispatch import dispatch

    ws = Workspace.open(workspace)
    result = dispatch(ws, resource=resource, zones=_zones(ws), horizon_days=horizon)
    rows = result.rows
    if csv_path is not None:
        from twin.catalog import neutralise_csv

        with writing(csv_path):
            neutralise_csv(rows).to_csv(csv_path, index=False, encoding="utf-8-sig")
    if geojson_path is not None:
        with writing(geojson_path):
            geojson_path.write_text(result.routes.to_json(), encoding="utf-8")

    def text() -> str:
        if rows.empty:
            lines = ["nothing to ship: no gap that a warehouse can reach and fill"]
        else:
            lines = [table([[r["from"], r["to"], r["resource"], _number(r["quantity"]),
                             _number(r["distance_m"]), r["via"]]
                            for r in rows.to_dict(orient="records")],
                           ["from", "to", "resource", "quantity", "distance_m", "via"])]
        sinks = result.sinks
        if len(sinks):
            unmet = sinks.groupby("resource")["unmet"].sum()
            lines += [f"unmet after plan: {r} {_number(float(v))}" for r, v in unmet.items()
                      if v > 1e-6]
        lines += [f"note: {n}" for n in result.notes]
        return "\n".join(lines)

    emit(result.to_dict(), as_json, text)


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``twin`` group."""
    cli.add_command(gaps_cmd)
    cli.add_command(dispatch_cmd)
