"""Epidemic control zones: lockdown 封控区, control 管控区, prevention 防范区.

A zone is a set of base-resolution H3 cells (plus the drawn outline, if any) with a tier, a
status (proposed, active, lifted), ``valid_from``, author and reason. Every change is a new
version in ``zone_versions`` (append-only: rows are only ever inserted); the ``zones`` row holds
the name and the number of the current version. Edits use optimistic concurrency: a
:meth:`Zones.save` names the version it was based on and is refused with
:class:`ZoneConflictError` when someone saved in between.

The system proposes zones from cases (:func:`propose`) and downgrades (:func:`downgrades`);
people decide (a proposal is stored with status ``proposed`` and never applied silently).

**Proposal rule** (national protocol, ``[zones]`` in ``twin.toml``): lockdown = the base cells
of infections (confirmed or asymptomatic cases) reported in the last ``case_window_days`` days
up to the date, merged into one zone when they touch (``grid_disk(cell, 1)``); control = a ring
of ``control_ring`` cells around each lockdown zone, without lockdown cells (a cell in two rings
goes to the first zone, so that the tiers of one proposal never overlap); prevention = the other
base cells of each street that holds a lockdown cell (one zone per street).

**Re-run rule**: only zones whose current status is ``proposed`` are touched. Each new proposal
is matched to the still-proposed zone of the same tier that shares most cells with it: identical
cells -> nothing is written; different cells -> a new version of that zone; no match -> a new
zone. Still-proposed zones that match no new proposal get a new version with status ``lifted``
(reason "superseded"). Running ``propose`` twice on the same data therefore writes nothing the
second time. Active and lifted zones are never changed by ``propose``.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin import grid, i18n
from twin.dates import parse_day
from twin.db import write_transaction
from twin.errors import CellError, ZoneConflictError, ZoneError, ZoneNotFoundError
from twin.schema import INFECTION_STATUSES, OPEN_ZONE_STATUSES, ZONE_STATUSES, ZONE_TIERS
from twin.store import Workspace, audit, default_author, utc_now

__all__ = [
    "INFECTIONS", "STATUSES", "STATUS_ZH", "TIERS", "TIER_ZH", "Impact", "ZoneConflictError",
    "ZoneError", "ZoneNotFoundError", "ZoneVersion", "Zones", "diff", "downgrades", "export",
    "impact", "propose",
]

#: Tiers from strictest to loosest (:data:`twin.schema.ZONE_TIERS`), with their Chinese names.
TIERS = ZONE_TIERS
TIER_ZH = {k: zh for k, (zh, _) in i18n.TIERS.items()}
#: Statuses of a zone version (:data:`twin.schema.ZONE_STATUSES`), with their Chinese names.
STATUSES = ZONE_STATUSES
STATUS_ZH = {k: zh for k, (zh, _) in i18n.STATUSES.items()}
#: Case statuses that count as an infection, for proposals and downgrades
#: (:data:`twin.schema.INFECTION_STATUSES`).
INFECTIONS = INFECTION_STATUSES
_NEXT_TIER = {"lockdown": "control", "control": "prevention"}


@dataclass(frozen=True)
class ZoneVersion:
    """One version of a zone (``current_version`` is the zone's newest)."""

    zone_id: str
    name: str
    version: int
    current_version: int
    tier: str
    status: str
    valid_from: str
    author: str
    reason: str
    cells: np.ndarray = field(repr=False)
    outline: bytes | None = field(repr=False)
    created_at: str

    def to_dict(self, *, cells: bool = True) -> dict[str, Any]:
        """A JSON-ready dictionary (cells as hexadecimal H3 strings)."""
        out: dict[str, Any] = {
            "zone_id": self.zone_id, "name": self.name, "version": self.version,
            "current_version": self.current_version, "tier": self.tier,
            "tier_zh": TIER_ZH[self.tier], "status": self.status,
            "status_zh": STATUS_ZH[self.status], "valid_from": self.valid_from,
            "author": self.author, "reason": self.reason, "cells_n": len(self.cells),
            "has_outline": self.outline is not None, "created_at": self.created_at}
        if cells:
            out["cells"] = grid.cells_to_strings(self.cells).tolist()
        return out


# -- helpers -----------------------------------------------------------------------------------
def _pack(cells: np.ndarray) -> bytes:
    return np.unique(np.asarray(cells, dtype=np.uint64)).astype("<u8").tobytes()


def _unpack(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<u8").astype(np.uint64)


def _as_cells(cells: Iterable[Any] | np.ndarray | None) -> np.ndarray | None:
    if cells is None:
        return None
    values = list(cells) if not isinstance(cells, np.ndarray) else cells
    if len(values) and isinstance(values[0], str):
        try:
            return np.unique(grid.strings_to_cells(list(values)))
        except CellError as exc:
            raise ZoneError(f"{exc} (give hexadecimal H3 cells such as 8a309959c2c7fff)") \
                from None
    return np.unique(np.asarray(values, dtype=np.uint64))


def _check_choice(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise ZoneError(f"unknown {what} {value!r}; use one of {', '.join(allowed)}")
    return value


def _check_text(value: str | None, what: str) -> str:
    if value is None or not str(value).strip():
        raise ZoneError(f"a zone change needs a non-empty {what} (say why the zone changes)"
                        if what == "reason" else f"a zone change needs a non-empty {what}")
    return str(value).strip()


def _check_day(value: str | dt.date | None) -> str:
    if value is None:
        return dt.datetime.now(dt.UTC).date().isoformat()
    return parse_day(value, "valid_from", error=ZoneError).isoformat()


def _short_time(iso: str) -> str:
    return iso[:19].replace("T", " ") + " UTC"


# -- the store ---------------------------------------------------------------------------------
class Zones:
    """The zones of a workspace: create, read, edit (versioned), history."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.base = int(workspace.config.base_resolution)

    # reading
    def get(self, zone_id: str, version: int | None = None) -> ZoneVersion:
        """A zone's current version, or the given one.

        Raises
        ------
        ZoneNotFoundError
            When the zone or the version does not exist.
        """
        with self.workspace.connect() as conn:
            return self._get(conn, zone_id, version)

    def _get(self, conn: sqlite3.Connection, zone_id: str,
             version: int | None = None) -> ZoneVersion:
        zone = conn.execute("SELECT * FROM zones WHERE id = ?", (zone_id,)).fetchone()
        if zone is None:
            known = [r[0] for r in conn.execute("SELECT id FROM zones ORDER BY rowid LIMIT 20")]
            raise ZoneNotFoundError(f"no zone {zone_id!r}; zones are "
                                    f"{', '.join(known) or 'none yet'} (see `twin zones list`)")
        number = zone["current_version"] if version is None else int(version)
        row = conn.execute("SELECT * FROM zone_versions WHERE zone_id = ? AND version = ?",
                           (zone_id, number)).fetchone()
        if row is None:
            raise ZoneNotFoundError(f"zone {zone_id} has no version {number}; its versions are "
                                    f"1 to {zone['current_version']}")
        return self._row(zone, row)

    @staticmethod
    def _row(zone: sqlite3.Row, row: sqlite3.Row) -> ZoneVersion:
        return ZoneVersion(
            zone_id=zone["id"], name=zone["name"], version=row["version"],
            current_version=zone["current_version"], tier=row["tier"], status=row["status"],
            valid_from=row["valid_from"], author=row["author"], reason=row["reason"],
            cells=_unpack(row["cells"]), outline=row["outline"], created_at=row["created_at"])

    def list(self, status: str | None = None, tier: str | None = None) -> list[ZoneVersion]:
        """Current versions of every zone (optionally only of a status and/or tier)."""
        if status is not None:
            _check_choice(status, STATUSES, "status")
        if tier is not None:
            _check_choice(tier, TIERS, "tier")
        with self.workspace.connect() as conn:
            rows = conn.execute(
                "SELECT z.id, z.name, z.created_at AS zc, z.current_version, v.* FROM zones z "
                "JOIN zone_versions v ON v.zone_id = z.id AND v.version = z.current_version "
                "ORDER BY z.rowid").fetchall()
        out = [self._row({"id": r["id"], "name": r["name"],
                          "current_version": r["current_version"]}, r) for r in rows]
        return [z for z in out if (status is None or z.status == status)
                and (tier is None or z.tier == tier)]

    def all_versions(self) -> list[ZoneVersion]:
        """Every version of every zone, by zone then version (one query)."""
        with self.workspace.connect() as conn:
            rows = conn.execute(
                "SELECT z.id, z.name, z.current_version, v.* FROM zones z "
                "JOIN zone_versions v ON v.zone_id = z.id ORDER BY z.rowid, v.version"
            ).fetchall()
        return [self._row({"id": r["id"], "name": r["name"],
                           "current_version": r["current_version"]}, r) for r in rows]

    def history(self, zone_id: str) -> list[ZoneVersion]:
        """Every version of a zone, oldest first."""
        with self.workspace.connect() as conn:
            current = self._get(conn, zone_id)
            rows = conn.execute("SELECT * FROM zone_versions WHERE zone_id = ? ORDER BY version",
                                (zone_id,)).fetchall()
        zone = {"id": zone_id, "name": current.name, "current_version": current.version}
        return [self._row(zone, r) for r in rows]

    # writing
    def _check_cells(self, cells: np.ndarray) -> np.ndarray:
        if len(cells) == 0:
            raise ZoneError("a zone needs at least one cell; to end a zone set its status to "
                            "lifted instead of removing every cell")
        res = grid.cell_resolution(cells)
        wrong = cells[res != self.base]
        if len(wrong):
            raise ZoneError(f"zones are made of resolution-{self.base} cells; "
                            f"{', '.join(grid.cells_to_strings(wrong[:3]))} "
                            f"{'is' if len(wrong) == 1 else 'are'} of resolution "
                            f"{int(grid.cell_resolution(wrong[:1])[0])}")
        return cells

    def create(self, *, cells: Iterable[Any] | np.ndarray | None = None,
               polygon: Any = None, tier: str, status: str = "proposed",
               name: str | None = None, valid_from: str | dt.date | None = None,
               author: str | None = None, reason: str) -> ZoneVersion:
        """Create a zone (version 1) from cells and/or a drawn WGS84 polygon."""
        _check_choice(tier, TIERS, "tier")
        _check_choice(status, STATUSES, "status")
        reason = _check_text(reason, "reason")
        author = _check_text(author or default_author(), "author")
        day = _check_day(valid_from)
        outline = None
        found = _as_cells(cells)
        chosen = found if found is not None else np.empty(0, np.uint64)
        if polygon is not None:
            outline = _outline_wkb(polygon)
            chosen = np.union1d(chosen, grid.polygon_to_cells(polygon, self.base))
        chosen = self._check_cells(np.unique(chosen.astype(np.uint64)))
        now = utc_now()
        with self.workspace.connect() as conn, write_transaction(
                conn, timeout=self.workspace.config.busy_timeout_s):
            number = conn.execute("SELECT COUNT(*) FROM zones").fetchone()[0] + 1
            zone_id = f"Z{number}"
            while conn.execute("SELECT 1 FROM zones WHERE id = ?", (zone_id,)).fetchone():
                number += 1
                zone_id = f"Z{number}"
            zone_name = name or f"{TIER_ZH[tier]} {tier} {zone_id}"
            conn.execute("INSERT INTO zones (id, name, created_at, current_version) "
                         "VALUES (?, ?, ?, 1)", (zone_id, zone_name, now))
            self._insert(conn, zone_id, 1, tier, status, day, author, reason, chosen, outline,
                         now)
            audit(conn, actor=author, action="zone.create", target=zone_id,
                   detail={"version": 1, "tier": tier, "status": status,
                           "cells": len(chosen), "reason": reason})
            return self._get(conn, zone_id)

    @staticmethod
    def _insert(conn: sqlite3.Connection, zone_id: str, version: int, tier: str, status: str,
                valid_from: str, author: str, reason: str, cells: np.ndarray,
                outline: bytes | None, now: str) -> None:
        conn.execute("INSERT INTO zone_versions (zone_id, version, tier, status, valid_from, "
                     "author, reason, cells, outline, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                     (zone_id, version, tier, status, valid_from, author, reason, _pack(cells),
                      outline, now))

    def save(self, zone_id: str, expected_version: int, *,
             add_cells: Iterable[Any] | np.ndarray | None = None,
             remove_cells: Iterable[Any] | np.ndarray | None = None,
             set_cells: Iterable[Any] | np.ndarray | None = None, polygon: Any = None,
             tier: str | None = None, status: str | None = None,
             valid_from: str | dt.date | None = None, author: str | None = None,
             reason: str) -> ZoneVersion:
        """Save an edit of version ``expected_version`` as the zone's next version.

        ``set_cells`` or ``polygon`` (WGS84; its outline is kept) replace the cells, then
        ``add_cells`` / ``remove_cells`` apply. When the cells change without a new polygon the
        previous outline no longer describes them and is dropped. ``valid_from`` defaults to the
        previous version's, or to today when the status becomes ``active``.

        Raises
        ------
        ZoneConflictError
            When ``expected_version`` is not the current version (nothing is written).
        ZoneError
            For an invalid tier, status, cell set or an empty reason.
        """
        if tier is not None:
            _check_choice(tier, TIERS, "tier")
        if status is not None:
            _check_choice(status, STATUSES, "status")
        reason = _check_text(reason, "reason")
        author = _check_text(author or default_author(), "author")
        if set_cells is not None and polygon is not None:
            raise ZoneError("give set_cells or polygon, not both")
        replace = _as_cells(set_cells)
        outline = None
        if polygon is not None:
            outline = _outline_wkb(polygon)
            replace = np.unique(grid.polygon_to_cells(polygon, self.base).astype(np.uint64))
        add, remove = _as_cells(add_cells), _as_cells(remove_cells)
        now = utc_now()
        with self.workspace.connect() as conn, write_transaction(
                conn, timeout=self.workspace.config.busy_timeout_s):
            old = self._get(conn, zone_id)
            if int(expected_version) != old.version:
                raise self._conflict(conn, zone_id, int(expected_version), old.version)
            cells = old.cells if replace is None else replace
            if add is not None:
                cells = np.union1d(cells, add)
            if remove is not None:
                cells = np.setdiff1d(cells, remove)
            cells = self._check_cells(np.asarray(cells, dtype=np.uint64))
            changed_cells = not np.array_equal(cells, old.cells)
            if outline is None and not changed_cells and replace is None:
                outline = old.outline
            new_status = status or old.status
            if valid_from is not None:
                day = _check_day(valid_from)
            elif new_status == "active" and old.status != "active":
                day = _check_day(None)
            else:
                day = old.valid_from
            number = old.version + 1
            self._insert(conn, zone_id, number, tier or old.tier, new_status, day, author,
                         reason, cells, outline, now)
            conn.execute("UPDATE zones SET current_version = ? WHERE id = ?", (number, zone_id))
            audit(conn, actor=author, action="zone.save", target=zone_id, detail={
                "version": number, "from_version": old.version, "tier": tier or old.tier,
                "status": new_status, "cells": len(cells),
                "added": len(np.setdiff1d(cells, old.cells)),
                "removed": len(np.setdiff1d(old.cells, cells)), "reason": reason})
            return self._get(conn, zone_id)

    def _conflict(self, conn: sqlite3.Connection, zone_id: str, expected: int,
                  current: int) -> ZoneConflictError:
        if expected > current or expected < 1:
            return ZoneConflictError(
                f"zone {zone_id} has no version {expected} (its current version is {current}); "
                f"reload and apply your edit to version {current}", zone_id=zone_id,
                expected=expected, current=current, changes=[])
        rows = conn.execute("SELECT version, author, created_at, reason FROM zone_versions "
                            "WHERE zone_id = ? AND version > ? ORDER BY version",
                            (zone_id, expected)).fetchall()
        changes = [(r[0], r[1], r[2], r[3]) for r in rows]
        shown = [f"version {v} by {a} at {_short_time(t)} ({r})" for v, a, t, r in changes[:5]]
        if len(changes) > 5:
            shown.append(f"and {len(changes) - 5} more")
        return ZoneConflictError(
            f"zone {zone_id} was changed since version {expected}: {'; '.join(shown)}; reload "
            f"and apply your edit to version {current}", zone_id=zone_id, expected=expected,
            current=current, changes=changes)


def _outline_wkb(polygon: Any) -> bytes:
    import shapely
    import shapely.geometry

    geom = polygon if isinstance(polygon, shapely.Geometry) else shapely.geometry.shape(polygon)
    if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty:
        raise ZoneError(f"a zone outline must be a polygon, not {geom.geom_type}")
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise ZoneError("the zone outline is not in WGS84 longitude/latitude degrees")
    return shapely.to_wkb(geom)


# -- impact ------------------------------------------------------------------------------------
@dataclass
class Impact:
    """What a set of cells holds: the sum of its cells' base facts.

    ``totals`` maps every summed fact column to its sum; ``cells_without_facts`` counts cells
    absent from the base table (no residents, buildings or facilities there).
    """

    cells: int
    cells_without_facts: int
    totals: dict[str, float]
    #: Per resource, when a tier was given: unit, daily_demand, demand, supply (stocks inside),
    #: gap and days_of_cover.
    supply: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Grouped for people: residents, groups, buildings, facilities by kind, stocks."""
        t = self.totals
        groups = ("age_65_plus", "children", "elderly_living_alone", "chronic_patients")
        kinds = sorted({c[4:-2] for c in t if c.startswith("fac_") and c.endswith("_n")})
        uses = sorted({c[10:-2] for c in t if c.startswith("buildings_") and c.endswith("_n")
                       and c != "buildings_n"})
        return {
            "cells": self.cells, "cells_without_facts": self.cells_without_facts,
            "residents": t.get("residents", 0.0),
            "groups": {g: t[g] for g in groups if g in t},
            "buildings": {"n": int(t.get("buildings_n", 0)),
                          "footprint_m2": t.get("footprint_m2", 0.0),
                          "floor_m2": t.get("floor_m2", 0.0),
                          "by_use": {u: {"n": int(t[f"buildings_{u}_n"]),
                                         "floor_m2": t.get(f"floor_m2_{u}", 0.0)}
                                     for u in uses if t[f"buildings_{u}_n"]}},
            "facilities": {k: {"n": int(t[f"fac_{k}_n"]),
                               "capacity": t.get(f"fac_{k}_capacity", 0.0)}
                           for k in kinds if t[f"fac_{k}_n"]},
            "stocks": {c[6:]: v for c, v in t.items() if c.startswith("stock_") and v},
            "supply": self.supply,
        }


_INDEX: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}


def _impact_index(facts: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Sorted base cells, the matrix of numeric facts in that order, and its column names."""
    key = str(facts.set.path)
    cached = _INDEX.get(key)
    if cached is None:
        table = facts.static(facts.base)
        columns = [c for c in table.columns if c != "cell" and not c.endswith("_code")
                   and np.issubdtype(table[c].dtype, np.number)]
        order = np.argsort(table["cell"].to_numpy(np.uint64), kind="stable")
        cells = table["cell"].to_numpy(np.uint64)[order]
        matrix = np.ascontiguousarray(table[columns].to_numpy(np.float64)[order])
        cached = (cells, matrix, columns)
        if len(_INDEX) > 8:
            _INDEX.clear()
        _INDEX[key] = cached
    return cached


def impact(facts: Any, cells: Iterable[Any] | np.ndarray, *, tier: str | None = None,
           horizon_days: float | None = None) -> Impact:
    """The residents, groups, buildings, facilities and stocks of ``cells`` (base cells).

    Takes a :class:`twin.facts.Facts`; the base table is indexed once per fact set and process,
    then each call is a ``searchsorted`` and a column sum. With a ``tier``, it also gives the
    demand of each resource the tier needs over ``horizon_days`` (default
    ``supply.horizon_days``), the stocks inside the cells, the gap and the days of cover
    (wider service areas are :func:`twin.supply.gaps`' business).
    """
    index, matrix, columns = _impact_index(facts)
    wanted = _as_cells(cells)
    wanted = np.unique(wanted) if wanted is not None else np.empty(0, np.uint64)
    pos = np.searchsorted(index, wanted)
    pos[pos >= len(index)] = 0
    found = pos[index[pos] == wanted] if len(index) else pos[:0]
    sums = matrix[found].sum(axis=0)
    totals = dict(zip(columns, sums.tolist(), strict=True))
    result = Impact(cells=len(wanted), cells_without_facts=int(len(wanted) - len(found)),
                    totals=totals)
    if tier is not None:
        result.supply = _inside_supply(facts.workspace.config, totals, tier, horizon_days)
    return result


def _inside_supply(config: Any, totals: dict[str, float], tier: str,
                   horizon_days: float | None) -> dict[str, dict[str, float]]:
    from twin.supply import needs

    _check_choice(tier, TIERS, "tier")
    horizon = float(horizon_days or config["supply"]["horizon_days"])
    out = {}
    for need in needs(config):
        if tier not in need.tiers:
            continue
        daily = totals.get(need.population, 0.0) * need.per_capita_daily
        stock = totals.get(f"stock_{need.resource}", 0.0)
        out[need.resource] = {
            "unit": need.unit, "daily_demand": daily, "demand": daily * horizon,
            "supply": stock, "gap": max(daily * horizon - stock, 0.0),
            "days_of_cover": stock / daily if daily > 0 else float("inf")}
    return out


def active_areas(workspace: Workspace) -> dict[str, tuple[str, np.ndarray]]:
    """Active zones as ``{zone id: (tier, cells)}``, for demand, gaps and dispatch."""
    return {z.zone_id: (z.tier, z.cells) for z in Zones(workspace).list(status="active")}


# -- proposals ---------------------------------------------------------------------------------
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

    Returns the date, the window, and the zone ids ``created``, ``updated``, ``unchanged``
    and ``superseded`` (proposed zones lifted because no new proposal matches them).
    """
    from twin.facts import Facts

    cfg = workspace.config["zones"]
    facts = Facts(workspace)
    day = (parse_day(date, "last day of the case window") if date is not None
           else _latest_case_day(facts))
    result: dict[str, Any] = {"date": day.isoformat() if day else None, "created": [],
                              "updated": [], "unchanged": [], "superseded": []}
    proposals: list[tuple[str, np.ndarray, str]] = []  # tier, cells, name hint
    if day is not None:
        start = day - dt.timedelta(days=int(cfg["case_window_days"]) - 1)
        result["window"] = [start.isoformat(), day.isoformat()]
        cases = facts.cases(facts.base, start, day)
        cases = cases[cases["status"].astype(str).isin(INFECTIONS) & (cases["n"] > 0)]
        result["infections"] = int(cases["n"].sum())
        hot = np.unique(cases["cell"].to_numpy(np.uint64))
        proposals = _proposal_cells(facts, hot, int(cfg["control_ring"]))
        why = (f"按病例自动建议 proposed from {result['infections']} infections reported "
               f"{start.isoformat()}..{day.isoformat()}")
    zones = Zones(workspace)
    open_ = {t: zones.list(status="proposed", tier=t) for t in TIERS}
    for tier, cells, label in proposals:
        candidates = [(len(np.intersect1d(z.cells, cells)), z) for z in open_[tier]]
        candidates = [(n, z) for n, z in candidates if n > 0]
        if candidates:
            _, match = max(candidates, key=lambda p: p[0])
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


# -- downgrades --------------------------------------------------------------------------------
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
    cases = facts.cases(facts.base, None, day)
    cases = cases[cases["status"].astype(str).isin(INFECTIONS) & (cases["n"] > 0)]
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


# -- diff and export ---------------------------------------------------------------------------
def diff(workspace: Workspace, zone_id: str, old: int, new: int | None = None) -> dict[str, Any]:
    """Cells added and removed between two versions of a zone, and the residents they hold.

    Residents are ``None`` when the workspace has no fused facts.
    """
    zones = Zones(workspace)
    a, b = zones.get(zone_id, old), zones.get(zone_id, new)
    added, removed = np.setdiff1d(b.cells, a.cells), np.setdiff1d(a.cells, b.cells)
    out: dict[str, Any] = {
        "zone_id": zone_id, "from_version": a.version, "to_version": b.version,
        "tier": [a.tier, b.tier], "status": [a.status, b.status],
        "added": grid.cells_to_strings(added).tolist(),
        "removed": grid.cells_to_strings(removed).tolist(),
        "residents_added": None, "residents_removed": None,
        "residents_before": None, "residents_after": None}
    facts = _facts_or_none(workspace)
    if facts is not None:
        out["residents_added"] = impact(facts, added).totals.get("residents", 0.0)
        out["residents_removed"] = impact(facts, removed).totals.get("residents", 0.0)
        out["residents_before"] = impact(facts, a.cells).totals.get("residents", 0.0)
        out["residents_after"] = impact(facts, b.cells).totals.get("residents", 0.0)
    return out


def _facts_or_none(workspace: Workspace) -> Any:
    from twin.facts import Facts, FactsNotFoundError

    try:
        return Facts(workspace)
    except FactsNotFoundError:
        return None


def outline_of(cells: np.ndarray) -> Any:
    """The dissolved outline of cells: the union of their hexagons (shapely geometry)."""
    return grid.cells_outline(cells)


def export(workspace: Workspace, path: str | os.PathLike[str], *,
           statuses: Sequence[str] = OPEN_ZONE_STATUSES,
           tiers: Sequence[str] = TIERS) -> int:
    """Write the current versions of the zones as GeoJSON (``.geojson``/``.json``) or
    GeoPackage (``.gpkg``), one feature per zone with its dissolved outline; returns the count.

    Properties are bilingual (``tier`` / ``tier_zh`` ...). The file is written under a
    temporary name in the same directory and renamed into place.
    """
    import geopandas as gpd

    target = Path(path)
    suffix = target.suffix.lower()
    drivers = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}
    if suffix not in drivers:
        raise ZoneError(f"cannot export zones to {target.name}: use a .geojson or .gpkg file")
    for s in statuses:
        _check_choice(s, STATUSES, "status")
    chosen = [z for z in Zones(workspace).list() if z.status in statuses and z.tier in tiers]
    facts = _facts_or_none(workspace)
    rows = []
    for z in chosen:
        got = impact(facts, z.cells).to_dict() if facts is not None else {}
        rows.append({
            "zone_id": z.zone_id, "name": z.name, "version": z.version,
            "tier": z.tier, "tier_zh": TIER_ZH[z.tier],
            "label": f"{TIER_ZH[z.tier]}/{z.tier}", "status": z.status,
            "status_zh": STATUS_ZH[z.status], "valid_from": z.valid_from, "author": z.author,
            "reason": z.reason, "cells_n": len(z.cells),
            "residents": got.get("residents"),
            "age_65_plus": got.get("groups", {}).get("age_65_plus"),
            "buildings_n": got.get("buildings", {}).get("n"),
            "geometry": outline_of(z.cells)})
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=4326) if rows else gpd.GeoDataFrame(
        {"zone_id": [], "tier": []}, geometry=[], crs=4326)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp-{os.getpid()}{suffix}")
    try:
        frame.to_file(tmp, driver=drivers[suffix], engine="pyogrio",
                      **({"layer": "zones"} if suffix == ".gpkg" else {}))
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return len(rows)
