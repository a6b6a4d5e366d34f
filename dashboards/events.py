"""The dispatchers' ``/events`` page and the grid staff's ``/tasks`` page (thin views).

``/events``: the figures (open, overdue, closed today, median time to close), a map of the
open events by category beside the zones and the grid units, the queue by due time with
assign / escalate / reject / confirm / close on the chosen events, and a form for a call taken
on the phone. ``/tasks``: made for a phone (390 px wide): the worker's units' open events as
cards, and for the chosen one its address on a small map, the description, the caller's phone,
and accept / start / resolve with a note. Both pages reread the events every few seconds.
"""

from __future__ import annotations

import contextlib
import html
from typing import Any

import pandas as pd
import panel as pn
import param
import shapely

import layers
from dashboards.events_state import ACTION_LABELS, AGES, EventsState, TasksState
from layers.events import CATEGORY_COLORS
from twin.events.rules import PRIORITIES, PRIORITY_LABELS

__all__ = ["EventsPage", "TasksPage"]

CSS = """
:host { font-family: "Noto Sans CJK SC", "Microsoft YaHei", system-ui, sans-serif;
  color: #e8eaf0; font-size: 15px; }
.ct-tiles { display: flex; gap: 12px; }
.ct-tile { background: #1b2233; border-radius: 8px; padding: 8px 16px; min-width: 150px; }
.ct-tile b { display: block; font-size: 30px; line-height: 1.2; }
.ct-tile span { color: #aab3c5; font-size: 14px; }
.ct-tile.ct-bad b { color: #ff7a7a; }
.ct-msg { color: #9fd3ff; min-height: 1.3em; font-size: 15px; }
.ct-legend-row { display: flex; flex-wrap: wrap; gap: 10px; font-size: 13px; color: #aab3c5; }
.ct-legend-cover .citytwin-legend { display: flex; flex-wrap: wrap; gap: 10px;
  align-items: center; font-size: 13px; color: #aab3c5; margin-top: 4px; }
.ct-dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  margin-right: 4px; vertical-align: middle; }
.ct-card { background: #1b2233; border-radius: 10px; padding: 10px 12px; margin: 0;
  border-left: 5px solid #4f8cff; }
.ct-card.ct-late { border-left-color: #ff5a5f; }
.ct-card h3 { margin: 0 0 4px; font-size: 17px; }
.ct-card p { margin: 2px 0; color: #c9d0dc; font-size: 15px; }
.ct-late-text { color: #ff8a8a; font-weight: 700; }
.ct-muted { color: #8d97ab; font-size: 13px; }
a { color: #9fd3ff; }
"""
_LABELS = {
    "open": ("待办", "open"), "overdue": ("超时", "overdue"),
    "closed_today": ("今日办结", "closed today"), "median": ("办结中位时长", "median to close"),
    "queue": ("待办队列（按时限）", "Queue (by due time)"), "category": ("类别", "Category"),
    "all": ("全部类别", "all categories"), "age": ("时长", "Age"),
    "unit": ("派至网格", "Assign to grid unit"),
    "note": ("说明（办结、驳回、升级须填写）", "Note (needed to resolve, reject, escalate)"),
    "new_call": ("登记来电", "Record a call"), "priority": ("紧急程度", "Priority"),
    "building": ("建筑编号", "Building id"), "lng": ("经度 WGS84", "Longitude WGS84"),
    "lat": ("纬度 WGS84", "Latitude WGS84"), "address": ("地址", "Address"),
    "description": ("诉求内容", "What is needed"), "phone": ("联系电话", "Phone"),
    "reporter": ("来电人", "Caller"), "record": ("登记并派单", "Record and assign"),
    "id": ("编号", "No."), "state": ("状态", "State"), "holder": ("承办", "Held by"),
    "left": ("时限", "Due"), "my_tasks": ("我的待办", "My tasks"),
    "no_tasks": ("本网格暂无待办事件", "No open events in your grid unit"),
    "not_staff": ("您的账号未登记为网格人员，请联系管理员（twin events WS staff）",
                  "your login is not on the grid staff roster; ask an administrator "
                  "(twin events WS staff)"),
    "open_task": ("处理", "Open"), "back": ("返回列表", "Back to the list"),
    "resolve_note": ("处置情况（办结须填写）", "What was done (needed to resolve)"),
    "hours": ("小时", "h"), "call": ("拨打", "call"),
}


