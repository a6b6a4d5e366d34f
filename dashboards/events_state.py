"""State of the dispatchers' ``/events`` page and the grid staff's ``/tasks`` page (no Panel).

Both read and change events through :class:`twin.events.store.Events` only; the pages are
thin views over these classes. Every error a user can cause (an illegal step, a missing
note, a request without a place) becomes ``message`` text, never an exception in the page.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pandas as pd
import param

from twin.errors import AuthError, TwinError
from twin.events.machine import ACTION_LABELS, OPEN_STATES, STATE_LABELS, legal_actions
from twin.events.rules import PRIORITY_LABELS
from twin.events.staff import units_of_user
from twin.events.store import Events
from twin.users import User, require

__all__ = ["ACTION_LABELS", "AGES", "EventsState", "TasksState", "by_age", "queue_frame",
           "shared_events"]

_LOCATOR_TTL_S = 60.0
_shared: dict[str, tuple[float, Events]] = {}
_shared_lock = threading.Lock()


def shared_events(workspace: Any) -> Events:
    """The process's :class:`Events` of a workspace, its locator (boundaries, buildings,
    zones) built once a minute at most and shared by every page and request."""
    key = str(workspace.root)
    with _shared_lock:
        hit = _shared.get(key)
        if hit is not None and time.monotonic() - hit[0] < _LOCATOR_TTL_S:
            return hit[1]
    events = Events(workspace)
    events.locator  # noqa: B018 - built here, once
    with _shared_lock:
        _shared[key] = (time.monotonic(), events)
    return events

_LEVELS = {"grid": ("网格", "grid unit"), "street": ("街道", "street"),
           "district": ("区", "district")}
#: Columns the queue reads from the database (never the reporter's name or phone there).
_QUEUE_COLUMNS = ["id", "category", "priority", "state", "level", "unit", "grid_code",
                  "due_at", "reported_at", "address", "description", "lng", "lat", "zone_tier"]


def _pick(table: dict[str, tuple[str, str]], key: str, lang: str) -> str:
    zh, en = table.get(key, (key, key))
    return zh if lang == "zh" else en


def _minutes(due: pd.Series, now: pd.Timestamp) -> pd.Series:
    return ((pd.to_datetime(due, utc=True) - now).dt.total_seconds() // 60).astype(int)


def _left(minutes: int, lang: str) -> str:
    span = (f"{abs(minutes) // 60}h{abs(minutes) % 60:02d}" if abs(minutes) >= 60
            else f"{abs(minutes)}min")
    if minutes < 0:
        return f"超时 {span}" if lang == "zh" else f"overdue {span}"
    return f"剩 {span}" if lang == "zh" else f"{span} left"


def _labels(table: dict[str, tuple[str, str]], lang: str) -> dict[str, str]:
    word = 0 if lang == "zh" else 1
    return {key: names[word] for key, names in table.items()}


def _state_labels(lang: str) -> dict[str, str]:
    return _labels({k: (v, k.replace("_", " ")) for k, v in STATE_LABELS.items()}, lang)


#: The age filter of the dispatchers' page: code -> (Chinese, English).
AGES: dict[str, tuple[str, str]] = {
    "": ("全部时长", "any age"), "overdue": ("仅超时", "overdue only"),
    "2h": ("报告超过2小时", "reported over 2 h ago"),
    "24h": ("报告超过24小时", "reported over 24 h ago"),
}


def by_age(frame: pd.DataFrame, age: str, now: pd.Timestamp) -> pd.DataFrame:
    """The rows of ``frame`` (``due_at``, ``reported_at``) of an age (see :data:`AGES`)."""
    if not age or frame.empty:
        return frame
    if age == "overdue":
        keep = pd.to_datetime(frame["due_at"], utc=True) < now
    else:
        hours = {"2h": 2, "24h": 24}[age]
        keep = pd.to_datetime(frame["reported_at"], utc=True) <= now - pd.Timedelta(hours=hours)
    return frame[keep.to_numpy()].reset_index(drop=True)


def queue_frame(frame: pd.DataFrame, events: Events, lang: str, *,
                names: dict[str, str], now: pd.Timestamp) -> pd.DataFrame:
    """The queue as people read it: labels in ``lang``, time left, the holder's name."""
    if frame.empty:
        return pd.DataFrame(columns=["id", "category", "priority", "state", "holder", "left",
                                     "address", "description"])
    # Lookups over plain lists: per-row work on Arrow-backed strings is ten times slower.
    categories = _labels({c.code: (c.zh, c.en) for c in events.categories.values()}, lang)
    priorities, states = _labels(PRIORITY_LABELS, lang), _state_labels(lang)
    levels = _labels(_LEVELS, lang)
    minutes = _minutes(frame["due_at"], now).tolist()
    units = frame["unit"].tolist()
    return pd.DataFrame({
        "id": frame["id"].to_numpy(),
        "category": [categories.get(c, c) for c in frame["category"].tolist()],
        "priority": [priorities.get(p, p) for p in frame["priority"].tolist()],
        "state": [states.get(v, v) for v in frame["state"].tolist()],
        "holder": [f"{levels.get(lv, lv)} {names.get(u, u or '')}".strip()
                   for lv, u in zip(frame["level"].tolist(), units, strict=True)],
        "left": [_left(int(m), lang) for m in minutes],
        "address": frame["address"].astype(str).to_numpy(),
        "description": frame["description"].astype(str).str.slice(0, 60).to_numpy(),
    })


