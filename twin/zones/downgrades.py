"""Suggested downgrades of active zones (:func:`downgrades`): lockdown -> control -> prevention.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from twin.dates import parse_day
from twin.store import Workspace
from twin.zones.infections import infections
from twin.zones.store import TIER_ZH, Zones

__all__ = ["downgrades"]

_NEXT_TIER = {"lockdown": "control", "control": "prevention"}


def downgrades(workspace: Workspace, date: str | dt.date | None = None) -> list[dict[str, Any]]:
    """Suggested downgrades of active lockdown and control zones on ``date`` (default: today).

    A lockdown zone may become control after ``lockdown_clear_days`` consecutive days without a
    new infection (confirmed or asymptomatic case) in its cells, a control zone prevention after
    ``control_clear_days``. Days are counted from the last infection inside on or before
    ``date`` (from the zone's ``valid_from`` when there was none): with 7 days and a last
    infection on 1 May, the count is reached on 8 May.
    """
    from twin.facts import Facts

    cfg = workspace.config["zones"]
    day = (parse_day(date, "the day to judge") if date is not None
           else dt.datetime.now(dt.UTC).date())
    active = [z for z in Zones(workspace).list(status="active") if z.tier in _NEXT_TIER]
    if not active:
        return []
    facts = Facts(workspace)
    cases = infections(facts, None, day)
    case_cells = cases["cell"].to_numpy(np.uint64)
    case_days = cases["date"].to_numpy("datetime64[D]")
    out = []
    for z in active:
        need = int(cfg["lockdown_clear_days" if z.tier == "lockdown" else "control_clear_days"])
        inside = np.isin(case_cells, z.cells)
        last = case_days[inside].max().astype(dt.date) if inside.any() else None
        since = last or dt.date.fromisoformat(z.valid_from)
        clear = (day - since).days
        if clear < need:
            continue
        target = _NEXT_TIER[z.tier]
        out.append({
            "zone_id": z.zone_id, "name": z.name, "version": z.version, "tier": z.tier,
            "tier_zh": TIER_ZH[z.tier], "suggested_tier": target,
            "suggested_tier_zh": TIER_ZH[target],
            "rule": f"9th edition: {need} consecutive days without new infections "
                    f"({z.tier} -> {target})",
            "rule_zh": f"第九版防控方案：连续{need}天无新增感染者，{TIER_ZH[z.tier]}降为"
                       f"{TIER_ZH[target]}",
            "last_infection": last.isoformat() if last else None,
            "counted_from": since.isoformat(), "clear_days": clear, "required_days": need,
            "reached_on": (since + dt.timedelta(days=need)).isoformat()})
    return out
