"""Control zones: hand-worked proposals and downgrades, versioning, conflicts, concurrency,
impact, diff, export and the command line.

The hand case is the tiny city of ``tests/test_fuse.py`` with its own cases: infections in a
cell A (20 April) and in its neighbour A2 (22 April), one in a cell B six cells away
(25 April), a suspected case in a ring cell of A (30 April, not an infection) and an infection
in cell D on 1 April (outside the 14-day window of 30 April). Expected zones are computed here
with h3-py, not with :mod:`twin.grid`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import click
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from h3.api import basic_int as h3i
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_fuse import make_tiny_city, publish_city
from twin import Workspace, grid
from twin.cli._common import TwinGroup
from twin.cli.zones import register
from twin.facts import Facts
from twin.fuse import fuse
from twin.zones import (
    ZoneConflictError,
    ZoneError,
    ZoneNotFoundError,
    Zones,
    ZoneVersion,
    diff,
    downgrades,
    export,
    impact,
    propose,
)
from twin.zones.downgrades import became_tier_on, cores, due

ROOT = Path(__file__).resolve().parents[1]
A_LNG, A_LAT = 121.4615, 31.2265  # the hospital's cell, street S1
B_LNG, B_LAT = 121.4700, 31.2300  # the warehouse's cell, street S2
D_LNG, D_LAT = 121.4652, 31.2290


def _cell(lng: float, lat: float) -> int:
    return h3i.latlng_to_cell(lat, lng, 10)


A = _cell(A_LNG, A_LAT)
A2 = sorted(h3i.grid_ring(A, 1))[0]
B = _cell(B_LNG, B_LAT)
C = sorted(set(h3i.grid_ring(A, 1)) - set(h3i.grid_ring(A2, 1)) - {A2})[0]  # ring, not A2's
D = _cell(D_LNG, D_LAT)


def _centre(cell: int) -> tuple[float, float]:
    lat, lng = h3i.cell_to_latlng(cell)
    return lng, lat


@pytest.fixture(scope="module")
def fused(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny city with the hand cases, fused once per module."""
    folder = tmp_path_factory.mktemp("zones")
    ws = Workspace.init(folder / "ws", "示范市", name_en="Demo City",
                        bbox=(121.30, 31.10, 121.65, 31.40))
    city = make_tiny_city(folder)
    points = [(A_LNG, A_LAT), (A_LNG + 0.00001, A_LAT), _centre(A2), (B_LNG, B_LAT),
              _centre(C), (D_LNG, D_LAT)]
    cases = pd.DataFrame({
        "id": [f"Q{i}" for i in range(6)],
        "report_date": pd.to_datetime(["2026-04-20", "2026-04-20", "2026-04-22", "2026-04-25",
                                       "2026-04-30", "2026-04-01"]),
        "status": ["confirmed", "asymptomatic", "confirmed", "asymptomatic", "suspected",
                   "confirmed"],
        "lng": [p[0] for p in points], "lat": [p[1] for p in points]})
    publish_city(ws, replace(city, cases=cases))
    fuse(ws)
    return ws.root


@pytest.fixture
def ws(fused: Path, tmp_path: Path) -> Workspace:
    """A private copy of the fused workspace."""
    shutil.copytree(fused, tmp_path / "ws")
    return Workspace.open(tmp_path / "ws")


def _by_tier(ws: Workspace) -> dict[str, list[set[int]]]:
    out: dict[str, list[set[int]]] = {"lockdown": [], "control": [], "prevention": []}
    for z in Zones(ws).list():
        out[z.tier].append({int(c) for c in z.cells})
    return out


# -- proposals -----------------------------------------------------------------------------------
def test_hand_case_is_as_intended() -> None:
    assert h3i.grid_distance(A, B) >= 3
    assert A2 in h3i.grid_ring(A, 1) and C in h3i.grid_ring(A, 1) and C != A2
    assert h3i.grid_distance(A, D) >= 1


def test_proposal_worked_by_hand(ws: Workspace) -> None:
    result = propose(ws, "2026-04-30")
    assert result["window"] == ["2026-04-17", "2026-04-30"]
    assert result["infections"] == 4  # two in A, one in A2, one in B; not C (suspected), not D
    got = _by_tier(ws)
    lock_a, lock_b = {A, A2}, {B}
    assert sorted(got["lockdown"], key=min) == sorted([lock_a, lock_b], key=min)
    ring_a = set(h3i.grid_disk(A, 1)) | set(h3i.grid_disk(A2, 1))
    ring_a -= lock_a | lock_b
    ring_b = set(h3i.grid_disk(B, 1)) - lock_a - lock_b - ring_a
    assert sorted(got["control"], key=min) == sorted([ring_a, ring_b], key=min)
    assert C in ring_a  # the suspected case's cell is in the ring, not locked down
    static = Facts(ws).static(10, ["street_code"])
    taken = lock_a | lock_b | ring_a | ring_b
    prevention = []
    for street in ("S1", "S2"):
        cells = {int(c) for c in static.loc[static["street_code"] == street, "cell"]} - taken
        prevention.append(cells)
    assert sorted(got["prevention"], key=min) == sorted([p for p in prevention if p], key=min)
    assert all(z.status == "proposed" and z.author == "system" for z in Zones(ws).list())