class _Base(param.Parameterized):
    lang = param.Selector(default="zh", objects=["zh", "en"], constant=True)
    queue = param.DataFrame(default=None, allow_None=True, doc="The open events, by due time.")
    stats = param.Dict(default={})
    message = param.String(default="")
    version = param.Integer(default=0, doc="Bumped whenever the events changed.")

    def __init__(self, workspace: Any, *, user: User, lang: str = "zh") -> None:
        super().__init__(lang=lang)
        self.workspace = workspace
        self.user = user
        self.events = shared_events(workspace)
        locator = self.events.locator
        self.names = {**locator.unit_names("street"), **locator.unit_names("district"),
                      **locator.unit_names("community"), **locator.unit_names("grid")}
        self.raw = pd.DataFrame(columns=_QUEUE_COLUMNS)

    def _say(self, zh: str, en: str) -> None:
        self.message = zh if self.lang == "zh" else en

    def _query(self) -> pd.DataFrame:  # pragma: no cover - overridden
        raise NotImplementedError

    def refresh(self) -> None:
        """Read the queue and the figures again (bumps ``version`` when they changed)."""
        raw = self._query()
        now = pd.Timestamp.now(tz="UTC")
        changed = (len(raw) != len(self.raw) or not raw[["id", "state", "unit", "due_at"]]
                   .reset_index(drop=True).equals(self.raw[["id", "state", "unit", "due_at"]]
                                                  .reset_index(drop=True)))
        self.raw = raw
        self.stats = self.events.stats()
        if changed or self.queue is None:
            self.queue = queue_frame(raw, self.events, self.lang, names=self.names, now=now)
            self.version += 1

    def _act(self, ids: list[int], action: str, *, note: str = "", unit: str | None = None,
             only_units: list[str] | None = None) -> bool:
        if not ids:
            self._say("请先在列表中选择事件", "choose events in the list first")
            return False
        try:
            if only_units is None:
                self.events.act_many(ids, action, actor=self.user.name, note=note, unit=unit)
            else:
                for i in ids:
                    self.events.act(i, action, actor=self.user.name, note=note,
                                    only_units=only_units)
        except (TwinError, AuthError) as exc:
            self._say(f"未执行：{exc.text('zh')}", f"not done: {exc}")
            return False
        names = ", ".join(f"#{i}" for i in ids[:10]) + (" …" if len(ids) > 10 else "")
        self._say(f"{_pick(ACTION_LABELS, action, 'zh')}：{names}",
                  f"{_pick(ACTION_LABELS, action, 'en')}: {names}")
        self.refresh()
        return True


