"""The cockpit's state: one :class:`CockpitState` per browser session. No Panel here.

A session holds only what its person controls (date, play/pause, layer toggles, H3
resolution, language, screen size) and its role. Everything it shows is looked up in the
process's shared situation (:mod:`dashboards.situation`): no SQL, no recomputation and no
dissolving of outlines happens per session. ``@param.depends`` methods turn those lookups into
what the view renders, so the whole cockpit can be driven headlessly (set ``date``, read
``kpis()``).

Privacy: case counts follow the role (``view_fine_cases``) and ``[privacy]`` of ``twin.toml``:
viewers get counts at ``privacy.viewer_resolution`` with 1 to ``suppress_below - 1`` shown as
``"<N"``, in the tiles, the map and the top-ten reasons alike.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import pandas as pd
import param

import layers
from dashboards.labels import KPI_NAMES, label
from dashboards.situation import SharedSituation, Snapshot, shared_situation
from twin.errors import LayerNotFoundError
from twin.i18n import label as twin_label
from twin.privacy import suppress_count
from twin.situation import INFECTIONS
from twin.users import ROLES, can

__all__ = ["INFECTIONS", "MAP_SHARE", "TOGGLES", "CockpitState", "event_stats"]

_EVENT_STATS_TTL_S = 5.0
_event_stats: dict[str, tuple[float, dict[str, Any]]] = {}


def event_stats(workspace: Any) -> dict[str, Any]:
    """The grid events' figures, shared by every screen of the process for a few seconds."""
    import time

    from twin.events.store import Events

    key = str(workspace.root)
    hit = _event_stats.get(key)
    if hit is not None and time.monotonic() - hit[0] < _EVENT_STATS_TTL_S:
        return hit[1]
    stats = Events(workspace).stats()
    _event_stats[key] = (time.monotonic(), stats)
    return stats

#: The map layers a person can switch, in toggle order.
TOGGLES: tuple[str, ...] = ("risk", "cases", "zones", "proposals", "cover", "routes",
                            "facilities", "events", "residents", "roads", "buildings")
#: Shown when a session starts.
DEFAULT_ON: frozenset[str] = frozenset({"risk", "cases", "zones"})
#: The map's share of the screen (width, height) in the cockpit layout, for fitting the city.
MAP_SHARE = (0.60, 0.52)
#: The resource whose days of cover the "cover" layer maps (drinking water: the first to run
#: out in a lockdown, and the Sphere minimum every other need is planned around).
COVER_RESOURCE = "water"
#: The zoom from which 3D buildings are drawn (closer than a district).
BUILDINGS_MIN_ZOOM = 13.5


def _fmt_int(value: float) -> str:
    return f"{round(value):,d}"