def test_rerun_writes_nothing_and_supersedes_stale_proposals(ws: Workspace) -> None:
    first = propose(ws, "2026-04-30")
    n = len(first["created"])
    again = propose(ws, "2026-04-30")
    assert again["created"] == again["updated"] == again["superseded"] == []
    assert sorted(again["unchanged"]) == sorted(first["created"])
    assert all(z.version == 1 for z in Zones(ws).list())
    # An activated zone is never touched; the other proposals, no longer backed by any
    # infection in the window, are lifted by a new version.
    zones = Zones(ws)
    lock_b = next(z for z in zones.list(tier="lockdown") if set(z.cells.tolist()) == {B})
    zones.save(lock_b.zone_id, 1, status="active", author="chief", reason="确认 confirm")
    later = propose(ws, "2026-05-30")
    assert later["created"] == [] and len(later["superseded"]) == n - 1
    assert len(zones.list()) == n
    assert zones.get(lock_b.zone_id).status == "active"
    assert {z.status for z in zones.list() if z.zone_id != lock_b.zone_id} == {"lifted"}


def test_proposals_leave_out_cells_of_active_zones(ws: Workspace) -> None:
    """Re-proposing on the same cases never repeats zones in force, day after day."""
    first = propose(ws, "2026-04-30")
    zones = Zones(ws)
    lock_a = next(z for z in zones.list(tier="lockdown") if set(z.cells.tolist()) == {A, A2})
    ring_a = next(z for z in zones.list(tier="control") if C in z.cells.tolist())
    zones.save(lock_a.zone_id, 1, status="active", author="chief", reason="生效 activate")
    again = propose(ws, "2026-04-30")
    # The lockdown proposal {A, A2} is all inside the active lockdown zone: not made again.
    assert again["created"] == again["updated"] == [] and again["covered"] == 1
    assert sorted(again["unchanged"]) == sorted(set(first["created"]) - {lock_a.zone_id})
    zones.save(ring_a.zone_id, 1, status="active", author="chief", reason="生效 activate")
    for day in ("2026-04-30", "2026-05-01", "2026-05-02"):
        later = propose(ws, day)
        assert later["created"] == later["updated"] == [] and later["covered"] == 2, day
    assert len(zones.list()) == len(first["created"])  # no copies piled up


def test_proposals_keep_the_cells_outside_active_zones(ws: Workspace) -> None:
    """An active lockdown zone on A alone: the new lockdown proposal is A2; an active control
    zone on a cell of street S1 takes that cell out of the prevention proposal, not out of the
    stricter lockdown proposal."""
    zones = Zones(ws)
    zones.create(cells=[A], tier="lockdown", status="active", author="chief", reason="A")
    static = Facts(ws).static(10, ["street_code"])
    ring_a = (set(h3i.grid_disk(A, 1)) | set(h3i.grid_disk(A2, 1))) - {A, A2, B}
    street = {int(c) for c in static.loc[static["street_code"] == "S1", "cell"]}
    outer = sorted(street - ring_a - {A, A2, B})[0]  # an S1 cell of the prevention proposal
    zones.create(cells=[outer, A2], tier="control", status="active", author="chief",
                 reason="S1")
    result = propose(ws, "2026-04-30")
    assert result["covered"] == 0
    made = [zones.get(i) for i in result["created"]]
    lockdowns = sorted({int(c) for c in z.cells} for z in made if z.tier == "lockdown")
    assert lockdowns == sorted([{A2}, {B}])  # A2 stays: a control zone is looser
    control_a = next(z for z in made if z.tier == "control" and C in z.cells.tolist())
    assert {int(c) for c in control_a.cells} == ring_a
    prevention_s1 = next(z for z in made if z.tier == "prevention" and z.name.endswith("S1"))
    assert outer not in prevention_s1.cells.tolist()
    assert {int(c) for c in prevention_s1.cells} == street - ring_a - {A, A2, B, outer}


def _activate(zones: Zones, *found: ZoneVersion, valid_from: str) -> None:
    for z in found:
        zones.save(z.zone_id, zones.get(z.zone_id).version, status="active",
                   valid_from=valid_from, author="chief", reason="生效 activate")


def test_downgrades_worked_by_hand(ws: Workspace) -> None:
    propose(ws, "2026-04-30")
    zones = Zones(ws)
    lock_a = next(z for z in zones.list(tier="lockdown") if A in z.cells.tolist())
    lock_b = next(z for z in zones.list(tier="lockdown") if B in z.cells.tolist())
    _activate(zones, lock_a, lock_b, valid_from="2026-04-30")
    assert downgrades(ws, "2026-04-28") == []  # A: 6 clear days since 22 April
    (got,) = downgrades(ws, "2026-04-29")
    assert got["zone_id"] == lock_a.zone_id and got["suggested_tier"] == "control"
    assert got["last_infection"] == "2026-04-22" and got["counted_from"] == "2026-04-22"
    assert got["reached_on"] == "2026-04-29" and got["became_tier_on"] == "2026-04-30"
    assert got["clear_days"] == got["required_days"] == 7
    assert "7 consecutive days without new infections" in got["rule"]
    assert "9th edition" in got["rule"] and "counted from 2026-04-22" in got["rule"]
    assert "连续7天无新增感染者" in got["rule_zh"] and "2026-04-29满足" in got["rule_zh"]
    on_may_2 = {s["zone_id"]: s for s in downgrades(ws, "2026-05-02")}
    assert set(on_may_2) == {lock_a.zone_id, lock_b.zone_id}
    assert on_may_2[lock_b.zone_id]["reached_on"] == "2026-05-02"  # 25 April + 7
    # Proposed zones get no suggestion.
    zones.save(lock_b.zone_id, 2, status="proposed", author="chief", reason="回退 back")
    assert lock_b.zone_id not in {s["zone_id"] for s in downgrades(ws, "2026-05-07")}


