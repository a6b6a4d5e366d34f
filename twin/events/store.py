"""Events in the workspace database: intake, the transition log, queues, escalation, reports.

An event row holds what was reported and where it is (cell, grid unit, community, street,
district, zone: computed once at intake and kept), and a copy of its current state for
queues. The state itself comes from ``event_steps``, an append-only log (the database refuses
updates and deletes): every change goes through :meth:`Events.act`, which replays the log,
applies the step with :func:`twin.events.machine.apply` (so an illegal step changes nothing),
appends it, refreshes the copy and writes an audit row, all in one transaction.

Times are kept in UTC (``2026-04-30T00:12:00Z``); days in reports are the city's local days.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from twin import db
from twin.errors import AuthError, EventInputError, EventNotFoundError
from twin.events.locate import Locator
from twin.events.machine import (
    ESCALATION_LEVELS,
    OPEN_STATES,
    EventState,
    Step,
    apply,
    replay,
    target_of,
)
from twin.events.rules import PRIORITIES, categories, due_at, escalation_due
from twin.store import Workspace, audit

__all__ = ["Event", "Events", "IntakeResult", "iso", "parse_time"]

#: Columns a normalised intake frame carries (``reported_at`` as UTC timestamps).
INTAKE_COLUMNS = ("ref", "reported_at", "category", "priority", "channel", "description",
                  "address", "building_id", "reporter", "phone", "lng", "lat")
_EARTH_M = 6_371_008.8


def iso(moment: dt.datetime | pd.Timestamp) -> str:
    """A UTC time as the database keeps it: ``2026-04-30T00:12:00Z``."""
    moment = pd.Timestamp(moment)
    if moment.tzinfo is None:
        moment = moment.tz_localize("UTC")
    return moment.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    """A kept UTC time back as an aware datetime."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    return now if now.tzinfo else now.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Event:
    """One event as the database keeps it (personal data: reporter, phone, address)."""

    id: int
    ref: str | None
    channel: str
    category: str
    priority: str
    description: str
    address: str
    building_id: str | None
    reporter: str
    phone: str
    lng: float
    lat: float
    cell: int
    grid_code: str | None
    community_code: str | None
    street_code: str | None
    district_code: str | None
    zone_id: str | None
    zone_tier: str | None
    reported_at: str
    due_at: str
    duplicate_of: int | None
    state: str
    level: str
    unit: str | None
    resolved_at: str | None
    closed_at: str | None
    updated_at: str
    created_by: str

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    def overdue(self, now: dt.datetime | None = None) -> bool:
        """Open and past its due time."""
        return self.open and parse_time(self.due_at) < _now(now)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IntakeResult:
    """What an intake did: events created, linked duplicates, rows already known."""

    created: int
    duplicates: int
    already_known: int
    outside: int
    first_id: int | None
    last_id: int | None
    by_category: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _event(row: sqlite3.Row) -> Event:
    return Event(**{k: row[k] for k in row.keys()})  # noqa: SIM118 - sqlite3.Row


def _metres(lng0: float, lat0: float, lng1: float, lat1: float) -> float:
    """Great-circle distance (m) of two nearby points."""
    p0, p1 = np.radians(lat0), np.radians(lat1)
    a = (np.sin((p1 - p0) / 2) ** 2
         + np.cos(p0) * np.cos(p1) * np.sin(np.radians(lng1 - lng0) / 2) ** 2)
    return float(2 * _EARTH_M * np.arcsin(np.sqrt(a)))


