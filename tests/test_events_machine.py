"""The events' state machine: every legal step, every illegal one refused, and the log
replays to the state its steps were applied to."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.errors import EventTransitionError
from twin.events import ACTIONS, ESCALATION_LEVELS, STATES, EventState, Step, apply, replay
from twin.events.machine import ACTION_LABELS, STATE_LABELS, legal_actions

#: A way to reach each state from "reported".
PATHS: dict[str, list[str]] = {
    "reported": [],
    "assigned": ["assign"],
    "accepted": ["assign", "accept"],
    "in_progress": ["assign", "accept", "start"],
    "resolved": ["assign", "accept", "start", "resolve"],
    "confirmed": ["assign", "accept", "start", "resolve", "confirm"],
    "closed": ["assign", "accept", "start", "resolve", "confirm", "close"],
    "rejected": ["reject"],
    "reopened": ["reject", "reopen"],
    "escalated": ["escalate"],
}
#: The legal (state, action) pairs, worked out by hand from the issue's loop.
LEGAL = {
    ("reported", "assign"), ("reported", "reject"), ("reported", "escalate"),
    ("assigned", "assign"), ("assigned", "accept"), ("assigned", "reject"),
    ("assigned", "escalate"),
    ("accepted", "start"), ("accepted", "resolve"), ("accepted", "escalate"),
    ("in_progress", "resolve"), ("in_progress", "escalate"),
    ("resolved", "confirm"), ("resolved", "close"), ("resolved", "reopen"),
    ("confirmed", "close"), ("confirmed", "reopen"),
    ("closed", "reopen"),
    ("rejected", "reopen"),
    ("reopened", "assign"), ("reopened", "reject"), ("reopened", "escalate"),
    ("escalated", "assign"), ("escalated", "accept"), ("escalated", "reject"),
    ("escalated", "escalate"),
}
TARGET = {"assign": "assigned", "accept": "accepted", "start": "in_progress",
          "resolve": "resolved", "confirm": "confirmed", "close": "closed",
          "reject": "rejected", "reopen": "reopened", "escalate": "escalated"}


def _step(action: str, i: int = 0) -> Step:
    return Step(action=action, actor=f"worker{i}", at=f"2026-04-01T08:{i % 60:02d}:00Z",
                note="处理说明 note", unit=f"unit-{i}")


def _reach(state: str) -> EventState:
    return replay(_step(a, i) for i, a in enumerate(PATHS[state]))


def test_the_paths_reach_their_states() -> None:
    assert set(PATHS) == set(STATES)
    for state in STATES:
        assert _reach(state).state == state


@pytest.mark.parametrize(("state", "action"), sorted(itertools.product(STATES, ACTIONS)))
def test_every_step_is_legal_or_refused_as_worked_out(state: str, action: str) -> None:
    before = _reach(state)
    if before.state == "escalated" and action == "escalate":
        before = replace(before, level="grid")
    if (state, action) in LEGAL:
        after = apply(before, _step(action, 99))
        assert after.state == TARGET[action]
        assert after.steps == before.steps + 1
        assert action in legal_actions(state)
    else:
        with pytest.raises(EventTransitionError, match=f"from {state} the actions are") as info:
            apply(before, _step(action, 99))
        assert action not in legal_actions(state)
        # On the pages, in Chinese: the state, the refused step, what may be done instead.
        zh = info.value.text("zh")
        assert STATE_LABELS[state] in zh and ACTION_LABELS[action][0] in zh, zh
        assert all(ACTION_LABELS[a][0] in zh for a in legal_actions(state)), zh


def test_escalation_climbs_grid_street_district_and_stops() -> None:
    state = EventState()
    levels = [state.level]
    for i in range(2):
        state = apply(state, _step("escalate", i))
        levels.append(state.level)
    assert levels == list(ESCALATION_LEVELS)
    with pytest.raises(EventTransitionError, match="top level"):
        apply(state, _step("escalate", 3))
    assert apply(state, _step("assign", 4)).level == "district"


@pytest.mark.parametrize("action", ["resolve", "reject", "reopen", "escalate"])
def test_steps_that_must_say_why(action: str) -> None:
    state = _reach({"resolve": "in_progress", "reject": "reported", "reopen": "closed",
                    "escalate": "assigned"}[action])
    with pytest.raises(EventTransitionError, match="needs a note"):
        apply(state, Step(action=action, actor="w", at="2026-04-01T09:00:00Z", note=" ",
                          unit="u"))


def test_assignment_needs_a_unit_and_reopening_clears_the_times() -> None:
    with pytest.raises(EventTransitionError, match="needs the unit"):
        apply(EventState(), Step(action="assign", actor="d", at="2026-04-01T09:00:00Z"))
    closed = _reach("closed")
    assert closed.resolved_at and closed.closed_at and not closed.open
    reopened = apply(closed, _step("reopen", 7))
    assert reopened.open and reopened.resolved_at is None and reopened.closed_at is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(ACTIONS), max_size=40))
def test_the_log_replays_to_the_current_state(actions: list[str]) -> None:
    """Try any sequence: legal steps are kept in the log, illegal ones raise and change
    nothing; replaying the kept log gives the state they were applied to."""
    state, log = EventState(), []
    for i, action in enumerate(actions):
        step = _step(action, i)
        try:
            new = apply(state, step)
        except EventTransitionError:
            assert action not in legal_actions(state.state) or (
                action == "escalate" and state.level == ESCALATION_LEVELS[-1])
            continue
        assert action in legal_actions(state.state)
        state = new
        log.append(step)
    assert replay(log) == state
    assert state.steps == len(log)
