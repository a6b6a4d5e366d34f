"""The demo city's events: its grid staff, its day of hotline calls moved to now, and a few
of them already taken through the loop (so that the queue, the overdue count and the time to
close show something on a fresh demo)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from twin.store import Workspace

__all__ = ["DEMO_ACCOUNTS", "prepare_events"]

#: The demo's event accounts: login -> role (the grid worker is on the staff roster).
DEMO_ACCOUNTS = {"dispatch": "dispatcher", "grid": "grid_worker"}


def _accounts(ws: Workspace, author: str, password: str | None) -> dict[str, str | None]:
    """Create the demo's dispatcher and grid worker; login -> password (None if it existed)."""
    import secrets

    from twin.errors import UserExistsError
    from twin.users import Users

    users = Users(ws)
    out: dict[str, str | None] = {}
    for name, role in DEMO_ACCOUNTS.items():
        pw = password or secrets.token_urlsafe(9)
        try:
            users.add(name, role, pw, actor=author)
            out[name] = pw
        except UserExistsError:
            out[name] = None
    return out


def prepare_events(ws: Workspace, source: Path, manifest: dict[str, Any], *,
                   now: dt.datetime | None = None, author: str = "demo",
                   password: str | None = None) -> dict[str, Any]:
    """Import the demo's staff and hotline records (once), close a few events, escalate the
    overdue ones, and add the dispatcher and grid worker accounts; returns the counts and
    the accounts (passwords shown once). Imports nothing when the workspace has events."""
    from twin.events.intake import read_hotline_csv
    from twin.events.staff import import_staff, read_staff_csv
    from twin.events.store import Events

    records = {r["kind"]: r for r in manifest.get("records", [])}
    events = Events(ws)
    now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    out: dict[str, Any] = {"staff": 0, "events": 0, "closed": 0, "escalated": 0,
                           "accounts": _accounts(ws, author, password)}
    with ws.connect() as conn:
        if conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]:
            return out
    if "grid_staff" in records:
        roster = read_staff_csv(source / records["grid_staff"]["path"], events.locator)
        out["staff"] = import_staff(ws, roster, actor=author, source="grid_staff.csv")
    if "events" not in records:
        return out
    parsed = read_hotline_csv(source / records["events"]["path"], events.locator,
                              events.categories, timezone=ws.config["city"]["timezone"],
                              now=dt.datetime.max.replace(tzinfo=dt.UTC))
    frame = parsed.frame
    # The export is of the demo's last day; its calls are moved to the last twelve hours.
    offset = (now - frame["reported_at"].max()).floor("min")
    frame = frame.assign(reported_at=frame["reported_at"] + offset)
    result = events.intake(frame, actor=author, source="hotline.csv", now=now)
    out["events"] = result.created
    # The earliest few were handled: accepted, resolved, confirmed with the resident.
    table = events.table(columns=["id", "reported_at", "due_at"])
    table = table.sort_values("reported_at").head(max(3, len(table) // 10))
    for row in table.itertuples():
        start = dt.datetime.fromisoformat(row.reported_at.replace("Z", "+00:00"))
        steps = [("accept", 0.3, ""), ("resolve", 1.5, "已上门处置 handled at the door"),
                 ("confirm", 2.0, "")]
        for action, hours, note in steps:
            at = min(start + dt.timedelta(hours=hours), now)
            events.act(int(row.id), action, actor="grid", note=note, now=at)
        out["closed"] += 1
    out["escalated"] = len(events.escalate_overdue(now=now))
    return out