def test_control_counts_from_the_day_it_became_control(ws: Workspace) -> None:
    """Last infection 22 April; lockdown -> control due 29 April, applied on 2 May: prevention
    is due 7 days after 2 May (9 May), not at once (22 April + 7)."""
    zones = Zones(ws)
    lock = zones.create(cells=[A, A2], tier="lockdown", status="active",
                        valid_from="2026-04-23", author="chief", reason="封控 A")
    (got,) = downgrades(ws, "2026-05-02")
    assert got["suggested_tier"] == "control" and got["reached_on"] == "2026-04-29"
    zones.save(lock.zone_id, 1, tier="control", valid_from="2026-05-02", author="chief",
               reason="降为管控区 down to control")
    assert downgrades(ws, "2026-05-02") == []
    # Editing the cells of the control zone does not restart its count.
    zones.save(lock.zone_id, 2, add_cells=[C], author="planner", reason="加 C")
    assert zones.get(lock.zone_id).valid_from == "2026-05-02"
    assert downgrades(ws, "2026-05-08") == []
    (got,) = downgrades(ws, "2026-05-09")
    assert got["tier"] == "control" and got["suggested_tier"] == "prevention"
    assert got["last_infection"] == "2026-04-22" and got["became_tier_on"] == "2026-05-02"
    assert got["counted_from"] == "2026-05-02" and got["reached_on"] == "2026-05-09"
    assert got["clear_days"] == got["required_days"] == 7 and got["cores"] == []
    assert "the day it became control (2026-05-02)" in got["rule"]
    assert "(2026-04-22)" in got["rule"] and "at least 14 days after" in got["rule"]
    assert "reached on 2026-05-09" in got["rule"]
    assert "转为管控区之日（2026-05-02）" in got["rule_zh"] and "满14天" in got["rule_zh"]


def test_prevention_never_sooner_than_both_counts_after_the_last_infection(
        ws: Workspace) -> None:
    """A zone created directly as control the day after its last infection (22 April): 7 days
    from 23 April would be 30 April, but 7 + 7 days after 22 April is 6 May."""
    zones = Zones(ws)
    zones.create(cells=[A, A2], tier="control", status="active", valid_from="2026-04-23",
                 author="chief", reason="管控 A")
    assert downgrades(ws, "2026-04-30") == downgrades(ws, "2026-05-05") == []
    (got,) = downgrades(ws, "2026-05-06")
    assert got["counted_from"] == "2026-04-23" and got["reached_on"] == "2026-05-06"


def test_lockdown_without_infections_counts_from_the_day_it_became_lockdown(
        ws: Workspace) -> None:
    zones = Zones(ws)
    z = zones.create(cells=[C], tier="lockdown", status="active", valid_from="2026-04-30",
                     author="chief", reason="封控 C (suspected case only)")
    assert downgrades(ws, "2026-05-06") == []
    (got,) = downgrades(ws, "2026-05-07")
    assert got["zone_id"] == z.zone_id and got["last_infection"] is None
    assert got["counted_from"] == got["became_tier_on"] == "2026-04-30"
    assert "no infection inside" in got["rule"] and "区内无感染者" in got["rule_zh"]


def test_a_ring_follows_the_lockdown_zone_it_surrounds(ws: Workspace) -> None:
    """Both lockdown zones and their rings in force from 20 April. Ring A has no infection of
    its own and would be due on 27 April; it waits for lockdown A (last infection 22 April,
    downgraded on 29 April) and counts A's infections: due 22 April + 14 = 6 May. Lockdown B
    (last infection 25 April) is due on 2 May; ring B waits as long as B is in lockdown."""
    propose(ws, "2026-04-30")
    zones = Zones(ws)
    lock_a = next(z for z in zones.list(tier="lockdown") if A in z.cells.tolist())
    lock_b = next(z for z in zones.list(tier="lockdown") if B in z.cells.tolist())
    ring_a = next(z for z in zones.list(tier="control") if C in z.cells.tolist())
    ring_b = next(z for z in zones.list(tier="control") if z.zone_id != ring_a.zone_id)
    _activate(zones, lock_a, lock_b, ring_a, ring_b, valid_from="2026-04-20")
    assert downgrades(ws, "2026-04-28") == []
    assert [s["zone_id"] for s in downgrades(ws, "2026-04-29")] == [lock_a.zone_id]
    zones.save(lock_a.zone_id, 2, tier="control", valid_from="2026-04-29", author="chief",
               reason="降为管控区 down to control")
    assert downgrades(ws, "2026-05-01") == []
    for day in ("2026-05-02", "2026-05-05"):  # lockdown B: 25 April + 7; nothing else yet
        assert [s["zone_id"] for s in downgrades(ws, day)] == [lock_b.zone_id], day
    on_may_6 = {s["zone_id"]: s for s in downgrades(ws, "2026-05-06")}
    assert set(on_may_6) == {lock_a.zone_id, lock_b.zone_id, ring_a.zone_id}
    ring = on_may_6[ring_a.zone_id]
    assert ring["suggested_tier"] == "prevention" and ring["cores"] == [lock_a.zone_id]
    assert ring["last_infection"] == "2026-04-22" and ring["became_tier_on"] == "2026-04-20"
    assert ring["counted_from"] == "2026-04-22" and ring["reached_on"] == "2026-05-06"
    assert f"the lockdown zones it surrounds ({lock_a.zone_id})" in ring["rule"]
    assert f"所围封控区（{lock_a.zone_id}）" in ring["rule_zh"]
    # Lockdown A, control since 29 April: 29 April + 7 = 22 April + 14 = 6 May.
    assert on_may_6[lock_a.zone_id]["counted_from"] == "2026-04-29"
    assert on_may_6[lock_a.zone_id]["reached_on"] == "2026-05-06"
    # Ring B stays control while lockdown B is in lockdown, however long.
    assert ring_b.zone_id not in {s["zone_id"] for s in downgrades(ws, "2026-06-30")}


