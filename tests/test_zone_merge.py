"""Merge-aware zone saves, accept and reject: hand-worked cases, properties of the pure merge,
and the commands.

Cells are named by hand (``P[i]``: resolution-10 cells of a disk around the hand case's cell A
from :mod:`tests.test_zones`); every expected cell set below is written out, not computed with
the code under test.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from h3.api import basic_int as h3i
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_zones import A2, A, B, _cli, fused  # noqa: F401  (fused: a fixture)
from twin import Workspace, grid
from twin.errors import ZoneConflictError, ZoneError, ZoneMergeConflict
from twin.zones import (
    Conflicts,
    ZoneEdit,
    Zones,
    ZoneVersion,
    accept,
    merge,
    propose,
    reject,
    save_edit,
)

#: 37 base cells around A, sorted; P[0..] are the cells the cases below use.
P = sorted(h3i.grid_disk(A, 3))
TODAY = dt.datetime.now(dt.UTC).date().isoformat()


def _hex(*cells: int) -> list[str]:
    return [format(c, "x") for c in cells]


def _set(zone: ZoneVersion) -> set[int]:
    return {int(c) for c in zone.cells}


def _rows(ws: Workspace) -> int:
    conn = sqlite3.connect(ws.db_path)
    try:
        return conn.execute("SELECT COUNT(*) FROM zone_versions").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def zone(workspace: Workspace) -> ZoneVersion:
    """Version 1 of a proposed lockdown zone on P[0..3] from 20 April."""
    return Zones(workspace).create(cells=P[:4], tier="lockdown", valid_from="2026-04-20",
                                   author="start", reason="初划 first")


# -- hand-worked merges -------------------------------------------------------------------------
def test_disjoint_edits_of_two_planners_merge(workspace: Workspace, zone: ZoneVersion) -> None:
    """Both start from version 1 {P0, P1, P2, P3}: alice adds P4 and removes P0, bob adds P5
    and removes P1; the result is {P2, P3, P4, P5}."""
    first = save_edit(workspace, zone.zone_id, ZoneEdit(1, [P[4]], [P[0]]), author="alice",
                      reason="加 P4 减 P0")
    assert first.merged_with == [] and first.zone.reason == "加 P4 减 P0"
    second = save_edit(workspace, zone.zone_id, ZoneEdit(1, [P[5]], [P[1]]), author="bob",
                       reason="加 P5 减 P1")
    assert _set(second.zone) == {P[2], P[3], P[4], P[5]}
    assert second.zone.version == 3 and second.zone.author == "bob"
    assert [m[:2] for m in second.merged_with] == [(2, "alice")]
    assert second.zone.reason == "加 P5 减 P1 (基于 based on v1; 合并 merged with v2 by alice)"
    assert second.theirs == {"added": 1, "removed": 1, "tier": None, "status": None,
                             "valid_from": None}
    assert second.resolved == {} and second.lock_retries == 0
    row = workspace.audit_log(1)[0]
    assert row["action"] == "zone.save" and row["detail"]["base_version"] == 1
    assert row["detail"]["merged_with"] == [2] and row["detail"]["from_version"] == 2
    assert second.zone.valid_from == "2026-04-20"  # neither changed tier nor status


def test_edit_between_keeps_only_what_changed(zone: ZoneVersion) -> None:
    edit = ZoneEdit.between(zone, [*P[1:4], P[6]], tier="lockdown", status="active",
                            valid_from="2026-04-20")
    assert edit.add.tolist() == [P[6]] and edit.remove.tolist() == [P[0]]
    assert edit.tier is None and edit.valid_from is None and edit.status == "active"
    assert ZoneEdit.between(zone, P[:4]).is_empty()
    assert not ZoneEdit(1, outline=shapely.box(121.46, 31.22, 121.47, 31.23)).is_empty()
    with pytest.raises(ZoneError, match="both added and removed by one edit"):
        ZoneEdit(1, [P[0]], [P[0]])
    with pytest.raises(ZoneError, match="base_version must be a version number"):
        ZoneEdit(0)
    with pytest.raises(ZoneError, match="unknown tier 'red'"):
        ZoneEdit(1, tier="red")


def test_a_cell_added_by_one_and_removed_by_the_other_conflicts(
        workspace: Workspace, zone: ZoneVersion) -> None:
    """Bob (from v1) adds P6. Since v1, alice added P6 (v2) and carol removed it again (v3):
    carol's removal is the last word on P6 and clashes with bob's addition."""
    zones = Zones(workspace)
    zones.save(zone.zone_id, 1, add_cells=[P[6]], author="alice", reason="加 P6")
    zones.save(zone.zone_id, 2, remove_cells=[P[6]], author="carol", reason="P6 不需要")
    before = _rows(workspace)
    with pytest.raises(ZoneMergeConflict) as err:
        save_edit(workspace, zone.zone_id, ZoneEdit(1, [P[6], P[7]]), author="bob",
                  reason="加 P6 P7")
    exc = err.value
    assert isinstance(exc, ZoneConflictError) and isinstance(exc, ValueError)
    assert exc.conflicts.added_here_removed_there.tolist() == [P[6]]
    assert exc.conflicts.kinds() == ("cells",) and bool(exc.conflicts)
    assert exc.conflicts.by["added_here_removed_there"] == ("v3 by carol",)
    assert exc.current_version == 3 and [c[:2] for c in exc.changes] == [(2, "alice"),
                                                                        (3, "carol")]
    message = str(exc)
    assert f"zone {zone.zone_id} was changed since your version 1" in message
    assert f"you add 1 cell that v3 by carol removed ({_hex(P[6])[0]})" in message
    assert "nothing was saved: choose mine or theirs for cells" in message
    assert _rows(workspace) == before and zones.get(zone.zone_id).version == 3
    # A cell the edit names to add that is in its base and that they removed (raw edits, as
    # the command line makes them) conflicts the same way; and the reverse.
    zones.save(zone.zone_id, 3, remove_cells=[P[0]], add_cells=[P[8]], author="dan",
               reason="减 P0 加 P8")
    with pytest.raises(ZoneMergeConflict) as err:
        save_edit(workspace, zone.zone_id, ZoneEdit(3, [P[0]], [P[8]]), author="bob",
                  reason="keep P0, no P8")
    got = err.value.conflicts
    assert got.added_here_removed_there.tolist() == [P[0]]
    assert got.removed_here_added_there.tolist() == [P[8]]
    assert got.to_dict()["removed_here_added_there"] == _hex(P[8])
    assert got.to_dict()["added_here_removed_there_n"] == 1
    assert "you remove 1 cell that v4 by dan added" in str(err.value)


def test_both_changing_tier_conflicts_and_the_same_change_does_not(
        workspace: Workspace, zone: ZoneVersion) -> None:
    zones = Zones(workspace)
    zones.save(zone.zone_id, 1, tier="control", valid_from="2026-04-28", author="alice",
               reason="降为管控 down")
    with pytest.raises(ZoneMergeConflict) as err:
        save_edit(workspace, zone.zone_id, ZoneEdit(1, [P[6]], tier="prevention"),
                  author="bob", reason="降为防范")
    assert err.value.conflicts.tier == ("prevention", "control")
    assert err.value.conflicts.kinds() == ("tier",)
    assert ("you set tier to prevention 防范区, v2 by alice set it to control 管控区"
            in str(err.value))
    assert "choose mine or theirs for tier" in str(err.value)
    assert zones.get(zone.zone_id).version == 2
    same = save_edit(workspace, zone.zone_id, ZoneEdit(1, [P[6]], tier="control"),
                     author="bob", reason="降为管控 + P6")
    assert same.zone.tier == "control" and same.resolved == {}
    assert _set(same.zone) == {*P[:4], P[6]}
    assert same.zone.valid_from == "2026-04-28"  # alice's day of the tier change stays


@pytest.mark.parametrize(("side", "tier", "cells"), [
    ("mine", "prevention", {P[1], P[2], P[3], P[6], P[7]}),
    ("theirs", "control", {P[1], P[2], P[3], P[7]}),
], ids=["mine", "theirs"])
def test_resolve_takes_the_chosen_side(workspace: Workspace, zone: ZoneVersion, side: str,
                                       tier: str, cells: set[int]) -> None:
    """Alice (v2 from v1) adds P6, v3 removes P6 and P0 and sets control; bob from v1 adds P6
    and P7 and sets prevention: both the cell P6 and the tier conflict, P7 merges."""
    zones = Zones(workspace)
    zones.save(zone.zone_id, 1, add_cells=[P[6]], author="alice", reason="加 P6")
    zones.save(zone.zone_id, 2, remove_cells=[P[6], P[0]], tier="control", author="alice",
               reason="减 P6 P0, 管控")
    edit = ZoneEdit(1, [P[6], P[7]], tier="prevention")
    with pytest.raises(ZoneMergeConflict, match="choose mine or theirs for cells, tier"):
        save_edit(workspace, zone.zone_id, edit, author="bob", reason="r",
                  resolve={"status": side})
    with pytest.raises(ZoneMergeConflict, match="choose mine or theirs for tier"):
        save_edit(workspace, zone.zone_id, edit, author="bob", reason="r",
                  resolve={"cells": side})  # a resolve that does not cover the tier
    assert zones.get(zone.zone_id).version == 3
    done = save_edit(workspace, zone.zone_id, edit, author="bob", reason="r",
                     resolve={"cells": side, "tier": side})
    assert done.zone.tier == tier and _set(done.zone) == cells
    assert done.resolved == {"cells": side, "tier": side}
    assert workspace.audit_log(1)[0]["detail"]["resolved"] == {"cells": side, "tier": side}
    with pytest.raises(ZoneError, match="unknown side for tier 'both'"):
        save_edit(workspace, zone.zone_id, edit, author="bob", reason="r",
                  resolve={"tier": "both"})
    with pytest.raises(ZoneError, match="unknown conflict kind to resolve 'name'"):
        save_edit(workspace, zone.zone_id, edit, author="bob", reason="r",
                  resolve={"name": "mine"})


def test_status_and_valid_from_conflict_like_tier(workspace: Workspace,
                                                  zone: ZoneVersion) -> None:
    zones = Zones(workspace)
    zones.save(zone.zone_id, 1, status="active", valid_from="2026-04-25", author="alice",
               reason="生效")
    with pytest.raises(ZoneMergeConflict) as err:
        save_edit(workspace, zone.zone_id, ZoneEdit(1, status="lifted",
                                                    valid_from="2026-04-26"),
                  author="bob", reason="解除")
    assert err.value.conflicts.status == ("lifted", "active")
    assert err.value.conflicts.valid_from == ("2026-04-26", "2026-04-25")
    assert err.value.conflicts.kinds() == ("status", "valid_from")


def test_nothing_to_save_is_refused(workspace: Workspace, zone: ZoneVersion) -> None:
    with pytest.raises(ZoneError, match="changes nothing"):
        save_edit(workspace, zone.zone_id, ZoneEdit(1), author="bob", reason="r")
    with pytest.raises(ZoneError, match="changes nothing"):
        save_edit(workspace, zone.zone_id, ZoneEdit.between(zone, P[:4], tier="lockdown"),
                  author="bob", reason="r")
    Zones(workspace).save(zone.zone_id, 1, add_cells=[P[6]], author="alice", reason="加 P6")
    with pytest.raises(ZoneError, match=r"nothing to save: version 2 of zone Z1 already is "
                                        r"what your edit makes it \(saved since your version 1 "
                                        r"by alice\)"):
        save_edit(workspace, zone.zone_id, ZoneEdit(1, [P[6]]), author="bob", reason="r")
    with pytest.raises(ZoneError, match="non-empty reason"):
        save_edit(workspace, zone.zone_id, ZoneEdit(2, [P[7]]), author="bob", reason=" ")
    with pytest.raises(ZoneError, match="at least one cell"):
        save_edit(workspace, zone.zone_id, ZoneEdit(2, remove=[*P[:4], P[6]]), author="bob",
                  reason="r")
    with pytest.raises(ZoneConflictError, match="has no version 9"):
        save_edit(workspace, zone.zone_id, ZoneEdit(9, [P[7]]), author="bob", reason="r")
    assert _rows(workspace) == 2


def test_the_outline_is_dropped_when_the_merge_changes_the_cells(workspace: Workspace) -> None:
    zones = Zones(workspace)
    polygon = shapely.box(121.461, 31.226, 121.464, 31.228)
    drawn = grid.polygon_to_cells(polygon, 10)
    z = zones.create(cells=[B], tier="control", author="a", reason="r")
    # Nobody saved in between: the drawn cells are saved as they are, with the outline.
    alone = save_edit(workspace, z.zone_id, ZoneEdit.between(z, drawn, outline=polygon),
                      author="bob", reason="画区 drawn")
    assert shapely.from_wkb(alone.zone.outline).equals(polygon)
    assert alone.zone.cells.tolist() == sorted(drawn.tolist())
    # A status change by someone else keeps it; an added cell (not in the drawing) drops it.
    zones.save(z.zone_id, 2, status="active", author="alice", reason="生效")
    kept = save_edit(workspace, z.zone_id, ZoneEdit(2, tier="lockdown"), author="bob",
                     reason="升级")
    assert kept.zone.outline == alone.zone.outline
    base = zones.get(z.zone_id)
    zones.save(z.zone_id, base.version, add_cells=[A2], author="alice", reason="加 A2")
    redrawn = shapely.box(121.461, 31.226, 121.465, 31.228)
    merged = save_edit(workspace, z.zone_id,
                       ZoneEdit.between(base, grid.polygon_to_cells(redrawn, 10),
                                        outline=redrawn), author="bob", reason="重画")
    assert A2 in merged.zone.cells.tolist() and merged.zone.outline is None


# -- accept and reject -------------------------------------------------------------------------
def test_accept_a_proposal(workspace: Workspace, zone: ZoneVersion) -> None:
    done = accept(workspace, zone.zone_id, 1, valid_from="2026-04-30", author="chief")
    assert done.zone.status == "active" and done.zone.valid_from == "2026-04-30"
    assert done.zone.reason == "采纳建议 accepted proposal" and done.zone.version == 2
    row = workspace.audit_log(1)[0]
    assert row["action"] == "zone.accept" and row["actor"] == "chief"
    with pytest.raises(ZoneError, match=r"zone Z1 is active 生效 \(version 2 by chief: "
                                        r"采纳建议 accepted proposal\), not proposed; only a "
                                        r"proposal can be accepted"):
        accept(workspace, zone.zone_id, 2, valid_from="2026-05-01", author="chief")
    with pytest.raises(ZoneError, match="needs valid_from"):
        accept(workspace, zone.zone_id, 2, valid_from=None, author="chief")  # type: ignore[arg-type]


def test_accept_merges_with_a_new_version_of_the_proposal(workspace: Workspace,
                                                          zone: ZoneVersion) -> None:
    """``propose`` re-versions the proposal (new cells, its own day) after the chief opened
    version 1: the acceptance applies to the new cells from the chief's day."""
    Zones(workspace).save(zone.zone_id, 1, set_cells=P[:6], valid_from="2026-04-29",
                          author="system", reason="按病例自动建议")
    done = accept(workspace, zone.zone_id, 1, valid_from="2026-04-30", author="chief",
                  reason="同意 agreed")
    assert _set(done.zone) == set(P[:6]) and done.zone.status == "active"
    assert done.zone.valid_from == "2026-04-30" and done.resolved == {"valid_from": "mine"}
    assert done.zone.reason == "同意 agreed (基于 based on v1; 合并 merged with v2 by system)"


