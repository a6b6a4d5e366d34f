"""The planners' zone editor: a thin ``pn.viewable.Viewer`` over
:class:`dashboards.zones_state.ZoneEditorState`.

The map (:class:`dashboards.zone_map.ZoneMap`, deck.gl with the community editable layers,
bundled by ``scripts/setup``) sends drawn polygons, brush strokes and edited outlines; the state
turns them into cells with :mod:`twin.grid` and every decision goes to :mod:`twin.zones`. Laid
out for a 1920×1080 desktop: the map on the left, the editor's tabs on the right (edit with the
impact beside the map, proposals, downgrades, history, export). Stable CSS classes for browser
tests are listed in ``dashboards/README.md``.
"""

from __future__ import annotations

import datetime as dt
import html
import io
from typing import Any

import panel as pn
import param

import layers
from dashboards.cockpit import WIDGET_STYLES
from dashboards.labels import label
from dashboards.styles import TAB_STYLES
from dashboards.zone_map import ZoneMap, to_wire
from dashboards.zones_state import EDITOR_TOGGLES, MODES, ZoneEditorState
from twin.errors import TwinError
from twin.i18n import FACILITY_KINDS, RESOURCES, TIERS, pick

__all__ = ["EDITOR_STYLES", "ZoneEditor"]

EDITOR_STYLES = """
:host { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei",
  "PingFang SC", system-ui, sans-serif; color: #e8eaf0; font-size: 15px; }
h3 { font-size: 17px; margin: 4px 0 6px; color: #e8eaf0; }
.ct-big { font-size: 34px; font-weight: 700; line-height: 1.1; }
.ct-sub { color: #aab3c5; font-size: 14px; margin: 4px 0; }
table { width: 100%; border-collapse: collapse; font-size: 14px; margin-top: 6px; }
td, th { padding: 3px 8px; border-bottom: 1px solid #2a3348; text-align: left;
  white-space: nowrap; }
td.ct-wrap { white-space: normal; }
th { color: #aab3c5; font-weight: 400; }
.ct-num { text-align: right !important; font-variant-numeric: tabular-nums; }
.ct-gap { color: #ff5a5f; font-weight: 700; }
.ct-ok { color: #5fd38d; }
.ct-grid { display: grid; grid-template-columns: repeat(4, 1fr); gap: 8px; margin: 6px 0; }
.ct-cell { background: #1b2233; border-radius: 6px; padding: 6px 8px; }
.ct-cell .ct-k { color: #aab3c5; font-size: 13px; } .ct-cell .ct-v { font-size: 20px;
  font-weight: 700; }
.ct-delta-add { color: #5fd38d; } .ct-delta-remove { color: #e66bd0; }
.ct-conflict { border: 2px solid #ff8c00; border-radius: 8px; padding: 8px 10px;
  background: #2a1e10; }
.ct-conflict h3 { color: #ffb648; margin: 0 0 6px; }
.ct-status-line { color: #9fd3ff; min-height: 1.3em; font-size: 15px; }
.ct-hint { color: #aab3c5; font-size: 13px; }
"""


def _only_our_extensions() -> None:
    """Name this session's Panel extensions (Tabulator), so its page loads no other.

    Without a list Panel loads the scripts of every extension model imported in the process:
    once a cockpit has been served, its DeckGL pane's deck.gl 9.1 would load here too and the
    map's own deck.gl (in ZoneMap's bundle) refuse to start ("deck.gl - multiple versions
    detected"), leaving the whole page unrendered.
    """
    if pn.state.curdoc is not None:
        pn.extension("tabulator")


def twin_label(key: str, lang: str) -> str:
    """The name of a tier, facility kind or resource in ``lang``."""
    for names in (TIERS, FACILITY_KINDS, RESOURCES):
        if key in names:
            return pick(names, key, lang)
    return key


def _lowest(cover: dict[str, float], lang: str) -> str:
    """The resource with the fewest days of cover inside, e.g. "饮用水 2.5 天"."""
    if not cover:
        return "–"
    resource, days = min(cover.items(), key=lambda kv: kv[1])
    return f"{twin_label(resource, lang)} {_days(days)} {label('days_unit', lang)}"


def _n(value: float) -> str:
    return f"{round(value):,d}"


def _days(value: float) -> str:
    return "∞" if value == float("inf") else f"{value:.1f}"