def test_cores_are_touching_zones_that_are_or_were_lockdown(ws: Workspace) -> None:
    zones = Zones(ws)
    ring = zones.create(cells=sorted(h3i.grid_ring(A, 1)), tier="control", status="active",
                        author="p", reason="ring")
    touching = sorted(h3i.grid_ring(A, 2))  # one step from the ring
    beyond = sorted(h3i.grid_ring(A, 3))  # two steps from the ring
    core = zones.create(cells=[A], tier="lockdown", status="active", author="p", reason="A")
    was = zones.create(cells=touching[:1], tier="lockdown", status="active", author="p",
                       reason="was lockdown")
    zones.save(was.zone_id, 1, tier="control", author="p", reason="down")
    never = zones.create(cells=touching[1:2], tier="control", status="active", author="p",
                         reason="never lockdown")
    far = zones.create(cells=beyond[:1], tier="lockdown", status="active", author="p",
                       reason="far")
    proposed = zones.create(cells=touching[2:3], tier="lockdown", author="p", reason="proposal")
    lifted = zones.create(cells=touching[3:4], tier="lockdown", status="active", author="p",
                          reason="lifted")
    zones.save(lifted.zone_id, 1, status="lifted", author="p", reason="lift")
    history: dict[str, list[ZoneVersion]] = {}
    for v in zones.all_versions():
        history.setdefault(v.zone_id, []).append(v)
    active = [h[-1] for h in history.values() if h[-1].status == "active"]
    assert {z.zone_id for z in active} == {ring.zone_id, core.zone_id, was.zone_id,
                                           never.zone_id, far.zone_id}
    assert proposed.zone_id not in {z.zone_id for z in active}
    got = cores(zones.get(ring.zone_id), active, history)
    assert sorted(z.zone_id for z in got) == sorted([core.zone_id, was.zone_id])


def test_the_day_a_zone_became_its_tier(ws: Workspace) -> None:
    zones = Zones(ws)
    z = zones.create(cells=[A], tier="control", valid_from="2026-04-10", author="p",
                     reason="proposed")
    zones.save(z.zone_id, 1, status="active", valid_from="2026-04-12", author="p", reason="go")
    zones.save(z.zone_id, 2, add_cells=[A2], author="p", reason="cells")
    assert became_tier_on(zones.history(z.zone_id)) == dt.date(2026, 4, 12)
    zones.save(z.zone_id, 3, tier="lockdown", valid_from="2026-04-15", author="p", reason="up")
    assert became_tier_on(zones.history(z.zone_id)) == dt.date(2026, 4, 15)
    zones.save(z.zone_id, 4, tier="control", valid_from="2026-04-20", author="p", reason="dn")
    assert became_tier_on(zones.history(z.zone_id)) == dt.date(2026, 4, 20)
    zones.save(z.zone_id, 5, status="proposed", author="p", reason="back")
    zones.save(z.zone_id, 6, status="active", valid_from="2026-04-25", author="p", reason="go")
    assert became_tier_on(zones.history(z.zone_id)) == dt.date(2026, 4, 25)


def test_a_tier_change_takes_effect_today_by_default(ws: Workspace) -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    zones = Zones(ws)
    z = zones.create(cells=[A], tier="lockdown", status="active", valid_from="2026-04-20",
                     author="p", reason="r")
    assert zones.save(z.zone_id, 1, add_cells=[A2], author="p",
                      reason="cells").valid_from == "2026-04-20"
    assert zones.save(z.zone_id, 2, tier="control", author="p", reason="down").valid_from \
        == today
    assert zones.save(z.zone_id, 3, tier="prevention", valid_from="2026-05-02", author="p",
                      reason="down").valid_from == "2026-05-02"
    assert zones.save(z.zone_id, 4, tier="prevention", author="p",
                      reason="same tier").valid_from == "2026-05-02"