def test_reject_a_proposal(workspace: Workspace, zone: ZoneVersion) -> None:
    with pytest.raises(ZoneError, match="non-empty reason"):
        reject(workspace, zone.zone_id, 1, reason="", author="chief")
    done = reject(workspace, zone.zone_id, 1, reason="病例已转运 case moved", author="chief")
    assert done.zone.status == "lifted" and done.zone.version == 2
    assert done.zone.reason == "驳回 rejected: 病例已转运 case moved"
    assert workspace.audit_log(1)[0]["action"] == "zone.reject"
    history = Zones(workspace).history(zone.zone_id)
    assert [(h.version, h.status) for h in history] == [(1, "proposed"), (2, "lifted")]
    with pytest.raises(ZoneError, match="only a proposal can be rejected"):
        reject(workspace, zone.zone_id, 2, reason="again", author="chief")


@pytest.fixture
def ws(fused: Path, tmp_path: Path) -> Workspace:  # noqa: F811
    """A private copy of the fused hand case of :mod:`tests.test_zones`."""
    shutil.copytree(fused, tmp_path / "ws")
    return Workspace.open(tmp_path / "ws")


def test_propose_skips_a_rejected_proposal_but_not_a_changed_one(ws: Workspace) -> None:
    """Lockdown {A, A2} proposed on 30 April is rejected: re-proposing on 30 April does not
    make it again; on 4 May (window from 21 April: A's infections of 20 April are out) the
    lockdown proposal is {A2}, which differs, and is made."""
    first = propose(ws, "2026-04-30")
    zones = Zones(ws)
    lock_a = next(z for z in zones.list(tier="lockdown") if _set(z) == {A, A2})
    reject(ws, lock_a.zone_id, 1, reason="误报 false alarm", author="chief")
    again = propose(ws, "2026-04-30")
    assert again["rejected"] == [lock_a.zone_id]
    assert again["created"] == again["updated"] == again["superseded"] == []
    assert sorted(again["unchanged"]) == sorted(set(first["created"]) - {lock_a.zone_id})
    assert zones.get(lock_a.zone_id).status == "lifted" and zones.get(lock_a.zone_id).version == 2
    later = propose(ws, "2026-05-04")
    assert later["rejected"] == []
    made = [zones.get(i) for i in later["created"] + later["updated"]]
    assert {A2} in [_set(z) for z in made if z.tier == "lockdown"]
    assert zones.get(lock_a.zone_id).version == 2  # the rejected zone is never touched


