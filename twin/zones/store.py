"""The zone repository: versions of zones, and the vocabulary of tiers and statuses.

A zone is a set of base-resolution H3 cells (plus the drawn outline, if any) with a tier, a
status (proposed, active, lifted), ``valid_from``, author and reason. Every change is a new
version in ``zone_versions`` (append-only: rows are only ever inserted); the ``zones`` row holds
the name and the number of the current version. Edits use optimistic concurrency: a
:meth:`Zones.save` names the version it was based on and is refused with
:class:`ZoneConflictError` when someone saved in between.

``valid_from`` is the day a version takes effect. A save that gives none takes today (UTC) when
the tier changes or the status becomes ``active``, and keeps the previous version's otherwise,
so the day a zone became its tier, which the downgrade rules count from
(:mod:`twin.zones.downgrades`), is the day of that change.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin import grid, i18n
from twin.dates import parse_day
from twin.db import write_transaction
from twin.errors import CellError, ZoneConflictError, ZoneError, ZoneNotFoundError
from twin.schema import ZONE_STATUSES, ZONE_TIERS
from twin.store import Workspace, audit, default_author, utc_now

__all__ = ["STATUSES", "STATUS_ZH", "TIERS", "TIER_ZH", "ZoneVersion", "Zones", "as_cells",
           "check_choice", "valid_from_after"]

#: Tiers from strictest to loosest (:data:`twin.schema.ZONE_TIERS`), with their Chinese names.
TIERS = ZONE_TIERS
TIER_ZH = {k: zh for k, (zh, _) in i18n.TIERS.items()}
#: Statuses of a zone version (:data:`twin.schema.ZONE_STATUSES`), with their Chinese names.
STATUSES = ZONE_STATUSES
STATUS_ZH = {k: zh for k, (zh, _) in i18n.STATUSES.items()}


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


def as_cells(cells: Iterable[Any] | np.ndarray | None) -> np.ndarray | None:
    """Sorted unique ``uint64`` cells from integers or hexadecimal strings (``None`` stays).

    Raises
    ------
    ZoneError
        When a string is not an H3 cell.
    """
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


def check_choice(value: str, allowed: Sequence[str], what: str) -> str:
    """``value`` if it is one of ``allowed``, else a :class:`ZoneError` naming them."""
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


def valid_from_after(old: ZoneVersion, tier: str, status: str,
                     valid_from: str | dt.date | None) -> str:
    """The ``valid_from`` of the version written after ``old`` with ``tier`` and ``status``.

    The given day when there is one; else today (UTC) when the tier changes or the status
    becomes ``active``; else ``old``'s day (the downgrade rules count from the day a zone
    became its tier).
    """
    if valid_from is not None:
        return _check_day(valid_from)
    if tier != old.tier or (status == "active" and old.status != "active"):
        return _check_day(None)
    return old.valid_from


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

    def _versions(self, conn: sqlite3.Connection, zone_id: str, first: int,
                  last: int) -> list[ZoneVersion]:
        """Versions ``first`` to ``last`` of a zone, oldest first (one query)."""
        zone = conn.execute("SELECT * FROM zones WHERE id = ?", (zone_id,)).fetchone()
        if zone is None:
            self._get(conn, zone_id)  # raises the ZoneNotFoundError naming the known zones
        rows = conn.execute("SELECT * FROM zone_versions WHERE zone_id = ? AND version "
                            "BETWEEN ? AND ? ORDER BY version", (zone_id, first, last))
        return [self._row(zone, r) for r in rows]

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
            check_choice(status, STATUSES, "status")
        if tier is not None:
            check_choice(tier, TIERS, "tier")
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
        check_choice(tier, TIERS, "tier")
        check_choice(status, STATUSES, "status")
        reason = _check_text(reason, "reason")
        author = _check_text(author or default_author(), "author")
        day = _check_day(valid_from)
        outline = None
        found = as_cells(cells)
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
        previous outline no longer describes them and is dropped. ``valid_from`` defaults to
        today (UTC) when the tier changes or the status becomes ``active``, and to the previous
        version's otherwise: the downgrade rules count from the day a zone became its tier.

        Raises
        ------
        ZoneConflictError
            When ``expected_version`` is not the current version (nothing is written).
        ZoneError
            For an invalid tier, status, cell set or an empty reason.
        """
        if tier is not None:
            check_choice(tier, TIERS, "tier")
        if status is not None:
            check_choice(status, STATUSES, "status")
        reason = _check_text(reason, "reason")
        author = _check_text(author or default_author(), "author")
        if set_cells is not None and polygon is not None:
            raise ZoneError("give set_cells or polygon, not both")
        replace = as_cells(set_cells)
        outline = None
        if polygon is not None:
            outline = _outline_wkb(polygon)
            replace = np.unique(grid.polygon_to_cells(polygon, self.base).astype(np.uint64))
        add, remove = as_cells(add_cells), as_cells(remove_cells)
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
            new_status, new_tier = status or old.status, tier or old.tier
            day = valid_from_after(old, new_tier, new_status, valid_from)
            return self._write(conn, old, cells=cells, tier=new_tier, status=new_status,
                               valid_from=day, outline=outline, author=author, reason=reason,
                               action="zone.save", now=now)

    def _write(self, conn: sqlite3.Connection, old: ZoneVersion, *, cells: np.ndarray,
               tier: str, status: str, valid_from: str, outline: bytes | None, author: str,
               reason: str, action: str, now: str,
               detail: dict[str, Any] | None = None) -> ZoneVersion:
        """Insert the version after ``old`` (the current one), make it current and audit it.

        Runs inside the caller's write transaction; every zone edit (:meth:`save`,
        :func:`twin.zones.save_edit`, accept, reject) writes through here. ``detail`` adds to
        the audit row's detail.
        """
        number = old.version + 1
        self._insert(conn, old.zone_id, number, tier, status, valid_from, author, reason,
                     cells, outline, now)
        conn.execute("UPDATE zones SET current_version = ? WHERE id = ?",
                     (number, old.zone_id))
        audit(conn, actor=author, action=action, target=old.zone_id, detail={
            "version": number, "from_version": old.version, "tier": tier, "status": status,
            "cells": len(cells), "added": len(np.setdiff1d(cells, old.cells)),
            "removed": len(np.setdiff1d(old.cells, cells)), "reason": reason,
            **(detail or {})})
        return self._get(conn, old.zone_id)

    @staticmethod
    def _changes_since(conn: sqlite3.Connection, zone_id: str,
                       version: int) -> list[tuple[int, str, str, str]]:
        """``(version, author, created_at, reason)`` of the versions after ``version``."""
        rows = conn.execute("SELECT version, author, created_at, reason FROM zone_versions "
                            "WHERE zone_id = ? AND version > ? ORDER BY version",
                            (zone_id, version)).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def _conflict(self, conn: sqlite3.Connection, zone_id: str, expected: int,
                  current: int) -> ZoneConflictError:
        if expected > current or expected < 1:
            return ZoneConflictError(
                f"zone {zone_id} has no version {expected} (its current version is {current}); "
                f"reload and apply your edit to version {current}", zone_id=zone_id,
                expected=expected, current=current, changes=[])
        changes = self._changes_since(conn, zone_id, expected)
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
