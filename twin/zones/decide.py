"""People's decisions on proposals: accept (:func:`accept`) or reject (:func:`reject`).

The system proposes, people decide. Both decisions are merge-aware saves
(:func:`twin.zones.save_edit`) of a zone whose current status is ``proposed``: when
:func:`twin.zones.propose` re-versioned the proposal after the planner opened it, the decision
applies to the newer cells.

**Rejected proposals**: :func:`reject` writes a version with status ``lifted`` and an audit row
of action ``zone.reject`` naming the zone and that version, in one transaction. A zone counts
as rejected while its current status is still ``lifted``; its rejected proposal is the tier and
cells of the version the audit row names (:func:`rejected_proposals`). The audit table is
append-only like the versions, so the record survives later edits; a planner who reopens the
zone (status ``proposed`` or ``active``) withdraws the rejection.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

from twin.errors import ZoneError
from twin.store import Workspace
from twin.zones.merge import SaveResult, ZoneEdit, _save_edit
from twin.zones.store import STATUS_ZH, Zones, ZoneVersion, _check_text

__all__ = ["ACCEPT_REASON", "REJECT_PREFIX", "accept", "reject", "rejected_proposals"]

#: The reason of an accepted proposal when none is given.
ACCEPT_REASON = "采纳建议 accepted proposal"
#: What the reason of a rejected proposal starts with.
REJECT_PREFIX = "驳回 rejected: "


def _only_proposed(verb: str) -> Callable[[ZoneVersion], None]:
    def check(current: ZoneVersion) -> None:
        if current.status != "proposed":
            raise ZoneError(
                f"zone {current.zone_id} is {current.status} {STATUS_ZH[current.status]} "
                f"(version {current.version} by {current.author}: {current.reason}), not "
                f"proposed; only a proposal can be {verb}ed: change this zone with "
                "`twin zones WS save` (or save_edit) instead")

    return check


def accept(workspace: Workspace, zone_id: str, base_version: int, *,
           valid_from: str | dt.date, author: str | None,
           reason: str | None = None) -> SaveResult:
    """Accept a proposal: status ``active`` from ``valid_from``, audit action ``zone.accept``.

    Merges with versions saved since ``base_version`` (the accepting planner's
    ``valid_from`` wins over a day written meanwhile, e.g. by a re-run of ``propose``).

    Raises
    ------
    ZoneError
        When ``valid_from`` is missing or the zone's current status is not ``proposed``.
    ZoneMergeConflict
        When someone changed its status meanwhile in another way (nothing written).
    """
    if valid_from is None or not str(valid_from).strip():
        raise ZoneError(f"accepting zone {zone_id} needs valid_from: the day it takes effect "
                        "(YYYY-MM-DD, e.g. --valid-from 2026-05-01)")
    edit = ZoneEdit(base_version, status="active", valid_from=valid_from)
    return _save_edit(workspace, zone_id, edit, author=author, reason=reason or ACCEPT_REASON,
                      resolve={"valid_from": "mine"}, action="zone.accept",
                      check=_only_proposed("accept"))


def reject(workspace: Workspace, zone_id: str, base_version: int, *, reason: str,
           author: str | None) -> SaveResult:
    """Reject a proposal: status ``lifted``, reason "驳回 rejected: <reason>", audit action
    ``zone.reject``. The version stays in history, and :func:`twin.zones.propose` does not
    propose the same tier and cells again (see the module docstring).

    Raises
    ------
    ZoneError
        When ``reason`` is empty or the zone's current status is not ``proposed``.
    """
    why = _check_text(reason, "reason")
    edit = ZoneEdit(base_version, status="lifted")
    return _save_edit(workspace, zone_id, edit, author=author, reason=REJECT_PREFIX + why,
                      resolve=None, action="zone.reject", check=_only_proposed("reject"))


def rejected_proposals(workspace: Workspace) -> list[ZoneVersion]:
    """The rejected versions of the zones that are still rejected (current status lifted)."""
    zones = Zones(workspace)
    out: dict[tuple[str, int], ZoneVersion] = {}
    with workspace.connect() as conn:
        rows = conn.execute("SELECT target, detail FROM audit WHERE action = 'zone.reject' "
                            "ORDER BY id").fetchall()
        for target, detail in rows:
            number = json.loads(detail).get("version")
            if number is None or (target, number) in out:
                continue
            version = zones._get(conn, target, number)
            current = version if version.version == version.current_version \
                else zones._get(conn, target)
            if current.status == "lifted":
                out[target, number] = version
    return list(out.values())