def label(key: str, lang: str) -> str:
    zh, en = _LABELS[key]
    return zh if lang == "zh" else en


_PAGER = {"first": "首页", "last": "末页", "prev": "上一页", "next": "下一页"}


def _pager_language(lang: str) -> dict[str, Any]:
    """Tabulator's pager buttons in the page's language (Tabulator's own are English)."""
    if lang != "zh":
        return {}
    words = {**_PAGER, **{f"{k}_title": v for k, v in _PAGER.items()}}
    return {"locale": "zh", "langs": {"zh": {"pagination": words}}}


def _tiles(stats: dict[str, Any], lang: str) -> str:
    median = stats.get("median_hours_to_close")
    median_text = "–" if median is None else f"{median:.1f} {label('hours', lang)}"
    tiles = [("open", stats.get("open", 0), False), ("overdue", stats.get("overdue", 0),
                                                     stats.get("overdue", 0) > 0),
             ("closed_today", stats.get("closed_today", 0), False),
             ("median", median_text, False)]
    return '<div class="ct-tiles">' + "".join(
        f'<div class="ct-tile ct-tile-{key}{" ct-bad" if bad else ""}"><b>'
        f'{html.escape(f"{v:,}" if isinstance(v, int) else str(v))}'
        f"</b><span>{label(key, lang)}</span></div>" for key, v, bad in tiles) + "</div>"


_BASE: dict[tuple, list[Any]] = {}


def _base_layers(state: Any) -> list[Any]:
    """Land, grid and community lines and the active zones (shared while they hold)."""
    from twin.zones import Zones

    zones = Zones(state.workspace).list(status="active")
    key = (str(state.workspace.root), state.lang, id(state.events.locator),
           tuple(sorted((z.zone_id, z.version) for z in zones)))
    if key not in _BASE:
        if len(_BASE) >= 4:  # a few languages and zone versions: drop the old ones
            _BASE.clear()
        _BASE[key] = _build_base(state, zones)
    return _BASE[key]


def _build_base(state: Any, zones: list[Any]) -> list[Any]:
    frames = state.events.locator.units.frames
    out = []
    if "district" in frames:
        out.append(layers.land(frames["district"], state.lang))
    if zones:
        # The gaps beside the requests: each zone's days of drinking water (the cockpit's
        # 保障天数 layer), its demand including the open supply requests inside it.
        import datetime as dt

        from dashboards.situation import shared_situation
        from dashboards.state import COVER_RESOURCE

        situation = shared_situation(state.workspace.root).current().situation
        day = situation.clamp(dt.date.today())
        gaps = situation.gaps(day)
        if len(gaps):
            with contextlib.suppress(layers.LayerError):
                out.append(layers.cover_areas(gaps, situation.zone_frame(day), COVER_RESOURCE,
                                              state.lang))
    for level in ("grid", "community"):
        if level in frames:
            out.append(layers.boundary_lines(frames[level], state.lang, level=level))
    if zones:
        out.extend(layers.zone_layers(zones, [situation.outline(z) for z in zones],
                                      state.lang))
    return out


#: The most buildings on a grid worker's small map (a few streets round the door).
_MAX_TASK_BUILDINGS = 3_000
_STREETS: dict[tuple, tuple[Any, Any]] = {}


def _street_frames(workspace: Any) -> tuple[Any, Any]:
    """The workspace's current roads and buildings (None where it has none), read once per
    version and process."""
    current: dict[str, Any] = {}
    for layer in workspace.layers():
        if layer.kind in ("roads", "buildings") and layer.current is not None:
            current.setdefault(layer.kind, layer.current)
    key = (str(workspace.root), *sorted((k, v.layer, v.version) for k, v in current.items()))
    if key not in _STREETS:
        if len(_STREETS) >= 4:  # older versions: drop them
            _STREETS.clear()
        _STREETS[key] = tuple(workspace.read(current[kind].layer) if kind in current else None
                              for kind in ("roads", "buildings"))
    return _STREETS[key]