def test_reopening_a_rejected_zone_withdraws_the_rejection(ws: Workspace) -> None:
    propose(ws, "2026-04-30")
    zones = Zones(ws)
    lock_b = next(z for z in zones.list(tier="lockdown") if _set(z) == {B})
    reject(ws, lock_b.zone_id, 1, reason="误报", author="chief")
    zones.save(lock_b.zone_id, 2, status="proposed", author="chief", reason="重新考虑 reopen")
    again = propose(ws, "2026-04-30")
    assert again["rejected"] == [] and lock_b.zone_id in again["unchanged"]


# -- properties of the pure merge --------------------------------------------------------------
def _version(number: int, cells: set[int], *, tier: str = "lockdown",
             status: str = "proposed", day: str = "2026-04-20",
             author: str = "x") -> ZoneVersion:
    return ZoneVersion(zone_id="Z1", name="z", version=number, current_version=number,
                       tier=tier, status=status, valid_from=day, author=author, reason="r",
                       cells=np.array(sorted(cells), np.uint64), outline=None,
                       created_at="2026-04-20T00:00:00Z")


def _apply(base: ZoneVersion, edit: ZoneEdit) -> ZoneVersion:
    cells, tier, status, day, conflicts = merge(base, base, edit)
    assert not conflicts
    return _version(base.version + 1, {int(c) for c in cells}, tier=tier, status=status,
                    day=day)