class ZoneEditor(pn.viewable.Viewer):
    """The zone editor page for one planner's :class:`ZoneEditorState`."""

    state = param.ClassSelector(class_=ZoneEditorState, constant=True)
    poll_period_ms = param.Integer(default=3000, constant=True)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        _only_our_extensions()
        s = self.state
        lang = s.lang
        styles = [WIDGET_STYLES]
        css = [EDITOR_STYLES]
        # -- map and its tools
        self._map = ZoneMap(sizing_mode="stretch_both", min_height=400,
                            css_classes=["ct-zones-map"])
        self._map.on_polygon(self._guarded(s.add_polygon))
        self._map.on_stroke(self._guarded(s.apply_stroke))
        self._map.on_outline(self._guarded(s.set_outline))
        self._mode = pn.widgets.RadioButtonGroup(
            options={label(f"mode_{m}", lang): m for m in MODES}, value=s.mode,
            css_classes=["ct-mode"], button_type="default", stylesheets=styles)
        self._brush = pn.widgets.IntSlider(name=label("brush_size", lang), start=0, end=3,
                                           value=s.brush_k, width=150, stylesheets=styles,
                                           css_classes=["ct-brush-size"])
        self._undo = pn.widgets.Button(name=f"↶ {label('undo', lang)}", disabled=True,
                                       css_classes=["ct-undo"], stylesheets=styles, width=90)
        self._redo = pn.widgets.Button(name=f"↷ {label('redo', lang)}", disabled=True,
                                       css_classes=["ct-redo"], stylesheets=styles, width=90)
        self._city = pn.widgets.Button(name=f"⤢ {label('whole_city', lang)}",
                                       css_classes=["ct-whole-city"], stylesheets=styles,
                                       width=110)
        self._toggles = pn.widgets.CheckButtonGroup(
            options={label(t, lang): t for t in EDITOR_TOGGLES}, value=list(s.layers_on),
            css_classes=["ct-layers"], button_type="default", stylesheets=styles)
        self._date = pn.widgets.DatePicker(name=label("date", lang), value=s.date,
                                           start=s.start, end=s.end, css_classes=["ct-date"],
                                           stylesheets=styles, width=160)
        self._legend = pn.pane.HTML("", css_classes=["ct-legend"], stylesheets=css,
                                    sizing_mode="stretch_width",
                                    styles={"max-height": "14vh", "overflow": "hidden"})
        self._status = pn.pane.HTML("", css_classes=["ct-zone-status"], stylesheets=css,
                                    styles={"color": "#9fd3ff", "font-size": "15px"},
                                    sizing_mode="stretch_width")
        # -- edit tab
        self._picker = pn.widgets.Select(name=label("zone", lang), options={},
                                         css_classes=["ct-zone-picker"], stylesheets=styles,
                                         sizing_mode="stretch_width")
        self._open = pn.widgets.Button(name=label("open_zone", lang), css_classes=["ct-open"],
                                       stylesheets=styles, width=110, align="end")
        self._new = pn.widgets.Button(name=f"＋ {label('new_zone', lang)}",
                                      css_classes=["ct-new"], stylesheets=styles, width=120,
                                      align="end")
        self._tier = pn.widgets.RadioButtonGroup(
            options={twin_label(t, lang): t for t in ("lockdown", "control", "prevention")},
            value="lockdown", css_classes=["ct-tier"], button_type="default",
            stylesheets=styles, disabled=True)
        self._zstatus = pn.widgets.RadioButtonGroup(
            options={label(f"status_{v}", lang): v for v in ("proposed", "active", "lifted")},
            value="proposed", css_classes=["ct-status-choice"], button_type="default",
            stylesheets=styles, disabled=True)
        self._valid = pn.widgets.DatePicker(name=label("valid_from", lang),
                                            css_classes=["ct-valid-from"], stylesheets=styles,
                                            width=160, disabled=True)
        self._impact = pn.pane.HTML("", css_classes=["ct-impact"], stylesheets=css,
                                    sizing_mode="stretch_width")
        self._reason = pn.widgets.TextInput(name=label("save_reason", lang),
                                            placeholder=label("reason_placeholder", lang),
                                            css_classes=["ct-reason"], stylesheets=styles,
                                            sizing_mode="stretch_width")
        self._save = pn.widgets.Button(name=label("save", lang), button_type="primary",
                                       css_classes=["ct-save"], stylesheets=styles, width=120,
                                       align="end", disabled=True)
        self._conflict = pn.pane.HTML("", css_classes=["ct-conflict-pane"], stylesheets=css,
                                      sizing_mode="stretch_width", visible=False)
        self._mine = pn.widgets.Button(name=label("keep_mine", lang), css_classes=["ct-keep-mine"],
                                       stylesheets=styles, button_type="warning")
        self._theirs = pn.widgets.Button(name=label("keep_theirs", lang),
                                         css_classes=["ct-keep-theirs"], stylesheets=styles)
        self._resolve = pn.Row(self._mine, self._theirs, visible=False)
        # -- proposals tab
        self._accept_from = pn.widgets.DatePicker(name=label("active_from", lang), value=s.date,
                                                  css_classes=["ct-accept-from"],
                                                  stylesheets=styles, width=160)
        self._reject_reason = pn.widgets.TextInput(
            name=label("reject_reason", lang), placeholder=label("reject_placeholder", lang),
            css_classes=["ct-reject-reason"], stylesheets=styles, sizing_mode="stretch_width")
        self._accept = pn.widgets.Button(name=f"✓ {label('accept', lang)}", button_type="success",
                                         css_classes=["ct-accept"], stylesheets=styles)
        self._reject = pn.widgets.Button(name=f"✗ {label('reject', lang)}", button_type="danger",
                                         css_classes=["ct-reject"], stylesheets=styles)
        self._edit_first = pn.widgets.Button(name=f"✎ {label('edit_first', lang)}",
                                             css_classes=["ct-edit-first"], stylesheets=styles)
        self._propose = pn.widgets.Button(name=label("propose_now", lang),
                                          css_classes=["ct-propose"], stylesheets=styles)
        self._proposals = pn.widgets.Tabulator(
            None, selectable="checkbox", disabled=True, show_index=False,
            sizing_mode="stretch_both", css_classes=["ct-proposals"], theme="midnight",
            layout="fit_data_stretch", min_height=300, pagination=None,
            titles={"id": label("zone", lang)})
        # -- downgrades tab
        self._downgrades = pn.widgets.Tabulator(
            None, selectable="checkbox", disabled=True, show_index=False,
            sizing_mode="stretch_both", css_classes=["ct-downgrades"], theme="midnight",
            layout="fit_data_stretch", min_height=300, titles={"id": label("zone", lang)})
        self._apply = pn.widgets.Button(name=label("apply_downgrade", lang),
                                        button_type="primary", css_classes=["ct-apply"],
                                        stylesheets=styles)
        # -- history tab
        self._history = pn.pane.HTML("", css_classes=["ct-history"], stylesheets=css,
                                     sizing_mode="stretch_width")
        self._diff_from = pn.widgets.Select(name=label("from_version", lang), options=[],
                                            css_classes=["ct-diff-from"], stylesheets=styles,
                                            width=120)
        self._diff_to = pn.widgets.Select(name=label("to_version", lang), options=[],
                                          css_classes=["ct-diff-to"], stylesheets=styles,
                                          width=120)
        self._show_diff = pn.widgets.Button(name=label("show_diff", lang),
                                            css_classes=["ct-show-diff"], stylesheets=styles,
                                            align="end")
        self._hide_diff = pn.widgets.Button(name=label("hide_diff", lang),
                                            css_classes=["ct-hide-diff"], stylesheets=styles,
                                            align="end")
        self._diff_text = pn.pane.HTML("", css_classes=["ct-diff"], stylesheets=css,
                                       sizing_mode="stretch_width")
        # -- export tab
        self._export_geojson = pn.widgets.FileDownload(
            callback=lambda: self._export("geojson"), filename="zones.geojson",
            label=label("export_geojson", lang), css_classes=["ct-export-geojson"],
            stylesheets=styles, button_type="primary", embed=False)
        self._export_gpkg = pn.widgets.FileDownload(
            callback=lambda: self._export("gpkg"), filename="zones.gpkg",
            label=label("export_gpkg", lang), css_classes=["ct-export-gpkg"],
            stylesheets=styles, button_type="primary", embed=False)
        self._tabs = pn.Tabs(dynamic=False, sizing_mode="stretch_both",
                             css_classes=["ct-tabs"], stylesheets=[TAB_STYLES])
        # -- wiring: widgets -> state
        self._mode.param.watch(lambda e: self._set_mode(e.new), "value")
        self._brush.param.watch(lambda e: s.param.update(brush_k=int(e.new)), "value")
        self._undo.on_click(lambda _: self._do(s.undo))
        self._redo.on_click(lambda _: self._do(s.redo))
        self._toggles.param.watch(lambda e: s.param.update(layers_on=list(e.new)), "value")
        self._date.param.watch(self._on_date, "value")
        self._open.on_click(lambda _: self._do(self._open_picked))
        self._picker.param.watch(lambda e: None if self._syncing or not e.new
                                 else self._do(self._open_picked), "value")
        self._city.on_click(lambda _: self._do(
            lambda: setattr(self._map, "view", self._view_dict(s.view()))))
        self._new.on_click(lambda _: self._do(lambda: self._start_new()))
        self._tier.param.watch(lambda e: self._field(tier=e.new), "value")
        self._zstatus.param.watch(lambda e: self._field(status=e.new), "value")
        self._valid.param.watch(lambda e: self._field(valid_from=e.new), "value")
        self._save.on_click(lambda _: self._do(self._save_draft))
        self._mine.on_click(lambda _: self._do(lambda: self._settle("mine")))
        self._theirs.on_click(lambda _: self._do(lambda: self._settle("theirs")))
        self._accept.on_click(lambda _: self._do(self._accept_selected))
        self._reject.on_click(lambda _: self._do(self._reject_selected))
        self._edit_first.on_click(lambda _: self._do(self._edit_selected))
        self._propose.on_click(lambda _: self._do(s.run_propose))
        self._apply.on_click(lambda _: self._do(self._apply_selected))
        self._proposals.param.watch(self._on_pick_proposal, "selection")
        self._show_diff.on_click(lambda _: self._do(self._diff))
        self._hide_diff.on_click(lambda _: self._do(lambda: s.param.update(diff=None)))
        # -- wiring: state -> view
        s.param.watch(self._render_draft, ["draft", "conflict", "diff"])
        s.param.watch(self._render_base, ["date", "layers_on", "data_version"])
        s.param.watch(self._render_lists, ["date", "data_version"])
        s.param.watch(lambda e: setattr(self._status, "object", html.escape(e.new)),
                      ["status"])
        s.param.watch(lambda e: self._mode.param.update(value=e.new), ["mode"])
        self._callbacks: list[Any] = []
        self._syncing = False
        self._opened: Any = None
        self._map.view = self._view_dict(s.view())
        self._map.tooltips = {}
        self._render_base()
        self._render_lists()
        self._render_draft()

    # -- helpers ----------------------------------------------------------------------------
    def _guarded(self, work: Any) -> Any:
        def run(*args: Any) -> None:
            self._do(lambda: work(*args))
        return run

    def _do(self, work: Any) -> Any:
        """Run a planner's action; a refusal or error goes to the status line, not a
        traceback."""
        try:
            return work()
        except (TwinError, ValueError, KeyError) as exc:
            self.state.status = f"⚠ {exc}"
        except Exception as exc:  # an unforeseen failure still leaves the page usable
            self.state.status = f"⚠ {type(exc).__name__}: {exc}"
        return None

    @staticmethod
    def _view_dict(view: Any) -> dict[str, Any]:
        return {"longitude": view.longitude, "latitude": view.latitude, "zoom": view.zoom,
                "pitch": 0, "bearing": 0}

    def _wire(self, maplayers: list[Any]) -> list[dict[str, Any]]:
        if not maplayers:
            return []
        spec = layers.deck_spec(maplayers, view=self.state.view(), lang=self.state.lang)
        return [to_wire(layer) for layer in spec["layers"]]

    # -- view -> state ------------------------------------------------------------------------
    def _set_mode(self, mode: str) -> None:
        s = self.state
        if mode != "view":
            if s.draft is None:
                s.new_zone("lockdown")
            self._tabs.active = 0  # the impact beside the map while drawing
        if mode == "modify":
            self._map.outline = s.outline_geojson()
        s.mode = mode
        self._map.mode = mode

    def _on_date(self, event: Any) -> None:
        if event.new is not None and event.new != self.state.date:
            self.state.date = event.new
            self._accept_from.value = event.new

    def _field(self, **change: Any) -> None:
        if self._syncing or self.state.draft is None:
            return
        self._do(lambda: self.state.set_fields(**change))

    def _open_picked(self) -> None:
        if not self._picker.value:
            self.state.status = label("pick_zone", self.state.lang)
            return
        self.state.open_zone(self._picker.value)
        self._fit_zone()

    def _start_new(self) -> None:
        self.state.new_zone("lockdown")
        self._tabs.active = 0

    def _fit_zone(self) -> None:
        view = self.state.zone_view()
        if view is not None:
            self._map.view = self._view_dict(view)

    def _save_draft(self) -> None:
        reason = (self._reason.value or "").strip()
        if not reason:
            self.state.status = label("reason_required", self.state.lang)
            return
        result = self.state.save(reason)
        if result is not None and self.state.conflict is None:
            self._reason.value = ""

    def _settle(self, side: str) -> None:
        conflict = self.state.conflict
        if conflict is None:
            return
        c = conflict.conflicts
        resolve = {}
        if len(c.added_here_removed_there) or len(c.removed_here_added_there):
            resolve["cells"] = side
        for kind in ("tier", "status", "valid_from"):
            if getattr(c, kind):
                resolve[kind] = side
        reason = (self._reason.value or "").strip() or label("resolved_reason", self.state.lang)
        self.state.save(reason, resolve=resolve)
        if self.state.conflict is None:
            self._reason.value = ""

    def _selected(self, table: Any) -> list[dict[str, Any]]:
        frame = table.value
        if frame is None or not len(frame) or not table.selection:
            self.state.status = label("select_rows", self.state.lang)
            return []
        return [frame.iloc[i].to_dict() for i in table.selection if i < len(frame)]

    def _on_pick_proposal(self, event: Any) -> None:
        """One proposal ticked: show it on the map (opened in the editor, nothing written)."""
        frame = self._proposals.value
        if len(event.new) != 1 or frame is None or event.new[0] >= len(frame):
            return
        zone_id = frame.iloc[event.new[0]]["id"]
        if self.state.draft is not None and self.state.draft.zone_id == zone_id:
            return
        if self.state.dirty:
            return  # never drop a planner's unsaved edit for a preview
        self._do(lambda: (self.state.open_zone(zone_id), self._fit_zone()))

    def _accept_selected(self) -> None:
        day = self._accept_from.value or self.state.date
        for row in self._selected(self._proposals):
            self.state.accept(row["id"], day)

    def _reject_selected(self) -> None:
        rows = self._selected(self._proposals)
        reason = (self._reject_reason.value or "").strip()
        if rows and not reason:
            self.state.status = label("reject_reason_required", self.state.lang)
            return
        for row in rows:
            self.state.reject(row["id"], reason)
        if rows:
            self._reject_reason.value = ""

    def _edit_selected(self) -> None:
        rows = self._selected(self._proposals)
        if rows:
            self.state.open_zone(rows[0]["id"])
            self.state.set_fields(status="active",
                                  valid_from=self._accept_from.value or self.state.date)
            self._fit_zone()
            self._tabs.active = 0

    def _apply_selected(self) -> None:
        items = {d["zone_id"]: d for d in self._downgrade_items}
        for row in self._selected(self._downgrades):
            self.state.apply_downgrade(items[row["id"]])

    def _diff(self) -> None:
        if self._diff_from.value is None:
            return
        d = self.state.show_diff(int(self._diff_from.value),
                                 int(self._diff_to.value) if self._diff_to.value else None)
        lang = self.state.lang
        res = (lambda v: "?" if v is None else _n(v))  # noqa: E731
        self._diff_text.object = (
            f"<div>v{d['from_version']} → v{d['to_version']}: "
            f'<span class="ct-delta-add">+{len(d["added"])} {label("cells", lang)} '
            f"({res(d['residents_added'])} {label('residents_unit', lang)})</span> · "
            f'<span class="ct-delta-remove">−{len(d["removed"])} {label("cells", lang)} '
            f"({res(d['residents_removed'])} {label('residents_unit', lang)})</span> · "
            f"{twin_label(d['tier'][0], lang)} → {twin_label(d['tier'][1], lang)} · "
            f"{label('status_' + d['status'][0], lang)} → "
            f"{label('status_' + d['status'][1], lang)}</div>")

    def _export(self, fmt: str) -> io.BytesIO:
        path = self.state.export(fmt)
        try:
            return io.BytesIO(path.read_bytes())
        finally:
            path.unlink(missing_ok=True)

    # -- state -> view ------------------------------------------------------------------------
    def _render_base(self, *_: Any) -> None:
        def work() -> None:
            base, zones = self.state.base_layers(), self.state.zone_layers()
            maplayers = [*base, *zones]
            # A zone save changes the zones only: the ground, risk and cases (most of the
            # bytes) are sent again only when they differ from what the page holds.
            for name, wire in (("base_layers", self._wire(base)),
                               ("zone_layers", self._wire(zones))):
                if wire != getattr(self._map, name):
                    setattr(self._map, name, wire)
            tips = {**self._map.tooltips, **layers.tooltips(maplayers)}
            if tips != self._map.tooltips:
                self._map.tooltips = tips
            self._legend.object = '<div style="display:flex;gap:2vw;flex-wrap:wrap">' + "".join(
                f"<div>{m.legend.to_html(self.state.lang)}</div>" for m in maplayers
                if m.legend is not None and not m.id.startswith(
                    ("districts", "communities", "boundaries", "names", "land"))) + "</div>"
        self._do(work)

    def _render_draft(self, *_: Any) -> None:
        def work() -> None:
            s = self.state
            # The numbers first: the browser applies patches in order, and the map's redraw
            # of a big draft can hold the page for a moment.
            self._impact.object = self._impact_html()
            edit = s.edit_layers()
            self._map.draft_layers = self._wire(edit)
            tips = {**self._map.tooltips, **layers.tooltips(edit)}
            if tips != self._map.tooltips:
                self._map.tooltips = tips
            draft = s.draft
            opened = (draft.zone_id, draft.base_version) if draft is not None else None
            if opened != self._opened:
                self._opened = opened
                self._render_history()
                if draft is not None and draft.zone_id and self._picker.value != draft.zone_id:
                    self._syncing = True
                    try:
                        self._picker.value = draft.zone_id
                    finally:
                        self._syncing = False
            self._undo.disabled = not s.can_undo
            self._redo.disabled = not s.can_redo
            editing = draft is not None
            self._syncing = True
            try:
                for widget in (self._tier, self._zstatus, self._valid):
                    widget.disabled = not editing
                self._save.disabled = not editing
                if editing:
                    self._tier.value = draft.tier
                    self._zstatus.value = draft.status
                    self._valid.value = dt.date.fromisoformat(draft.valid_from[:10])
            finally:
                self._syncing = False
            self._render_conflict()
            if s.mode == "modify":
                self._map.outline = s.outline_geojson()
        self._do(work)

    def _render_conflict(self) -> None:
        s, lang = self.state, self.state.lang
        conflict = s.conflict
        if conflict is None:
            self._conflict.visible = self._resolve.visible = False
            return
        c = conflict.conflicts
        rows = []
        for key, cells in (("added_here_removed_there", c.added_here_removed_there),
                           ("removed_here_added_there", c.removed_here_added_there)):
            if len(cells):
                rows.append(f"<tr><td>{label(key, lang)}</td><td class='ct-num'>"
                            f"{len(cells)} {label('cells', lang)}</td></tr>")
        for kind in ("tier", "status", "valid_from"):
            pair = getattr(c, kind)
            if pair:
                mine, theirs = pair
                if kind == "tier":
                    mine, theirs = twin_label(mine, lang), twin_label(theirs, lang)
                elif kind == "status":
                    mine, theirs = (label(f"status_{mine}", lang),
                                    label(f"status_{theirs}", lang))
                rows.append(f"<tr><td>{label(kind, lang)}</td><td>{label('mine', lang)}: "
                            f"<b>{html.escape(str(mine))}</b> · {label('theirs', lang)}: "
                            f"<b>{html.escape(str(theirs))}</b></td></tr>")
        who = "; ".join(f"v{v} {html.escape(str(a))} {html.escape(str(t))[:16]}: "
                        f"{html.escape(str(r))}" for v, a, t, r in conflict.changes)
        self._conflict.object = (
            f'<div class="ct-conflict"><h3>⚠ {label("conflict_title", lang)}</h3>'
            f'<div class="ct-hint">{label("conflict_who", lang)}: {who}</div>'
            f"<table>{''.join(rows)}</table>"
            f'<div class="ct-hint">{label("conflict_hint", lang)}</div></div>')
        self._conflict.visible = self._resolve.visible = True

    def _impact_html(self) -> str:
        s, lang = self.state, self.state.lang
        got = s.impact()
        if got is None:
            return f'<div class="ct-hint">{label("editor_hint", lang)}</div>'
        draft = s.draft
        title = (f"{html.escape(draft.zone_id)} · v{draft.base_version}" if draft.zone_id
                 else label("new_zone", lang))
        dirty = f" · <b>{label('unsaved', lang)}</b>" if s.dirty else ""
        groups = got["groups"]
        cells = [("age_65_plus", groups.get("age_65_plus", 0.0)),
                 ("children", groups.get("children", 0.0)),
                 ("elderly_living_alone", groups.get("elderly_living_alone", 0.0)),
                 ("chronic_patients", groups.get("chronic_patients", 0.0))]
        grid_html = "".join(f'<div class="ct-cell ct-group-{k}"><div class="ct-k">'
                            f"{label(k, lang)}</div><div class='ct-v'>{_n(v)}</div></div>"
                            for k, v in cells)
        b = got.get("buildings") or {}
        facilities = ", ".join(f"{twin_label(k, lang)} {v['n']}"
                               for k, v in got["facilities"].items()) or label("none", lang)
        supply_rows = "".join(
            f"<tr><td>{twin_label(r, lang)}</td><td class='ct-num'>{_n(v['demand'])}</td>"
            f"<td class='ct-num'>{_n(v['supply'])}</td>"
            f"<td class='ct-num {'ct-gap' if v['gap'] > 0 else 'ct-ok'}'>{_n(v['gap'])}</td>"
            f"<td class='ct-num'>{_days(v['days_of_cover'])}</td></tr>"
            for r, v in got["supply"].items())
        supply = (f"<table class='ct-supply'><thead><tr><th>{label('resource', lang)}</th>"
                  f"<th class='ct-num'>{label('demand', lang)}</th>"
                  f"<th class='ct-num'>{label('stock_inside', lang)}</th>"
                  f"<th class='ct-num'>{label('gap', lang)}</th>"
                  f"<th class='ct-num'>{label('days_cover', lang)}</th></tr></thead>"
                  f"<tbody>{supply_rows}</tbody></table>") if supply_rows else ""
        delta = (f'<span class="ct-delta-add">+{got["added_cells"]} '
                 f'(+{_n(got["residents_added"])})</span> '
                 f'<span class="ct-delta-remove">−{got["removed_cells"]} '
                 f'(−{_n(got["residents_removed"])})</span>')
        return (
            f'<h3>{title} · {twin_label(draft.tier, lang)}{dirty}</h3>'
            f'<div><span class="ct-big ct-residents" data-value="{got["residents"]:.0f}">'
            f'{_n(got["residents"])}</span> {label("residents_unit", lang)} · '
            f'<span class="ct-cells" data-value="{len(draft.cells)}">{len(draft.cells):,d}'
            f"</span> {label('cells', lang)} · {delta}</div>"
            f'<div class="ct-grid">{grid_html}</div>'
            f'<div class="ct-sub">{label("buildings_n", lang)} {int(b.get("n", 0)):,d} · '
            f'{label("floor_area", lang)} {_n(b.get("floor_m2", 0.0) / 1e4)} '
            f'{label("hectares", lang)} · {label("facilities", lang)}: {facilities}</div>'
            f"{supply}")

    def _render_lists(self, *_: Any) -> None:
        def work() -> None:
            import pandas as pd

            s, lang = self.state, self.state.lang
            props = s.proposals()
            frame = pd.DataFrame({
                "id": [p["zone_id"] for p in props],
                label("tier", lang): [twin_label(p["tier"], lang) for p in props],
                label("cells", lang): [p["cells"] for p in props],
                label("residents_unit", lang): [round(p["residents"]) for p in props],
                "65+": [round(p["age_65_plus"]) for p in props],
                label("elderly_living_alone", lang): [round(p["elderly_living_alone"])
                                                      for p in props],
                label("facilities", lang): [", ".join(f"{twin_label(k, lang)} {n}"
                                                      for k, n in p["facilities"].items())
                                            for p in props],
                label("lowest_cover", lang): [_lowest(p["cover"], lang) for p in props],
                label("proposed_on", lang): [p["valid_from"] for p in props]})
            self._proposals.value = frame
            self._proposals.selection = []
            items = s.downgrades()
            self._downgrade_items = items
            self._downgrades.value = pd.DataFrame({
                "id": [d["zone_id"] for d in items],
                label("zone", lang): [d["name"] for d in items],
                label("downgrade", lang): [f"{twin_label(d['tier'], lang)} → "
                                           f"{twin_label(d['suggested_tier'], lang)}"
                                           for d in items],
                label("last_infection", lang): [d["last_infection"] or "–" for d in items],
                label("tier_since", lang): [d["became_tier_on"] for d in items],
                label("reached_on", lang): [d["reached_on"] for d in items],
                label("rule", lang): [d["rule_zh" if lang == "zh" else "rule"]
                                      for d in items]})
            self._downgrades.selection = []
            zones = s.zones()
            # Labels that do not change with a save (the impact panel gives tier and status),
            # so a colleague's save does not pull the option from under the planner.
            options = {label("choose_zone", lang): "",  # nothing opens by itself
                       **{f"{z.zone_id} · {z.name}": z.zone_id for z in zones}}
            if options != self._picker.options:
                self._picker.options = options
            self._render_history()
            self._tabs_titles(len(props), len(items))
        self._do(work)

    def _render_history(self) -> None:
        s, lang = self.state, self.state.lang
        versions = s.history()
        if not versions:
            self._history.object = f'<div class="ct-hint">{label("history_hint", lang)}</div>'
            self._diff_from.options = self._diff_to.options = []
            return
        rows = "".join(
            f'<tr class="ct-version"><td>v{v.version}</td><td>{html.escape(v.created_at[:16])}'
            f"</td><td>{html.escape(v.author)}</td><td>{twin_label(v.tier, lang)}</td>"
            f"<td>{label('status_' + v.status, lang)}</td><td>{html.escape(v.valid_from)}</td>"
            f"<td class='ct-num'>{len(v.cells):,d}</td><td class='ct-wrap'>"
            f"{html.escape(v.reason)}</td></tr>"
            for v in reversed(versions))
        head = "".join(f"<th>{label(k, lang)}</th>" for k in (
            "version", "when", "author", "tier", "status", "valid_from", "cells", "reason"))
        self._history.object = (f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>"
                                "</table>")
        numbers = [str(v.version) for v in versions]
        self._diff_from.options = numbers
        self._diff_to.options = numbers
        if len(numbers) > 1:
            self._diff_from.value, self._diff_to.value = numbers[-2], numbers[-1]

    def _tabs_titles(self, proposals: int, downgrades: int) -> None:
        lang = self.state.lang
        names = [label("tab_edit", lang), f"{label('tab_proposals', lang)} ({proposals})",
                 f"{label('tab_downgrades', lang)} ({downgrades})", label("tab_history", lang),
                 label("tab_export", lang)]
        if len(self._tabs) == len(names) and list(self._tabs._names) != names:
            active = self._tabs.active
            self._tabs[:] = list(zip(names, list(self._tabs.objects), strict=True))
            self._tabs.active = active

    # -- periodic -------------------------------------------------------------------------
    def _poll(self) -> None:
        self._do(self.state.refresh)

    def start_callbacks(self) -> None:
        """Start the new-data timer for this session (call in a served page)."""
        if not self._callbacks:
            self._callbacks = [pn.state.add_periodic_callback(self._poll,
                                                              period=self.poll_period_ms)]

    # -- layout -----------------------------------------------------------------------------
    def __panel__(self) -> Any:
        lang = self.state.lang
        tools = pn.Row(self._mode, self._brush, self._undo, self._redo, self._city,
                       sizing_mode="stretch_width", css_classes=["ct-tools"])
        bottom = pn.Row(self._date, self._toggles, sizing_mode="stretch_width")
        left = pn.Column(tools, self._map, self._legend, bottom, self._status,
                         sizing_mode="stretch_both",
                         styles={"flex": "58 1 0", "display": "flex",
                                 "flex-direction": "column"})
        edit = pn.Column(
            pn.Row(self._picker, self._open, self._new, sizing_mode="stretch_width"),
            pn.Row(self._tier, self._zstatus, sizing_mode="stretch_width"),
            pn.Row(self._valid, sizing_mode="stretch_width"),
            self._impact, self._conflict, self._resolve,
            pn.Row(self._reason, self._save, sizing_mode="stretch_width"),
            sizing_mode="stretch_both", name=label("tab_edit", lang),
            styles={"overflow-y": "auto"})
        proposals = pn.Column(
            pn.Row(self._accept_from, self._accept, self._edit_first, self._propose,
                   sizing_mode="stretch_width"),
            pn.Row(self._reject_reason, self._reject, sizing_mode="stretch_width"),
            self._proposals, sizing_mode="stretch_both", name=label("tab_proposals", lang))
        downgrades = pn.Column(
            pn.pane.HTML(f'<div class="ct-hint">{label("downgrade_hint", lang)}</div>',
                         stylesheets=[EDITOR_STYLES]),
            self._apply, self._downgrades, sizing_mode="stretch_both",
            name=label("tab_downgrades", lang))
        history = pn.Column(
            pn.Row(self._diff_from, self._diff_to, self._show_diff, self._hide_diff),
            self._diff_text, self._history, sizing_mode="stretch_both",
            name=label("tab_history", lang), styles={"overflow-y": "auto"})
        export = pn.Column(
            pn.pane.HTML(f'<div class="ct-hint">{label("export_hint", lang)}</div>',
                         stylesheets=[EDITOR_STYLES]),
            self._export_geojson, self._export_gpkg, name=label("tab_export", lang))
        self._tabs[:] = [edit, proposals, downgrades, history, export]
        self._render_lists()
        right = pn.Column(self._tabs, sizing_mode="stretch_both",
                          styles={"flex": "42 1 0", "min-width": "0"})
        return pn.Row(left, right, sizing_mode="stretch_both", stylesheets=[EDITOR_STYLES],
                      css_classes=["ct-ze"],
                      styles={"height": "calc(95.8vh - 8px)", "gap": "0.6vw",
                              "padding": "4px 0.4vw", "box-sizing": "border-box",
                              "overflow": "hidden"})


