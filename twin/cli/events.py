"""``twin events``: residents' requests on the grid — import, act, escalate, report.

Every step is written to the event's append-only log and to the audit log, with who and when.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from twin.cli._common import WorkspaceFirstGroup, emit, json_option, table
from twin.store import Workspace, default_author

__all__ = ["register", "shift_to_now"]

_actor_option = click.option(
    "--actor", default=default_author, show_default="your login name",
    help="Who does it, for the event's log and the audit log.")


def shift_to_now(frame, now: dt.datetime):
    """The frame with every time moved so that its latest report is ``now`` (drills, demo)."""
    import pandas as pd

    if not len(frame):
        return frame
    offset = (pd.Timestamp(now) - frame["reported_at"].max()).floor("min")
    return frame.assign(reported_at=frame["reported_at"] + offset)


@click.group("events", cls=WorkspaceFirstGroup)
def events_cmd() -> None:
    """Residents' requests (supply, medicine, fever, assistance, breaches, deliveries): each
    located, assigned to its grid unit, timed, escalated when overdue, resolved and confirmed.
    """


@events_cmd.command("import")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--coords", type=click.Choice(["wgs84", "gcj02", "bd09"]), default="wgs84",
              show_default=True, help="Coordinate system of the file's longitude/latitude.")
@click.option("--skip-bad", is_flag=True,
              help="Import the usable rows and list the others (default: refuse the file if "
                   "any row is unusable, importing nothing).")
@click.option("--shift-to-now", "shift_to_now_", is_flag=True,
              help="Move every time so that the latest report is now (for drills and the "
                   "demo's export of an earlier day).")
@_actor_option
@json_option
def import_cmd(workspace: Path, file: Path, coords: str, skip_bad: bool, shift_to_now_: bool,
               actor: str, as_json: bool) -> None:
    """Import a hotline export (CSV, GBK or UTF-8) as events; rows already imported (same
    ticket number) are skipped, repeated calls are linked as duplicates."""
    from twin.errors import EventInputError
    from twin.events.intake import read_hotline_csv
    from twin.events.store import Events

    ws = Workspace.open(workspace)
    events = Events(ws)
    now = dt.datetime.now(dt.UTC)
    parsed = read_hotline_csv(file, events.locator, events.categories, coords=coords,
                              timezone=ws.config["city"]["timezone"], now=now,
                              max_bytes=int(ws.config["ingest"]["max_file_mb"] * 1e6))
    if parsed.problems and not skip_bad:
        shown = "; ".join(f"line {line}: {why}" for line, why in parsed.problems[:10])
        more = f" (and {len(parsed.problems) - 10} more)" if len(parsed.problems) > 10 else ""
        raise EventInputError(f"{file.name}: {len(parsed.problems)} of {parsed.rows} rows are "
                              f"unusable, nothing imported: {shown}{more}. Fix them, or import "
                              "the rest with --skip-bad")
    frame = shift_to_now(parsed.frame, now) if shift_to_now_ else parsed.frame
    result = events.intake(frame, actor=actor, source=file.name, now=now)
    data = {**result.to_dict(), "rows": parsed.rows, "encoding": parsed.encoding,
            "skipped": [{"line": line, "reason": why} for line, why in parsed.problems],
            "unmatched_categories": parsed.unmatched_categories}

    def text() -> str:
        lines = [f"{file.name} ({parsed.encoding}, {parsed.rows} rows): {result.created} events "
                 f"created 新建, {result.duplicates} of them repeated calls linked as duplicates "
                 f"重复, {result.already_known} already imported 已导入"]
        if result.first_id is not None:
            lines.append(f"events {result.first_id}-{result.last_id}; by category: "
                         + ", ".join(f"{events.categories[c].zh} {c} {n}"
                                     for c, n in result.by_category.items()))
        if result.outside:
            lines.append(f"{result.outside} outside every grid unit went to the nearest unit")
        if parsed.unmatched_categories:
            lines.append("categories not recognised, counted as other 其他: " + ", ".join(
                f"{k!r} ×{v}" for k, v in parsed.unmatched_categories.items()))
        for line, why in parsed.problems[:20]:
            lines.append(f"skipped line {line}: {why}")
        return "\n".join(lines)

    emit(data, as_json, text)


@events_cmd.command("staff")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("file", type=click.Path(path_type=Path), required=False)
@_actor_option
@json_option
def staff_cmd(workspace: Path, file: Path | None, actor: str, as_json: bool) -> None:
    """Replace the grid staff roster with FILE (CSV: 网格编码, 姓名, 联系电话, 角色, 登录账号),
    or list it without FILE."""
    from twin.events.locate import Locator
    from twin.events.staff import import_staff, read_staff_csv, staff

    ws = Workspace.open(workspace)
    if file is not None:
        roster = read_staff_csv(file, Locator(ws))
        n = import_staff(ws, roster, actor=actor, source=file.name)
        emit({"rows": n, "units": int(roster["unit"].nunique())}, as_json,
             f"grid staff 网格人员: {n} people in {roster['unit'].nunique()} grid units")
        return
    frame = staff(ws)
    emit(frame.to_dict("records"), as_json, lambda: table(
        frame.fillna("").values.tolist(), ["网格 unit", "姓名 name", "电话 phone", "角色 role",
                                           "账号 user"]) if len(frame) else
        "no grid staff yet; import the roster with `twin events WS staff FILE`")


def _event_rows(frame) -> list[list[str]]:
    return [[r.id, r.category, r.priority, r.state, r.level, r.unit or "-", r.due_at,
             (r.address or "")[:24]] for r in frame.itertuples()]


@events_cmd.command("list")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--all", "everything", is_flag=True, help="Closed events too.")
@click.option("--unit", help="Only the events held by this grid unit, street or district.")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
def list_cmd(workspace: Path, everything: bool, unit: str | None, limit: int,
             as_json: bool) -> None:
    """Open events by due time (the dispatcher's queue)."""
    from twin.events.store import Events

    frame = Events(Workspace.open(workspace)).table(
        open_only=not everything, units=[unit] if unit else None, limit=limit)
    emit(frame.to_dict("records"), as_json, lambda: table(_event_rows(frame), [
        "id", "category", "priority", "state", "level", "unit", "due_at", "address"])
        if len(frame) else "no open events 无待办事件")


@events_cmd.command("show")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("event_id", type=int)
@json_option
def show_cmd(workspace: Path, event_id: int, as_json: bool) -> None:
    """One event with its log."""
    from twin.events.store import Events

    events = Events(Workspace.open(workspace))
    event, steps = events.get(event_id), events.steps(event_id)
    data = {**event.to_dict(), "steps": [s.__dict__ for s in steps]}
    emit(data, as_json, lambda: "\n".join([
        f"event {event.id} ({event.ref or '-'}): {events.categories[event.category].label}, "
        f"{event.priority}, {event.state} at {event.level} {event.unit or '-'}, due "
        f"{event.due_at}",
        f"  {event.address} · grid {event.grid_code} · zone {event.zone_id or '-'}",
        f"  {event.description}",
        *[f"  {s.at}  {s.action:<9} {s.actor:<12} {s.unit or '':<16} {s.note}" for s in steps],
    ]))


@events_cmd.command("act")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("event_ids", type=int, nargs=-1, required=True)
@click.option("--action", "action", required=True,
              type=click.Choice(["assign", "accept", "start", "resolve", "confirm", "close",
                                 "reject", "reopen", "escalate"]))
@click.option("--note", default="", help="Why (required for resolve, reject, reopen, "
                                         "escalate).")
@click.option("--unit", help="The unit it goes to (assign; escalate goes up by itself).")
@_actor_option
@json_option
def act_cmd(workspace: Path, event_ids: tuple[int, ...], action: str, note: str,
            unit: str | None, actor: str, as_json: bool) -> None:
    """Take one step on one or more events (all or none)."""
    from twin.events.store import Events

    done = Events(Workspace.open(workspace)).act_many(event_ids, action, actor=actor,
                                                      note=note, unit=unit)
    emit([e.to_dict() for e in done], as_json, "\n".join(
        f"event {e.id}: {e.state} at {e.level} {e.unit or '-'}, due {e.due_at}" for e in done))


@events_cmd.command("escalate")
@click.argument("workspace", type=click.Path(path_type=Path))
@_actor_option
@json_option
def escalate_cmd(workspace: Path, actor: str, as_json: bool) -> None:
    """Escalate every overdue open event one level now (the server does it every
    events.escalation_check_minutes)."""
    from twin.events.store import Events

    done = Events(Workspace.open(workspace)).escalate_overdue(actor=actor)
    emit([e.to_dict() for e in done], as_json,
         f"{len(done)} overdue events escalated 超时升级" + "".join(
             f"\n  event {e.id} → {e.level} {e.unit}" for e in done[:20]))


@events_cmd.command("report")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--by", type=click.Choice(["grid", "community", "category"]), default="grid",
              show_default=True)
