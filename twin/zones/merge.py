"""Merge-aware saves of zones (:func:`save_edit`), for editors that may work on stale versions.

A zone is a set of cells, so edits of different cells commute: an edit is kept as what it
changes relative to the version its planner started from (:class:`ZoneEdit`: cells added and
removed, and tier, status and ``valid_from`` when given), and saving it applies those changes
to the zone's *current* version, whoever saved in between.

**Merge rule** (:func:`merge`; "theirs" are the versions saved after the edit's base):

- cells: the result is the current cells, plus the cells the edit adds, minus the cells it
  removes. A cell the edit adds whose last change by them was a removal, or a cell the edit
  removes whose last change by them was an addition, is a conflict (``cells``). A cell both
  sides added, or both removed, is not. With :meth:`ZoneEdit.between` (what the browser editor
  sends) the edit adds only cells outside its base and removes only cells inside it, so a cell
  conflict means they removed (or added) again a cell after touching it.
- tier, status, ``valid_from``: a value the edit gives is its change (``between`` leaves out
  the values equal to the base). When they changed it too (current differs from base) to
  another value, that is a conflict of that kind; the same value on both sides is not. A value
  the edit leaves out stays as they left it; ``valid_from`` then follows :meth:`Zones.save`'s
  defaulting rule against the current version (today when the tier changes or the status
  becomes active, else unchanged).
- the drawn outline is kept only while the merged cells are exactly the cells it describes.

``resolve`` picks a side per kind ("cells", "tier", "status", "valid_from" -> "mine" or
"theirs"); :func:`save_edit` refuses to write while a conflict is not covered by it
(:class:`~twin.errors.ZoneMergeConflict`), and reads base and current inside the write
transaction, so that what it merged with is what it wrote after.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin import grid
from twin.dates import parse_day
from twin.db import write_transaction
from twin.errors import StoreBusyError, ZoneError, ZoneMergeConflict
from twin.store import Workspace, default_author, utc_now
from twin.zones.store import (
    STATUS_ZH,
    STATUSES,
    TIER_ZH,
    TIERS,
    Zones,
    ZoneVersion,
    _check_text,
    _outline_wkb,
    as_cells,
    check_choice,
    valid_from_after,
)

__all__ = ["CONFLICT_KINDS", "SIDES", "Conflicts", "SaveResult", "ZoneEdit", "merge",
           "save_edit"]

#: What a conflict can be about, i.e. the keys of ``resolve``.
CONFLICT_KINDS = ("cells", "tier", "status", "valid_from")
#: The sides ``resolve`` can choose.
SIDES = ("mine", "theirs")
#: Longest single wait for the write lock before it counts as a retry (seconds).
_LOCK_SLICE_S = 0.1
_EMPTY = np.empty(0, np.uint64)


def _cells(values: Iterable[Any] | np.ndarray | None) -> np.ndarray:
    found = as_cells(values)
    return _EMPTY.copy() if found is None else found


def _shown(cells: np.ndarray, n: int = 3) -> str:
    text = ", ".join(grid.cells_to_strings(cells[:n]).tolist())
    return text + (f", … ({len(cells)} in all)" if len(cells) > n else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


@dataclass(frozen=True, eq=False)
class ZoneEdit:
    """What a planner changed relative to the version they started from.

    Parameters
    ----------
    base_version
        The version the planner started from.
    add, remove
        Cells (``uint64`` or hexadecimal strings) added and removed relative to the base;
        stored as sorted unique ``uint64``. A cell may not be in both.
    tier, status
        The new tier / status, or ``None``: unchanged.
    valid_from
        The day the version takes effect (ISO day), or ``None``: :meth:`Zones.save`'s
        defaulting rule.
    outline
        The drawn WGS84 polygon (shapely or a GeoJSON mapping) when the edited cells are
        exactly its cells; kept only while the merged cells still are.

    Raises
    ------
    ZoneError
        For a cell that is not H3, a cell both added and removed, an unknown tier or status, a
        date that is not one, or a base version below 1.
    """

    base_version: int
    add: np.ndarray = field(default_factory=lambda: _EMPTY.copy())
    remove: np.ndarray = field(default_factory=lambda: _EMPTY.copy())
    tier: str | None = None
    status: str | None = None
    valid_from: str | dt.date | None = None
    outline: Any = None

    def __post_init__(self) -> None:
        try:
            base = int(self.base_version)
        except (TypeError, ValueError):
            base = 0
        if base < 1:
            raise ZoneError(f"base_version must be a version number (1 or more), not "
                            f"{self.base_version!r}; give the version the edit started from")
        add, remove = _cells(self.add), _cells(self.remove)
        both = np.intersect1d(add, remove)
        if len(both):
            raise ZoneError(f"{_plural(len(both), 'cell')} ({_shown(both)}) both added and "
                            "removed by one edit; keep each cell in add or in remove")
        if self.tier is not None:
            check_choice(self.tier, TIERS, "tier")
        if self.status is not None:
            check_choice(self.status, STATUSES, "status")
        day = None
        if self.valid_from is not None:
            day = parse_day(self.valid_from, "valid_from", error=ZoneError).isoformat()
        for name, value in (("base_version", base), ("add", add), ("remove", remove),
                            ("valid_from", day)):
            object.__setattr__(self, name, value)

    @classmethod
    def between(cls, base: ZoneVersion, cells: Iterable[Any] | np.ndarray, *,
                tier: str | None = None, status: str | None = None,
                valid_from: str | dt.date | None = None, outline: Any = None) -> ZoneEdit:
        """The edit from ``base`` to the ``cells``, tier, status and day a planner wants.

        Tier, status and ``valid_from`` are kept only when they differ from the base's, so
        that fields the planner did not touch never conflict.
        """
        target = _cells(cells)
        probe = cls(base.version, tier=tier, status=status, valid_from=valid_from)
        return cls(base.version, np.setdiff1d(target, base.cells),
                   np.setdiff1d(base.cells, target),
                   tier=None if probe.tier == base.tier else probe.tier,
                   status=None if probe.status == base.status else probe.status,
                   valid_from=None if probe.valid_from == base.valid_from else probe.valid_from,
                   outline=outline)

    def is_empty(self) -> bool:
        """Whether the edit changes nothing (no cell, tier, status, day or outline)."""
        return (not len(self.add) and not len(self.remove) and self.tier is None
                and self.status is None and self.valid_from is None and self.outline is None)

    def cells_from(self, base: ZoneVersion) -> np.ndarray:
        """The cells the planner saw after the edit: ``base`` plus ``add`` minus ``remove``."""
        return np.setdiff1d(np.union1d(base.cells, self.add), self.remove)


@dataclass(frozen=True, eq=False)
class Conflicts:
    """What both sides changed incompatibly (empty: the edits merge).

    ``by`` names, per key (``added_here_removed_there``, ``removed_here_added_there``,
    ``tier``, ``status``, ``valid_from``), who made their side of the change ("v6 by carol").
    """

    added_here_removed_there: np.ndarray = field(default_factory=lambda: _EMPTY.copy())
    removed_here_added_there: np.ndarray = field(default_factory=lambda: _EMPTY.copy())
    tier: tuple[str, str] | None = None
    status: tuple[str, str] | None = None
    valid_from: tuple[str, str] | None = None
    by: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def kinds(self) -> tuple[str, ...]:
        """The kinds in conflict, among :data:`CONFLICT_KINDS`."""
        out = []
        if len(self.added_here_removed_there) or len(self.removed_here_added_there):
            out.append("cells")
        out += [k for k in ("tier", "status", "valid_from") if getattr(self, k) is not None]
        return tuple(out)

    def __bool__(self) -> bool:
        return bool(self.kinds())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary: cells as hexadecimal strings, with their counts."""
        out: dict[str, Any] = {"kinds": list(self.kinds())}
        for key in ("added_here_removed_there", "removed_here_added_there"):
            cells = getattr(self, key)
            out[key] = grid.cells_to_strings(cells).tolist()
            out[f"{key}_n"] = len(cells)
        for key in ("tier", "status", "valid_from"):
            pair = getattr(self, key)
            out[key] = None if pair is None else {"mine": pair[0], "theirs": pair[1]}
        out["by"] = {k: list(v) for k, v in self.by.items()}
        return out

    def describe(self) -> list[str]:
        """One phrase per conflict, naming both sides and who made theirs."""
        def who(key: str) -> str:
            return " and ".join(self.by.get(key, ())) or "someone"

        parts = []
        if len(self.added_here_removed_there):
            parts.append(f"you add {_plural(len(self.added_here_removed_there), 'cell')} that "
                         f"{who('added_here_removed_there')} removed "
                         f"({_shown(self.added_here_removed_there)})")
        if len(self.removed_here_added_there):
            parts.append(f"you remove {_plural(len(self.removed_here_added_there), 'cell')} "
                         f"that {who('removed_here_added_there')} added "
                         f"({_shown(self.removed_here_added_there)})")
        labels = {"tier": TIER_ZH, "status": STATUS_ZH}
        for key in ("tier", "status", "valid_from"):
            pair = getattr(self, key)
            if pair is not None:
                mine, theirs = (f"{v} {labels[key][v]}" if key in labels else v for v in pair)
                parts.append(f"you set {key} to {mine}, {who(key)} set it to {theirs}")
        return parts