@pytest.mark.parametrize(("tier", "last", "since", "counted", "reached"), [
    ("lockdown", "2026-05-01", "2026-04-20", "2026-05-01", "2026-05-08"),
    ("lockdown", None, "2026-04-20", "2026-04-20", "2026-04-27"),
    ("control", "2026-05-01", "2026-05-10", "2026-05-10", "2026-05-17"),
    ("control", "2026-05-01", "2026-05-08", "2026-05-08", "2026-05-15"),
    ("control", "2026-05-01", "2026-05-02", "2026-05-02", "2026-05-15"),  # 1 May + 14
    ("control", "2026-05-12", "2026-05-08", "2026-05-12", "2026-05-26"),  # 12 May + 14
    ("control", None, "2026-05-08", "2026-05-08", "2026-05-15"),
], ids=["lockdown", "lockdown-no-infection", "control-late", "control-on-time",
        "control-early", "control-infected-again", "control-no-infection"])
def test_due_worked_by_hand(tier: str, last: str | None, since: str, counted: str,
                            reached: str) -> None:
    def day(text: str | None) -> dt.date | None:
        return dt.date.fromisoformat(text) if text else None

    on = day(reached)
    assert due(tier, day(last), day(since), on, 7, 7) == (True, day(counted), on)
    assert not due(tier, day(last), day(since), on - dt.timedelta(days=1), 7, 7).due
    with pytest.raises(ZoneError, match="no lower tier"):
        due("prevention", None, day(since), on, 7, 7)


_BASE = dt.date(2026, 4, 1)


@settings(max_examples=200, deadline=None)
@given(infected=st.lists(st.integers(0, 60), max_size=6),
       start=st.integers(0, 30), lockdown_days=st.integers(1, 10),
       control_days=st.integers(1, 10),
       judged=st.sets(st.integers(0, 100), min_size=1, max_size=40),
       delays=st.lists(st.integers(0, 6), min_size=2, max_size=2))
def test_no_zone_goes_to_prevention_early(infected: list[int], start: int, lockdown_days: int,
                                          control_days: int, judged: set[int],
                                          delays: list[int]) -> None:
    """However infections, judging days and the days downgrades are applied fall, prevention is
    never suggested sooner than L + C days after the last infection, nor C days after the zone
    became control (the pure rule, simulated day by day from a lockdown zone)."""
    tier, since, pending = "lockdown", start, None
    for today in range(start, 101):
        if pending is not None and today == pending:
            tier, since, pending = "control", today, None  # valid_from = the day applied
        if today not in judged or pending is not None:
            continue
        last = max((d for d in infected if d <= today), default=None)
        verdict = due(tier, None if last is None else _BASE + dt.timedelta(days=last),
                      _BASE + dt.timedelta(days=since), _BASE + dt.timedelta(days=today),
                      lockdown_days, control_days)
        assert verdict.due == (verdict.reached_on <= _BASE + dt.timedelta(days=today))
        if not verdict.due:
            continue
        if tier == "lockdown":
            assert last is None or today - last >= lockdown_days
            pending = today + delays[0]
        else:
            assert today - since >= control_days
            assert last is None or today - last >= lockdown_days + control_days
            return  # down to prevention: the zone's story ends