def _legend_html_for(base: list[Any], lang: str) -> str:
    """The legend of the base layers that have one (the zones' days of cover)."""
    cover = "".join(f"<div>{layer.legend.to_html(lang)}</div>" for layer in base
                    if layer.legend is not None and layer.id.startswith("cover"))
    return f'<div class="ct-legend-cover">{cover}</div>' if cover else ""


def _bounds(state: Any) -> tuple[float, float, float, float]:
    frames = state.events.locator.units.frames
    frame = frames.get("district", next(iter(frames.values())))
    return tuple(float(v) for v in shapely.total_bounds(frame.geometry.to_numpy()))


class _Polling(pn.viewable.Viewer):
    """A page that rereads its state every ``poll_period_ms``."""

    poll_period_ms = param.Integer(default=5000, constant=True)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._callbacks: list[Any] = []

    def _poll(self) -> None:
        self.state.refresh()

    def start_callbacks(self) -> None:
        """Reread the events every ``poll_period_ms`` (call in a served page)."""
        if not self._callbacks:
            self._callbacks = [pn.state.add_periodic_callback(self._poll,
                                                              period=self.poll_period_ms)]


class EventsPage(_Polling):
    """``/events`` for one dispatcher's :class:`EventsState`."""

    state = param.ClassSelector(class_=EventsState, constant=True)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        s, lang = self.state, self.state.lang
        styles = [CSS]
        self._tiles = pn.pane.HTML(_tiles(s.stats, lang), stylesheets=styles,
                                   css_classes=["ct-event-tiles"], sizing_mode="stretch_width")
        labels = {c.code: (c.zh, c.en) for c in s.events.categories.values()}
        self._labels = labels
        self._base = _base_layers(s)
        self._bounds = _bounds(s)
        points = layers.event_points(s.points(), labels, lang)
        maplayers = [*self._base, points]
        # The map takes about half a 1920-wide desk screen, below the tiles.
        view = layers.view_for_bounds(self._bounds, width=900, height=760)
        self._map = pn.pane.DeckGL(layers.deck_spec(maplayers, view=view, lang=lang),
                                   tooltips=layers.tooltips(maplayers), sizing_mode="stretch_both",
                                   min_height=520, css_classes=["ct-events-map"],
                                   throttle={"view": 500, "hover": 200})
        self._legend = pn.pane.HTML(self._legend_html(), stylesheets=styles,
                                    sizing_mode="stretch_width")
        self._category = pn.widgets.Select(
            name=label("category", lang),
            options={label("all", lang): "", **{f"{zh} {en}" if lang == "zh" else en: code
                                                  for code, (zh, en) in labels.items()}},
            value="", css_classes=["ct-category"], width=220)
        self._category.param.watch(self._on_category, "value")
        self._age = pn.widgets.Select(
            name=label("age", lang), options={(zh if lang == "zh" else en): code
                                              for code, (zh, en) in AGES.items()},
            value="", css_classes=["ct-age"], width=200)
        self._age.param.watch(self._on_age, "value")
        titles = {k: label(k, lang) for k in ("id", "category", "priority", "state", "holder",
                                               "left", "address", "description")}
        self._queue = pn.widgets.Tabulator(
            s.queue, selectable="checkbox", disabled=True, show_index=False,
            sizing_mode="stretch_both", css_classes=["ct-queue"], theme="midnight",
            layout="fit_data_stretch", min_height=360, pagination="remote", page_size=20,
            titles=titles, configuration=_pager_language(lang))
        units = s.units()
        self._unit = pn.widgets.Select(name=label("unit", lang),
                                       options={"": "", **{f"{n} {c}": c for c, n in
                                                           sorted(units.items())}},
                                       value="", css_classes=["ct-unit"], width=260)
        self._note = pn.widgets.TextInput(name=label("note", lang), css_classes=["ct-note"],
                                          sizing_mode="stretch_width")
        self._buttons = {}
        for action in ("assign", "escalate", "reject", "confirm", "close"):
            button = pn.widgets.Button(name=_pick_action(action, lang),
                                       button_type="primary" if action == "assign" else
                                       "default", css_classes=[f"ct-do-{action}"])
            button.on_click(lambda _e, a=action: self._do(a))
            self._buttons[action] = button
        self._message = pn.pane.HTML("", css_classes=["ct-msg"], stylesheets=styles,
                                     sizing_mode="stretch_width")
        self._form = self._new_call_form(lang, labels)
        s.param.watch(self._on_version, "version")
        s.param.watch(self._on_message, "message")

    def _legend_html(self) -> str:
        lang = self.state.lang
        items = "".join(
            f'<span><i class="ct-dot" style="background:rgb'
            f'{CATEGORY_COLORS.get(code, (153, 153, 153))}"></i>'
            f"{html.escape(zh if lang == 'zh' else en)}</span>"
            for code, (zh, en) in self._labels.items())
        late = "红圈：超时" if lang == "zh" else "red ring: overdue"
        return (f'<div class="ct-legend-row">{items}<span>{late}</span></div>'
                f"{_legend_html_for(self._base, lang)}")

    def _new_call_form(self, lang: str, labels: dict[str, tuple[str, str]]) -> Any:
        w = {
            "category": pn.widgets.Select(name=label("category", lang), options={
                (zh if lang == "zh" else en): code for code, (zh, en) in labels.items()},
                css_classes=["ct-f-category"]),
            "priority": pn.widgets.Select(name=label("priority", lang), options={
                PRIORITY_LABELS[p][0 if lang == "zh" else 1]: p for p in PRIORITIES},
                value="normal", css_classes=["ct-f-priority"]),
            "building_id": pn.widgets.TextInput(name=label("building", lang),
                                                css_classes=["ct-f-building"]),
            "lng": pn.widgets.TextInput(name=label("lng", lang), css_classes=["ct-f-lng"]),
            "lat": pn.widgets.TextInput(name=label("lat", lang), css_classes=["ct-f-lat"]),
            "address": pn.widgets.TextInput(name=label("address", lang),
                                            css_classes=["ct-f-address"]),
            "description": pn.widgets.TextAreaInput(name=label("description", lang), height=70,
                                                    css_classes=["ct-f-description"]),
            "reporter": pn.widgets.TextInput(name=label("reporter", lang),
                                             css_classes=["ct-f-reporter"]),
            "phone": pn.widgets.TextInput(name=label("phone", lang), css_classes=["ct-f-phone"]),
        }
        self._fields = w
        record = pn.widgets.Button(name=label("record", lang), button_type="primary",
                                   css_classes=["ct-record"])
        record.on_click(lambda _e: self._record())
        return pn.Card(
            pn.Row(w["category"], w["priority"]), pn.Row(w["building_id"], w["lng"], w["lat"]),
            w["address"], w["description"], pn.Row(w["reporter"], w["phone"]), record,
            title=label("new_call", lang), collapsed=True, sizing_mode="stretch_width",
            css_classes=["ct-new-call"], header_background="#1b2233",
            styles={"background": "#141b2b"})

    # -- callbacks -----------------------------------------------------------------------
    def _selected_ids(self) -> list[int]:
        queue = self._queue.value
        if queue is None or not len(queue):
            return []
        return [int(queue.iloc[i]["id"]) for i in self._queue.selection if i < len(queue)]

    def _do(self, action: str) -> None:
        if self.state.act(self._selected_ids(), action, note=self._note.value,
                          unit=self._unit.value if action == "assign" else None):
            self._note.value = ""
            self._queue.selection = []

    def _record(self) -> None:
        fields = {k: str(w.value or "") for k, w in self._fields.items()}
        if self.state.submit(fields) is not None:
            for key in ("building_id", "lng", "lat", "address", "description", "reporter",
                        "phone"):
                self._fields[key].value = ""

    def _on_category(self, event: Any) -> None:
        self.state.category = event.new
        self.state.refresh()

    def _on_age(self, event: Any) -> None:
        self.state.age = event.new
        self.state.refresh()

    def _on_message(self, event: Any) -> None:
        self._message.object = html.escape(event.new)

    def _on_version(self, _event: Any) -> None:
        s = self.state
        self._tiles.object = _tiles(s.stats, s.lang)
        self._queue.value = s.queue
        points = layers.event_points(s.points(), self._labels, s.lang)
        spec = layers.deck_spec([*self._base, points], bounds=self._bounds, lang=s.lang)
        spec.pop("initialViewState", None)
        current = dict(self._map.object or {})
        current["layers"] = spec["layers"]
        self._map.object = current

    def _poll(self) -> None:
        self.state.refresh()
        self._tiles.object = _tiles(self.state.stats, self.state.lang)

    def __panel__(self) -> Any:
        actions = pn.Row(self._unit, *self._buttons.values(), sizing_mode="stretch_width")
        filters = pn.Row(self._category, self._age, sizing_mode="stretch_width")
        right = pn.Column(filters, self._queue, self._note, actions, self._message, self._form,
                          sizing_mode="stretch_both", styles={"min-width": "0"})
        left = pn.Column(self._map, self._legend, sizing_mode="stretch_both")
        return pn.Column(self._tiles, pn.Row(left, right, sizing_mode="stretch_both"),
                         sizing_mode="stretch_both", margin=(8, 12))