_CELLS = st.sets(st.sampled_from(P), max_size=20)


@st.composite
def _two_disjoint_edits(draw: st.DrawFn) -> tuple[set[int], dict, dict]:
    base = draw(_CELLS)
    touched = draw(st.lists(st.sampled_from(P), unique=True, max_size=24))
    split = draw(st.integers(0, len(touched)))
    edits = []
    for part in (touched[:split], touched[split:]):
        adds = {c for c in part if draw(st.booleans())}
        edits.append({"add": adds, "remove": set(part) - adds})
    return base, edits[0], edits[1]


@settings(max_examples=300, deadline=None)
@given(_two_disjoint_edits())
def test_disjoint_edits_commute(case: tuple[set[int], dict, dict]) -> None:
    """A then B == B then A == base ∪ adds − removes, without conflicts."""
    base_cells, a, b = case
    base = _version(1, base_cells)
    edit_a = ZoneEdit(1, sorted(a["add"]), sorted(a["remove"]))
    edit_b = ZoneEdit(1, sorted(b["add"]), sorted(b["remove"]))
    want = (base_cells | a["add"] | b["add"]) - a["remove"] - b["remove"]
    results = []
    for first, second in ((edit_a, edit_b), (edit_b, edit_a)):
        current = _apply(base, first)
        cells, tier, status, day, conflicts = merge(base, current, second)
        assert not conflicts and isinstance(conflicts, Conflicts)
        assert (tier, status, day) == ("lockdown", "proposed", "2026-04-20")
        results.append({int(c) for c in cells})
    assert results[0] == results[1] == want


