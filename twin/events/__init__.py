"""Residents' and grid workers' requests handled on the grid (issue 14): the state machine
of an event first; intake, assignment, SLAs and pages build on it."""

from twin.events.machine import (
    ACTIONS,
    ESCALATION_LEVELS,
    OPEN_STATES,
    STATES,
    EventState,
    Step,
    apply,
    legal_actions,
    replay,
)

__all__ = ["ACTIONS", "ESCALATION_LEVELS", "OPEN_STATES", "STATES", "EventState", "Step",
           "apply", "legal_actions", "replay"]