@dataclass(frozen=True)
class SaveResult:
    """What :func:`save_edit` wrote and what it merged with.

    ``merged_with`` lists the versions saved between the edit's base and the version it was
    applied to as ``(version, author, created_at, reason)`` (empty when the base was current);
    ``theirs`` sums up their change (cells added and removed, tier/status/valid_from as
    ``[base, current]`` or ``None``); ``resolved`` tells which side each conflict took;
    ``lock_retries`` counts the waits for the database's write lock longer than 0.1 s.
    """

    zone: ZoneVersion
    merged_with: list[tuple[int, str, str, str]]
    theirs: dict[str, Any]
    resolved: dict[str, str]
    lock_retries: int

    @property
    def merged(self) -> bool:
        """Whether the edit's base was stale (someone saved in between)."""
        return bool(self.merged_with)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (the zone without its cells)."""
        return {"zone": self.zone.to_dict(cells=False),
                "merged_with": [{"version": v, "author": a, "created_at": t, "reason": r}
                                for v, a, t, r in self.merged_with],
                "theirs": self.theirs, "resolved": self.resolved,
                "lock_retries": self.lock_retries}


def _check_resolve(resolve: Mapping[str, str] | None) -> dict[str, str]:
    out = dict(resolve or {})
    for kind, side in out.items():
        check_choice(kind, CONFLICT_KINDS, "conflict kind to resolve")
        check_choice(side, SIDES, f"side for {kind}")
    return out


def _their_cell_changes(steps: Sequence[ZoneVersion]) -> tuple[np.ndarray, np.ndarray]:
    """Cells whose last change over ``steps`` was an addition, and those it was a removal."""
    last_add, last_remove = _EMPTY, _EMPTY
    for a, b in itertools.pairwise(steps):
        added, removed = np.setdiff1d(b.cells, a.cells), np.setdiff1d(a.cells, b.cells)
        last_add = np.union1d(np.setdiff1d(last_add, removed), added)
        last_remove = np.union1d(np.setdiff1d(last_remove, added), removed)
    return last_add, last_remove


def _who(steps: Sequence[ZoneVersion], *, added: np.ndarray = _EMPTY,
         removed: np.ndarray = _EMPTY, key: str | None = None) -> tuple[str, ...]:
    """Who last made the change: of the cells ``added``/``removed``, or of field ``key``."""
    last: dict[int, ZoneVersion] = {}
    for a, b in itertools.pairwise(steps):
        if key is not None:
            if getattr(a, key) != getattr(b, key):
                last[0] = b
            continue
        for c in np.intersect1d(np.setdiff1d(b.cells, a.cells), added).tolist():
            last[c] = b
        for c in np.intersect1d(np.setdiff1d(a.cells, b.cells), removed).tolist():
            last[c] = b
    versions = sorted({v.version: v for v in last.values()}.values(), key=lambda v: v.version)
    return tuple(f"v{v.version} by {v.author}" for v in versions)


def merge(base: ZoneVersion, current: ZoneVersion, edit: ZoneEdit,
          resolve: Mapping[str, str] | None = None, *,
          history: Sequence[ZoneVersion] | None = None,
          ) -> tuple[np.ndarray, str, str, str, Conflicts]:
    """Apply ``edit`` (made on ``base``) to ``current``: the merge rule of the module docstring.

    A pure function: no database. ``history`` is every version from ``base`` to ``current``
    in order; it tells whose change a conflict met and which change of a cell came last
    (without it, ``base`` then ``current``).

    Returns
    -------
    cells, tier, status, valid_from, conflicts
        The merged values and every conflict found. A conflict that ``resolve`` covers takes
        the chosen side; one it does not cover is left as theirs (the current value): see
        :meth:`Conflicts.kinds` against ``resolve`` before writing.

    Raises
    ------
    ZoneError
        When base, current and edit are not of one zone in that order, or ``resolve`` names
        an unknown kind or side.
    """
    choice = _check_resolve(resolve)
    if base.zone_id != current.zone_id:
        raise ZoneError(f"cannot merge zone {base.zone_id}'s version into zone "
                        f"{current.zone_id}; give two versions of one zone")
    if edit.base_version != base.version or current.version < base.version:
        raise ZoneError(f"the edit is based on version {edit.base_version} of zone "
                        f"{base.zone_id}; give that version as base and a later one as "
                        f"current (got {base.version} and {current.version})")
    steps = list(history) if history is not None else (
        [base] if current.version == base.version else [base, current])
    if [steps[0].version, steps[-1].version] != [base.version, current.version]:
        raise ZoneError("history must run from the base version to the current one")

    last_add, last_remove = _their_cell_changes(steps)
    add_vs_removed = np.intersect1d(edit.add, last_remove)
    remove_vs_added = np.intersect1d(edit.remove, last_add)
    by: dict[str, tuple[str, ...]] = {}
    if len(add_vs_removed):
        by["added_here_removed_there"] = _who(steps, removed=add_vs_removed)
    if len(remove_vs_added):
        by["removed_here_added_there"] = _who(steps, added=remove_vs_added)
    if choice.get("cells") == "mine":
        add, remove = edit.add, edit.remove
    else:
        add = np.setdiff1d(edit.add, add_vs_removed)
        remove = np.setdiff1d(edit.remove, remove_vs_added)
    cells = np.setdiff1d(np.union1d(current.cells, add), remove)

    pairs: dict[str, tuple[str, str] | None] = {}
    values: dict[str, str | None] = {}
    for key in ("tier", "status", "valid_from"):
        mine, theirs, was = getattr(edit, key), getattr(current, key), getattr(base, key)
        pairs[key] = None
        if mine is None:
            values[key] = None
        elif mine == theirs or theirs == was:
            values[key] = mine
        else:
            pairs[key] = (mine, theirs)
            by[key] = _who(steps, key=key)
            values[key] = mine if choice.get(key) == "mine" else theirs
    tier = values["tier"] or current.tier
    status = values["status"] or current.status
    day = valid_from_after(current, tier, status, values["valid_from"])
    conflicts = Conflicts(add_vs_removed, remove_vs_added, tier=pairs["tier"],
                          status=pairs["status"], valid_from=pairs["valid_from"], by=by)
    return cells, tier, status, day, conflicts


def save_edit(workspace: Workspace, zone_id: str, edit: ZoneEdit, *, author: str | None,
              reason: str, resolve: Mapping[str, str] | None = None) -> SaveResult:
    """Save ``edit`` as the zone's next version, merged with what was saved since its base.

    Base and current versions are read inside the write transaction (``BEGIN IMMEDIATE``);
    when the base is stale the reason and the audit row name it and the versions merged with
    ("… (基于 based on v4; 合并 merged with v5 by alice)").

    Parameters
    ----------
    workspace
        The workspace.
    zone_id
        The zone.
    edit
        What the planner changed relative to ``edit.base_version``.
    author
        Who saves (default: the user name).
    reason
        Why the zone changes (required).
    resolve
        The side each kind of conflict takes ("cells", "tier", "status", "valid_from" ->
        "mine" or "theirs").

    Raises
    ------
    ZoneMergeConflict
        When a conflict found at save time is not covered by ``resolve`` (nothing written).
    ZoneConflictError
        When the base version does not exist.
    ZoneError
        For an edit that changes nothing, an empty reason, or a merge that leaves no cell.
    StoreBusyError
        When the database stayed locked for longer than ``store.busy_timeout_s``.
    """
    return _save_edit(workspace, zone_id, edit, author=author, reason=reason, resolve=resolve,
                      action="zone.save")


def _save_edit(workspace: Workspace, zone_id: str, edit: ZoneEdit, *, author: str | None,
               reason: str, resolve: Mapping[str, str] | None, action: str,
               check: Callable[[ZoneVersion], None] | None = None) -> SaveResult:
    """:func:`save_edit` with the audit ``action`` and a ``check`` of the current version
    (run inside the transaction, before anything is written)."""
    if not isinstance(edit, ZoneEdit):
        raise ZoneError(f"an edit must be a ZoneEdit, not {type(edit).__name__}; build it "
                        "with ZoneEdit(base_version, add, remove, …) or ZoneEdit.between")
    if edit.is_empty():
        raise ZoneError(f"the edit of zone {zone_id} changes nothing (no cell added or "
                        "removed, no tier, status, valid_from or outline); nothing to save")
    choice = _check_resolve(resolve)
    reason = _check_text(reason, "reason")
    author = _check_text(author or default_author(), "author")
    outline = _outline_wkb(edit.outline) if edit.outline is not None else None
    zones = Zones(workspace)
    timeout = float(workspace.config.busy_timeout_s)
    deadline = time.monotonic() + timeout
    retries = 0
    with workspace.connect() as conn:
        while True:
            wait = min(_LOCK_SLICE_S, max(deadline - time.monotonic(), 0.001))
            conn.execute(f"PRAGMA busy_timeout = {max(int(wait * 1000), 1)}")
            try:
                with write_transaction(conn, timeout=timeout):
                    zone, merged_with, theirs, resolved = _merge_and_write(
                        zones, conn, zone_id, edit, outline, choice, author=author,
                        reason=reason, action=action, check=check)
                return SaveResult(zone, merged_with, theirs, resolved, retries)
            except StoreBusyError:
                if time.monotonic() >= deadline:
                    raise
                retries += 1
                time.sleep(random.uniform(0.0, 0.005))


def _merge_and_write(zones: Zones, conn: sqlite3.Connection, zone_id: str, edit: ZoneEdit,
                     outline: bytes | None, choice: dict[str, str], *, author: str,
                     reason: str, action: str,
                     check: Callable[[ZoneVersion], None] | None,
                     ) -> tuple[ZoneVersion, list[tuple[int, str, str, str]], dict[str, Any],
                                dict[str, str]]:
    current = zones._get(conn, zone_id)
    b = edit.base_version
    if b > current.version:
        raise zones._conflict(conn, zone_id, b, current.version)
    if check is not None:
        check(current)
    steps = ([current] if b == current.version
             else zones._versions(conn, zone_id, b, current.version))
    base = steps[0]
    merged_with = zones._changes_since(conn, zone_id, b)
    cells, tier, status, day, conflicts = merge(base, current, edit, choice, history=steps)
    open_ = [k for k in conflicts.kinds() if k not in choice]
    if open_:
        raise ZoneMergeConflict(
            f"zone {zone_id} was changed since your version {b} in ways that clash with your "
            f"edit: {'; '.join(conflicts.describe())}; nothing was saved: choose mine or "
            f"theirs for {', '.join(open_)} (resolve={{'{open_[0]}': 'mine'|'theirs'}}, or "
            "`twin zones WS save … --on-conflict mine|theirs`)", zone_id=zone_id, expected=b,
            current=current.version, changes=merged_with, conflicts=conflicts)
    cells = zones._check_cells(cells)
    if edit.outline is not None:
        kept = outline if np.array_equal(cells, edit.cells_from(base)) else None
    else:
        kept = current.outline if np.array_equal(cells, current.cells) else None
    if (np.array_equal(cells, current.cells) and (tier, status, day, kept) == (
            current.tier, current.status, current.valid_from, current.outline)):
        since = (f" (saved since your version {b} by "
                 f"{', '.join(sorted({a for _, a, _, _ in merged_with}))})" if merged_with
                 else "")
        raise ZoneError(f"nothing to save: version {current.version} of zone {zone_id} "
                        f"already is what your edit makes it{since}; leave the zone as it is "
                        "or change something else")
    if merged_with:
        names = [f"v{v} by {a}" for v, a, _, _ in merged_with[:5]]
        if len(merged_with) > 5:
            names.append(f"and {len(merged_with) - 5} more")
        reason = f"{reason} (基于 based on v{b}; 合并 merged with {', '.join(names)})"
    theirs = {"added": len(np.setdiff1d(current.cells, base.cells)),
              "removed": len(np.setdiff1d(base.cells, current.cells))}
    for key in ("tier", "status", "valid_from"):
        was, now = getattr(base, key), getattr(current, key)
        theirs[key] = None if was == now else [was, now]
    resolved = {k: choice[k] for k in conflicts.kinds()}
    zone = zones._write(conn, current, cells=cells, tier=tier, status=status, valid_from=day,
                        outline=kept, author=author, reason=reason, action=action,
                        now=utc_now(), detail={
                            "base_version": b, "merged_with": [v for v, *_ in merged_with],
                            "resolved": resolved})
    return zone, merged_with, theirs, resolved