@settings(max_examples=300, deadline=None)
@given(base_cells=_CELLS, steps=st.lists(_CELLS, min_size=1, max_size=3),
       add=_CELLS, remove=_CELLS, side=st.sampled_from([None, "mine", "theirs"]))
def test_every_change_that_does_not_conflict_is_kept(base_cells: set[int],
                                                     steps: list[set[int]], add: set[int],
                                                     remove: set[int],
                                                     side: str | None) -> None:
    """Their versions are any cell sets after the base; my edit any adds and removes. Worked
    cell by cell: a cell of mine conflicts when their last change to it went the other way;
    every other change of mine, and every net change of theirs I do not contradict, is in
    the result; a conflicting cell follows the side chosen (theirs by default)."""
    remove -= add
    history = [_version(1, base_cells)] + [_version(i + 2, s, author=f"p{i}")
                                           for i, s in enumerate(steps)]
    base, current = history[0], history[-1]
    cells, *_, conflicts = merge(base, current, ZoneEdit(1, sorted(add), sorted(remove)),
                                 None if side is None else {"cells": side}, history=history)
    got = {int(c) for c in cells}
    for c in P:
        last = None  # their last change of c: "add" or "remove"
        for old, new in itertools.pairwise(history):
            was, now = c in _set(old), c in _set(new)
            if was != now:
                last = "add" if now else "remove"
        clash = (c in add and last == "remove") or (c in remove and last == "add")
        assert (c in conflicts.added_here_removed_there.tolist()
                or c in conflicts.removed_here_added_there.tolist()) == clash
        if clash:
            assert (c in got) == ((c in add) if side == "mine" else (c in _set(current)))
        elif c in add:
            assert c in got
        elif c in remove:
            assert c not in got
        else:  # untouched by me: as they left it
            assert (c in got) == (c in _set(current))