class Events:
    """The events of a workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.config = workspace.config
        self.categories = categories(workspace.config)
        self.tz = zoneinfo.ZoneInfo(workspace.config["city"]["timezone"])
        self._locator: Locator | None = None

    @property
    def locator(self) -> Locator:
        """The locator (boundaries, buildings, zones), built on first use."""
        if self._locator is None:
            self._locator = Locator(self.workspace)
        return self._locator

    def _transaction(self, conn: sqlite3.Connection) -> Any:
        return db.write_transaction(conn, timeout=self.config.busy_timeout_s)

    # -- intake --------------------------------------------------------------------------
    def intake(self, frame: pd.DataFrame, *, actor: str, source: str = "",
               now: dt.datetime | None = None) -> IntakeResult:
        """Create events from a normalised frame (columns :data:`INTAKE_COLUMNS`).

        Each event is located (cell, units, zone), given its due time, linked to an earlier
        open report of the same category from the same phone nearby within the duplicate
        window (then it is a ``duplicate`` and counts once), and assigned to its grid unit
        (an ``assign`` step by ``system``). Rows whose ``ref`` is already known are skipped, so
        importing the same export twice creates nothing. One transaction: all or nothing.
        """
        now = _now(now)
        frame = frame.reset_index(drop=True)
        missing = [c for c in INTAKE_COLUMNS if c not in frame]
        if missing:
            raise EventInputError(f"intake frame lacks {', '.join(missing)}")
        unknown = sorted(set(frame["category"]) - set(self.categories))
        if unknown:
            raise EventInputError(f"unknown categories {unknown}; the categories are "
                                  f"{', '.join(self.categories)} (twin.toml [events.categories])")
        bad_priority = sorted(set(frame["priority"]) - set(PRIORITIES))
        if bad_priority:
            raise EventInputError(f"unknown priorities {bad_priority}; use "
                                  f"{', '.join(PRIORITIES)}")
        located = self.locator.locate(frame["lng"].to_numpy(float), frame["lat"].to_numpy(float))
        reported = pd.to_datetime(frame["reported_at"], utc=True)
        lockdown = (located["zone_tier"] == "lockdown").to_numpy()
        normal = {(c, p): cat.due_hours[p] for c, cat in self.categories.items()
                  for p in PRIORITIES}
        strict = {k: min(v, self.categories[k[0]].lockdown_due_hours) for k, v in
                  normal.items()}
        hours = np.array([(strict if lock else normal)[(c, p)] for c, p, lock in
                          zip(frame["category"], frame["priority"], lockdown, strict=True)],
                         dtype=float)
        due = reported + pd.to_timedelta(hours, unit="h")
        with self.workspace.connect() as conn, self._transaction(conn):
            keep = self._new_refs(conn, frame["ref"])
            frame, located = frame[keep].reset_index(drop=True), located[keep].reset_index(
                drop=True)
            reported, due = reported[keep].reset_index(drop=True), due[keep].reset_index(
                drop=True)
            start = conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0] + 1
            ids = np.arange(start, start + len(frame))
            duplicate_of = self._duplicates(conn, frame, reported, ids)
            stamp = iso(now)
            reported_iso = reported.dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
            due_iso = due.dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
            # Whole columns, not cell by cell: 100,000 rows in well under a second.
            n = len(frame)

            def texts(values: Any) -> list[str | None]:
                return [_text_or_none(v) for v in values]

            def plain(column: str) -> list[str]:
                return ["" if v is None or v != v else str(v) for v in frame[column]]

            units = texts(located["grid_code"])
            states = ["duplicate" if d else ("assigned" if u else "reported")
                      for d, u in zip(duplicate_of, units, strict=True)]
            id_list = [int(i) for i in ids]
            rows = list(zip(
                id_list, texts(frame["ref"]), frame["channel"].tolist(),
                frame["category"].tolist(), frame["priority"].tolist(), plain("description"),
                plain("address"), texts(frame["building_id"]), plain("reporter"),
                plain("phone"), frame["lng"].astype(float).tolist(),
                frame["lat"].astype(float).tolist(),
                [int(c) for c in located["cell"].to_numpy(np.uint64)], units,
                *(texts(located[f"{lv}_code"]) for lv in ("community", "street", "district")),
                texts(located["zone_id"]), texts(located["zone_tier"]), reported_iso, due_iso,
                [int(d) if d else None for d in duplicate_of], states, ["grid"] * n,
                [u if st == "assigned" else None for u, st in zip(units, states, strict=True)],
                [stamp] * n, [actor] * n, strict=True))
            note = "automatic: the grid unit of its place 自动派至所属网格"
            steps = [(i, 1, "assign", "system", at, note, u) for i, at, u, st in
                     zip(id_list, reported_iso, units, states, strict=True) if st == "assigned"]
            conn.executemany(
                "INSERT INTO events (id, ref, channel, category, priority, description, "
                "address, building_id, reporter, phone, lng, lat, cell, grid_code, "
                "community_code, street_code, district_code, zone_id, zone_tier, reported_at, "
                "due_at, duplicate_of, state, level, unit, updated_at, created_by) VALUES "
                "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            conn.executemany("INSERT INTO event_steps (event_id, seq, action, actor, at, note, "
                             "unit) VALUES (?,?,?,?,?,?,?)", steps)
            created = len(frame)
            duplicates = int(sum(1 for d in duplicate_of if d))
            counts = frame["category"].value_counts()
            result = IntakeResult(
                created=created, duplicates=duplicates, already_known=int((~keep).sum()),
                outside=int(located["outside"].sum()),
                first_id=int(ids[0]) if created else None,
                last_id=int(ids[-1]) if created else None,
                by_category={c: int(counts.get(c, 0)) for c in self.categories
                             if counts.get(c, 0)})
            if created or result.already_known:
                audit(conn, actor=actor, action="events.intake", target=source or "events",
                      detail=result.to_dict())
        return result

    @staticmethod
    def _new_refs(conn: sqlite3.Connection, refs: pd.Series) -> np.ndarray:
        """Rows to keep: no ref, or a ref neither in the database nor earlier in the batch."""
        text = refs.map(_text_or_none)
        given = text.dropna()
        known: set[str] = set()
        if len(given):
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS intake_refs (ref TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM intake_refs")
            conn.executemany("INSERT OR IGNORE INTO intake_refs VALUES (?)",
                             ((r,) for r in given.unique()))
            known = {r[0] for r in conn.execute(
                "SELECT e.ref FROM events e JOIN intake_refs i ON i.ref = e.ref")}
        return ~(text.isin(known).to_numpy() | (text.notna() & text.duplicated()).to_numpy())

    def _duplicates(self, conn: sqlite3.Connection, frame: pd.DataFrame,
                    reported: pd.Series, ids: np.ndarray) -> list[int | None]:
        """For each new row, the id of the earlier report it repeats (or None).

        A repeat is the same category from the same phone number within
        ``events.duplicate_window_hours`` after, and ``events.duplicate_radius_m`` of, an
        earlier report that is not itself a duplicate.
        """
        cfg = self.config["events"]
        window = pd.Timedelta(hours=float(cfg["duplicate_window_hours"]))
        radius = float(cfg["duplicate_radius_m"])
        out: list[int | None] = [None] * len(frame)
        phones = frame["phone"].astype(str).str.strip()
        if not len(frame) or not (phones != "").any():
            return out
        earliest = reported.min() - window
        old = pd.read_sql_query(
            "SELECT id, phone, category, lng, lat, reported_at FROM events WHERE phone != '' "
            "AND duplicate_of IS NULL AND reported_at >= ?", conn, params=(iso(earliest),))
        old["reported_at"] = pd.to_datetime(old["reported_at"], utc=True)
        new = pd.DataFrame({"id": ids, "phone": phones, "category": frame["category"],
                            "lng": frame["lng"].astype(float), "lat": frame["lat"].astype(float),
                            "reported_at": reported, "row": np.arange(len(frame))})
        both = pd.concat([old.assign(row=-1), new[new["phone"] != ""]], ignore_index=True)
        both = both.sort_values(["reported_at", "id"], kind="stable")
        sizes = both.groupby(["phone", "category"])["id"].transform("size")
        for _, group in both[sizes > 1].groupby(["phone", "category"], sort=False):
            roots: list[tuple[int, float, float, pd.Timestamp]] = []
            for rec in group.itertuples(index=False):
                match = next((r for r in roots if rec.reported_at - r[3] <= window
                              and _metres(r[1], r[2], rec.lng, rec.lat) <= radius), None)
                if match is not None and rec.row >= 0:
                    out[int(rec.row)] = match[0]
                elif match is None:
                    roots.append((int(rec.id), rec.lng, rec.lat, rec.reported_at))
        return out

    # -- reading ---------------------------------------------------------------------------
    def get(self, event_id: int) -> Event:
        """One event.

        Raises
        ------
        EventNotFoundError
            When there is no such event.
        """
        with self.workspace.connect() as conn:
            return self._get(conn, event_id)

    @staticmethod
    def _get(conn: sqlite3.Connection, event_id: int) -> Event:
        row = conn.execute("SELECT * FROM events WHERE id = ?", (int(event_id),)).fetchone()
        if row is None:
            last = conn.execute("SELECT MAX(id) FROM events").fetchone()[0]
            raise EventNotFoundError(f"no event {event_id}; events are numbered 1 to "
                                     f"{last or 0} (see `twin events list`)")
        return _event(row)

    def steps(self, event_id: int) -> list[Step]:
        """An event's log, oldest first."""
        with self.workspace.connect() as conn:
            self._get(conn, event_id)
            return self._steps(conn, event_id)

    @staticmethod
    def _steps(conn: sqlite3.Connection, event_id: int) -> list[Step]:
        return [Step(action=r["action"], actor=r["actor"], at=r["at"], note=r["note"],
                     unit=r["unit"]) for r in conn.execute(
            "SELECT * FROM event_steps WHERE event_id = ? ORDER BY seq", (int(event_id),))]

    def table(self, *, open_only: bool = True, units: Iterable[str] | None = None,
              category: str | None = None, limit: int | None = None,
              columns: Sequence[str] | None = None,
              states: Iterable[str] | None = None) -> pd.DataFrame:
        """Events as a frame, by due time (duplicates left out), optionally only those held
        by ``units`` (grid unit, street or district codes) or of one category; ``states``
        (e.g. the open ones and ``resolved``) overrides ``open_only``."""
        where, params = ["state != 'duplicate'"], []
        wanted = sorted(states) if states is not None else (
            sorted(OPEN_STATES) if open_only else None)
        if wanted is not None:
            where.append(f"state IN ({','.join('?' * len(wanted))})")
            params.extend(wanted)
        if units is not None:
            units = list(units)
            where.append(f"unit IN ({','.join('?' * len(units))})" if units else "0")
            params.extend(units)
        if category is not None:
            where.append("category = ?")
            params.append(category)
        cols = ", ".join(columns) if columns else "*"
        sql = f"SELECT {cols} FROM events WHERE {' AND '.join(where)} ORDER BY due_at, id"  # noqa: S608 - placeholders and fixed names only
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.workspace.connect() as conn:
            frame = pd.read_sql_query(sql, conn, params=params)
        if "cell" in frame:
            frame["cell"] = frame["cell"].astype(np.uint64)
        return frame

    def search(self, *, ids: Sequence[int] | None = None, category: str | None = None,
               since: dt.datetime | pd.Timestamp | None = None,
               until: dt.datetime | pd.Timestamp | None = None, status: str | None = None,
               limit: int = 1000) -> list[dict[str, Any]]:
        """Events (duplicates included) as dicts, newest first: by id, category, reporting
        time and status (``open``/``closed``); the reporter's name and phone left out."""
        where, params = [], []
        if ids:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            params.extend(int(i) for i in ids)
        if category:
            where.append("category = ?")
            params.append(category)
        if since is not None:
            where.append("reported_at >= ?")
            params.append(iso(since))
        if until is not None:
            where.append("reported_at <= ?")
            params.append(iso(until))
        if status is not None:
            marks = ",".join("?" * len(OPEN_STATES))
            where.append(f"state {'' if status == 'open' else 'NOT '}IN ({marks})")
            params.extend(sorted(OPEN_STATES))
        sql = ("SELECT id, category, description, unit, grid_code, reported_at, updated_at, "  # noqa: S608 - placeholders only
               "due_at, address, building_id, lat, lng, state, duplicate_of FROM events"
               + (f" WHERE {' AND '.join(where)}" if where else "")
               + f" ORDER BY id DESC LIMIT {int(limit)}")
        with self.workspace.connect() as conn:
            return [dict(r) for r in conn.execute(sql, params)]

    # -- acting ----------------------------------------------------------------------------
    def act(self, event_id: int, action: str, *, actor: str, note: str = "",
            unit: str | None = None, now: dt.datetime | None = None,
            only_units: Iterable[str] | None = None) -> Event:
        """Take one step on an event (see :mod:`twin.events.machine`) and return it after.

        ``escalate`` without a unit goes to the event's street, then its district; ``assign``
        without a unit goes to its grid unit. ``only_units`` restricts the step to events held
        by those units (a grid worker's own). Raises EventTransitionError for an illegal step
        and changes nothing.
        """
        moment = _now(now)
        with self.workspace.connect() as conn, self._transaction(conn):
            return self._act(conn, event_id, action, actor=actor, note=note, unit=unit,
                             moment=moment, only_units=only_units)

    def act_many(self, event_ids: Iterable[int], action: str, *, actor: str, note: str = "",
                 unit: str | None = None, now: dt.datetime | None = None) -> list[Event]:
        """The same step on several events, all or none (a bulk action of the dispatcher)."""
        moment = _now(now)
        with self.workspace.connect() as conn, self._transaction(conn):
            return [self._act(conn, i, action, actor=actor, note=note, unit=unit,
                              moment=moment, only_units=None) for i in event_ids]

    def _act(self, conn: sqlite3.Connection, event_id: int, action: str, *, actor: str,
             note: str, unit: str | None, moment: dt.datetime,
             only_units: Iterable[str] | None) -> Event:
        event = self._get(conn, event_id)
        if event.duplicate_of is not None:
            raise EventInputError(f"event {event.id} is a duplicate of event "
                                  f"{event.duplicate_of}; act on {event.duplicate_of}",
                                  zh=f"事件 #{event.id} 是 #{event.duplicate_of} 的重复来电，"
                                     f"请处理 #{event.duplicate_of}")
        if only_units is not None and event.unit not in set(only_units):
            raise AuthError(f"event {event.id} is held by {event.unit or 'nobody'}, not by your "
                            "unit; ask the dispatcher to reassign it",
                            zh=f"事件 #{event.id} 不在您的网格（由 {event.unit or '无人'} 承办），"
                               "请联系调度员改派")
        steps = self._steps(conn, event.id)
        current = replay(steps)
        if action == "escalate" and not unit:
            unit = self._unit_above(event, current)
        if action == "assign" and not unit:
            unit = event.grid_code
        step = Step(action=action, actor=actor, at=iso(moment), note=note.strip(), unit=unit)
        after = apply(current, step)
        due = event.due_at
        if action == "escalate":
            due = iso(escalation_due(moment, self.config))
        elif action == "reopen":
            cat = self.categories.get(event.category, self.categories["other"])
            due = iso(due_at(moment, cat, event.priority,
                             in_lockdown=event.zone_tier == "lockdown"))
        conn.execute("INSERT INTO event_steps (event_id, seq, action, actor, at, note, unit) "
                     "VALUES (?,?,?,?,?,?,?)",
                     (event.id, len(steps) + 1, step.action, step.actor, step.at, step.note,
                      step.unit))
        conn.execute("UPDATE events SET state = ?, level = ?, unit = ?, resolved_at = ?, "
                     "closed_at = ?, due_at = ?, updated_at = ? WHERE id = ?",
                     (after.state, after.level, after.unit, after.resolved_at, after.closed_at,
                      due, step.at, event.id))
        audit(conn, actor=actor, action=f"event.{action}", target=f"event:{event.id}",
              detail={"from": current.state, "to": after.state, "unit": after.unit,
                      "level": after.level, "note": step.note})
        return self._get(conn, event.id)

    @staticmethod
    def _unit_above(event: Event, current: EventState) -> str | None:
        index = ESCALATION_LEVELS.index(current.level)
        if index + 1 >= len(ESCALATION_LEVELS):
            return None  # apply() explains that the district is the top
        return {"street": event.street_code, "district": event.district_code}[
            ESCALATION_LEVELS[index + 1]]

    def escalate_overdue(self, *, now: dt.datetime | None = None,
                         actor: str = "system") -> list[Event]:
        """Escalate every open event past its due time one level (grid → street → district).

        Events already with the district stay there (shown as overdue). One transaction.
        """
        moment = _now(now)
        with self.workspace.connect() as conn, self._transaction(conn):
            rows = conn.execute(
                f"SELECT id, due_at FROM events WHERE state IN "  # noqa: S608 - placeholders and fixed names only
                f"({','.join('?' * len(OPEN_STATES))}) AND due_at < ? AND level != 'district' "
                "ORDER BY due_at, id", (*sorted(OPEN_STATES), iso(moment))).fetchall()
            return [self._act(conn, r["id"], "escalate", actor=actor,
                              note=f"overdue: due {r['due_at']} 超时自动上报", unit=None,
                              moment=moment, only_units=None) for r in rows]

    # -- summaries -------------------------------------------------------------------------
    def local_day_bounds(self, day: dt.date) -> tuple[str, str]:
        """The UTC bounds (``[start, end)``) of a local day of the city."""
        start = dt.datetime.combine(day, dt.time(), tzinfo=self.tz)
        return iso(start), iso(start + dt.timedelta(days=1))

    def stats(self, *, now: dt.datetime | None = None) -> dict[str, Any]:
        """The cockpit's figures: open, overdue, closed today, median hours to close today."""
        moment = _now(now)
        today = moment.astimezone(self.tz).date()
        start, end = self.local_day_bounds(today)
        open_states = sorted(OPEN_STATES)
        marks = ",".join("?" * len(open_states))
        with self.workspace.connect() as conn:
            open_n, overdue_n = conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(due_at < ?), 0) FROM events WHERE state IN "  # noqa: S608 - placeholders and fixed names only
                f"({marks})", (iso(moment), *open_states)).fetchone()
            closed = conn.execute(
                "SELECT reported_at, closed_at FROM events WHERE closed_at >= ? AND "
                "closed_at < ? AND state IN ('closed', 'confirmed')", (start, end)).fetchall()
            reported_today = conn.execute(
                "SELECT COUNT(*) FROM events WHERE reported_at >= ? AND reported_at < ? AND "
                "state != 'duplicate'", (start, end)).fetchone()[0]
        hours = [(parse_time(c) - parse_time(r)).total_seconds() / 3600 for r, c in closed]
        return {"open": int(open_n), "overdue": int(overdue_n), "closed_today": len(hours),
                "reported_today": int(reported_today),
                "median_hours_to_close": float(np.median(hours)) if hours else None,
                "day": today.isoformat()}

    def report(self, *, by: str, day: dt.date, now: dt.datetime | None = None) -> pd.DataFrame:
        """Events of one local day per grid unit, community or category.

        Columns: the key (``code``/``name`` or ``category``/``label``), ``reported`` (new
        events that day, duplicates left out), ``duplicates``, ``closed`` (closed or
        confirmed that day), ``open`` and ``overdue`` (at the end of the day, or now if
        earlier), ``median_hours_to_close`` (of those closed that day).
        """
        keys = {"grid": "grid_code", "community": "community_code", "category": "category"}
        if by not in keys:
            raise EventInputError(f"report by {by!r}? use grid, community or category")
        key = keys[by]
        start, end = self.local_day_bounds(day)
        cut = min(end, iso(_now(now)))
        with self.workspace.connect() as conn:
            frame = pd.read_sql_query(
                f"SELECT id, {key} AS key, reported_at, due_at, duplicate_of FROM events "  # noqa: S608 - placeholders and fixed names only
                "WHERE reported_at < ?", conn, params=(end,))
            closed_steps = pd.read_sql_query(
                "SELECT event_id, MIN(at) AS at FROM event_steps WHERE action IN ('close', "
                "'confirm') AND at >= ? AND at < ? GROUP BY event_id", conn, params=(start, end))
            last = pd.read_sql_query(
                "SELECT s.event_id, s.action FROM event_steps s JOIN (SELECT event_id, "
                "MAX(seq) AS seq FROM event_steps WHERE at < ? GROUP BY event_id) m ON "
                "m.event_id = s.event_id AND m.seq = s.seq", conn, params=(cut,))
        frame["key"] = frame["key"].fillna("")
        day_new = (frame["reported_at"] >= start) & (frame["reported_at"] < end)
        dup = frame["duplicate_of"].notna()
        frame["reported"] = (day_new & ~dup).astype(int)
        frame["duplicates"] = (day_new & dup).astype(int)
        # The state at the cut: where the last step before it led (no step yet: reported).
        action = frame["id"].map(last.set_index("event_id")["action"])
        state_at = action.map(lambda a: target_of(a) if isinstance(a, str) else "reported")
        open_at = state_at.isin(OPEN_STATES) & ~dup & (frame["reported_at"] < cut)
        frame["open"] = open_at.astype(int)
        frame["overdue"] = (open_at & (frame["due_at"] < cut)).astype(int)
        id_frame = frame
        closed = closed_steps.merge(id_frame[["id", "key", "reported_at"]], left_on="event_id",
                                    right_on="id")
        closed["hours"] = [(parse_time(a) - parse_time(r)).total_seconds() / 3600
                           for a, r in zip(closed["at"], closed["reported_at"], strict=True)]
        counts = frame.groupby("key")[["reported", "duplicates", "open", "overdue"]].sum()
        counts = counts.join(closed.groupby("key")["hours"].agg(["size", "median"]).rename(
            columns={"size": "closed", "median": "median_hours_to_close"}), how="outer")
        counts[["reported", "duplicates", "open", "overdue", "closed"]] = counts[
            ["reported", "duplicates", "open", "overdue", "closed"]].fillna(0).astype(int)
        counts = counts.reset_index().rename(columns={"key": "code" if by != "category"
                                                      else "category"})
        if by == "category":
            counts["label"] = counts["category"].map(
                lambda c: self.categories[c].label if c in self.categories else c)
        else:
            names = self.locator.unit_names("grid" if by == "grid" and self.locator.has_grid
                                            else "community")
            counts["name"] = counts["code"].map(names).fillna("")
        first = ["category", "label"] if by == "category" else ["code", "name"]
        order = [*first, "reported", "duplicates", "closed", "open", "overdue",
                 "median_hours_to_close"]
        counts = counts[order]
        active = counts[["reported", "duplicates", "closed", "open"]].sum(axis=1) > 0
        return counts[active].sort_values(first[0], ignore_index=True)

    def open_counts(self, by: str = "grid_code") -> pd.Series:
        """Open events (duplicates left out) per grid unit (``by``: grid_code,
        community_code, street_code, district_code or category)."""
        if by not in ("grid_code", "community_code", "street_code", "district_code",
                      "category"):
            raise EventInputError(f"count by {by!r}? use grid_code, community_code, "
                                  "street_code, district_code or category")
        marks = ",".join("?" * len(OPEN_STATES))
        with self.workspace.connect() as conn:
            rows = conn.execute(f"SELECT {by}, COUNT(*) FROM events WHERE state IN ({marks}) "  # noqa: S608 - a checked column name
                                f"AND {by} IS NOT NULL GROUP BY {by}",
                                sorted(OPEN_STATES)).fetchall()
        return pd.Series({k: int(n) for k, n in rows}, dtype="int64")

    def open_need_cells(self) -> pd.DataFrame:
        """Open requests whose category carries a need: ``cell``, ``need``, ``quantity``
        (one row each; duplicates left out)."""
        needs = {c: (cat.need, cat.need_per_request) for c, cat in self.categories.items()
                 if cat.need}
        if not needs:
            return pd.DataFrame({"cell": np.empty(0, np.uint64), "need": [], "quantity": []})
        marks = ",".join("?" * len(OPEN_STATES))
        with self.workspace.connect() as conn:
            frame = pd.read_sql_query(
                f"SELECT cell, category FROM events WHERE state IN ({marks}) AND category IN "  # noqa: S608 - placeholders only
                f"({','.join('?' * len(needs))})", conn,
                params=(*sorted(OPEN_STATES), *needs))
        return pd.DataFrame({"cell": frame["cell"].astype(np.uint64).to_numpy(),
                             "need": frame["category"].map(lambda c: needs[c][0]).to_numpy(),
                             "quantity": frame["category"].map(
                                 lambda c: needs[c][1]).to_numpy(float)})

    def open_needs(self) -> pd.DataFrame:
        """Open supply and medicine requests as demand: per zone and need, the quantity
        (``need_per_request`` of each open request's category) and the count."""
        needs = {c: (cat.need, cat.need_per_request) for c, cat in self.categories.items()
                 if cat.need}
        if not needs:
            return pd.DataFrame(columns=["zone_id", "need", "requests", "quantity"])
        marks = ",".join("?" * len(OPEN_STATES))
        with self.workspace.connect() as conn:
            frame = pd.read_sql_query(
                f"SELECT zone_id, category, COUNT(*) AS requests FROM events WHERE state IN "  # noqa: S608 - placeholders and fixed names only
                f"({marks}) AND zone_id IS NOT NULL AND category IN "
                f"({','.join('?' * len(needs))}) GROUP BY zone_id, category", conn,
                params=(*sorted(OPEN_STATES), *needs))
        frame["need"] = frame["category"].map(lambda c: needs[c][0])
        frame["quantity"] = frame["requests"] * frame["category"].map(lambda c: needs[c][1])
        return (frame.groupby(["zone_id", "need"], as_index=False)[["requests", "quantity"]]
                .sum())


def _text_or_none(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None
