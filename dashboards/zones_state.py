"""The zone editor's state: one :class:`ZoneEditorState` per planner's browser session.

No Panel here. The state holds what the planner is doing (the date, the zone being edited as a
:class:`Draft`, the drawing mode, undo and redo, the last save's outcome or conflict) and
delegates every decision to :mod:`twin.zones`: accepting or rejecting a proposal, the
merge-aware save, downgrades, the diff between versions and the export. The map's layers
come from the same shared situation as the cockpit (:class:`dashboards.state.CockpitState`),
so the page opens as fast and shows the same picture.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import param

import layers
from dashboards.labels import label
from dashboards.situation import SharedSituation, shared_situation
from dashboards.state import CockpitState
from twin import grid
from twin.errors import TwinError
from twin.i18n import TIERS, pick
from twin.users import ROLES, require

__all__ = ["EDITOR_DEFAULT_ON", "EDITOR_TOGGLES", "MAX_UNDO", "MODES", "Draft",
           "ZoneEditorState"]

#: What the planner's pointer does on the map.
MODES: tuple[str, ...] = ("view", "draw", "brush_add", "brush_remove", "modify")
#: Map layers the editor can switch (the cockpit's names).
EDITOR_TOGGLES: tuple[str, ...] = ("risk", "cases", "zones", "proposals", "facilities", "roads")
#: Shown when a page opens. Proposals are off: on the city they are a thousand zones (5 MB
#: of layers, most of a first render); the proposals tab lists them and shows the one ticked.
EDITOR_DEFAULT_ON: tuple[str, ...] = ("risk", "cases", "zones")
#: Layer ids drawn from the zones (they change with every save; the rest does not).
ZONE_LAYER_PREFIXES = ("zones_", "proposals_")
#: Undo steps kept per page.
MAX_UNDO = 200
#: Days after the last data day that a planner may pick (decisions taking effect ahead).
PLAN_AHEAD_DAYS = 28


@dataclasses.dataclass(frozen=True)
class Draft:
    """The zone as the planner is editing it (immutable: every change is a new draft).

    ``zone_id`` is None for a new zone; ``base_version`` is the version the edit started
    from (what the save names); ``outline`` is the drawn polygon (shapely) while the cells are
    exactly its cells, else None.
    """

    zone_id: str | None
    base_version: int | None
    name: str
    cells: np.ndarray
    tier: str
    status: str
    valid_from: str
    outline: Any = None

    def replace(self, **changes: Any) -> Draft:
        return dataclasses.replace(self, **changes)

    def same(self, other: Draft) -> bool:
        """Whether two drafts describe the same zone state (for "unsaved changes")."""
        return (self.tier == other.tier and self.status == other.status
                and self.valid_from == other.valid_from
                and np.array_equal(self.cells, other.cells))


def _unique(cells: Any) -> np.ndarray:
    return np.unique(np.asarray(cells, dtype=np.uint64))


class ZoneEditorState(param.Parameterized):
    """Everything the zone editor shows and does, for one planner's session."""

    workspace = param.Parameter(constant=True, doc="The twin.store.Workspace.")
    user = param.String(default="", constant=True, doc="The logged-in user's name.")
    role = param.Selector(default="planner", objects=list(ROLES), constant=True)
    lang = param.Selector(default="zh", objects=["zh", "en"])
    date = param.CalendarDate(default=None, allow_None=True, doc="The day judged and shown.")
    start = param.CalendarDate(default=None, allow_None=True, constant=True)
    end = param.CalendarDate(default=None, allow_None=True, constant=True)
    layers_on = param.ListSelector(default=list(EDITOR_DEFAULT_ON),
                                   objects=list(EDITOR_TOGGLES))
    mode = param.Selector(default="view", objects=list(MODES))
    brush_k = param.Integer(default=0, bounds=(0, 3),
                            doc="Brush radius in H3 rings (0: the cell under the pointer).")
    draft = param.Parameter(default=None, doc="The Draft being edited (None: nothing open).")
    saved = param.Parameter(default=None, doc="The draft as last loaded or saved.")
    conflict = param.Parameter(default=None, doc="The ZoneMergeConflict of the last save.")
    diff = param.Dict(default=None, allow_None=True,
                      doc="The difference between two versions shown on the map.")
    data_version = param.Integer(default=0, doc="Bumped when zones or data change.")
    status = param.String(default="", doc="The last message for the planner.")
    screen = param.NumericTuple(default=(1920, 1080), length=2)

    def __init__(self, workspace: Any, situation: SharedSituation | None = None, *,
                 user: Any, **params: Any) -> None:
        require(user, "edit_zones")  # on the server, before anything is built
        super().__init__(workspace=workspace, user=user.name, role=user.role, **params)
        self._shared = situation or shared_situation(workspace.root)
        self.map = CockpitState(workspace, self._shared, role=self.role, lang=self.lang,
                                layers_on=list(self.layers_on))
        # (the cockpit's resolution: the same layers, shared with every cockpit)
        with param.edit_constant(self):
            self.start = self.map.start
            self.end = (self.map.end + dt.timedelta(days=PLAN_AHEAD_DAYS)
                        if self.map.end is not None else None)
        if self.date is None:
            self.date = self.map.date
        self._undo: list[Draft] = []
        self._redo: list[Draft] = []
        self._stroke: int | None = None
        self.base_res = int(workspace.config.base_resolution)
        self.param.watch(self._follow, ["date", "lang", "layers_on"])

    def _follow(self, *_: Any) -> None:
        day = self.date
        if day is not None and self.map.end is not None:
            day = min(max(day, self.map.start), self.map.end)
        self.map.param.update(date=day, lang=self.lang, layers_on=list(self.layers_on))

    # -- data --------------------------------------------------------------------------
    @property
    def situation(self) -> Any:
        return self.map.situation

    @property
    def facts(self) -> Any:
        return self.situation.facts

    def _zones(self) -> Any:
        from twin.zones import Zones

        return Zones(self.workspace)

    def refresh(self, *, force: bool = False) -> bool:
        """Pick up colleagues' saves and new data; True when anything changed."""
        changed = self.map.refresh(force=force)
        if changed:
            self.data_version += 1
            draft = self.draft
            if draft is not None and draft.zone_id is not None:
                current = self._zones().get(draft.zone_id)
                if current.version != draft.base_version and current.author != self.user:
                    self.status = label("colleague_saved", self.lang).format(
                        zone=draft.zone_id, version=current.version, author=current.author)
        return changed

    # -- lists -------------------------------------------------------------------------
    def proposals(self) -> list[dict[str, Any]]:
        """The proposed zones to review, most residents first, each with its impact:
        residents, 65+, elderly living alone, facilities by kind and the days of cover of
        each resource the tier needs."""
        out = []
        for z in self._zones().list(status="proposed"):
            out.append({"zone_id": z.zone_id, "name": z.name, "tier": z.tier,
                        "version": z.version, "valid_from": z.valid_from,
                        "author": z.author, "reason": z.reason, "cells": len(z.cells),
                        **self._summary(z.cells, z.tier, (z.zone_id, z.version))})
        order = {"lockdown": 0, "control": 1, "prevention": 2}
        return sorted(out, key=lambda r: (order.get(r["tier"], 9), -r["residents"],
                                          r["zone_id"]))

    _summaries: ClassVar[dict[Any, dict[str, Any]]] = {}

    def _summary(self, cells: np.ndarray, tier: str, key: Any = None) -> dict[str, Any]:
        # What cells hold depends on the fused facts only, not on the other zones: a save
        # does not make every proposal's summary stale.
        facts = self.facts
        cache_key = ((str(self.workspace.root), str(facts.set.path) if facts else None, key)
                     if key else None)
        if cache_key is not None and cache_key in self._summaries:
            return self._summaries[cache_key]
        got = self.impact_of(cells, tier)
        summary = {"residents": got["residents"],
                   "age_65_plus": got["groups"].get("age_65_plus", 0.0),
                   "elderly_living_alone": got["groups"].get("elderly_living_alone", 0.0),
                   "facilities": {k: v["n"] for k, v in got["facilities"].items()},
                   "cover": {r: v["days_of_cover"] for r, v in got["supply"].items()}}
        if cache_key is not None:
            if len(self._summaries) > 4096:
                self._summaries.clear()
            self._summaries[cache_key] = summary
        return summary

    def zones(self) -> list[Any]:
        """Current versions of every proposed or active zone (for the zone picker)."""
        return [z for z in self._zones().list() if z.status in ("proposed", "active")]

    def downgrades(self) -> list[dict[str, Any]]:
        """The downgrades due on ``date`` (:func:`twin.zones.downgrades`)."""
        from twin.zones import downgrades

        return downgrades(self.workspace, self.date)

    def history(self) -> list[Any]:
        """Every version of the zone being edited, oldest first."""
        if self.draft is None or self.draft.zone_id is None:
            return []
        return self._zones().history(self.draft.zone_id)

    # -- impact ------------------------------------------------------------------------
    def impact_of(self, cells: np.ndarray, tier: str | None) -> dict[str, Any]:
        """What ``cells`` hold and, for ``tier``, need (:func:`twin.zones.impact`)."""
        from twin.zones import impact

        if self.facts is None:
            return {"cells": len(cells), "residents": 0.0, "groups": {}, "buildings": {},
                    "facilities": {}, "stocks": {}, "supply": {}}
        return impact(self.facts, cells, tier=tier).to_dict()

    def impact(self) -> dict[str, Any] | None:
        """The impact of the draft as it would be, with the residents it adds and removes
        against the version it started from."""
        draft = self.draft
        if draft is None:
            return None
        out = self.impact_of(draft.cells, draft.tier)
        saved = self.saved
        before = saved.cells if saved is not None else np.empty(0, np.uint64)
        added = np.setdiff1d(draft.cells, before, assume_unique=True)
        removed = np.setdiff1d(before, draft.cells, assume_unique=True)
        out["added_cells"], out["removed_cells"] = len(added), len(removed)
        out["residents_added"] = self.impact_of(added, None)["residents"] if len(added) else 0.0
        out["residents_removed"] = (self.impact_of(removed, None)["residents"]
                                    if len(removed) else 0.0)
        return out

    # -- opening -----------------------------------------------------------------------
    def _load(self, draft: Draft) -> None:
        self._undo.clear()
        self._redo.clear()
        self._stroke = None
        self.conflict = None
        self.diff = None
        self.saved = draft
        self.draft = draft

    def _keep_unsaved(self, discard: bool) -> None:
        if self.dirty and not discard:
            raise TwinError(label("unsaved_changes", self.lang))

    def open_zone(self, zone_id: str, *, discard: bool = False) -> Draft:
        """Edit the current version of ``zone_id`` (refused while the open draft has unsaved
        changes, unless ``discard``)."""
        self._keep_unsaved(discard)
        z = self._zones().get(zone_id)
        outline = None
        if z.outline is not None:
            import shapely

            outline = shapely.from_wkb(z.outline)
        draft = Draft(z.zone_id, z.version, z.name, z.cells, z.tier, z.status, z.valid_from,
                      outline)
        self._load(draft)
        self.status = label("opened", self.lang).format(zone=z.zone_id, version=z.version)
        return draft

    def new_zone(self, tier: str = "lockdown", *, discard: bool = False) -> Draft:
        """Start a new zone (nothing is written until it is saved; refused while the open
        draft has unsaved changes, unless ``discard``)."""
        self._keep_unsaved(discard)
        day = (self.date or dt.date.today()).isoformat()
        draft = Draft(None, None, "", np.empty(0, np.uint64), tier, "proposed", day)
        self._load(draft)
        self.status = label("new_zone_started", self.lang)
        return draft

    def close(self) -> None:
        """Stop editing (unsaved changes are dropped)."""
        self._load(None)  # type: ignore[arg-type]
        self.saved = None

    # -- editing -------------------------------------------------------------------------
    def _change(self, draft: Draft, *, group: Any = None) -> None:
        """Make ``draft`` current; one undo step per ``group`` (e.g. one brush stroke)."""
        if self.draft is None:
            raise TwinError(label("nothing_open", self.lang))
        if group is None or group != self._stroke:
            self._undo.append(self.draft)
            del self._undo[:-MAX_UNDO]
            self._redo.clear()
        self._stroke = group
        self.conflict = None
        self.draft = draft

    def set_fields(self, *, tier: str | None = None, status: str | None = None,
                   valid_from: str | dt.date | None = None) -> None:
        """Change the draft's tier, status or ``valid_from`` (one undo step)."""
        draft = self.draft
        if draft is None:
            return
        day = valid_from.isoformat() if isinstance(valid_from, dt.date) else valid_from
        if day is None and ((tier and tier != draft.tier)
                            or (status and status != draft.status)):
            # A new tier or status takes effect on the day the planner is looking at, not on
            # the server's calendar day (the downgrade rules count from it).
            day = self.date.isoformat() if self.date else None
        new = draft.replace(tier=tier or draft.tier, status=status or draft.status,
                            valid_from=day or draft.valid_from)
        if new != draft:
            self._change(new)

    def add_polygon(self, geometry: dict[str, Any]) -> int:
        """A polygon drawn on the map: its cells join the draft (:func:`twin.grid.
        polygon_to_cells`); a new or empty zone keeps it as its outline. Returns the number
        of cells added."""
        poly = _polygon(geometry)
        cells = _unique(grid.polygon_to_cells(poly, self.base_res))
        draft = self.draft
        if draft is None:
            draft = self.new_zone()
        if not len(cells):
            self.status = label("polygon_too_small", self.lang)
            return 0
        merged = np.union1d(draft.cells, cells)
        outline = poly if not len(draft.cells) else None
        self._change(draft.replace(cells=merged, outline=outline))
        return int(len(merged) - len(draft.cells))

    def set_outline(self, geometry: dict[str, Any]) -> None:
        """The zone's outline edited on the map: its cells become the outline's cells."""
        poly = _polygon(geometry)
        cells = _unique(grid.polygon_to_cells(poly, self.base_res))
        if not len(cells):
            self.status = label("polygon_too_small", self.lang)
            return
        self._change(self.draft.replace(cells=cells, outline=poly))

    def apply_stroke(self, stroke: dict[str, Any]) -> int:
        """A brush stroke (a batch of pointer positions): add or remove the cells under it
        (and ``brush_k`` rings round them). Batches of one stroke are one undo step.
        Returns how many cells changed."""
        if self.draft is None:
            self.new_zone()
        points = np.asarray(stroke.get("points") or [], dtype=np.float64).reshape(-1, 2)
        if not len(points):
            return 0
        cells = grid.path_cells(points, self.base_res, self.brush_k)
        draft = self.draft
        if stroke.get("mode") == "remove":
            new = np.setdiff1d(draft.cells, cells, assume_unique=True)
        else:
            new = np.union1d(draft.cells, cells)
        changed = abs(len(new) - len(draft.cells))
        if changed:
            self._change(draft.replace(cells=new, outline=None),
                         group=("stroke", stroke.get("stroke")))
        return int(changed)

    def undo(self) -> bool:
        if not self._undo or self.draft is None:
            return False
        self._redo.append(self.draft)
        self._stroke = None
        self.conflict = None
        self.draft = self._undo.pop()
        return True

    def redo(self) -> bool:
        if not self._redo or self.draft is None:
            return False
        self._undo.append(self.draft)
        self._stroke = None
        self.conflict = None
        self.draft = self._redo.pop()
        return True

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def dirty(self) -> bool:
        """Whether the draft differs from what was loaded or last saved."""
        return (self.draft is not None and self.saved is not None
                and not self.draft.same(self.saved))

    # -- decisions ---------------------------------------------------------------------
    def _after_write(self, message: str, zone: Any = None) -> None:
        """After this planner's own write: an open draft of that zone follows it (it is not
        a colleague's change), the page picks up the new data, then says what was done."""
        draft = self.draft
        if (zone is not None and draft is not None and draft.zone_id == zone.zone_id
                and not self.dirty):
            self._reload(zone)
        self.status = message  # first: the planner sees the outcome before the map follows
        if not self.refresh(force=True):  # a refresh that found the write bumped it already
            self.data_version += 1

    def save(self, reason: str, *, resolve: dict[str, str] | None = None) -> Any:
        """Save the draft with ``reason``: a new zone is created; an existing one is saved
        merge-aware from the version the edit started from (:func:`twin.zones.save_edit`).

        A real conflict is kept in ``conflict`` (nothing written); saving again with
        ``resolve`` (``{"cells": "mine"|"theirs", "tier": …}``) settles it.
        """
        from twin.zones import ZoneEdit, ZoneMergeConflict, Zones, save_edit

        draft = self.draft
        if draft is None:
            raise TwinError(label("nothing_open", self.lang))
        if draft.zone_id is None:
            made = Zones(self.workspace).create(
                cells=draft.cells, polygon=draft.outline, tier=draft.tier, status=draft.status,
                valid_from=draft.valid_from, author=self.user, reason=reason,
                name=draft.name or None)
            self._reload(made)
            self._after_write(label("created", self.lang).format(zone=made.zone_id))
            return made
        base = self._zones().get(draft.zone_id, draft.base_version)
        edit = ZoneEdit.between(base, draft.cells, tier=draft.tier, status=draft.status,
                                valid_from=draft.valid_from, outline=draft.outline)
        if edit.is_empty():
            self.status = label("no_change", self.lang)
            return None
        try:
            result = save_edit(self.workspace, draft.zone_id, edit, author=self.user,
                               reason=reason, resolve=resolve)
        except ZoneMergeConflict as exc:
            self.conflict = exc
            self.status = label("conflict", self.lang)
            return exc
        self.conflict = None
        self._reload(result.zone)
        merged = ", ".join(f"v{v} {a}" for v, a, *_ in result.merged_with)
        self._after_write(label("saved_merged" if merged else "saved", self.lang).format(
            zone=result.zone.zone_id, version=result.zone.version, merged=merged))
        return result

    def _reload(self, zone: Any) -> None:
        """After a save: the saved version becomes the base; undo history stays usable."""
        import shapely

        outline = shapely.from_wkb(zone.outline) if zone.outline is not None else None
        fresh = Draft(zone.zone_id, zone.version, zone.name, zone.cells, zone.tier,
                      zone.status, zone.valid_from, outline)
        self.saved = fresh
        self._stroke = None
        self.draft = fresh

    def accept(self, zone_id: str, valid_from: str | dt.date, reason: str | None = None) -> Any:
        """Accept a proposal: active from ``valid_from`` (:func:`twin.zones.accept`)."""
        from twin.zones import accept

        z = self._zones().get(zone_id)
        day = valid_from.isoformat() if isinstance(valid_from, dt.date) else valid_from
        result = accept(self.workspace, zone_id, z.version, valid_from=day, author=self.user,
                        reason=reason or None)
        self._after_write(label("accepted", self.lang).format(zone=zone_id, day=day),
                          result.zone)
        return result

    def reject(self, zone_id: str, reason: str) -> Any:
        """Reject a proposal with ``reason`` (kept in its history)."""
        from twin.zones import reject

        z = self._zones().get(zone_id)
        result = reject(self.workspace, zone_id, z.version, reason=reason, author=self.user)
        self._after_write(label("rejected", self.lang).format(zone=zone_id), result.zone)
        return result

    def run_propose(self) -> dict[str, Any]:
        """Propose zones from the infections up to ``date`` (:func:`twin.zones.propose`)."""
        from twin.zones import propose

        day = min(self.date, self.map.end) if self.map.end else self.date
        result = propose(self.workspace, day, author=self.user)
        self._after_write(label("proposed_for", self.lang).format(
            day=result["date"], created=len(result["created"]),
            updated=len(result["updated"]), unchanged=len(result["unchanged"])))
        return result

    def apply_downgrade(self, item: dict[str, Any]) -> Any:
        """Apply a suggested downgrade: the lower tier from ``date``, the rule as reason."""
        from twin.zones import ZoneEdit, save_edit

        day = self.date.isoformat()
        base = self._zones().get(item["zone_id"], item["version"])
        edit = ZoneEdit.between(base, base.cells, tier=item["suggested_tier"], valid_from=day)
        reason = f"降级 downgrade: {item['rule_zh']} / {item['rule']}"
        result = save_edit(self.workspace, item["zone_id"], edit, author=self.user,
                           reason=reason)
        self._after_write(label("downgraded", self.lang).format(
            zone=item["zone_id"], tier=pick(TIERS, item["suggested_tier"], self.lang), day=day),
            result.zone)
        return result

    def show_diff(self, old: int, new: int | None = None) -> dict[str, Any]:
        """Draw the difference between two versions of the open zone on the map."""
        from twin.zones import diff

        if self.draft is None or self.draft.zone_id is None:
            raise TwinError(label("nothing_open", self.lang))
        self.diff = diff(self.workspace, self.draft.zone_id, old, new)
        return self.diff

    def export(self, fmt: str) -> Path:
        """The proposed and active zones as a GeoJSON or GeoPackage file (a temporary path
        the caller sends and deletes)."""
        from twin.zones import export

        suffix = {"geojson": ".geojson", "gpkg": ".gpkg"}[fmt]
        fd, name = tempfile.mkstemp(prefix="citytwin-zones-", suffix=suffix)
        os.close(fd)
        path = Path(name)
        path.unlink()
        export(self.workspace, path)
        return path

    # -- the map -----------------------------------------------------------------------
    def base_layers(self) -> list[Any]:
        """The cockpit's layers for the date and toggles (shared per process), but the zones."""
        return [m for m in self.map.map_layers() if not m.id.startswith(ZONE_LAYER_PREFIXES)]

    def zone_layers(self) -> list[Any]:
        """The zones and proposals valid on the date (they change with every save)."""
        return [m for m in self.map.map_layers() if m.id.startswith(ZONE_LAYER_PREFIXES)]

    def edit_layers(self) -> list[Any]:
        """The draft, the diff and the conflict cells (change on every stroke)."""
        out = []
        if self.diff is not None:
            d = self.diff
            out += layers.diff_cells(grid.strings_to_cells(d["added"]) if d["added"]
                                     else np.empty(0, np.uint64),
                                     grid.strings_to_cells(d["removed"]) if d["removed"]
                                     else np.empty(0, np.uint64), self.lang)
        if self.draft is not None:
            out.append(layers.draft_cells(self.draft.cells, self.draft.tier, self.lang))
        if self.conflict is not None:
            c = self.conflict.conflicts
            cells = np.union1d(c.added_here_removed_there, c.removed_here_added_there)
            if len(cells):
                out.append(layers.conflict_cells(cells, self.lang))
        return out

    def outline_geojson(self) -> dict[str, Any] | None:
        """The draft's outline (drawn, else its cells dissolved) for "modify" mode."""
        import shapely

        draft = self.draft
        if draft is None or not len(draft.cells):
            return None
        geom = draft.outline if draft.outline is not None else grid.cells_outline(draft.cells)
        if geom is None or geom.is_empty:
            return None
        parts = list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {},
             "geometry": shapely.geometry.mapping(shapely.Polygon(p.exterior))}
            for p in parts]}

    def view(self) -> Any:
        """The whole city in the editor's map area of this screen."""
        width, height = self.screen
        return layers.view_for_bounds(self.map.bounds(), width=int(width * 0.58),
                                      height=int(height * 0.78))

    def zone_view(self) -> Any | None:
        """A view fitted to the draft's cells (None when it has none)."""
        draft = self.draft
        if draft is None or not len(draft.cells):
            return None
        lon, lat = grid.cell_centres(draft.cells)
        width, height = self.screen
        return layers.view_for_bounds((lon.min(), lat.min(), lon.max(), lat.max()),
                                      width=int(width * 0.58), height=int(height * 0.78),
                                      padding=0.6, max_zoom=15.0)


def _polygon(geometry: dict[str, Any]) -> Any:
    """A shapely polygon from a GeoJSON geometry sent by the page (validated)."""
    import shapely
    import shapely.geometry

    from twin.errors import ZoneError

    try:
        geom = shapely.geometry.shape(geometry)
    except (AttributeError, KeyError, TypeError, ValueError,
            shapely.errors.GEOSException) as exc:
        raise ZoneError(f"the drawn shape is not a polygon ({exc}); draw again") from None
    if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty:
        raise ZoneError(f"the drawn shape is a {geom.geom_type}, not a polygon; draw again")
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
        polys = [g for g in getattr(geom, "geoms", [geom])
                 if g.geom_type in ("Polygon", "MultiPolygon")]
        if not polys:
            raise ZoneError("the drawn polygon crosses itself into nothing; draw again")
        geom = shapely.union_all(polys)
    return geom