@settings(max_examples=200, deadline=None)
@given(theirs=st.sampled_from([None, "lockdown", "control", "prevention"]),
       mine=st.sampled_from([None, "lockdown", "control", "prevention"]))
def test_tier_merges_like_a_three_way_value(theirs: str | None, mine: str | None) -> None:
    base = _version(1, {P[0]}, tier="lockdown")
    current = _version(2, {P[0]}, tier=theirs or "lockdown",
                       day=TODAY if theirs not in (None, "lockdown") else "2026-04-20")
    _, tier, _, _, conflicts = merge(base, current, ZoneEdit(1, [P[1]], tier=mine))
    clash = mine is not None and current.tier != "lockdown" and mine != current.tier
    assert (conflicts.tier is not None) == clash
    assert tier == (current.tier if mine is None or clash else mine)


# -- command line ------------------------------------------------------------------------------
def test_cli_save_merges_and_shows_conflicts(workspace: Workspace, zone: ZoneVersion) -> None:
    runner, cli, root = CliRunner(), _cli(), str(workspace.root)
    save = ["zones", root, "save", zone.zone_id, "--base-version", "1"]
    ok = runner.invoke(cli, [*save, "--add-cells", _hex(P[4])[0], "--remove-cells",
                             _hex(P[0])[0], "--reason", "加 P4", "--author", "alice"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith(f"saved {zone.zone_id} version 2: 封控区 lockdown proposed, "
                                "4 cells")
    merged = runner.invoke(cli, [*save, "--add-cells", _hex(P[5])[0], "--reason", "加 P5",
                                 "--author", "bob", "--json"])
    assert merged.exit_code == 0, merged.output
    data = json.loads(merged.output)
    assert data["zone"]["version"] == 3 and data["zone"]["cells_n"] == 5
    assert [m["author"] for m in data["merged_with"]] == ["alice"]
    assert data["theirs"]["added"] == 1 and data["theirs"]["removed"] == 1
    text = runner.invoke(cli, [*save[:-1], "3", "--tier", "control", "--reason", "降",
                               "--author", "carol"])
    assert text.exit_code == 0, text.output
    # Bob, still on version 1, adds back P0 (removed by alice) and sets prevention (carol
    # set control): both conflict; nothing is written.
    clash = [*save, "--add-cells", _hex(P[0])[0], "--tier", "prevention", "--reason", "r",
             "--author", "bob"]
    failed = runner.invoke(cli, clash)
    assert failed.exit_code == 1
    assert "conflict 冲突 on Z1: your edit of version 1 against version 4" in failed.stdout
    assert f"you add 1 that v2 by alice removed: {_hex(P[0])[0]}" in failed.stdout
    assert "tier: mine prevention · theirs control (v4 by carol)" in failed.stdout
    assert failed.stderr.startswith("error: zone Z1 was changed since your version 1")
    assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.output
    assert Zones(workspace).get(zone.zone_id).version == 4
    as_json = runner.invoke(cli, [*clash, "--json"])
    assert as_json.exit_code == 1
    error = json.loads(as_json.stdout)["error"]
    assert error["type"] == "ZoneMergeConflict" and error["current_version"] == 4
    assert error["conflicts"]["kinds"] == ["cells", "tier"]
    assert error["conflicts"]["added_here_removed_there"] == _hex(P[0])
    assert [c["version"] for c in error["changes"]] == [2, 3, 4]
    mine = runner.invoke(cli, [*clash, "--on-conflict", "mine", "--json"])
    assert mine.exit_code == 0, mine.output
    assert json.loads(mine.output)["resolved"] == {"cells": "mine", "tier": "mine"}
    final = Zones(workspace).get(zone.zone_id)
    assert final.tier == "prevention" and P[0] in final.cells.tolist()
    bad = runner.invoke(cli, [*save, "--add-cells", "zzz", "--reason", "x"])
    assert bad.exit_code == 2 and "not H3 cells" in bad.output
    empty = runner.invoke(cli, [*save[:-1], "5", "--reason", "x"])
    assert empty.exit_code == 1 and "changes nothing" in empty.stderr


def test_cli_save_with_a_polygon(workspace: Workspace, zone: ZoneVersion,
                                 tmp_path: Path) -> None:
    polygon = shapely.box(121.461, 31.226, 121.464, 31.228)
    path = tmp_path / "area.geojson"
    path.write_text(json.dumps({"type": "Feature", "properties": {},
                                "geometry": shapely.geometry.mapping(polygon)}))
    result = CliRunner().invoke(_cli(), ["zones", str(workspace.root), "save", zone.zone_id,
                                         "--base-version", "1", "--polygon", str(path),
                                         "--reason", "画区", "--json"])
    assert result.exit_code == 0, result.output
    saved = Zones(workspace).get(zone.zone_id)
    assert saved.cells.tolist() == sorted(grid.polygon_to_cells(polygon, 10).tolist())
    assert shapely.from_wkb(saved.outline).equals(polygon)


def test_cli_accept_and_reject(workspace: Workspace, zone: ZoneVersion) -> None:
    runner, cli, root = CliRunner(), _cli(), str(workspace.root)
    other = Zones(workspace).create(cells=P[10:12], tier="control", author="system",
                                    reason="建议")
    done = runner.invoke(cli, ["zones", root, "accept", zone.zone_id, "--base-version", "1",
                               "--valid-from", "2026-04-30", "--author", "chief", "--json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.output)["zone"]
    assert data["status"] == "active" and data["valid_from"] == "2026-04-30"
    assert data["reason"] == "采纳建议 accepted proposal"
    again = runner.invoke(cli, ["zones", root, "accept", zone.zone_id, "--base-version", "2",
                                "--valid-from", "2026-04-30"])
    assert again.exit_code == 1 and "only a proposal can be accepted" in again.stderr
    assert again.stderr.count("\n") == 1
    assert runner.invoke(cli, ["zones", root, "accept", zone.zone_id, "--base-version",
                               "1"]).exit_code == 2  # --valid-from is required
    no = runner.invoke(cli, ["zones", root, "reject", other.zone_id, "--base-version", "1",
                             "--reason", "不必要 not needed", "--author", "chief"])
    assert no.exit_code == 0, no.output
    assert no.output.startswith(f"saved {other.zone_id} version 2: 管控区 control lifted")
    assert Zones(workspace).get(other.zone_id).reason == "驳回 rejected: 不必要 not needed"
    assert runner.invoke(cli, ["zones", root, "reject", other.zone_id, "--base-version",
                               "2"]).exit_code == 2  # --reason is required