@pytest.fixture(scope="module")
def fused_copy_maker(fused: Path) -> Iterator[Callable[[], Workspace]]:
    """Fresh copies of the fused hand case, for hypothesis examples (6 ms each)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        count = itertools.count()

        def make() -> Workspace:
            target = Path(folder) / f"ws{next(count)}"
            shutil.copytree(fused, target)
            return Workspace.open(target)

        yield make


#: The infections of the hand case inside lockdown {A, A2} and its ring (by hand).
_INFECTED_A = (dt.date(2026, 4, 20), dt.date(2026, 4, 22))


@settings(max_examples=15, deadline=None)
@given(start=st.integers(0, 25), judged=st.lists(st.integers(0, 70), min_size=1, max_size=12,
                                                 unique=True),
       delays=st.lists(st.integers(0, 5), min_size=2, max_size=2))
def test_no_zone_goes_to_prevention_early_in_a_workspace(
        fused_copy_maker: Callable[[], Workspace], start: int, judged: list[int],
        delays: list[int]) -> None:
    """The same property through :func:`downgrades` and real zones: lockdown {A, A2} and its
    ring in force from a random day in April, judged on random days, each suggestion applied
    (as a new version with that valid_from) a random number of days later."""
    ws = fused_copy_maker()
    zones = Zones(ws)
    first = dt.date(2026, 4, 10) + dt.timedelta(days=start)
    lock = zones.create(cells=[A, A2], tier="lockdown", status="active", valid_from=first,
                        author="p", reason="lockdown")
    ring = zones.create(cells=grid.grid_disk(np.array([A, A2], np.uint64), 1),
                        tier="control", status="active", valid_from=first, author="p",
                        reason="ring")
    zones.save(ring.zone_id, 1, remove_cells=[A, A2], author="p", reason="ring only")
    control_since = {ring.zone_id: first}
    pending: dict[str, tuple[dt.date, str]] = {}
    for offset in sorted(judged):
        day = first + dt.timedelta(days=offset)
        for zone_id, (when, target) in list(pending.items()):
            if when <= day:
                current = zones.get(zone_id)
                zones.save(zone_id, current.version, tier=target, valid_from=when,
                           author="chief", reason="applied")
                if target == "control":
                    control_since[zone_id] = when
                del pending[zone_id]
        last = max((d for d in _INFECTED_A if d <= day), default=None)
        for s in downgrades(ws, day):
            assert s["reached_on"] <= day.isoformat()
            if s["suggested_tier"] == "prevention":
                assert (day - control_since[s["zone_id"]]).days >= 7
                assert last is None or (day - last).days >= 14
                if s["zone_id"] == ring.zone_id:
                    assert zones.get(lock.zone_id).tier != "lockdown"
            pending.setdefault(s["zone_id"],
                               (day + dt.timedelta(days=delays[len(pending) % 2]),
                                s["suggested_tier"]))


# -- versions, conflicts, validation ---------------------------------------------------------
def _rows(ws: Workspace) -> list[tuple]:
    conn = sqlite3.connect(ws.db_path)
    try:
        return [tuple(r) for r in conn.execute(
            "SELECT * FROM zone_versions ORDER BY zone_id, version")]
    finally:
        conn.close()


def test_versions_are_never_overwritten(ws: Workspace) -> None:
    zones = Zones(ws)
    disk = sorted(h3i.grid_disk(A, 2))
    z = zones.create(cells=disk[:5], tier="lockdown", author="planner1", reason="初划 first")
    before = _rows(ws)
    zones.save(z.zone_id, 1, add_cells=disk[5:7], author="planner2", reason="添加楼栋 add")
    zones.save(z.zone_id, 2, remove_cells=disk[:1], tier="control", author="planner1",
               reason="降级 down")
    zones.save(z.zone_id, 3, status="active", author="chief", reason="生效 go")
    after = _rows(ws)
    assert set(before) <= set(after) and len(after) == 4
    history = zones.history(z.zone_id)
    assert [h.version for h in history] == [1, 2, 3, 4]
    assert [h.author for h in history] == ["planner1", "planner2", "planner1", "chief"]
    assert history[0].cells.tolist() == disk[:5]
    assert history[1].cells.tolist() == sorted(disk[:7])
    assert history[2].cells.tolist() == sorted(disk[1:7]) and history[2].tier == "control"
    assert history[3].status == "active" and history[3].valid_from == dt.datetime.now(
        dt.UTC).date().isoformat()
    assert zones.get(z.zone_id, 1).cells.tolist() == disk[:5]
    assert zones.get(z.zone_id).version == 4 and zones.get(z.zone_id).current_version == 4
    audit = [a for a in ws.audit_log(50) if a["target"] == z.zone_id]
    assert sorted(a["action"] for a in audit) == ["zone.create"] + ["zone.save"] * 3


def test_conflict_names_who_saved_in_between(ws: Workspace) -> None:
    zones = Zones(ws)
    disk = sorted(h3i.grid_disk(A, 1))
    z = zones.create(cells=disk[:3], tier="lockdown", author="planner1", reason="初划")
    zones.save(z.zone_id, 1, add_cells=disk[3:4], author="planner2", reason="添加楼栋 3 号")
    zones.save(z.zone_id, 2, add_cells=disk[4:5], author="planner3", reason="添加楼栋 4 号")
    with pytest.raises(ZoneConflictError) as err:
        zones.save(z.zone_id, 1, remove_cells=disk[:1], author="me", reason="mine")
    message = str(err.value)
    assert message.startswith(f"zone {z.zone_id} was changed since version 1: version 2 by "
                              "planner2 at ")
    assert "(添加楼栋 3 号)" in message and "version 3 by planner3" in message
    assert message.endswith("reload and apply your edit to version 3")
    assert isinstance(err.value, ValueError) and err.value.current == 3
    assert [c[0] for c in err.value.changes] == [2, 3]
    assert zones.get(z.zone_id).version == 3 and len(_rows(ws)) == 3


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"tier": "red"}, "unknown tier 'red'; use one of lockdown, control, prevention"),
    ({"status": "done"}, "unknown status 'done'; use one of proposed, active, lifted"),
    ({"reason": "  "}, "non-empty reason"),
    ({"remove_cells": "all"}, "at least one cell"),
    ({"add_cells": [0]}, "resolution-10 cells"),
])
def test_invalid_edits_are_refused(ws: Workspace, kwargs: dict, match: str) -> None:
    zones = Zones(ws)
    z = zones.create(cells=[A], tier="lockdown", author="a", reason="r")
    if kwargs.get("remove_cells") == "all":
        kwargs["remove_cells"] = [A]
    if kwargs.get("add_cells") == [0]:
        kwargs["add_cells"] = [h3i.cell_to_parent(A, 9)]
    args = {"author": "b", "reason": "why", **kwargs}
    with pytest.raises(ZoneError, match=match):
        zones.save(z.zone_id, 1, **args)
    assert zones.get(z.zone_id).version == 1
    with pytest.raises(ZoneNotFoundError, match="no zone 'Z99'"):
        zones.get("Z99")
    with pytest.raises(ZoneNotFoundError, match="has no version 7"):
        zones.get(z.zone_id, 7)


def test_polygon_edit_keeps_the_outline(ws: Workspace) -> None:
    zones = Zones(ws)
    z = zones.create(cells=[A], tier="control", author="a", reason="r")
    polygon = shapely.box(121.461, 31.226, 121.464, 31.228)
    v2 = zones.save(z.zone_id, 1, polygon=polygon, author="b", reason="画区 drawn")
    assert v2.cells.tolist() == sorted(grid.polygon_to_cells(polygon, 10).tolist())
    lng, lat = grid.cell_centres(v2.cells)
    assert shapely.contains_xy(polygon, lng, lat).all()
    assert shapely.from_wkb(v2.outline).equals(polygon)
    v3 = zones.save(z.zone_id, 2, status="active", author="b", reason="生效")
    assert v3.outline == v2.outline  # only the status changed
    v4 = zones.save(z.zone_id, 3, add_cells=[B], author="b", reason="加 B")
    assert v4.outline is None  # the drawn outline no longer describes the cells


# -- concurrency -------------------------------------------------------------------------------
WORKER = textwrap.dedent("""
    import sys, time
    from twin import Workspace
    from twin.errors import StoreBusyError
    from twin.zones import ZoneConflictError, Zones

    root, zone_id, name = sys.argv[1], sys.argv[2], sys.argv[3]
    zones = Zones(Workspace.open(root))
    conflicts = 0
    for cell in map(int, sys.argv[4:]):
        while True:
            current = zones.get(zone_id)
            try:
                zones.save(zone_id, current.version, add_cells=[cell], author=name,
                           reason=f"add {cell:x}")
                break
            except ZoneConflictError:
                conflicts += 1
            except StoreBusyError:
                time.sleep(0.01)
    print(conflicts)
