"""Suggested downgrades of active zones: lockdown 封控区 -> control 管控区 -> prevention 防范区.

The national protocol (9th edition), with ``L = zones.lockdown_clear_days`` and
``C = zones.control_clear_days`` (7 and 7 by default). Days are calendar days; "reached N days
after day X" means on day X + N and every day after. An infection is a confirmed or
asymptomatic case (:mod:`twin.zones.infections`); only infections reported on or before the
day judged count.

**Lockdown -> control**: counted from the last infection inside the zone, or from the day the
zone became lockdown when there was none; reached L days after that.

**Control -> prevention**: counted from the later of the last infection (inside the zone or
inside one of its cores) and the day the zone became control; reached C days after that, and
never less than L + C days after the last infection (also for a zone created directly as
control). It is not suggested while one of its cores is still in lockdown.

**The day a zone became its tier** is the ``valid_from`` of the first version of its latest
unbroken run of active versions of its current tier (:func:`became_tier_on`): editing the cells
of a control zone does not restart its count; a change of tier, or a return to proposed, does.

**Cores** (:func:`cores`): the cores of a control zone are the other active zones that are, or
have been, lockdown (one of their active versions has tier lockdown) and whose cells touch the
control zone's cells: a core cell lies within one H3 step of one of its cells
(``grid_disk(cells, 1)``), or is one of them. The control ring drawn around a lockdown zone thus
follows that zone: it stays control while the zone is in lockdown, and the zone's infections
are its infections, so the ring reaches prevention no earlier than its core could.

Worked example (L = C = 7): the last infection inside a lockdown zone is on 1 May, so
lockdown -> control is reached on 8 May. Downgraded with ``valid_from`` 10 May, the zone reaches
prevention on 17 May (10 + 7, later than 1 + 14 = 15 May); downgraded on 8 May, on 15 May.

The rule itself is the pure function :func:`due` of those dates; :func:`downgrades` reads the
zones and cases of a workspace and applies it. Suggestions are only suggestions: people decide.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from twin import grid
from twin.dates import parse_day
from twin.errors import ZoneError
from twin.store import Workspace
from twin.zones.infections import infections
from twin.zones.store import TIER_ZH, Zones, ZoneVersion

__all__ = ["Due", "became_tier_on", "cores", "downgrades", "due"]

#: The tier each tier may go down to.
NEXT_TIER = {"lockdown": "control", "control": "prevention"}


class Due(NamedTuple):
    """The verdict of :func:`due`: whether the downgrade is due, and the dates it rests on."""

    due: bool
    counted_from: dt.date
    reached_on: dt.date


def due(tier: str, last_infection: dt.date | None, tier_since: dt.date, day: dt.date,
        lockdown_days: int, control_days: int) -> Due:
    """Whether a zone of ``tier`` may go down a tier on ``day`` (the rules of the module
    docstring).

    ``last_infection`` is the last infection that counts (``None``: none), ``tier_since`` the
    day the zone became ``tier``.
    """
    if tier == "lockdown":
        counted = last_infection if last_infection is not None else tier_since
        reached = counted + dt.timedelta(days=lockdown_days)
    elif tier == "control":
        counted = tier_since if last_infection is None else max(last_infection, tier_since)
        reached = counted + dt.timedelta(days=control_days)
        if last_infection is not None:
            reached = max(reached,
                          last_infection + dt.timedelta(days=lockdown_days + control_days))
    else:
        raise ZoneError(f"a {tier} zone has no lower tier; only {' and '.join(NEXT_TIER)} "
                        "zones go down")
    return Due(day >= reached, counted, reached)


def became_tier_on(versions: Sequence[ZoneVersion]) -> dt.date:
    """The day a zone became its current tier, from its versions (oldest first).

    The ``valid_from`` of the first version of the latest unbroken run of active versions
    with the current version's tier (the current version's own when it is not active).
    """
    current = versions[-1]
    first = current
    for version in reversed(versions):
        if version.tier != current.tier or version.status != "active":
            break
        first = version
    return dt.date.fromisoformat(first.valid_from)


def cores(zone: ZoneVersion, active: Sequence[ZoneVersion],
          history: dict[str, list[ZoneVersion]]) -> list[ZoneVersion]:
    """The cores of a control ``zone`` among the ``active`` zones (see the module docstring).

    ``history`` maps each zone id to its versions, oldest first.
    """
    return _CoreIndex(active, history).cores(zone)


class _CoreIndex:
    """The cells of the active zones that are or have been lockdown, to find cores fast."""

    def __init__(self, active: Sequence[ZoneVersion],
                 history: dict[str, list[ZoneVersion]]) -> None:
        self.zones = [z for z in active if any(v.tier == "lockdown" and v.status == "active"
                                               for v in history[z.zone_id])]
        self.cells = np.concatenate([z.cells for z in self.zones] or [np.empty(0, np.uint64)])
        self.owner = np.repeat(np.arange(len(self.zones)), [len(z.cells) for z in self.zones])

    def cores(self, zone: ZoneVersion) -> list[ZoneVersion]:
        if not self.zones:
            return []
        touching = np.unique(self.owner[np.isin(self.cells, grid.grid_disk(zone.cells, 1))])
        return [self.zones[i] for i in touching.tolist() if self.zones[i].zone_id != zone.zone_id]


def _rule(tier: str, verdict: Due, last: dt.date | None, since: dt.date, lockdown_days: int,
          control_days: int, core_ids: list[str]) -> tuple[str, str]:
    """The rule of a suggestion and the dates it rests on, in English and Chinese."""
    target = NEXT_TIER[tier]
    days = lockdown_days if tier == "lockdown" else control_days
    head_en = f"9th edition: {days} consecutive days without new infections ({tier} -> {target})"
    head_zh = (f"第九版防控方案：连续{days}天无新增感染者，{TIER_ZH[tier]}降为"
               f"{TIER_ZH[target]}")
    counted, reached = verdict.counted_from.isoformat(), verdict.reached_on.isoformat()
    if tier == "lockdown":
        why_en = ("the last infection inside" if last is not None
                  else "the day it became lockdown; no infection inside")
        why_zh = "区内末例感染之日" if last is not None else "转为封控区之日，区内无感染者"
        return (f"{head_en}; counted from {counted} ({why_en}), reached on {reached}",
                f"{head_zh}；自{counted}（{why_zh}）起计，{reached}满足")
    where_en = (f"inside it or the lockdown zones it surrounds ({', '.join(core_ids)})"
                if core_ids else "inside it")
    where_zh = f"区内及所围封控区（{'、'.join(core_ids)}）" if core_ids else "区内"
    last_text = last.isoformat() if last is not None else None
    both = lockdown_days + control_days
    en = (f"{head_en}; counted from {counted}, the later of the day it became control "
          f"({since.isoformat()}) and the last infection {where_en} ("
          f"{last_text or 'none'})" + (f", and at least {both} days after that infection"
                                       if last is not None else "")
          + f"; reached on {reached}")
    zh = (f"{head_zh}；自{counted}起计，取转为管控区之日（{since.isoformat()}）与{where_zh}"
          f"末例感染之日（{last_text or '无'}）中较晚者" + (f"，且距末例感染满{both}天"
                                                       if last is not None else "")
          + f"；{reached}满足")
    return en, zh


def downgrades(workspace: Workspace, date: str | dt.date | None = None) -> list[dict[str, Any]]:
    """Suggested downgrades of active lockdown and control zones on ``date`` (default: today).

    The rules are those of the module docstring. Each suggestion names the zone, its tier and
    the suggested tier, the rule in English and Chinese (``rule``, ``rule_zh``) and the dates
    it rests on: ``last_infection`` (``None``: none), ``became_tier_on``, ``counted_from``,
    ``clear_days`` (days from ``counted_from`` to ``date``), ``required_days`` (L or C),
    ``reached_on``, and for a control zone its ``cores`` (zone ids).
    """
    from twin.facts import Facts

    cfg = workspace.config["zones"]
    lockdown_days, control_days = int(cfg["lockdown_clear_days"]), int(cfg["control_clear_days"])
    day = (parse_day(date, "the day to judge") if date is not None
           else dt.datetime.now(dt.UTC).date())
    history: dict[str, list[ZoneVersion]] = {}
    for version in Zones(workspace).all_versions():
        history.setdefault(version.zone_id, []).append(version)
    active = [h[-1] for h in history.values() if h[-1].status == "active"]
    judged = [z for z in active if z.tier in NEXT_TIER]
    if not judged:
        return []
    facts = Facts(workspace)
    cases = infections(facts, None, day)
    case_cells = cases["cell"].to_numpy(np.uint64)
    case_days = cases["date"].to_numpy("datetime64[D]")
    index = _CoreIndex(active, history)
    out = []
    for z in judged:
        around = index.cores(z) if z.tier == "control" else []
        if any(c.tier == "lockdown" for c in around):
            continue  # a ring follows the zone it surrounds
        cells = np.concatenate([z.cells, *(c.cells for c in around)])
        inside = np.isin(case_cells, cells)
        last = case_days[inside].max().astype(dt.date) if inside.any() else None
        since = became_tier_on(history[z.zone_id])
        verdict = due(z.tier, last, since, day, lockdown_days, control_days)
        if not verdict.due:
            continue
        core_ids = [c.zone_id for c in around]
        rule_en, rule_zh = _rule(z.tier, verdict, last, since, lockdown_days, control_days,
                                 core_ids)
        target = NEXT_TIER[z.tier]
        out.append({
            "zone_id": z.zone_id, "name": z.name, "version": z.version, "tier": z.tier,
            "tier_zh": TIER_ZH[z.tier], "suggested_tier": target,
            "suggested_tier_zh": TIER_ZH[target], "rule": rule_en, "rule_zh": rule_zh,
            "last_infection": last.isoformat() if last else None,
            "became_tier_on": since.isoformat(),
            "counted_from": verdict.counted_from.isoformat(),
            "clear_days": (day - verdict.counted_from).days,
            "required_days": lockdown_days if z.tier == "lockdown" else control_days,
            "reached_on": verdict.reached_on.isoformat(),
            "cores": core_ids})
    return out
