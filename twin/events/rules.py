"""What an event is: its categories (from ``twin.toml``), priorities, channels and due times.

Due times (SLA) are hours per category and priority from ``[events.categories.*]``; inside an
active lockdown zone the category's ``lockdown_due_hours`` applies when it is shorter (a
family shut in without medicine cannot wait like a bin that was not emptied). An event that
is still open after its due time escalates one level, and the new level gets
``events.escalation_hours``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from twin.errors import EventInputError

__all__ = ["CHANNELS", "CHANNEL_LABELS", "PRIORITIES", "PRIORITY_LABELS", "Category",
           "categories", "classify", "due_at", "escalation_due", "parse_channel",
           "parse_priority"]

#: Priorities, most urgent first.
PRIORITIES: tuple[str, ...] = ("urgent", "high", "normal", "low")
PRIORITY_LABELS: dict[str, tuple[str, str]] = {
    "urgent": ("特急", "urgent"), "high": ("紧急", "high"), "normal": ("一般", "normal"),
    "low": ("较低", "low"),
}
_PRIORITY_WORDS = {
    "特急": "urgent", "特别紧急": "urgent", "十万火急": "urgent", "1": "urgent",
    "紧急": "high", "加急": "high", "急": "high", "较急": "high", "2": "high",
    "一般": "normal", "普通": "normal", "正常": "normal", "3": "normal", "": "normal",
    "较低": "low", "低": "low", "不急": "low", "4": "low",
}
#: How a report reached us.
CHANNELS: tuple[str, ...] = ("hotline", "grid_worker", "online", "department")
CHANNEL_LABELS: dict[str, tuple[str, str]] = {
    "hotline": ("热线", "hotline"), "grid_worker": ("网格员上报", "grid worker"),
    "online": ("网上留言", "online form"), "department": ("部门系统", "other department"),
}
_CHANNEL_WORDS = {
    "12345": "hotline", "12345热线": "hotline", "热线": "hotline", "电话": "hotline",
    "来电": "hotline", "网格员": "grid_worker", "网格员上报": "grid_worker",
    "网格上报": "grid_worker",
    "巡查": "grid_worker", "网上留言": "online", "网络": "online", "网上": "online",
    "小程序": "online", "app": "online", "网站": "online", "表单": "online", "部门": "department",
    "部门系统": "department", "系统对接": "department", "open311": "department", "": "hotline",
}


@dataclass(frozen=True)
class Category:
    """One category of request, as ``[events.categories.<code>]`` defines it."""

    code: str
    zh: str
    en: str
    synonyms: tuple[str, ...]
    due_hours: dict[str, float]
    lockdown_due_hours: float
    need: str | None = None
    need_per_request: float = 0.0

    @property
    def label(self) -> str:
        """``药品需求 medicine``."""
        return f"{self.zh} {self.en}"


def categories(config: Any) -> dict[str, Category]:
    """The categories of a workspace's configuration, in the order ``twin.toml`` lists them."""
    out = {}
    for code, c in config["events"]["categories"].items():
        out[code] = Category(code=code, zh=c["zh"], en=c["en"],
                             synonyms=tuple(str(s) for s in c["synonyms"]),
                             due_hours={k: float(v) for k, v in c["due_hours"].items()},
                             lockdown_due_hours=float(c["lockdown_due_hours"]),
                             need=c.get("need"),
                             need_per_request=float(c.get("need_per_request", 0.0)))
    return out


def _norm(text: object) -> str:
    return str(text).strip().lower()


def classify(text: object, table: dict[str, Category]) -> tuple[str, bool]:
    """The category code a hotline's category text stands for, and whether it was recognised.

    Exact matches of a code, label or synonym first, then the longest synonym or label the
    text contains (``"独居老人送药"`` → the first match); what matches nothing is ``other``.
    """
    value = _norm(text)
    exact: dict[str, str] = {}
    for code, cat in table.items():
        for word in (code, cat.zh, cat.en, *cat.synonyms):
            exact.setdefault(_norm(word), code)
    if value in exact:
        return exact[value], True
    words = sorted(exact, key=len, reverse=True)
    for word in words:
        if word and len(word) >= 2 and word in value:
            return exact[word], True
    return "other", False


def parse_priority(text: object) -> str:
    """``urgent``, ``high``, ``normal`` or ``low`` from a code or a Chinese word (empty: normal).

    Raises
    ------
    EventInputError
        For any other value, naming the accepted ones.
    """
    value = _norm(text)
    if value in PRIORITIES:
        return value
    if value in _PRIORITY_WORDS:
        return _PRIORITY_WORDS[value]
    raise EventInputError(f"unknown priority {str(text)!r}; use one of "
                          + ", ".join(f"{zh} {en}" for zh, en in PRIORITY_LABELS.values()))


def parse_channel(text: object) -> str:
    """The channel a report came through (empty: the hotline).

    Raises
    ------
    EventInputError
        For a value that names no channel.
    """
    value = _norm(text)
    if value in CHANNELS:
        return value
    if value in _CHANNEL_WORDS:
        return _CHANNEL_WORDS[value]
    for word, code in _CHANNEL_WORDS.items():
        if word and word in value:
            return code
    raise EventInputError(f"unknown channel {str(text)!r}; use one of "
                          + ", ".join(f"{zh} {code}" for code, (zh, _) in
                                      CHANNEL_LABELS.items()))


def due_at(reported_at: dt.datetime, category: Category, priority: str, *,
           in_lockdown: bool) -> dt.datetime:
    """When an event must be resolved: its category's hours for its priority, or the
    category's lockdown hours inside an active lockdown zone when they are shorter."""
    hours = category.due_hours[priority]
    if in_lockdown:
        hours = min(hours, category.lockdown_due_hours)
    return reported_at + dt.timedelta(hours=hours)


def escalation_due(escalated_at: dt.datetime, config: Any) -> dt.datetime:
    """The new due time of an event escalated at ``escalated_at``."""
    return escalated_at + dt.timedelta(hours=float(config["events"]["escalation_hours"]))
