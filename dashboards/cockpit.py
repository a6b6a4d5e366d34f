"""The cockpit view: a thin ``pn.viewable.Viewer`` over :class:`dashboards.state.CockpitState`.

Laid out for 1920×1080 and 3840×2160 without scrolling (sizes in viewport units), dark. Every
widget is made in ``__init__``, so every browser session has its own. Stable CSS classes for
browser tests are listed in ``dashboards/README.md``.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import panel as pn
import param
from bokeh.models import ColumnDataSource, Span
from bokeh.plotting import figure

import layers
from dashboards.labels import KPI_NAMES, label
from dashboards.state import CockpitState

__all__ = ["STYLES", "Cockpit"]

_TOGGLES = ("risk", "cases", "zones", "facilities", "residents", "roads")
_MAP_PARAMS = ["date", "data_version", "lang", "role", "hex_resolution",
               *(f"show_{t}" for t in _TOGGLES)]

#: Cockpit CSS (no web fonts: system CJK fonts only). Sizes follow the viewport so that a
#: 4K wall shows the same layout as a 1080p one, only sharper.
STYLES = """
:host, .ct-root { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei",
  "PingFang SC", system-ui, sans-serif; color: #e8eaf0; }
.ct-kpi { background: #1b2233; border-radius: 0.6vw; padding: 0.6vh 0.8vw; height: 100%;
  box-sizing: border-box; border-left: 0.3vw solid #4f8cff; overflow: hidden; }
.ct-kpi-label { font-size: clamp(14px, 0.95vw, 44px); color: #aab3c5; white-space: nowrap; }
.ct-kpi-value { font-size: clamp(28px, 2.6vw, 120px); font-weight: 700; line-height: 1.1; }
.ct-kpi-detail { font-size: clamp(12px, 0.75vw, 34px); color: #aab3c5; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; }
.ct-kpi.ct-alarm { border-left-color: #ff5a5f; }
.ct-top10 table, :host(.ct-top10) table { width: 100%; border-collapse: collapse;
  font-size: clamp(13px, 0.8vw, 36px); }
:host(.ct-legend) { font-size: clamp(11px, 0.65vw, 28px); }
.ct-top10 td, .ct-top10 th, :host(.ct-top10) td, :host(.ct-top10) th {
  padding: 0.35vh 0.4vw; text-align: left;
  border-bottom: 1px solid #2a3348; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; max-width: 14vw; }
.ct-top10 th, :host(.ct-top10) th { color: #aab3c5; font-weight: 400; }
.ct-grade-high { color: #ff5a5f; font-weight: 700; } .ct-grade-medium { color: #ffb648; }
.ct-alerts { font-size: clamp(14px, 0.9vw, 40px); white-space: nowrap; overflow: hidden; }
.ct-alerts .ct-alert { display: inline-block; margin-right: 3vw; }
.ct-alerts .ct-critical { color: #ff5a5f; } .ct-alerts .ct-warning { color: #ffb648; }
.ct-status { font-size: clamp(12px, 0.75vw, 32px); color: #9fd3ff; min-height: 1.2em; }
.ct-title { font-size: clamp(18px, 1.3vw, 60px); font-weight: 700; }
"""


def _kpi_html(name: str, tile: dict[str, Any]) -> str:
    alarm = " ct-alarm" if (name == "low_cover" and tile["value"]) or (
        name == "bed_occupancy" and tile["value"] == tile["value"] and tile["value"] > 0.85) \
        else ""
    return (f'<div class="ct-kpi ct-kpi-{name}{alarm}">'
            f'<div class="ct-kpi-label">{html.escape(tile["label"])}</div>'
            f'<div class="ct-kpi-value">{html.escape(tile["display"])}</div>'
            f'<div class="ct-kpi-detail">{html.escape(str(tile.get("detail", "")))}</div></div>')


def _top10_html(frame: Any, lang: str) -> str:
    head = "".join(f"<th>{label(k, lang)}</th>" for k in ("community", "grade", "score",
                                                           "reason"))
    rows = "".join(
        f'<tr><td>{i}. {html.escape(r.name)}</td>'
        f'<td class="ct-grade-{html.escape(str(g))}">{html.escape(r.grade)}</td>'
        f'<td>{r.score:.2f}</td><td title="{html.escape(r.reason)}">{html.escape(r.reason)}'
        f'</td></tr>'
        for i, (r, g) in enumerate(zip(frame.itertuples(), frame["grade_key"], strict=True), 1))
    return (f'<div class="ct-title">{label("top10", lang)}</div>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")


def _alerts_html(rows: list[dict[str, Any]], lang: str) -> str:
    if not rows:
        return f'<span class="ct-alert">{label("no_alerts", lang)}</span>'
    return "".join(f'<span class="ct-alert ct-{html.escape(r["severity"])}">⚠ '
                   f'{html.escape(r["date"])} {html.escape(r["text"])}</span>' for r in rows)


class Cockpit(pn.viewable.Viewer):
    """The leaders' cockpit for one session's :class:`CockpitState`."""

    state = param.ClassSelector(class_=CockpitState, constant=True)
    kiosk = param.Boolean(default=False, constant=True, doc="Wall screen: no controls.")
    play_period_ms = param.Integer(default=1500, constant=True)
    poll_period_ms = param.Integer(default=5000, constant=True)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        s = self.state
        lang = s.lang
        self._date = pn.widgets.DateSlider(
            name=label("date", lang), start=s.start, end=s.end, value=s.date,
            css_classes=["ct-date"], sizing_mode="stretch_width", bar_color="#4f8cff")
        self._play = pn.widgets.Toggle(name=f"▶ {label('play', lang)}", value=s.playing,
                                       css_classes=["ct-play"], width=130,
                                       button_type="primary")
        self._toggles = pn.widgets.CheckButtonGroup(
            options={label(t, lang): t for t in _TOGGLES},
            value=[t for t in _TOGGLES if getattr(s, f"show_{t}")],
            css_classes=["ct-layers"], button_type="default")
        self._hexres = pn.widgets.RadioButtonGroup(
            options={f"H3 {r}": r for r in s.param.hex_resolution.objects},
            value=s.hex_resolution, css_classes=["ct-hexres"], button_type="default")
        self._status = pn.pane.HTML(s.status, css_classes=["ct-status"], stylesheets=[STYLES],
                                    sizing_mode="stretch_width")
        self._kpis = [pn.pane.HTML("", sizing_mode="stretch_width", min_height=90,
                                   stylesheets=[STYLES])
                      for _ in KPI_NAMES]
        self._map = pn.pane.DeckGL({"layers": [], "mapStyle": None}, sizing_mode="stretch_both",
                                   css_classes=["ct-map"], min_height=300, throttle={
                                       "view": 500, "hover": 200},
                                   styles={"flex": "1 1 auto", "min-height": "44vh"})
        self._legend = pn.pane.HTML("", css_classes=["ct-legend"], sizing_mode="stretch_width",
                                    stylesheets=[STYLES],
                                    styles={"max-height": "12vh", "overflow": "hidden"})
        self._source = ColumnDataSource({"date": [], "new": [], "mean7": []})
        self._chart = pn.pane.Bokeh(self._figure(), sizing_mode="stretch_both", min_height=150,
                                    css_classes=["ct-trend"])
        self._top10 = pn.pane.HTML("", css_classes=["ct-top10"], sizing_mode="stretch_both",
                                   stylesheets=[STYLES])
        self._alerts = pn.pane.HTML("", css_classes=["ct-alerts"], sizing_mode="stretch_width",
                                    stylesheets=[STYLES])
        # widgets -> state
        self._date.param.watch(self._on_date, "value")
        self._play.param.watch(self._on_play, "value")
        self._toggles.param.watch(self._on_toggles, "value")
        self._hexres.param.watch(lambda e: self.state.param.update(hex_resolution=e.new),
                                 "value")
        # state -> widgets
        s.param.watch(self._state_date, ["date", "start", "end"])
        s.param.watch(self._state_status, ["status"])
        s.param.watch(self._render_data, ["date", "data_version", "lang"])
        s.param.watch(self._render_map, _MAP_PARAMS)
        self._callbacks: list[Any] = []
        self._render_data()
        self._render_map()

    # -- state -> view ------------------------------------------------------------------
    def _figure(self) -> Any:
        fig = figure(x_axis_type="datetime", toolbar_location=None, sizing_mode="stretch_both",
                     background_fill_color="#111726", border_fill_color="#111726",
                     title=label("trend", self.state.lang))
        fig.vbar(x="date", top="new", width=86_400_000 * 0.8, source=self._source,
                 color="#4f8cff", alpha=0.7)
        fig.line(x="date", y="mean7", source=self._source, color="#ffb648", line_width=3)
        self._marker = Span(dimension="height", line_color="#ff5a5f", line_width=2,
                            location=0)
        fig.add_layout(self._marker)
        for axis in (fig.xaxis, fig.yaxis):
            axis.major_label_text_color = "#aab3c5"
            axis.major_label_text_font_size = "14px"
        fig.title.text_color = "#e8eaf0"
        fig.title.text_font_size = "18px"
        fig.grid.grid_line_color = "#2a3348"
        return fig

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
            self._marker.location = dt.datetime.combine(s.date, dt.time())
            top = s.top10()
            top["grade_key"] = s.risk_table("community").top(10)["grade"].astype(str).values
            self._top10.object = _top10_html(top, s.lang)
            self._alerts.object = _alerts_html(s.alerts(), s.lang)
        self._guard(work)

    def _render_map(self, *_: Any) -> None:
        def work() -> None:
            s = self.state
            maplayers = s.map_layers()
            spec = layers.deck_spec(maplayers, view=s.view(), lang=s.lang)
            old = self._map.object
            if isinstance(old, dict) and old.get("initialViewState"):
                spec["initialViewState"] = old["initialViewState"]  # keep the view on updates
            self._map.tooltips = layers.tooltips(maplayers)
            self._map.object = spec
            # Legends side by side in one compact strip under the map.
            self._legend.object = '<div style="display:flex;gap:2vw;flex-wrap:wrap">' + "".join(
                f"<div>{layer.legend.to_html(s.lang)}</div>" for layer in maplayers
                if layer.legend is not None and not layer.id.startswith(
                    ("districts", "communities", "boundaries"))) + "</div>"
        self._guard(work)

    def _state_date(self, *_: Any) -> None:
        s = self.state
        self._date.param.update(start=s.start, end=s.end, value=s.date)

    def _state_status(self, event: Any) -> None:
        self._status.object = html.escape(event.new)

    # -- view -> state ------------------------------------------------------------------
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

    def _on_toggles(self, event: Any) -> None:
        self.state.param.update({f"show_{t}": t in event.new for t in _TOGGLES})

    # -- periodic -------------------------------------------------------------------------
    def _tick(self) -> None:
        if self.state.playing:
            self.state.step()

    def _poll(self) -> None:
        try:
            self.state.refresh()
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
        side = pn.Column(self._top10, self._chart, sizing_mode="stretch_both",
                         styles={"flex": "2 1 0"})
        middle = pn.Row(map_col, side, sizing_mode="stretch_width",
                        styles={"height": "58vh" if not self.kiosk else "64vh", "gap": "0.6vw"})
        return pn.Column(
            kpi_row, middle, self._alerts, controls, self._status,
            sizing_mode="stretch_both", stylesheets=[STYLES],
            css_classes=["ct-root", "ct-kiosk" if self.kiosk else "ct-interactive"],
            styles={"height": "calc(100vh - 80px)", "overflow": "hidden"},
            name=label("title", s.lang))
