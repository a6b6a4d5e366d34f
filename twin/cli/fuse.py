"""``twin fuse`` and ``twin facts``: build and read the per-cell city facts."""

from __future__ import annotations

from pathlib import Path

import click

from twin.cli._common import emit, json_option, step_progress, table, writing
from twin.store import Workspace

__all__ = ["register"]


@click.command("fuse")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Rebuild everything even if no layer changed.")
@json_option
def fuse_cmd(workspace: Path, force: bool, as_json: bool) -> None:
    """Fuse the workspace's layers into per-H3-cell facts and their rollups.

    Residents (from the population raster, conserving its total), age groups, buildings,
    facilities, stocks and a daily case series per cell, rolled up to coarser resolutions and
    to communities, streets and districts. Does nothing when no layer changed since the last
    fuse; a new version of only the cases layer rebuilds only the case series.
    """
    from twin.fuse import fuse

    ws = Workspace.open(workspace)
    with step_progress("fuse", enabled=not as_json) as on_step:
        result = fuse(ws, force=force, on_step=on_step)
    summary = result.summary
    totals = summary.get("totals", {})

    def text() -> str:
        if result.status == "unchanged":
            return f"facts {result.facts_id} are up to date with every layer; nothing to do"
        lines = [f"{result.status}: facts {result.facts_id} · {summary.get('cells', 0):,} cells "
                 f"at resolution {summary.get('base_resolution')} · "
                 f"{result.seconds.get('total', 0):.2f} s",
                 f"  residents 常住人口 {totals.get('residents', 0):,.0f} · buildings 建筑 "
                 f"{totals.get('buildings_n', 0):,.0f} · cases 病例 {summary.get('cases', 0):,}"]
        notes = {k: v for k, v in summary.items() if k in (
            "cells_outside_boundaries", "stock_rows_unmatched", "buildings_floors_defaulted",
            "cases_unplaced", "group_communities_unknown") and v}
        lines += [f"  note: {k.replace('_', ' ')}: {v}" for k, v in notes.items()]
        return "\n".join(lines)

    emit(result.to_dict(), as_json, text)


@click.command("facts")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--level", default="district", show_default=True,
              help="H3 resolution (10, 9, 8, 7) or admin level (community, street, district).")
@click.option("--date", "day", help="One day of new cases (YYYY-MM-DD).")
@click.option("--start", help="First day of the case window (YYYY-MM-DD).")
@click.option("--end", help="Last day of the case window (YYYY-MM-DD).")
@click.option("--columns", help="Comma-separated static columns (default: a summary set).")
@click.option("--top", type=click.IntRange(min=1), help="Only the N rows with most residents.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write all rows to this CSV file.")
@json_option
def facts_cmd(workspace: Path, level: str, day: str | None, start: str | None,
              end: str | None, columns: str | None, top: int | None, csv_path: Path | None,
              as_json: bool) -> None:
    """Read fused facts for a level and a window of report dates.

    One row per cell or admin unit: the static facts asked for plus new cases in the window
    (all dates when no window is given), by status.
    """
    from twin.dates import parse_day
    from twin.errors import DateError
    from twin.facts import Facts

    if day and (start or end):
        raise click.UsageError("give --date or --start/--end, not both")
    first, last = (parse_day(v, o) if v else None
                   for v, o in ((day or start, "--date" if day else "--start"),
                                (day or end, "--date" if day else "--end")))
    if first and last and first > last:
        raise DateError(f"--start {first} is after --end {last}; give the earlier day as "
                        "--start")
    facts = Facts(Workspace.open(workspace))
    wanted = [c.strip() for c in columns.split(",")] if columns else [
        "residents", "age_65_plus", "buildings_n", "floor_m2"]
    wanted = [c for c in wanted if columns or c in facts.columns(level)]
    frame = facts.read(level, columns=wanted, start=first, end=last)
    frame = frame.sort_values("residents" if "residents" in frame else frame.columns[0],
                              ascending=False)
    if "cell" in frame:
        from twin.grid import cells_to_strings

        frame["cell"] = cells_to_strings(frame["cell"].to_numpy())
    if csv_path is not None:
        from twin.catalog import neutralise_csv

        with writing(csv_path):
            neutralise_csv(frame).to_csv(csv_path, index=False, encoding="utf-8-sig")
    shown = frame.head(top) if top else frame
    emit(shown.to_dict(orient="records"), as_json, lambda: table(
        [[f"{v:,.0f}" if isinstance(v, float) else v for v in row]
         for row in shown.itertuples(index=False)], list(shown.columns)))


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``twin`` group."""
    cli.add_command(fuse_cmd)
    cli.add_command(facts_cmd)