""")


def test_concurrent_editors_lose_no_edit(ws: Workspace) -> None:
    workers, edits = 8, 10
    zones = Zones(ws)
    z = zones.create(cells=[A], tier="lockdown", author="start", reason="start")
    extra = [c for c in sorted(h3i.grid_disk(A, 6)) if c != A][:workers * edits]
    procs = [subprocess.Popen(
        [sys.executable, "-c", WORKER, str(ws.root), z.zone_id, f"editor{i}",
         *map(str, extra[i * edits:(i + 1) * edits])],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(workers)]
    outputs = [p.communicate(timeout=120) for p in procs]
    print("conflicts retried:", sum(int(o[0].split()[-1]) for o in outputs if o[0].strip()))
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    final = zones.get(z.zone_id)
    assert final.version == workers * edits + 1
    assert final.cells.tolist() == sorted([A, *extra])
    history = zones.history(z.zone_id)
    assert [h.version for h in history] == list(range(1, workers * edits + 2))
    # every version adds exactly one cell to the one before
    for old, new in itertools.pairwise(history):
        assert len(np.setdiff1d(new.cells, old.cells)) == 1
        assert len(np.setdiff1d(old.cells, new.cells)) == 0


# -- impact, diff, export ----------------------------------------------------------------------
def test_impact_is_the_sum_of_its_cells(ws: Workspace) -> None:
    facts = Facts(ws)
    static = facts.static(10)
    numeric = [c for c in static.columns if c != "cell" and not c.endswith("_code")]
    rng = np.random.default_rng(7)
    cells = static["cell"].to_numpy(np.uint64)
    for size in (0, 1, 5, len(cells)):
        chosen = rng.choice(cells, size=size, replace=False)
        outside = np.array([h3i.cell_to_center_child(h3i.cell_to_parent(B, 7), 10)],
                           np.uint64)
        got = impact(facts, np.concatenate([chosen, outside, chosen[:1]]))
        want = static[static["cell"].isin(chosen)][numeric].sum()
        for column in numeric:
            assert got.totals[column] == pytest.approx(want[column]), column
        assert got.cells == size + 1 and got.cells_without_facts == 1
    whole = impact(facts, cells).to_dict()
    assert whole["residents"] == pytest.approx(static["residents"].sum())
    assert whole["facilities"]["hospital"] == {"n": 1, "capacity": 500.0}
    assert whole["stocks"]["water"] == pytest.approx(static["stock_water"].sum())
    assert whole["buildings"]["n"] == static["buildings_n"].sum()
    assert set(whole["groups"]) == {"age_65_plus", "children", "elderly_living_alone",
                                    "chronic_patients"}


def test_diff_between_versions(ws: Workspace) -> None:
    zones = Zones(ws)
    static = Facts(ws).static(10, ["residents"]).sort_values("residents", ascending=False)
    top = static["cell"].to_numpy(np.uint64)[:6].tolist()
    res = dict(zip(static["cell"].tolist(), static["residents"].tolist(), strict=True))
    z = zones.create(cells=top[:3], tier="lockdown", author="a", reason="r")
    zones.save(z.zone_id, 1, add_cells=top[3:5], remove_cells=top[:1], author="b", reason="s")
    zones.save(z.zone_id, 2, add_cells=top[5:6], author="c", reason="t")
    d = diff(ws, z.zone_id, 1, 3)
    assert d["added"] == grid.cells_to_strings(np.array(sorted(top[3:6]), np.uint64)).tolist()
    assert d["removed"] == grid.cells_to_strings(np.array(top[:1], np.uint64)).tolist()
    assert d["residents_added"] == pytest.approx(sum(res[c] for c in top[3:6]))
    assert d["residents_removed"] == pytest.approx(res[top[0]])
    assert d["residents_after"] - d["residents_before"] == pytest.approx(
        d["residents_added"] - d["residents_removed"])
    back = diff(ws, z.zone_id, 3, 1)
    assert back["added"] == d["removed"] and back["removed"] == d["added"]
    assert diff(ws, z.zone_id, 2, 2)["added"] == []


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg"])
def test_export_round_trip(ws: Workspace, tmp_path: Path, suffix: str) -> None:
    propose(ws, "2026-04-30")
    zones = {z.zone_id: z for z in Zones(ws).list()}
    out = tmp_path / "out" / f"zones{suffix}"
    assert export(ws, out) == len(zones)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left
    frame = gpd.read_file(out)
    assert sorted(frame["zone_id"]) == sorted(zones) and frame.crs.to_epsg() == 4326
    facts = Facts(ws)
    for row in frame.itertuples():
        z = zones[row.zone_id]
        lng, lat = grid.cell_centres(z.cells)
        assert shapely.contains_xy(row.geometry, lng, lat).all(), row.zone_id
        assert row.tier == z.tier and row.tier_zh in ("封控区", "管控区", "防范区")
        assert row.status_zh == "建议" and str(row.valid_from)[:10] == "2026-04-30"
        assert row.residents == pytest.approx(impact(facts, z.cells).totals["residents"])
        assert row.cells_n == len(z.cells)
    with pytest.raises(ZoneError, match=r"use a \.geojson or \.gpkg file"):
        export(ws, tmp_path / "zones.shp")


# -- command line ------------------------------------------------------------------------------
def _cli() -> click.Group:
    group = TwinGroup("twin")
    register(group)
    return group


def test_cli(ws: Workspace, tmp_path: Path) -> None:
    runner, cli, root = CliRunner(), _cli(), str(ws.root)
    result = runner.invoke(cli, ["zones", "propose", root, "--date", "2026-04-30", "--json"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)["created"]
    listed = json.loads(runner.invoke(cli, ["zones", "list", root, "--json"]).output)
    assert [z["zone_id"] for z in listed] == created
    text = runner.invoke(cli, ["zones", "list", root, "--tier", "lockdown"]).output
    assert "封控区 lockdown" in text
    zid = listed[0]["zone_id"]
    shown = json.loads(runner.invoke(cli, ["zones", "show", root, zid, "--json"]).output)
    assert shown["impact"]["cells"] == shown["cells_n"]
    new_cell = format(sorted(h3i.grid_ring(B, 3))[0], "x")
    edit = ["zones", "edit", root, zid, "--expect-version", "1", "--add-cells", new_cell,
            "--reason", "添加楼栋", "--author", "planner2", "--status", "active"]
    result = runner.invoke(cli, [*edit, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["version"] == 2
    result = runner.invoke(cli, [*edit, "--json"])
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "ZoneConflictError"
    assert "version 2 by planner2" in error["message"]
    assert runner.invoke(cli, [*edit[:-2], "--reason"]).exit_code == 2
    bad = runner.invoke(cli, ["zones", "edit", root, zid, "--expect-version", "2",
                              "--add-cells", "zzz", "--reason", "x"])
    assert bad.exit_code == 2 and "not H3 cells" in bad.output
    polygon = tmp_path / "area.geojson"
    polygon.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {},
        "geometry": shapely.geometry.mapping(shapely.box(121.461, 31.226, 121.464, 31.228))}]}))
    result = runner.invoke(cli, ["zones", "edit", root, zid, "--expect-version", "2",
                                 "--polygon", str(polygon), "--reason", "画区", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(runner.invoke(cli, ["zones", "diff", root, zid, "1", "2", "--json"]).output)
    assert d["added"] == [new_cell] and d["removed"] == []
    assert "added 1 cells" in runner.invoke(cli, ["zones", "diff", root, zid, "1", "2"]).output
    result = runner.invoke(cli, ["zones", "downgrades", root, "--date", "2026-05-20", "--json"])
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.output), list)
    out = tmp_path / "z.geojson"
    result = runner.invoke(cli, ["zones", "export", root, str(out), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["zones"] == len(created)
    history = runner.invoke(cli, ["zones", "show", root, zid, "--history"])
    assert history.exit_code == 0 and "v3" in history.output
    missing = runner.invoke(cli, ["zones", "show", root, "Z999"])
    assert missing.exit_code == 1 and "no zone 'Z999'" in missing.output


def test_impact_gives_demand_and_gaps_inside(tmp_path: Path) -> None:
    """With a tier, impact adds each needed resource's demand, the stocks inside and the gap."""
    from tests.conftest import fused_demo
    from twin.zones import impact as zone_impact

    ws, _ = fused_demo(tmp_path, seed=1)
    facts = Facts(ws)
    base = facts.static(facts.base)
    cells = base.nlargest(50, "residents")["cell"].to_numpy(np.uint64)
    result = zone_impact(facts, cells, tier="lockdown", horizon_days=3)
    residents = base.set_index("cell").loc[cells, "residents"].sum()
    water = result.supply["water"]
    assert water["daily_demand"] == pytest.approx(residents * 15.0)
    assert water["demand"] == pytest.approx(residents * 15.0 * 3)
    assert water["gap"] == pytest.approx(max(water["demand"] - water["supply"], 0.0))
    assert "masks" not in result.supply  # masks are for control and prevention
    assert "antigen_tests" in result.supply  # daily testing under lockdown
    assert zone_impact(facts, cells).supply == {}