@click.option("--date", "day", help="Local day (YYYY-MM-DD); default today.")
@json_option
def report_cmd(workspace: Path, by: str, day: str | None, as_json: bool) -> None:
    """Events of one day per grid unit, community or category: reported, duplicates, closed,
    open and overdue at the end of the day, median hours to close."""
    from twin.dates import parse_day
    from twin.events.store import Events

    events = Events(Workspace.open(workspace))
    date = parse_day(day, "--date") if day else dt.datetime.now(events.tz).date()
    frame = events.report(by=by, day=date)
    frame["median_hours_to_close"] = frame["median_hours_to_close"].round(2)
    emit(frame.to_dict("records"), as_json, lambda: (
        f"events on {date} by {by}\n" + table(frame.fillna("-").values.tolist(),
                                             list(frame.columns)))
         if len(frame) else f"no events on {date}")


@events_cmd.command("stats")
@click.argument("workspace", type=click.Path(path_type=Path))
@json_option
def stats_cmd(workspace: Path, as_json: bool) -> None:
    """Open and overdue events now, closed today and the median hours to close."""
    from twin.events.store import Events

    s = Events(Workspace.open(workspace)).stats()
    median = "-" if s["median_hours_to_close"] is None else f"{s['median_hours_to_close']:.1f} h"
    emit(s, as_json, f"open 待办 {s['open']} · overdue 超时 {s['overdue']} · closed today 今日办结 "
         f"{s['closed_today']} · median to close 办结中位时长 {median}")


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``twin`` group."""
    cli.add_command(events_cmd)