class CockpitState(param.Parameterized):
    """Everything the cockpit shows, for one workspace, one role and one date."""

    workspace = param.Parameter(constant=True, doc="The twin.store.Workspace.")
    role = param.Selector(default="viewer", objects=list(ROLES), constant=True)
    lang = param.Selector(default="zh", objects=["zh", "en"])
    date = param.CalendarDate(default=None, allow_None=True, doc="The data date shown.")
    start = param.CalendarDate(default=None, allow_None=True, constant=True)
    end = param.CalendarDate(default=None, allow_None=True, constant=True)
    playing = param.Boolean(default=False, doc="Advance the date one day per tick.")
    layers_on = param.ListSelector(default=sorted(DEFAULT_ON), objects=list(TOGGLES))
    hex_resolution = param.Selector(default=8, objects=[7, 8, 9],
                                    doc="H3 resolution of the risk hexes (the map's control).")
    screen = param.NumericTuple(default=(1920, 1080), length=2,
                                doc="The browser window in CSS pixels (fits the city).")
    zoom = param.Number(default=None, allow_None=True, doc="The map's zoom, as the person set it.")
    centre = param.NumericTuple(default=None, allow_None=True, length=2,
                                doc="The map's centre (lon, lat) when zoomed in.")
    top_sort = param.Selector(default="score", objects=["score", "expected"],
                              doc="Order of the top ten: risk score or expected infections.")
    data_version = param.Integer(default=0, doc="Bumped when new data lands in the workspace.")
    status = param.String(default="", doc="Messages for the status area.")

    def __init__(self, workspace: Any, situation: SharedSituation | None = None,
                 **params: Any) -> None:
        super().__init__(workspace=workspace, **params)
        self._shared = situation or shared_situation(workspace.root)
        self._snap = self._shared.current()
        self._set_range(keep_date=self.date is not None)

    # -- data versions ----------------------------------------------------------------
    @property
    def snapshot(self) -> Snapshot:
        """The shared snapshot this session shows."""
        return self._snap

    @property
    def situation(self) -> Any:
        return self._snap.situation

    def _set_range(self, keep_date: bool) -> None:
        s = self.situation
        with param.edit_constant(self):
            self.start, self.end = s.start, s.end
        if not keep_date or self.date is None or not s.start <= self.date <= s.end:
            self.date = s.end

    def refresh(self, *, force: bool = False) -> bool:
        """Pick up new data from the shared situation; True if there was any.

        The cockpit calls this every few seconds, so new data appears without a reload; a
        screen watching the latest day follows it. ``force`` looks now (after a save).
        """
        snap = self._shared.current(force=force)
        if snap is self._snap:
            return False
        follow = self.date == self.end
        self._snap = snap
        self._set_range(keep_date=not follow)
        self.data_version += 1
        self.status = f"{label('updated', self.lang)} ({dt.datetime.now():%H:%M:%S})"
        return True

    def step(self) -> None:
        """Advance the date by one day (back to the first day after the last)."""
        if self.date is None:
            return
        nxt = self.date + dt.timedelta(days=1)
        self.date = self.start if nxt > self.end else nxt

    @property
    def fine(self) -> bool:
        """Whether this role may see case counts finer than the viewer aggregates."""
        return can(self.role, "view_fine_cases")

    def shows(self, toggle: str) -> bool:
        """Whether the layer ``toggle`` is switched on."""
        return toggle in self.layers_on

    # -- derived values ---------------------------------------------------------------
    def _today(self) -> dict[str, Any]:
        return self.situation.day(self.date)

    def new_cases(self) -> dict[str, int]:
        """New infections on ``date``, over the last 7 days and the 7 days before."""
        return self.situation.new_cases(self.date)

    def zone_impact(self, tier: str) -> dict[str, float]:
        """Residents and elderly (65+) inside the active zones of ``tier`` on ``date``."""
        return self._today()[tier]

    def risk_table(self, level: Any = "community") -> Any:
        """:func:`twin.risk.risk` at ``level`` on ``date`` (shared)."""
        return self.situation.risk(self.date, level)

    def beds(self) -> dict[str, float]:
        """Hospital beds needed by active cases on ``date`` against hospital capacity."""
        beds = dict(self._today()["beds"])
        if beds["occupancy"] is None:
            beds["occupancy"] = float("nan")
        return beds

    def gaps(self) -> pd.DataFrame:
        """Per zone active on ``date`` and resource: demand, supply, days of cover."""
        return self.situation.gaps(self.date)

    def low_cover(self) -> pd.DataFrame:
        """Zone/resource rows with less than a day of cover on ``date``."""
        return self.situation.low_cover(self.date)

    def _count(self, value: float) -> str:
        """A count for display: small counts hidden for viewers."""
        if self.fine:
            return _fmt_int(value)
        return suppress_count(round(value), self.situation.privacy.suppress_below)

    def _date_text(self, day: dt.date) -> str:
        return f"{day.month}月{day.day}日" if self.lang == "zh" else f"{day:%d %b}"

    @param.depends("date", "data_version", "lang", "role")
    def kpis(self) -> dict[str, dict[str, Any]]:
        """The KPI tiles: name -> value (number), display (text), label and detail."""
        lang, today = self.lang, self._today()
        nc = today["new_cases"]
        lock, ctrl = today["lockdown"], today["control"]
        high = today["high_risk_communities"]
        beds = self.beds()
        low = today["low_cover"]
        trend = ("trend_up" if nc["last7"] > nc["previous7"] else "trend_down"
                 if nc["last7"] < nc["previous7"] else "trend_flat")
        occ = beds["occupancy"]
        sep = "、" if lang == "zh" else ", "

        def zone_detail(z: dict[str, Any]) -> str:
            return (f"{label('elderly', lang)} {_fmt_int(z['elderly'])} · "
                    f"{z['zones']} {label('zones_count', lang)}")

        out = {
            "new_cases": {"value": nc["today"], "display": self._count(nc["today"]),
                          "detail": f"{label('last7', lang)} {self._count(nc['last7'])} · "
                                    f"{label(trend, lang)}", "trend": trend},
            "lockdown_residents": {"value": lock["residents"],
                                   "display": _fmt_int(lock["residents"]),
                                   "detail": zone_detail(lock), "elderly": lock["elderly"]},
            "control_residents": {"value": ctrl["residents"],
                                  "display": _fmt_int(ctrl["residents"]),
                                  "detail": zone_detail(ctrl), "elderly": ctrl["elderly"]},
            "high_risk_communities": {"value": high, "display": str(high),
                                      "detail": label("high_risk_detail", lang).format(
                                          n=f"{self._high_threshold():g}")},
            "bed_occupancy": {"value": occ, "display": "–" if occ != occ else f"{occ:.0%}",
                              "detail": f"{_fmt_int(beds['needed'])} / "
                                        f"{_fmt_int(beds['capacity'])} "
                                        f"{label('beds_unit', lang)}"},
            "low_cover": {"value": low["rows"], "display": str(low["rows"]),
                          "detail": sep.join(twin_label(r, lang) for r in low["resources"])
                          or label("none", lang)},
        }
        out.update(self.event_tiles())
        for name in KPI_NAMES:
            out[name]["label"] = label(name, lang)
        return out

    def event_tiles(self) -> dict[str, dict[str, Any]]:
        """The grid-event tiles (now, not the chosen date): open events with the overdue
        ones, and the median time to close of today's closed events (city-wide counts)."""
        lang = self.lang
        ev = event_stats(self.workspace)
        median = ev["median_hours_to_close"]
        tiles = {
            "open_events": {"value": ev["open"], "display": self._count(ev["open"]),
                            "overdue": ev["overdue"],
                            "detail": f"{label('events_overdue', lang)} "
                                      f"{self._count(ev['overdue'])} · "
                                      f"{label('events_new_today', lang)} "
                                      f"{self._count(ev['reported_today'])}"},
            "event_close_time": {"value": median,
                                 "display": "–" if median is None else
                                 f"{median:.1f} {label('hours_unit', lang)}",
                                 "detail": f"{label('events_closed_today', lang)} "
                                           f"{self._count(ev['closed_today'])}"},
        }
        for name, tile in tiles.items():
            tile["label"] = label(name, lang)
        return tiles

    @param.depends("date", "data_version")
    def trend(self) -> pd.DataFrame:
        """Daily new infections up to ``date`` with a 7-day mean (columns new, mean7)."""
        return self.situation.trend(self.date)

    def _below(self) -> int:
        return int(self.situation.privacy.suppress_below)

    def _expected_text(self, value: float) -> str:
        """An expected count as this role may read it (small ones hint at small counts)."""
        if not self.fine and 0 < value < self._below():
            return f"<{self._below()}"
        return f"{value:.1f}"

    def _interval_text(self, lo: int, hi: int) -> str:
        """A 90 % interval as this role may read it."""
        below = self._below()
        if self.fine:
            return f"{lo}–{hi}"
        if hi < below:
            return f"<{below}" if hi > 0 else "0"
        return f"{f'<{below}' if 0 < lo < below else lo}–{hi}"

    def _high_threshold(self) -> float:
        return float(self.workspace.config["risk"]["grades"]["high_per_10k"])

    @param.depends("date", "data_version")
    def forecast(self) -> pd.DataFrame:
        """The city-wide forecast per day after ``date`` (expected, lo50, hi50, lo90, hi90)."""
        return self.situation.forecast(self.date)

    @param.depends("date", "data_version", "lang", "role", "top_sort")
    def top10(self) -> pd.DataFrame:
        """The ten highest-risk communities (or with the most expected infections, by
        ``top_sort``): name, grade, score, expected infections with the 90 % interval, main
        reason. Viewers read the reasons with small case counts suppressed.
        """
        today = self._today()
        rows = today["top10_expected" if self.top_sort == "expected" else "top10"]
        grades = {"high": ("高风险", "high"), "medium": ("中风险", "medium"),
                  "low": ("低风险", "low")}
        privacy = "fine" if self.fine else "viewer"
        return pd.DataFrame({
            "code": [r["code"] for r in rows], "name": [r["name"] for r in rows],
            "grade_key": [r["grade"] for r in rows],
            "grade": [grades[r["grade"]][0 if self.lang == "zh" else 1] for r in rows],
            "score": [r["score"] for r in rows],
            "expected": [self._expected_text(r["expected"]) for r in rows],
            "interval": [self._interval_text(r["lo90"], r["hi90"]) for r in rows],
            "reason": [r["reason"][privacy][self.lang] for r in rows]},
            columns=["code", "name", "grade_key", "grade", "score", "expected", "interval",
                     "reason"])

    @param.depends("date", "data_version", "lang")
    def alerts(self, n: int | None = None) -> list[dict[str, Any]]:
        """The alerts raised for dates up to ``date``, newest first (every one by default)."""
        return [{"date": r["data_date"], "severity": r["severity"],
                 "date_text": self._date_text(dt.date.fromisoformat(r["data_date"][:10])),
                 "text": r[f"message_{self.lang}"]}
                for r in self.situation.alerts(self.date)][:n]

    @param.depends("date", "data_version", "role")
    def case_counts(self) -> pd.DataFrame:
        """Infections of the last 7 days per cell as this role may see them."""
        return self.situation.case_counts(self.date, fine=self.fine)

    # -- the map ------------------------------------------------------------------------
    def _layer(self, key: tuple[Any, ...], make: Any) -> Any:
        return self._snap.layer(key, make)

    def _read(self, name: str) -> Any:
        return self.situation.workspace.read(name)

    def _basemap(self) -> list[Any]:
        """The ground and the borders: a simplified land fill and exact border segments
        (numeric columns, sent once)."""
        def make() -> list[Any]:
            out = []
            with contextlib.suppress(LayerNotFoundError):
                out.append(layers.land(self._read("districts"), self.lang))
            for name, level in (("communities", "community"), ("districts", "district")):
                with contextlib.suppress(LayerNotFoundError):
                    out.append(layers.boundary_lines(self._read(name), self.lang,
                                                     level=level))
            return out
        return self._layer(("basemap", self.lang), make)

    def _names(self) -> list[Any]:
        def make() -> list[Any]:
            with contextlib.suppress(LayerNotFoundError):
                return [layers.boundary_names(self._read("districts"), self.lang)]
            return []
        return self._layer(("names", self.lang), make)

    def _zone_layers(self, statuses: tuple[str, ...], layer_id: str) -> list[Any]:
        s = self.situation
        zones = s.zones_on(self.date, statuses)
        ident = tuple(sorted((z.zone_id, z.version) for z in zones))
        if not zones:
            return []
        return self._layer(("zones", layer_id, ident, self.lang), lambda: layers.zone_layers(
            zones, [s.outline(z) for z in zones], self.lang, layer_id=layer_id,
            faint=layer_id == "proposals"))

    def map_layers(self) -> list[Any]:
        """The map's layers (``layers.MapLayer``) for the toggles, date and role, bottom first.

        Every layer is built once per snapshot and shared by the sessions that show it.
        """
        lang, s, day = self.lang, self.situation, self.date
        out = list(self._basemap())
        if self.shows("roads"):
            with contextlib.suppress(LayerNotFoundError):
                out.append(self._layer(("roads", lang), lambda: layers.roads(
                    self._read("roads"), lang)))
        if self.shows("residents") and s.facts is not None:
            out.append(self._layer(("residents", lang), lambda: layers.residents_hexes(
                s.facts.read(8, columns=["residents"]), lang)))
        if self.shows("risk") and s.facts is not None:
            res = self.hex_resolution
            out.append(self._layer(("risk", day, res, lang), lambda: layers.risk_hexes(
                s.risk(day, res), lang)))
        if self.shows("cover"):
            gaps = s.gaps(day)
            zones = s.zones_on(day)
            if len(gaps) and zones:
                ident = tuple(sorted((z.zone_id, z.version) for z in zones))
                with contextlib.suppress(layers.LayerError):
                    out.append(self._layer(("cover", ident, lang), lambda: layers.cover_areas(
                        gaps, s.zone_frame(day), COVER_RESOURCE, lang)))
        if self.shows("proposals"):
            out.extend(self._zone_layers(("proposed",), "proposals"))
        if self.shows("zones"):
            out.extend(self._zone_layers(("active",), "zones"))
        if (self.shows("buildings") and (self.zoom or 0) >= BUILDINGS_MIN_ZOOM
                and self.centre is not None):
            box = self.buildings_box()
            with contextlib.suppress(LayerNotFoundError):
                out.append(self._layer(("buildings", box, lang), lambda: layers.buildings(
                    _clip(self._read_buildings(), box), lang)))
        if self.shows("cases") and s.facts is not None:
            fine, policy = self.fine, s.privacy
            counts = s.case_counts(day, fine=fine)
            if len(counts):
                out.append(self._layer(("cases", day, fine, lang), lambda: layers.case_hexes(
                    counts[["cell", "cases"]], lang, viewer=not fine,
                    resolution=policy.viewer_resolution, below=policy.suppress_below)))
        if self.shows("routes"):
            routes = s.dispatch_routes(day)
            if routes is not None:
                ident = tuple(sorted((z.zone_id, z.version) for z in s.zones_on(day)))
                out.append(self._layer(("routes", ident, lang), lambda: layers.dispatch_routes(
                    routes, lang)))
        if self.shows("facilities"):
            with contextlib.suppress(LayerNotFoundError):
                out.append(self._layer(("facilities", lang), lambda: layers.facilities(
                    self._read("facilities"), lang)))
        if self.shows("events"):
            out.extend(self._event_layer())
        out.extend(self._names())
        return out

    def _grid_units(self) -> Any:
        def make() -> Any:
            from twin.fuse import admin_units

            frames = admin_units(self.workspace).frames
            return frames.get("grid", frames.get("community"))
        return self._layer(("grid_units",), make)

    def _event_layer(self) -> list[Any]:
        """Open events per grid unit, small counts suppressed (for every role: the points
        with addresses are on the dispatchers' /events page)."""
        from twin.events.store import Events

        counts = Events(self.workspace).open_counts()
        if not len(counts):
            return []
        ident = tuple(sorted(counts.items()))
        below = int(self.situation.privacy.suppress_below)
        return [self._layer(("events", ident, self.lang), lambda: layers.event_counts(
            self._grid_units(), counts, self.lang, suppress_below=below))]

    def tooltips(self) -> dict[str, Any]:
        """Tooltip templates of every layer the toggles can show, keyed by layer id.

        Panel rebuilds the whole map (re-sending every layer and resetting the view) when
        its tooltips change, so the cockpit sets them once, up front. Each template comes
        from the real layer function, built here from one row of its input (shared per
        process, language and privacy class; the server warms them at start).
        """
        s, lang, day, fine = self.situation, self.lang, self.date, self.fine

        def make() -> dict[str, Any]:
            import geopandas as gpd
            import shapely

            builders: list[Any] = []
            if s.facts is not None:
                builders += [
                    lambda: [layers.risk_hexes(s.risk(day, 8).frame.head(1), lang)],
                    lambda: [layers.residents_hexes(
                        s.facts.read(8, columns=["residents"]).head(1), lang)],
                    lambda: [layers.case_hexes(pd.DataFrame({
                        "cell": s.facts.static(s.facts.base, ["residents"])["cell"].head(1),
                        "cases": [20]}), lang, viewer=not fine)]]
            zones = s.zones_on(None, ("active", "proposed"))[:1]
            if zones:
                builders += [lambda lid=layer_id: layers.zone_layers(
                    zones, [s.outline(zones[0])], lang, layer_id=lid)
                    for layer_id in ("zones", "proposals")]
                builders.append(lambda: [layers.cover_areas(
                    pd.DataFrame({"area": [zones[0].zone_id], "tier": [zones[0].tier],
                                  "resource": [COVER_RESOURCE], "unit": ["L"], "gap": [0.0],
                                  "days_of_cover": [1.0]}),
                    s.zone_frame(None, ("active", "proposed")).head(1), COVER_RESOURCE,
                    lang)])
            builders += [
                lambda: [layers.event_counts(self._grid_units().head(1), pd.Series(
                    {self._grid_units()["code"].iloc[0]: 12}), lang)],
                lambda: [layers.facilities(self._read("facilities").head(1), lang)],
                lambda: [layers.roads(self._read("roads").head(1), lang)],
                lambda: [layers.buildings(self._read_buildings().head(1), lang)],
                lambda: [layers.dispatch_routes(gpd.GeoDataFrame(
                    {"from": ["a"], "to": ["b"], "resource": ["water"], "quantity": [1.0],
                     "distance_m": [1.0]},
                    geometry=[shapely.LineString([(0, 0), (0, 1)])], crs=4326), lang)]]
            out: dict[str, Any] = {}
            for build in builders:
                with contextlib.suppress(Exception):  # no such layer here: no tooltip
                    out.update(layers.tooltips(build()))
            return out
        # Templates do not change with the data: one set per process, language and privacy.
        return self._shared.templates.get((lang, fine), make)

    def _read_buildings(self) -> Any:
        return self._layer(("buildings_frame",), lambda: self._read("buildings"))

    def buildings_box(self) -> tuple[float, float, float, float]:
        """The area around the map's centre that 3D buildings are drawn for: twice the
        visible span, snapped to a grid of that span so small pans reuse the layer."""
        import math

        width, height = self.screen
        span_x = 2 * width * MAP_SHARE[0] * 360.0 / (512.0 * 2 ** float(self.zoom or 0))
        span_y = span_x * height * MAP_SHARE[1] / (width * MAP_SHARE[0])
        lon, lat = self.centre or (0.0, 0.0)
        x0 = math.floor(lon / span_x * 2) * span_x / 2 - span_x / 2
        y0 = math.floor(lat / span_y * 2) * span_y / 2 - span_y / 2
        return (round(x0, 5), round(y0, 5), round(x0 + 1.5 * span_x, 5),
                round(y0 + 1.5 * span_y, 5))

    def bounds(self) -> tuple[float, float, float, float] | None:
        """The city's bounding box from twin.toml (None when not set)."""
        return self.situation.config.bbox

    @param.depends("screen")
    def view(self) -> Any:
        """The whole city in the cockpit's map area of this screen."""
        width, height = self.screen
        return layers.view_for_bounds(self.bounds(), width=int(width * MAP_SHARE[0]),
                                      height=int(height * MAP_SHARE[1]))

    def deck(self) -> dict[str, Any]:
        """The deck.gl spec for Panel's DeckGL pane (``mapStyle`` None: no tiles)."""
        return layers.deck_spec(self.map_layers(), view=self.view(), lang=self.lang)


#: The most buildings drawn at once (a few streets' worth when zoomed in).
MAX_BUILDINGS = 15_000


def _clip(frame: Any, box: tuple[float, float, float, float]) -> Any:
    """The buildings whose bounding box meets ``box`` (at most :data:`MAX_BUILDINGS`)."""
    return frame.cx[box[0]:box[2], box[1]:box[3]].head(MAX_BUILDINGS)
