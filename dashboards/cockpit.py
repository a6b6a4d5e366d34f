"""The cockpit view: a thin ``pn.viewable.Viewer`` over :class:`dashboards.state.CockpitState`.

Laid out for 1920×1080 and 3840×2160 without scrolling: sizes are in viewport units, and what
cannot be (the map's fit, the chart's fonts) follows the window size the page reports
(:class:`ScreenSize`). Every widget is made in ``__init__``, so every browser session has its
own. Stable CSS classes for browser tests are listed in ``dashboards/README.md``.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import panel as pn
import param
from bokeh.models import ColumnDataSource, DatetimeTickFormatter, Legend, LegendItem, Span
from bokeh.plotting import figure
from panel.custom import JSComponent

import layers
from dashboards.labels import KPI_NAMES, label
from dashboards.state import BUILDINGS_MIN_ZOOM, TOGGLES, CockpitState

__all__ = ["STYLES", "WIDGET_STYLES", "Cockpit", "ScreenSize"]

#: Cockpit CSS (no web fonts: system CJK fonts only). Sizes follow the viewport so that a
#: 4K wall shows the same layout as a 1080p one, only sharper.
STYLES = """
:host, .ct-root { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei",
  "PingFang SC", system-ui, sans-serif; color: #e8eaf0; }
.ct-kpi { background: #1b2233; border-radius: 0.6vw; padding: 0.6vh 0.8vw; height: 100%;
  box-sizing: border-box; border-left: 0.3vw solid #4f8cff; overflow: hidden; }
.ct-kpi-label { font-size: clamp(14px, 0.95vw, 44px); color: #aab3c5; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; }
.ct-kpi-value { font-size: clamp(24px, 2.1vw, 100px); font-weight: 700; line-height: 1.1;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.ct-kpi-detail { font-size: clamp(12px, 0.72vw, 34px); color: #aab3c5; line-height: 1.25;
  overflow: hidden; display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; }
.ct-kpi.ct-alarm { border-left-color: #ff5a5f; }
.ct-top10 table, :host(.ct-top10) table { width: 100%; border-collapse: collapse;
  font-size: clamp(13px, 0.8vw, 36px); table-layout: fixed; }
:host(.ct-legend) { font-size: clamp(11px, 0.65vw, 28px); }
.ct-top10 td, .ct-top10 th, :host(.ct-top10) td, :host(.ct-top10) th {
  padding: 0.35vh 0.4vw; text-align: left;
  border-bottom: 1px solid #2a3348; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.ct-top10 th, :host(.ct-top10) th { color: #aab3c5; font-weight: 400; }
.ct-interval, :host(.ct-top10) .ct-interval { color: #8e97aa; font-size: 0.85em; }
.ct-grade-high { color: #ff5a5f; font-weight: 700; } .ct-grade-medium { color: #ffb648; }
:host(.ct-alerts) { font-size: clamp(14px, 0.9vw, 40px); white-space: nowrap;
  overflow: hidden; width: 100%; }
.ct-ticker { display: inline-block; white-space: nowrap; padding-left: 100%;
  animation: ct-scroll var(--ct-ticker-s, 60s) linear infinite; }
.ct-ticker:hover { animation-play-state: paused; }
@keyframes ct-scroll { from { transform: translateX(0); } to { transform: translateX(-100%); } }
@media (prefers-reduced-motion: reduce) { .ct-ticker { animation: none; padding-left: 0; } }
.ct-alert { display: inline-block; margin-right: 3vw; }
.ct-alert.ct-critical { color: #ff5a5f; } .ct-alert.ct-warning { color: #ffb648; }
.ct-status { font-size: clamp(12px, 0.75vw, 32px); color: #9fd3ff; min-height: 1.2em; }
.ct-title { font-size: clamp(18px, 1.3vw, 60px); font-weight: 700; }
"""

#: Panel widgets keep pixel sizes of their own; these scale them with the screen and make the
#: state of a toggle plain to see (on: filled blue; off: outlined and dimmed).
WIDGET_STYLES = """
:host { font-size: clamp(14px, 0.8vw, 36px); }
.bk-btn { font-size: clamp(14px, 0.8vw, 36px) !important; height: auto !important;
  min-height: 2.2em; padding: 0.3em 0.8em !important; }
.bk-btn-group .bk-btn:not(.bk-active) { background: transparent !important;
  color: #aab3c5 !important; border: 1px solid #3a4660 !important; }
.bk-btn-group .bk-btn.bk-active { background: #2f6fe4 !important; color: #fff !important;
  border: 1px solid #7fb0ff !important; font-weight: 700; }
.bk-btn-group .bk-btn.bk-active::before { content: "✓ "; }
.bk-input-group label, .bk-slider-title, .bk-slider-value { font-size: clamp(14px, 0.8vw,
  36px) !important; }
.noUi-horizontal { height: clamp(8px, 0.5vw, 22px) !important; }
.noUi-horizontal .noUi-handle { width: clamp(18px, 1.1vw, 48px) !important;
  height: clamp(18px, 1.1vw, 48px) !important; top: -50% !important; }
"""


class ScreenSize(JSComponent):
    """Reports the browser window's size in CSS pixels (and again on resize)."""

    screen_width = param.Integer(default=0)
    screen_height = param.Integer(default=0)

    _esm = """
export function render({ model }) {
  const report = () => {
    model.screen_width = window.innerWidth
    model.screen_height = window.innerHeight
  }
  report()
  window.addEventListener("resize", report)
  const el = document.createElement("span")
  el.style.display = "none"
  return el
}
"""


def _kpi_html(name: str, tile: dict[str, Any]) -> str:
    alarm = " ct-alarm" if (name == "low_cover" and tile["value"]) or (
        name == "open_events" and tile.get("overdue")) or (
        name == "bed_occupancy" and tile["value"] == tile["value"] and tile["value"] > 0.85) \
        else ""
    return (f'<div class="ct-kpi ct-kpi-{name}{alarm}">'
            f'<div class="ct-kpi-label">{html.escape(tile["label"])}</div>'
            f'<div class="ct-kpi-value">{html.escape(tile["display"])}</div>'
            f'<div class="ct-kpi-detail" title="{html.escape(str(tile.get("detail", "")))}">'
            f'{html.escape(str(tile.get("detail", "")))}</div></div>')


def _top10_html(frame: Any, lang: str, by: str = "score") -> str:
    widths = ("22%", "11%", "8%", "15%", "44%")
    cols = "".join(f'<col style="width:{w}">' for w in widths)
    head = "".join(f"<th>{label(k, lang)}</th>" for k in ("community", "grade", "score",
                                                           "expected", "reason"))
    rows = "".join(
        f'<tr><td title="{html.escape(r.name)}">{i}. {html.escape(r.name)}</td>'
        f'<td class="ct-grade-{html.escape(str(r.grade_key))}">{html.escape(r.grade)}</td>'
        f'<td>{r.score:.2f}</td>'
        f'<td class="ct-expected" title="90%: {html.escape(r.interval)}">{html.escape(r.expected)} '
        f'<span class="ct-interval">({html.escape(r.interval)})</span></td>'
        f'<td title="{html.escape(r.reason)}">{html.escape(r.reason)}</td></tr>'
        for i, r in enumerate(frame.itertuples(), 1))
    title = label("top10_expected" if by == "expected" else "top10", lang)
    return (f'<div class="ct-title">{title}</div>'
            f"<table><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _alerts_html(rows: list[dict[str, Any]], lang: str) -> str:
    if not rows:
        return f'<span class="ct-alert">{label("no_alerts", lang)}</span>'
    items = "".join(f'<span class="ct-alert ct-{html.escape(r["severity"])}">⚠ '
                    f'{html.escape(r["date_text"])} {html.escape(r["text"])}</span>'
                    for r in rows)
    # About 12 characters a second at any screen size: long enough to read on the move.
    seconds = max(20, sum(len(r["text"]) + 8 for r in rows) // 12)
    return (f'<div class="ct-ticker" style="--ct-ticker-s:{seconds}s">{items}</div>')


def _legend_html(maplayers: list[Any], lang: str) -> str:
    return '<div style="display:flex;gap:2vw;flex-wrap:wrap">' + "".join(
        f"<div>{layer.legend.to_html(lang)}</div>" for layer in maplayers
        if layer.legend is not None and not layer.id.startswith(
            ("districts", "communities", "boundaries", "names", "land"))) + "</div>"


class Cockpit(pn.viewable.Viewer):
    """The leaders' cockpit for one session's :class:`CockpitState`."""

    state = param.ClassSelector(class_=CockpitState, constant=True)
    kiosk = param.Boolean(default=False, constant=True, doc="Wall screen: no controls.")
    play_period_ms = param.Integer(default=1500, constant=True)
    poll_period_ms = param.Integer(default=3000, constant=True)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        s = self.state
        lang = s.lang
        styles = [WIDGET_STYLES]
        self._date = pn.widgets.DateSlider(
            name=label("date", lang), start=s.start, end=s.end, value=s.date,
            css_classes=["ct-date"], sizing_mode="stretch_width", bar_color="#4f8cff",
            stylesheets=styles, format="%m月%d日" if lang == "zh" else "%d %b")
        self._play = pn.widgets.Toggle(name=f"▶ {label('play', lang)}", value=s.playing,
                                       css_classes=["ct-play"], width=150,
                                       button_type="primary", stylesheets=styles)
        self._toggles = pn.widgets.CheckButtonGroup(
            options={label(t, lang): t for t in TOGGLES}, value=list(s.layers_on),
            css_classes=["ct-layers"], button_type="default", stylesheets=styles)
        self._sort = pn.widgets.RadioButtonGroup(
            options={label("sort_score", lang): "score",
                     label("sort_expected", lang): "expected"},
            value=s.top_sort, css_classes=["ct-sort"], button_type="default",
            stylesheets=styles, visible=not self.kiosk, align="end")
        self._hexres = pn.widgets.RadioButtonGroup(
            options={f"H3 {r}": r for r in s.param.hex_resolution.objects},
            value=s.hex_resolution, css_classes=["ct-hexres"], button_type="default",
            stylesheets=styles)
        self._status = pn.pane.HTML(s.status, css_classes=["ct-status"], stylesheets=[STYLES],
                                    sizing_mode="stretch_width")
        self._kpis = [pn.pane.HTML("", sizing_mode="stretch_width", min_height=90,
                                   stylesheets=[STYLES]) for _ in KPI_NAMES]
        self._screen = ScreenSize(width=0, height=0, margin=0, sizing_mode="fixed",
                                  styles={"position": "absolute", "width": "0",
                                          "height": "0", "overflow": "hidden"})
        maplayers = s.map_layers()
        self._map = pn.pane.DeckGL(layers.deck_spec(maplayers, view=s.view(), lang=lang),
                                   tooltips={**s.tooltips(), **layers.tooltips(maplayers)},
                                   sizing_mode="stretch_both",
                                   css_classes=["ct-map"], min_height=300, throttle={
                                       "view": 500, "hover": 200},
                                   styles={"flex": "1 1 auto", "min-height": "44vh"})
        self._legend = pn.pane.HTML("", css_classes=["ct-legend"], sizing_mode="stretch_width",
                                    stylesheets=[STYLES],
                                    styles={"max-height": "12vh", "overflow": "hidden"})
        self._source = ColumnDataSource({"date": [], "new": [], "mean7": []})
        self._fan = ColumnDataSource({"date": [], "expected": [], "lo50": [], "hi50": [],
                                      "lo90": [], "hi90": []})
        self._fig = self._figure()
        self._chart = pn.pane.Bokeh(self._fig, sizing_mode="stretch_both", min_height=150)
        self._top10 = pn.pane.HTML("", css_classes=["ct-top10"], sizing_mode="stretch_both",
                                   stylesheets=[STYLES])
        self._alerts = pn.pane.HTML("", css_classes=["ct-alerts"], sizing_mode="stretch_width",
                                    stylesheets=[STYLES])
        # widgets -> state
        self._date.param.watch(self._on_date, "value")
        self._play.param.watch(self._on_play, "value")
        self._toggles.param.watch(self._on_toggles, "value")
        self._hexres.param.watch(lambda e: s.param.update(hex_resolution=e.new), "value")
        self._sort.param.watch(lambda e: s.param.update(top_sort=e.new), "value")
        self._screen.param.watch(self._on_screen, ["screen_width", "screen_height"])
        self._map.param.watch(self._on_view, "view_state")
        # state -> widgets
        s.param.watch(self._state_date, ["date", "start", "end"])
        s.param.watch(self._state_status, ["status"])
        s.param.watch(self._render_data, ["date", "data_version", "lang"])
        s.param.watch(self._render_top10, ["top_sort"])
        s.param.watch(self._render_map, ["date", "data_version", "lang", "hex_resolution",
                                         "layers_on", "zoom", "centre"])
        s.param.watch(self._render_view, ["screen"])
        self._callbacks: list[Any] = []
        self._render_data()
        self._render_legend(maplayers)

    # -- state -> view ------------------------------------------------------------------
    def _figure(self) -> Any:
        lang = self.state.lang
        fig = figure(x_axis_type="datetime", toolbar_location=None, sizing_mode="stretch_both",
                     css_classes=["ct-trend-plot"],
                     background_fill_color="#111726", border_fill_color="#111726",
                     title=label("trend", lang))
        bars = fig.vbar(x="date", top="new", width=86_400_000 * 0.8, source=self._source,
                        color="#4f8cff", alpha=0.7)
        line = fig.line(x="date", y="mean7", source=self._source, color="#ffb648",
                        line_width=3)
        # the forecast fan after the chosen date: 90 % and 50 % intervals, the expected line
        fan90 = fig.varea(x="date", y1="lo90", y2="hi90", source=self._fan, color="#c792ea",
                          alpha=0.22)
        fan50 = fig.varea(x="date", y1="lo50", y2="hi50", source=self._fan, color="#c792ea",
                          alpha=0.45)
        ahead = fig.line(x="date", y="expected", source=self._fan, color="#e3c6ff",
                         line_width=3, line_dash="dashed")
        self._marker = Span(dimension="height", line_color="#ff5a5f", line_width=2,
                            location=0)
        fig.add_layout(self._marker)
        fig.xaxis.formatter = (DatetimeTickFormatter(days="%m月%d日", months="%Y年%m月")
                               if lang == "zh" else DatetimeTickFormatter(days="%d %b"))
        legend = Legend(items=[LegendItem(label=label("legend_new", lang), renderers=[bars]),
                               LegendItem(label=label("legend_mean7", lang),
                                          renderers=[line]),
                               LegendItem(label=label("legend_forecast", lang),
                                          renderers=[ahead]),
                               LegendItem(label=label("legend_fan50", lang),
                                          renderers=[fan50]),
                               LegendItem(label=label("legend_fan90", lang),
                                          renderers=[fan90])],
                        location="top_left", background_fill_alpha=0.0, border_line_alpha=0.0,
                        label_text_color="#e8eaf0")
        fig.add_layout(legend)
        for axis in (fig.xaxis, fig.yaxis):
            axis.major_label_text_color = "#aab3c5"
        fig.title.text_color = "#e8eaf0"
        fig.grid.grid_line_color = "#2a3348"
        self._set_fonts(fig, self.state.screen)
        return fig

    @staticmethod
    def _set_fonts(fig: Any, screen: tuple[float, float]) -> None:
        """Chart fonts in pixels, scaled from 1080p to the reported screen."""
        scale = max(1.0, min(screen[0] / 1920, screen[1] / 1080, 2.5))
        for axis in (fig.xaxis, fig.yaxis):
            axis.major_label_text_font_size = f"{round(14 * scale)}px"
        fig.title.text_font_size = f"{round(18 * scale)}px"
        for legend in fig.legend:
            legend.label_text_font_size = f"{round(14 * scale)}px"
            legend.glyph_width = legend.glyph_height = round(18 * scale)

    def _guard(self, work: Any) -> None:
        """Run a render step; a failure goes to the status area, not a traceback."""
        try:
            work()
        except Exception as exc:
            self.state.status = f"⚠ {type(exc).__name__}: {exc}"

    def _render_data(self, *_: Any) -> None:
        def work() -> None:
            s = self.state
            tiles = s.kpis()
            for pane, name in zip(self._kpis, KPI_NAMES, strict=True):
                pane.object = _kpi_html(name, tiles[name])
            trend = s.trend()
            self._source.data = {"date": list(trend.index), "new": trend["new"].tolist(),
                                 "mean7": trend["mean7"].tolist()}
            fan = s.forecast()
            self._fan.data = {"date": list(fan.index), **{
                k: fan[k].astype(float).tolist() for k in ("expected", "lo50", "hi50", "lo90",
                                                          "hi90")}}
            self._marker.location = dt.datetime.combine(s.date, dt.time())
            self._top10.object = _top10_html(s.top10(), s.lang, s.top_sort)
            self._alerts.object = _alerts_html(s.alerts(), s.lang)
        self._guard(work)

    def _render_top10(self, *_: Any) -> None:
        def work() -> None:
            self._top10.object = _top10_html(self.state.top10(), self.state.lang,
                                             self.state.top_sort)
        self._guard(work)

    def _render_legend(self, maplayers: list[Any]) -> None:
        self._legend.object = _legend_html(maplayers, self.state.lang)

    def _render_map(self, *_: Any) -> None:
        def work() -> None:
            s = self.state
            maplayers = s.map_layers()
            spec = layers.deck_spec(maplayers, view=s.view(), lang=s.lang)
            old = self._map.object
            if isinstance(old, dict) and old.get("initialViewState"):
                spec["initialViewState"] = old["initialViewState"]  # keep the view on updates
            # New tooltips make Panel rebuild the whole map (back to its initial view), so
            # they only ever grow, and a rebuild starts from where the person had moved to.
            tips = {**self._map.tooltips, **layers.tooltips(maplayers)}
            if tips != self._map.tooltips:
                seen = self._map.view_state or {}
                keep = {k: seen[k] for k in ("longitude", "latitude", "zoom", "pitch",
                                             "bearing") if k in seen}
                if keep:
                    spec["initialViewState"] = {**spec["initialViewState"], **keep}
                # the view first, so the rebuild that the tooltips cause starts from it
                self._map.object = spec
                self._map.tooltips = tips
            else:
                self._map.object = spec
            self._render_legend(maplayers)
        self._guard(work)

    def _render_view(self, *_: Any) -> None:
        """Fit the city to this screen's map area (once the page has said how big it is)."""
        def work() -> None:
            spec = dict(self._map.object)
            view = self.state.view()
            fitted = {"longitude": view.longitude, "latitude": view.latitude,
                      "zoom": view.zoom}
            current = spec.get("initialViewState", {})
            if all(current.get(k) == v for k, v in fitted.items()):
                return
            spec["initialViewState"] = {**current, **fitted}
            self._map.object = spec
            self._set_fonts(self._fig, self.state.screen)
            self._chart.param.trigger("object")  # the pane re-sends the figure's new fonts
        self._guard(work)

    def _state_date(self, *_: Any) -> None:
        s = self.state
        self._date.param.update(start=s.start, end=s.end, value=s.date)

    def _state_status(self, event: Any) -> None:
        self._status.object = html.escape(event.new)

    # -- view -> state ------------------------------------------------------------------
    def _on_screen(self, *_: Any) -> None:
        width, height = self._screen.screen_width, self._screen.screen_height
        if width > 0 and height > 0 and (width, height) != tuple(self.state.screen):
            self.state.screen = (width, height)

    def _on_view(self, event: Any) -> None:
        self._sync_view(event.new or {})

    def _sync_view(self, view: dict[str, Any]) -> None:
        """Tell the state where the map is, when that matters: for 3D buildings only, past
        their zoom (and once more on the way back out)."""
        zoom = view.get("zoom")
        centre = (view.get("longitude"), view.get("latitude"))
        if zoom is None or None in centre or not self.state.shows("buildings"):
            return
        if zoom >= BUILDINGS_MIN_ZOOM:
            self.state.param.update(zoom=float(zoom), centre=centre)
        elif (self.state.zoom or 0) >= BUILDINGS_MIN_ZOOM:
            self.state.zoom = float(zoom)

    def _on_toggles(self, event: Any) -> None:
        self.state.layers_on = list(event.new)
        if "buildings" in event.new and "buildings" not in event.old:
            self._sync_view(self._map.view_state or {})

    def _on_date(self, event: Any) -> None:
        value = event.new
        if isinstance(value, dt.datetime):
            value = value.date()
        if value != self.state.date:
            self.state.date = value

    def _on_play(self, event: Any) -> None:
        self.state.playing = event.new
        self._play.name = (f"⏸ {label('pause', self.state.lang)}" if event.new
                           else f"▶ {label('play', self.state.lang)}")

    # -- periodic -------------------------------------------------------------------------
    def _tick(self) -> None:
        if self.state.playing:
            self.state.step()

    def _poll(self) -> None:
        try:
            self.state.refresh()
            # Events change without new layers: their tiles are reread on every poll.
            tiles = self.state.event_tiles()
            for pane, name in zip(self._kpis, KPI_NAMES, strict=True):
                if name in tiles:
                    text = _kpi_html(name, tiles[name])
                    if pane.object != text:
                        pane.object = text
        except Exception as exc:
            self.state.status = f"⚠ {type(exc).__name__}: {exc}"

    def start_callbacks(self) -> None:
        """Start the play and new-data timers for this session (call in a served page)."""
        if not self._callbacks:
            self._callbacks = [
                pn.state.add_periodic_callback(self._tick, period=self.play_period_ms),
                pn.state.add_periodic_callback(self._poll, period=self.poll_period_ms)]

    # -- layout -----------------------------------------------------------------------------
    def __panel__(self) -> Any:
        s = self.state
        kpi_row = pn.Row(*self._kpis, sizing_mode="stretch_width",
                         styles={"height": "13vh", "gap": "0.6vw"})
        controls = pn.Row(self._play, self._date, self._toggles, self._hexres,
                          sizing_mode="stretch_width",
                          visible=not self.kiosk, css_classes=["ct-controls"])
        map_col = pn.Column(self._map, self._legend, sizing_mode="stretch_both",
                            styles={"flex": "3 1 0", "display": "flex",
                                    "flex-direction": "column"})
        side = pn.Column(self._sort, self._top10, self._chart, sizing_mode="stretch_both",
                         styles={"flex": "2 1 0"})
        middle = pn.Row(map_col, side, sizing_mode="stretch_width",
                        styles={"height": "58vh" if not self.kiosk else "64vh", "gap": "0.6vw"})
        return pn.Column(
            kpi_row, middle, self._alerts, controls, self._status, self._screen,
            sizing_mode="stretch_both", stylesheets=[STYLES],
            css_classes=["ct-root", "ct-kiosk" if self.kiosk else "ct-interactive"],
            styles={"height": "calc(95.8vh - 1.2vh)", "overflow": "hidden",
                    "padding": "0.6vh 0.4vw", "box-sizing": "border-box"},
            name=label("title", s.lang))