class EventsState(_Base):
    """The dispatcher's view: every open event, the queue by due time, actions on many."""

    category = param.String(default="", doc="Only this category ('' for all).")
    age = param.Selector(default="", objects=list(AGES), doc="Only events this old ('': all; "
                         "'overdue': past their due time; '2h', '24h': reported that long ago).")

    def __init__(self, workspace: Any, *, user: User, lang: str = "zh") -> None:
        require(user, "dispatch_events")
        super().__init__(workspace, user=user, lang=lang)
        self.refresh()

    def _query(self) -> pd.DataFrame:
        # Resolved events stay in the queue until the resident confirms (or they are closed).
        frame = self.events.table(category=self.category or None, columns=_QUEUE_COLUMNS,
                                  states={*OPEN_STATES, "resolved"})
        return by_age(frame, self.age, pd.Timestamp.now(tz="UTC"))

    def units(self) -> dict[str, str]:
        """Grid units to assign to: code -> name."""
        locator = self.events.locator
        return locator.unit_names("grid" if locator.has_grid else "community")

    def act(self, ids: list[int], action: str, *, note: str = "",
            unit: str | None = None) -> bool:
        """One step on the chosen events, all or none; the result is in ``message``."""
        return self._act(ids, action, note=note, unit=unit or None)

    def submit(self, fields: dict[str, str]) -> int | None:
        """A request taken on the phone (the form): created, located and assigned."""
        from twin.events.intake import submit

        try:
            event = submit(self.events, fields, channel="hotline", actor=self.user.name,
                           source="events page")
        except TwinError as exc:
            self._say(f"未登记：{exc.text('zh')}", f"not recorded: {exc}")
            return None
        where = self.names.get(event.unit or "", event.unit or "")
        if event.duplicate_of:
            self._say(f"已登记为事件 #{event.id}（与 #{event.duplicate_of} 重复）",
                      f"recorded as event #{event.id} (a repeat of #{event.duplicate_of})")
        else:
            self._say(f"已登记事件 #{event.id}，已派至 {where}",
                      f"recorded event #{event.id}, assigned to {where}")
        self.refresh()
        return event.id

    def points(self) -> pd.DataFrame:
        """The open events to draw (id, category, state label, lng, lat, due, address)."""
        raw = self.raw[self.raw["state"].isin(OPEN_STATES)]
        labels = _state_labels(self.lang)
        return raw.assign(state=[labels.get(s, s) for s in raw["state"].tolist()])


class TasksState(_Base):
    """A grid worker's phone: their units' open events, accept, start, resolve with a note."""

    selected = param.Integer(default=0, doc="The event shown in detail (0: none).")

    def __init__(self, workspace: Any, *, user: User, lang: str = "zh") -> None:
        require(user, "handle_events")
        super().__init__(workspace, user=user, lang=lang)
        self.my_units = units_of_user(workspace, user.name)
        self.refresh()

    def _query(self) -> pd.DataFrame:
        return self.events.table(units=self.my_units, columns=_QUEUE_COLUMNS)

    def legal(self, event_id: int) -> list[str]:
        """What this worker may do with an event now (accept, start, resolve)."""
        row = self.raw[self.raw["id"] == event_id]
        if row.empty:
            return []
        allowed = legal_actions(str(row["state"].iloc[0]))
        return [a for a in ("accept", "start", "resolve") if a in allowed]

    def act(self, event_id: int, action: str, *, note: str = "") -> bool:
        """A step on one of my units' events (refused for anyone else's)."""
        return self._act([event_id], action, note=note, only_units=self.my_units)

    def detail(self, event_id: int) -> dict[str, Any] | None:
        """What the worker needs at the door: category, address, description, time left."""
        row = self.raw[self.raw["id"] == event_id]
        if row.empty:
            return None
        r = row.iloc[0]
        cat = self.events.categories.get(r["category"])
        left = _left(int(_minutes(row["due_at"], pd.Timestamp.now(tz="UTC")).iloc[0]),
                     self.lang)
        event = self.events.get(int(event_id))
        return {"id": int(r["id"]), "category": _pick({cat.code: (cat.zh, cat.en)} if cat
                                                       else {}, r["category"], self.lang),
                "address": r["address"], "description": r["description"], "left": left,
                "lng": float(r["lng"]), "lat": float(r["lat"]), "reporter": event.reporter,
                "phone": event.phone, "state": r["state"],
                "reported": pd.Timestamp(r["reported_at"]).tz_convert(self.events.tz)
                .strftime("%m-%d %H:%M")}

    @property
    def unit_label(self) -> str:
        names = [self.names.get(u, u) for u in self.my_units]
        return "、".join(names) if names else ""
