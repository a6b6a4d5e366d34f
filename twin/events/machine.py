"""The state machine of one event, as pure functions over an append-only log of steps.

An event is reported, assigned to its grid unit, accepted by a grid worker, in progress,
resolved, then confirmed with the resident and closed. It may be rejected (with a reason),
reopened after it was resolved, closed or rejected, and escalated from the grid to the street
and then the district when the level below cannot cope or its time limit has passed.

The current state is never stored apart from the log: :func:`replay` folds the steps, and
:func:`apply` is the one place that decides whether a step is legal. An illegal step raises
:class:`~twin.errors.EventTransitionError` naming the state, the action and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from twin.errors import EventTransitionError
from twin.i18n import LEVELS

__all__ = ["ACTIONS", "ACTION_LABELS", "ESCALATION_LEVELS", "OPEN_STATES", "STATES",
           "STATE_LABELS", "EventState", "Step", "apply", "legal_actions", "replay", "target_of"]

#: Every state an event can be in.
STATES: tuple[str, ...] = ("reported", "assigned", "accepted", "in_progress", "resolved",
                           "confirmed", "closed", "rejected", "reopened", "escalated")
#: States in which the event still needs someone to act (counted as open on the cockpit).
OPEN_STATES = frozenset({"reported", "assigned", "accepted", "in_progress", "reopened",
                         "escalated"})
#: Who handles an event, from the bottom: its grid unit, then the street, then the district.
ESCALATION_LEVELS: tuple[str, ...] = ("grid", "street", "district")

#: action -> (the states it may be taken from, the state it leads to).
_TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "assign": (frozenset({"reported", "assigned", "reopened", "escalated"}), "assigned"),
    "accept": (frozenset({"assigned", "escalated"}), "accepted"),
    "start": (frozenset({"accepted"}), "in_progress"),
    "resolve": (frozenset({"accepted", "in_progress"}), "resolved"),
    "confirm": (frozenset({"resolved"}), "confirmed"),
    "close": (frozenset({"resolved", "confirmed"}), "closed"),
    "reject": (frozenset({"reported", "assigned", "escalated", "reopened"}), "rejected"),
    "reopen": (frozenset({"resolved", "confirmed", "closed", "rejected"}), "reopened"),
    "escalate": (frozenset({"reported", "assigned", "accepted", "in_progress", "reopened",
                            "escalated"}), "escalated"),
}
#: Every action, in the order of the usual loop.
ACTIONS: tuple[str, ...] = tuple(_TRANSITIONS)
#: Actions that must say why (kept in the log and the audit).
_NEEDS_NOTE = frozenset({"resolve", "reject", "reopen", "escalate"})

_LABELS = {
    "reported": "已上报", "assigned": "已派单", "accepted": "已接单", "in_progress": "处置中",
    "resolved": "已办结", "confirmed": "已回访确认", "closed": "已关闭", "rejected": "已驳回",
    "reopened": "已重启", "escalated": "已上报升级",
}

#: state -> its Chinese name.
STATE_LABELS = _LABELS
#: action -> (Chinese, English), as the pages' buttons name them.
ACTION_LABELS: dict[str, tuple[str, str]] = {
    "assign": ("派单", "assign"), "accept": ("接单", "accept"), "start": ("开始处置", "start"),
    "resolve": ("办结", "resolve"), "confirm": ("回访确认", "confirm"), "close": ("关闭", "close"),
    "reject": ("驳回", "reject"), "reopen": ("重启", "reopen"),
    "escalate": ("上报升级", "escalate"),
}


def _zh(action: str) -> str:
    return ACTION_LABELS.get(action, (action, action))[0]


@dataclass(frozen=True)
class Step:
    """One entry of an event's log: who did what, when, and to whom it went."""

    action: str
    actor: str
    at: str
    note: str = ""
    unit: str | None = None  # the grid unit, street or district it is assigned to


@dataclass(frozen=True)
class EventState:
    """Where an event stands: its state, who holds it, at which level, after how many steps."""

    state: str = "reported"
    unit: str | None = None
    level: str = "grid"
    steps: int = 0
    resolved_at: str | None = None
    closed_at: str | None = None

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def label(self) -> str:
        """The state in Chinese and English, e.g. ``已派单 assigned``."""
        return f"{_LABELS[self.state]} {self.state}"


def target_of(action: str) -> str:
    """The state ``action`` leads to (KeyError for an unknown action)."""
    return _TRANSITIONS[action][1]


def legal_actions(state: str) -> list[str]:
    """The actions that may be taken from ``state``, in the usual order."""
    return [a for a, (sources, _) in _TRANSITIONS.items() if state in sources]


def apply(current: EventState, step: Step) -> EventState:
    """The state after ``step``; raises EventTransitionError (changing nothing) if illegal.

    ``escalate`` moves the event one level up (grid → street → district) and needs the unit
    of that level; ``assign`` needs a unit; ``resolve``, ``reject``, ``reopen`` and
    ``escalate`` need a note.
    """
    if step.action not in _TRANSITIONS:
        raise EventTransitionError(f"unknown action {step.action!r}; the actions are "
                                   f"{', '.join(ACTIONS)}",
                                   zh=f"没有“{step.action}”这一操作")
    sources, target = _TRANSITIONS[step.action]
    if current.state not in sources:
        allowed = legal_actions(current.state)
        raise EventTransitionError(
            f"{step.action!r} is not allowed for an event that is {current.label}; from "
            f"{current.state} the actions are: {', '.join(allowed) if allowed else 'none'}",
            zh=f"事件{_LABELS[current.state]}，不能{_zh(step.action)}；可以："
               f"{'、'.join(map(_zh, allowed)) if allowed else '无'}")
    if step.action in _NEEDS_NOTE and not step.note.strip():
        raise EventTransitionError(f"{step.action} needs a note saying why (e.g. what was "
                                   "done, or why it is rejected); nothing was changed",
                                   zh=f"{_zh(step.action)}须填写说明（做了什么，或驳回原因）；"
                                      "未作任何更改")
    level, unit = current.level, current.unit
    if step.action == "escalate":
        index = ESCALATION_LEVELS.index(level)
        if index + 1 >= len(ESCALATION_LEVELS):
            raise EventTransitionError(f"the event is already with the {level}, the top "
                                       "level; assign it there instead of escalating",
                                       zh=f"事件已在{LEVELS.get(level, (level,))[0]}（最高一级），"
                                          "请在该级派单，不能再升级")
        level = ESCALATION_LEVELS[index + 1]
    if step.action in ("assign", "escalate"):
        if not step.unit:
            raise EventTransitionError(f"{step.action} needs the unit that takes the event "
                                       f"over (a {level} unit); nothing was changed",
                                       zh=f"{_zh(step.action)}须选择接手的"
                                          f"{LEVELS.get(level, (level,))[0]}；未作任何更改")
        unit = step.unit
    resolved_at = step.at if target == "resolved" else (
        None if target == "reopened" else current.resolved_at)
    # The loop ends at confirmed (with the resident) or closed, whichever comes first.
    closed_at = (current.closed_at or step.at) if target in ("confirmed", "closed") else (
        None if target == "reopened" else current.closed_at)
    return replace(current, state=target, unit=unit, level=level, steps=current.steps + 1,
                   resolved_at=resolved_at, closed_at=closed_at)


def replay(steps: Iterable[Step]) -> EventState:
    """The state an event's log leads to, from ``reported`` (raises on an illegal step)."""
    current = EventState()
    for step in steps:
        current = apply(current, step)
    return current