def _pick_action(action: str, lang: str) -> str:
    zh, en = ACTION_LABELS[action]
    return zh if lang == "zh" else en


class TasksPage(_Polling):
    """``/tasks`` for one grid worker's :class:`TasksState` (a phone screen)."""

    state = param.ClassSelector(class_=TasksState, constant=True)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        s, lang = self.state, self.state.lang
        self._head = pn.pane.HTML("", stylesheets=[CSS], sizing_mode="stretch_width")
        self._list = pn.Column(sizing_mode="stretch_width", css_classes=["ct-task-list"])
        self._detail = pn.pane.HTML("", stylesheets=[CSS], sizing_mode="stretch_width",
                                    css_classes=["ct-task-detail"])
        empty = {"initialViewState": {"longitude": 0.0, "latitude": 0.0, "zoom": 1},
                 "layers": [], "mapStyle": None}
        self._map = pn.pane.DeckGL(empty, sizing_mode="stretch_width", height=220,
                                   css_classes=["ct-task-map"], visible=False)
        self._note = pn.widgets.TextAreaInput(name=label("resolve_note", lang), height=80,
                                              sizing_mode="stretch_width",
                                              css_classes=["ct-task-note"])
        self._actions = pn.Row(sizing_mode="stretch_width", css_classes=["ct-task-actions"])
        self._back = pn.widgets.Button(name=label("back", lang), css_classes=["ct-back"],
                                       sizing_mode="stretch_width", height=44)
        self._back.on_click(lambda _e: self._show(0))
        self._message = pn.pane.HTML("", css_classes=["ct-msg"], stylesheets=[CSS],
                                     sizing_mode="stretch_width")
        self._panel = pn.Column(self._detail, self._map, self._note, self._actions, self._back,
                                sizing_mode="stretch_width", visible=False)
        s.param.watch(lambda e: setattr(self._message, "object", html.escape(e.new)),
                      "message")
        s.param.watch(lambda _e: self._render(), "version")
        self._render()

    def _render(self) -> None:
        s, lang = self.state, self.state.lang
        if not s.my_units:
            self._head.object = f"<p>{html.escape(label('not_staff', lang))}</p>"
            self._list.objects = []
            return
        n = len(s.raw)
        self._head.object = (f"<h2 style='margin:4px 0'>{label('my_tasks', lang)} · {n}</h2>"
                             f"<p class='ct-muted'>{html.escape(s.unit_label)}</p>")
        cards = []
        queue = s.queue if s.queue is not None else pd.DataFrame()
        for row in queue.itertuples():
            late = str(row.left).startswith(("超时", "overdue"))
            text = (f'<div class="ct-card{" ct-late" if late else ""}"><h3>#{row.id} '
                    f"{html.escape(row.category)}</h3><p>{html.escape(row.address)}</p>"
                    f'<p class="{"ct-late-text" if late else "ct-muted"}">'
                    f"{html.escape(row.state)} · {html.escape(row.left)}</p></div>")
            button = pn.widgets.Button(name=f"{label('open_task', lang)} #{row.id}",
                                       css_classes=["ct-open-task"], button_type="primary",
                                       sizing_mode="stretch_width", height=44)
            button.on_click(lambda _e, i=int(row.id): self._show(i))
            cards.append(pn.Column(pn.pane.HTML(text, stylesheets=[CSS],
                                                sizing_mode="stretch_width"), button,
                                   sizing_mode="stretch_width", css_classes=["ct-task"]))
        if not cards:
            cards = [pn.pane.HTML(f"<p>{label('no_tasks', lang)}</p>", stylesheets=[CSS])]
        self._list.objects = cards
        if s.selected and s.detail(s.selected) is None:
            self._show(0)

    def _show(self, event_id: int) -> None:
        s, lang = self.state, self.state.lang
        s.selected = event_id
        info = s.detail(event_id) if event_id else None
        self._panel.visible = info is not None
        self._list.visible = info is None
        if info is None:
            self._map.visible = False
            return
        phone = html.escape(info["phone"])
        self._detail.object = (
            f"<h2 style='margin:4px 0'>#{info['id']} {html.escape(info['category'])}</h2>"
            f"<p><b>{html.escape(info['address'])}</b></p>"
            f"<p>{html.escape(info['description'])}</p>"
            f"<p class='ct-muted'>{html.escape(info['reported'])} · {html.escape(info['left'])}"
            f"</p><p>{html.escape(info['reporter'])} "
            + (f"<a href='tel:{phone}'>{label('call', lang)} {phone}</a>" if phone else "")
            + "</p>")
        point = pd.DataFrame({"lon": [info["lng"]], "lat": [info["lat"]]})
        dot = layers.maplayer.make_layer(
            "ScatterplotLayer", "task", point, legend=None, tooltip_html=None, lang=lang,
            get_position="[lon, lat]", get_radius=9, radius_units="pixels",
            get_fill_color=[255, 90, 95, 255], stroked=True,
            get_line_color=[255, 255, 255, 255], line_width_min_pixels=2)
        frames = s.events.locator.units.frames
        pad = 0.007
        box = shapely.box(info["lng"] - 3 * pad, info["lat"] - 3 * pad, info["lng"] + 3 * pad,
                          info["lat"] + 3 * pad)
        level = "grid" if "grid" in frames else "community"
        near = frames[level][frames[level].geometry.intersects(box)]
        base = [layers.boundaries(near, lang, level=level, land=True)] if len(near) else []
        # The buildings and roads round the door, for finding it (flat: seen from above).
        roads, buildings = _street_frames(s.workspace)
        west, south, east, north = (info["lng"] - 2 * pad, info["lat"] - 2 * pad,
                                    info["lng"] + 2 * pad, info["lat"] + 2 * pad)
        if buildings is not None:
            close = buildings.cx[west:east, south:north].head(_MAX_TASK_BUILDINGS)
            if len(close):
                base.append(layers.buildings(close, lang, extruded=False))
        if roads is not None:
            close = roads.cx[west:east, south:north]
            if len(close):
                base.append(layers.roads(close, lang))
        self._map.object = layers.deck_spec(
            [*base, dot], bounds=(info["lng"] - pad, info["lat"] - pad, info["lng"] + pad,
                                  info["lat"] + pad), lang=lang)
        self._map.visible = True
        buttons = []
        for action in s.legal(event_id):
            button = pn.widgets.Button(name=_pick_action(action, lang),
                                       button_type="primary", css_classes=[f"ct-t-{action}"],
                                       sizing_mode="stretch_width", height=48)
            button.on_click(lambda _e, a=action: self._act(a))
            buttons.append(button)
        self._actions.objects = buttons

    def _act(self, action: str) -> None:
        s = self.state
        if s.act(s.selected, action, note=self._note.value):
            self._note.value = ""
            self._show(s.selected if s.detail(s.selected) else 0)

    def __panel__(self) -> Any:
        return pn.Column(self._head, self._message, self._list, self._panel,
                         sizing_mode="stretch_width", margin=(6, 10),
                         styles={"max-width": "640px"})
