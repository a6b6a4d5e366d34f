"""Zones proposed from the cases (:func:`propose`).

**Proposal rule** (national protocol, ``[zones]`` in ``twin.toml``): lockdown = the base cells
of infections (confirmed or asymptomatic cases) reported in the last ``case_window_days`` days
up to the date, merged into one zone when they touch (``grid_disk(cell, 1)``); control = a ring
of ``control_ring`` cells around each lockdown zone, without lockdown cells (a cell in two rings
goes to the first zone, so that the tiers of one proposal never overlap); prevention = the other
base cells of each street that holds a lockdown cell (one zone per street).

**Active zones**: each proposal is made without the cells already inside active zones of its
tier or a stricter one (tiers strictest first: lockdown, control, prevention): a lockdown
proposal drops the cells of active lockdown zones, a control proposal those of active lockdown
and control zones, a prevention proposal those of every active zone. A proposal left without
cells is not made (``covered`` counts them); so a proposal identical to an active zone is never
saved again, and proposing day after day does not pile up copies of the zones in force.

**Re-run rule**: only zones whose current status is ``proposed`` are touched. Each new proposal
is matched to the still-proposed zone of the same tier with the same cells; failing that, a
proposal with the tier and cells of a proposal people rejected (:func:`twin.zones.reject`; see
:mod:`twin.zones.decide` for how a rejection is recorded) is not made again (``rejected`` lists
the rejected zones it matched); else it is matched to the still-proposed zone that shares most
cells with it: identical cells -> nothing is written; different cells -> a new version of that
zone; no match -> a new zone. A proposal whose cells differ from every rejected one, even by a
cell, is made as usual. Still-proposed zones that match no new proposal
get a new version with status ``lifted`` (reason "superseded"). Running ``propose`` twice on the
same data therefore writes nothing the second time. Active and lifted zones are never changed
by ``propose``.

The system proposes, people decide: a proposal is stored with status ``proposed`` and never
applied silently.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from twin import grid
from twin.dates import parse_day
from twin.store import Workspace
from twin.zones.decide import rejected_proposals
from twin.zones.infections import infections
from twin.zones.store import TIER_ZH, TIERS, Zones, ZoneVersion

__all__ = ["propose"]


def _components(cells: np.ndarray) -> list[np.ndarray]:
    """Groups of cells that touch (within one step of each other), sorted by first cell."""
    members = {int(c) for c in cells}
    parent = {c: c for c in members}

    def find(c: int) -> int:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for c in sorted(members):
        for n in grid.grid_disk(np.array([c], np.uint64), 1).tolist():
            if n in members:
                a, b = find(c), find(n)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for c in sorted(members):
        groups.setdefault(find(c), []).append(c)
    return [np.array(g, np.uint64) for _, g in sorted(groups.items())]


def _latest_case_day(facts: Any) -> dt.date | None:
    cases = facts.cases(facts.base)
    if not len(cases):
        return None
    return cases["date"].max().date()


def propose(workspace: Workspace, date: str | dt.date | None = None,
            author: str = "system") -> dict[str, Any]:
    """Propose zones from the recent infections (see the module docstring for both rules).

    Returns the date, the window, the number of ``infections``, the zone ids ``created``,
    ``updated``, ``unchanged`` and ``superseded`` (proposed zones lifted because no new
    proposal matches them), ``rejected`` (the rejected zones whose tier and cells a new
    proposal repeated, which was therefore not made), and ``covered``: the number of proposals
    not made because active zones of their tier or a stricter one already hold all their
    cells.
    """
    from twin.facts import Facts

    cfg = workspace.config["zones"]
    facts = Facts(workspace)
    day = (parse_day(date, "last day of the case window") if date is not None
           else _latest_case_day(facts))
    result: dict[str, Any] = {"date": day.isoformat() if day else None, "created": [],
                              "updated": [], "unchanged": [], "superseded": [],
                              "rejected": []}
    proposals: list[tuple[str, np.ndarray, str]] = []  # tier, cells, name hint
    if day is not None:
        start = day - dt.timedelta(days=int(cfg["case_window_days"]) - 1)
        result["window"] = [start.isoformat(), day.isoformat()]
        cases = infections(facts, start, day)
        result["infections"] = int(cases["n"].sum())
        hot = np.unique(cases["cell"].to_numpy(np.uint64))
        proposals = _proposal_cells(facts, hot, int(cfg["control_ring"]))
        why = (f"按病例自动建议 proposed from {result['infections']} infections reported "
               f"{start.isoformat()}..{day.isoformat()}")
    zones = Zones(workspace)
    current = zones.list()
    open_ = {t: [z for z in current if z.status == "proposed" and z.tier == t] for t in TIERS}
    result["covered"] = 0
    rejected = rejected_proposals(workspace)
    for tier, cells, label in _outside_active(proposals, current):
        if not len(cells):
            result["covered"] += 1
            continue
        if not any(np.array_equal(z.cells, cells) for z in open_[tier]):
            refused = [z.zone_id for z in rejected
                       if z.tier == tier and np.array_equal(z.cells, cells)]
            if refused:
                result["rejected"] += [i for i in refused if i not in result["rejected"]]
                continue
        shared = [(np.intersect1d(z.cells, cells).size, z) for z in open_[tier]]
        candidates = [(n, z) for n, z in shared if n > 0]
        if candidates:  # an identical zone first, else the one sharing most cells
            _, match = max(candidates, key=lambda p: (p[0] == len(cells) == len(p[1].cells),
                                                      p[0]))
            open_[tier].remove(match)
            if np.array_equal(match.cells, cells):
                result["unchanged"].append(match.zone_id)
                continue
            zones.save(match.zone_id, match.version, set_cells=cells, valid_from=day,
                       author=author, reason=why)
            result["updated"].append(match.zone_id)
        else:
            made = zones.create(cells=cells, tier=tier, status="proposed", valid_from=day,
                                name=f"{TIER_ZH[tier]} {tier} {label}", author=author,
                                reason=why)
            result["created"].append(made.zone_id)
    for tier in TIERS:
        for z in open_[tier]:
            zones.save(z.zone_id, z.version, status="lifted", author=author,
                       reason=f"被新建议取代 superseded by the proposal of {result['date']}")
            result["superseded"].append(z.zone_id)
    return result


def _outside_active(proposals: list[tuple[str, np.ndarray, str]],
                    zones: list[ZoneVersion]) -> list[tuple[str, np.ndarray, str]]:
    """Each proposal without the cells of active zones of its tier or a stricter one."""
    active = [z for z in zones if z.status == "active"]
    covered = {tier: np.unique(np.concatenate(
        [z.cells for z in active if z.tier in TIERS[:TIERS.index(tier) + 1]]
        or [np.empty(0, np.uint64)])) for tier in TIERS}
    return [(tier, np.setdiff1d(cells, covered[tier], assume_unique=True), label)
            for tier, cells, label in proposals]


def _proposal_cells(facts: Any, hot: np.ndarray,
                    ring: int) -> list[tuple[str, np.ndarray, str]]:
    if not len(hot):
        return []
    out: list[tuple[str, np.ndarray, str]] = []
    lockdowns = _components(hot)
    taken = hot.copy()
    for cells in lockdowns:
        out.append(("lockdown", cells, grid.cells_to_strings(cells[:1])[0]))
    for cells in lockdowns:
        around = np.setdiff1d(grid.grid_disk(cells, ring), taken) if ring > 0 else cells[:0]
        if len(around):
            out.append(("control", around, grid.cells_to_strings(cells[:1])[0]))
            taken = np.union1d(taken, around)
    table = facts.read(facts.base, columns=["street_code"])
    codes = table.set_index("cell")["street_code"]
    streets = sorted({str(s) for s in codes.reindex(hot).dropna().tolist()})
    for street in streets:
        cells = np.setdiff1d(table.loc[table["street_code"] == street, "cell"]
                             .to_numpy(np.uint64), taken)
        if len(cells):
            out.append(("prevention", cells, street))
    return out
