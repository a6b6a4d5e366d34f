"""The cockpit's state: one :class:`CockpitState` per browser session. No Panel here.

Parameters are what a person controls (date, play/pause, layer toggles, language) plus the
session's role; derived values are ``@param.depends`` methods calling plain ``twin`` and
``layers`` functions, so the whole cockpit can be driven headlessly (set ``date``, read
``kpis()``). Privacy: case counts follow the role (``view_fine_cases``): viewers get res-8
aggregates with 1-9 shown as ``"<10"``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import param

import layers
from dashboards.labels import KPI_NAMES, label
from twin.errors import LayerNotFoundError
from twin.facts import Facts
from twin.i18n import label as twin_label
from twin.risk import risk
from twin.supply import ACTIVE_STATUSES, active_cases, workspace_gaps
from twin.users import ROLES, can
from twin.zones import Zones, active_areas, impact

__all__ = ["INFECTIONS", "CockpitState"]

#: Statuses counted as new infections on the cockpit (suspects and contacts are not cases).
INFECTIONS = ACTIVE_STATUSES
#: A resource with fewer days of cover than this counts in the ``low_cover`` tile.
LOW_COVER_DAYS = 1.0
#: The finest resolution planners and other authorised roles see case counts at.
FINE_RESOLUTION = 10


def _fmt_int(value: float) -> str:
    return f"{round(value):,d}"


#: The map area of the cockpit on a 1920 × 1080 screen, for fitting the whole city into it.
MAP_WIDTH_PX, MAP_HEIGHT_PX = 1100, 520


class CockpitState(param.Parameterized):
    """Everything the cockpit shows, for one workspace, one role and one date."""

    workspace = param.Parameter(constant=True, doc="The twin.store.Workspace.")
    role = param.Selector(default="viewer", objects=list(ROLES), constant=True)
    lang = param.Selector(default="zh", objects=["zh", "en"])
    date = param.CalendarDate(default=None, allow_None=True, doc="The data date shown.")
    start = param.CalendarDate(default=None, allow_None=True, constant=True)
    end = param.CalendarDate(default=None, allow_None=True, constant=True)
    playing = param.Boolean(default=False, doc="Advance the date one day per tick.")
    show_risk = param.Boolean(default=True)
    show_cases = param.Boolean(default=True)
    show_zones = param.Boolean(default=True)
    show_facilities = param.Boolean(default=False)
    show_residents = param.Boolean(default=False)
    show_roads = param.Boolean(default=False)
    hex_resolution = param.Selector(default=8, objects=[7, 8, 9],
                                    doc="H3 resolution of the risk hexes (the map's control).")
    data_version = param.Integer(default=0, doc="Bumped when new data lands in the workspace.")
    status = param.String(default="", doc="Message for the status area (mistakes, updates).")

    def __init__(self, workspace: Any, **params: Any) -> None:
        super().__init__(workspace=workspace, **params)
        self._cache: dict[Any, Any] = {}
        self._seen = self._fingerprint()
        self._load_range(keep_date=self.date is not None)

    # -- data versions ----------------------------------------------------------------
    def _fingerprint(self) -> tuple[Any, ...]:
        facts = self.workspace.current_facts()
        with self.workspace._connect() as conn:
            alerts = conn.execute("SELECT count(*), max(id) FROM alerts").fetchone()
            zones = conn.execute("SELECT count(*) FROM zone_versions").fetchone()
        return (None if facts is None else facts.id, tuple(alerts), tuple(zones))

    def _load_range(self, keep_date: bool) -> None:
        daily = self.daily_all()
        if len(daily):
            first, last = daily.index.min().date(), daily.index.max().date()
        else:
            first = last = dt.date.today()
        with param.edit_constant(self):
            self.start, self.end = first, last
        if not keep_date or self.date is None or not first <= self.date <= last:
            self.date = last

    def refresh(self) -> bool:
        """Check the workspace for new facts, zones or alerts; reload if any. True if new.

        The cockpit calls this every few seconds, so new data appears without a reload.
        """
        seen = self._fingerprint()
        if seen == self._seen:
            return False
        old_end = self.end
        self._seen = seen
        self._cache.clear()
        follow = self.date == old_end  # watching the latest day: follow it
        self._load_range(keep_date=not follow)
        self.data_version += 1
        self.status = f"{label('updated', self.lang)} ({dt.datetime.now():%H:%M:%S})"
        return True

    def step(self) -> None:
        """Advance the date by one day (back to the first day after the last)."""
        if self.date is None:
            return
        nxt = self.date + dt.timedelta(days=1)
        self.date = self.start if nxt > self.end else nxt

    # -- cached plain data ------------------------------------------------------------
    def _memo(self, key: Any, make: Any) -> Any:
        if key not in self._cache:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = make()
        return self._cache[key]

    @property
    def facts(self) -> Facts:
        """The current facts (raises FactsNotFoundError before the first fuse)."""
        return self._memo("facts", lambda: Facts(self.workspace))

    @property
    def fine(self) -> bool:
        """Whether this role may see case counts finer than the viewer aggregates."""
        return can(self.role, "view_fine_cases")

    def daily_all(self) -> pd.DataFrame:
        """City-wide new cases per date and status, every date."""
        return self._memo("daily", lambda: self.facts.daily("district"))

    def _zones(self) -> list[Any]:
        return self._memo("zones", lambda: Zones(self.workspace).list())

    def _active_zones(self, tier: str) -> list[Any]:
        day = self.date.isoformat() if self.date else "9999"
        return [z for z in self._zones() if z.status == "active" and z.tier == tier
                and (not z.valid_from or z.valid_from[:10] <= day)]

    # -- derived values ---------------------------------------------------------------
    @param.depends("date", "data_version")
    def new_cases(self) -> dict[str, int]:
        """New infections on ``date``, over the last 7 days and the 7 days before."""
        daily = self.daily_all()
        series = (daily[[s for s in INFECTIONS if s in daily]].sum(axis=1) if len(daily)
                  else pd.Series(dtype=float))
        series.index = pd.to_datetime(series.index)
        day = pd.Timestamp(self.date)
        week = series[(series.index > day - pd.Timedelta(days=7)) & (series.index <= day)]
        before = series[(series.index > day - pd.Timedelta(days=14))
                        & (series.index <= day - pd.Timedelta(days=7))]
        return {"today": int(series.get(day, 0)), "last7": int(week.sum()),
                "previous7": int(before.sum())}

    @param.depends("date", "data_version")
    def zone_impact(self, tier: str) -> dict[str, float]:
        """Residents and elderly (65+) inside the active zones of ``tier`` on ``date``."""
        zones = self._active_zones(tier)
        cells = (np.unique(np.concatenate([z.cells for z in zones])) if zones
                 else np.empty(0, np.uint64))
        totals = impact(self.facts, cells).totals
        return {"zones": len(zones), "residents": float(totals.get("residents", 0.0)),
                "elderly": float(totals.get("age_65_plus", 0.0))}

    @param.depends("date", "data_version")
    def risk_table(self, level: Any = "community") -> Any:
        """:func:`twin.risk.risk` at ``level`` on ``date``."""
        return self._memo(("risk", level, self.date),
                          lambda: risk(self.facts, level=level, date=self.date))

    @param.depends("date", "data_version")
    def beds(self) -> dict[str, float]:
        """Hospital beds needed by active cases on ``date`` against hospital capacity."""
        capacity = float(self.facts.static("district", ["fac_hospital_capacity"])
                         ["fac_hospital_capacity"].sum())
        active = active_cases(self.facts.cases("district"), as_of=self.date)
        share = float(self.workspace.config["supply"]["bed_share_of_active_cases"])
        needed = active * share
        return {"needed": needed, "capacity": capacity,
                "occupancy": needed / capacity if capacity > 0 else float("nan")}

    @param.depends("data_version")
    def gaps(self) -> pd.DataFrame:
        """Per active zone and resource: demand, supply, days of cover (current stocks)."""
        def make() -> pd.DataFrame:
            zones = active_areas(self.workspace)
            if not zones:
                return pd.DataFrame(columns=["area", "resource", "days_of_cover",
                                             "daily_demand"])
            return workspace_gaps(self.workspace, level="zone", zones=zones)
        return self._memo("gaps", make)

    @param.depends("data_version")
    def low_cover(self) -> pd.DataFrame:
        """Zone/resource rows with less than a day of cover."""
        g = self.gaps()
        return g[(g["area"] != "city") & (g["daily_demand"] > 0)
                 & (g["days_of_cover"] < LOW_COVER_DAYS)]

    def _count(self, value: float) -> str:
        """A count for display: small counts hidden for viewers."""
        if self.fine:
            return _fmt_int(value)
        return layers.suppress_small_counts([value])[0]

    @param.depends("date", "data_version", "lang", "role")
    def kpis(self) -> dict[str, dict[str, Any]]:
        """The KPI tiles: name -> value (number), display (text), label and detail."""
        lang = self.lang
        nc = self.new_cases()
        lock, ctrl = self.zone_impact("lockdown"), self.zone_impact("control")
        high = self.risk_table("community").counts()["high"]
        beds = self.beds()
        low = self.low_cover()
        trend = ("trend_up" if nc["last7"] > nc["previous7"] else "trend_down"
                 if nc["last7"] < nc["previous7"] else "trend_flat")
        occ = beds["occupancy"]
        out = {
            "new_cases": {"value": nc["today"], "display": self._count(nc["today"]),
                          "detail": f"{label('last7', lang)} {self._count(nc['last7'])} · "
                                    f"{label(trend, lang)}",
                          "trend": trend},
            "lockdown_residents": {"value": lock["residents"],
                                   "display": _fmt_int(lock["residents"]),
                                   "detail": f"{label('elderly', lang)} "
                                             f"{_fmt_int(lock['elderly'])} · {lock['zones']} "
                                             f"{label('zones_count', lang)}",
                                   "elderly": lock["elderly"]},
            "control_residents": {"value": ctrl["residents"],
                                  "display": _fmt_int(ctrl["residents"]),
                                  "detail": f"{label('elderly', lang)} "
                                            f"{_fmt_int(ctrl['elderly'])} · {ctrl['zones']} "
                                            f"{label('zones_count', lang)}",
                                  "elderly": ctrl["elderly"]},
            "high_risk_communities": {"value": high, "display": str(high), "detail": ""},
            "bed_occupancy": {"value": occ, "display": "–" if occ != occ else f"{occ:.0%}",
                              "detail": f"{_fmt_int(beds['needed'])} / "
                                        f"{_fmt_int(beds['capacity'])}"},
            "low_cover": {"value": len(low), "display": str(len(low)),
                          "detail": ("、" if lang == "zh" else ", ").join(
                              twin_label(r, lang)
                              for r in sorted(set(low["resource"].astype(str))))},
        }
        for name in KPI_NAMES:
            out[name]["label"] = label(name, lang)
        return out

    @param.depends("date", "data_version")
    def trend(self) -> pd.DataFrame:
        """Daily new infections up to ``date`` with a 7-day mean (columns new, mean7)."""
        daily = self.daily_all()
        series = daily[[s for s in INFECTIONS if s in daily]].sum(axis=1)
        series.index = pd.to_datetime(series.index)
        series = series.asfreq("D", fill_value=0) if len(series) else series
        frame = pd.DataFrame({"new": series, "mean7": series.rolling(7, min_periods=1).mean()})
        return frame[frame.index <= pd.Timestamp(self.date)]

    @param.depends("date", "data_version", "lang")
    def top10(self) -> pd.DataFrame:
        """The ten highest-risk communities: name, grade, score, main reason."""
        table = self.risk_table("community")
        top = table.top(10)
        return pd.DataFrame({
            "code": top["code"].astype(str), "name": top["name"].astype(str),
            "grade": top[f"grade_{self.lang}"].astype(str),
            "score": top["score"].astype(float).round(2),
            "reason": [table.reason(row, self.lang) for _, row in top.iterrows()]})

    @param.depends("date", "data_version", "lang")
    def alerts(self, n: int = 12) -> list[dict[str, Any]]:
        """The newest alerts raised for dates up to ``date``."""
        from twin.alerts import alert_history

        day = self.date.isoformat() if self.date else "9999"
        rows = self._memo("alerts", lambda: alert_history(self.workspace))
        return [{"date": r["data_date"], "severity": r["severity"],
                 "text": r[f"message_{self.lang}"]} for r in rows if r["data_date"] <= day][:n]

    @param.depends("date", "data_version", "role")
    def case_counts(self) -> pd.DataFrame:
        """Infections of the last 7 days per cell as this role may see them.

        Viewers: resolution-8 cells with ``display`` ``"<10"`` for 1-9; authorised roles:
        base cells with exact counts.
        """
        day = self.date
        start = day - dt.timedelta(days=6)
        cases = self.facts.cases(self.facts.base, start, day)
        cases = cases[cases["status"].astype(str).isin(INFECTIONS)]
        frame = (cases.groupby("cell", observed=True)["n"].sum().rename("cases").reset_index())
        frame = frame[frame["cases"] > 0]
        frame["cell"] = frame["cell"].astype(np.uint64)
        if not self.fine:
            return layers.aggregate_cases_for_viewers(frame)
        frame["display"] = [_fmt_int(v) for v in frame["cases"]]
        frame["suppressed"] = False
        return frame.reset_index(drop=True)

    def _basemap(self) -> list[Any]:
        def make() -> list[Any]:
            out = []
            for name, level in (("districts", "district"), ("communities", "community")):
                try:
                    out.append(layers.boundaries(self.workspace.read(name), self.lang,
                                                 level=level))
                except LayerNotFoundError:
                    continue
            return out
        return self._memo(("basemap", self.lang), make)

    @param.depends("date", "data_version", "lang", "role", "show_risk", "show_cases",
                   "show_zones", "show_facilities", "show_residents", "show_roads",
                   "hex_resolution")
    def map_layers(self) -> list[Any]:
        """The map's layers (``layers.MapLayer``) for the toggles, date and role."""
        lang = self.lang
        out = list(self._basemap())
        if self.show_roads:
            with contextlib.suppress(LayerNotFoundError):
                out.append(self._memo(("roads", lang), lambda: layers.roads(
                    self.workspace.read("roads"), lang)))
        if self.show_residents:
            out.append(self._memo(("residents", lang), lambda: layers.residents_hexes(
                self.facts.read(8, columns=["residents"]), lang)))
        if self.show_risk:
            out.append(layers.risk_hexes(self.risk_table(self.hex_resolution), lang))
        if self.show_zones:
            zones = [z for z in self._zones() if z.status in ("proposed", "active")]
            if zones:
                out.append(layers.zone_areas(zones, lang))
        if self.show_cases:
            counts = self.case_counts()
            if len(counts):
                frame = counts[["cell", "cases"]]
                out.append(layers.case_hexes(frame, lang, viewer=not self.fine,
                                             resolution=8))
        if self.show_facilities:
            with contextlib.suppress(LayerNotFoundError):
                out.append(self._memo(("facilities", lang), lambda: layers.facilities(
                    self.workspace.read("facilities"), lang)))
        return out

    def bounds(self) -> tuple[float, float, float, float] | None:
        """The city's bounding box from twin.toml (None when not set)."""
        return self.workspace.config.bbox

    @param.depends("date", "data_version", "lang", "role", "show_risk", "show_cases",
                   "show_zones", "show_facilities", "show_residents", "show_roads",
                   "hex_resolution")
    def deck(self) -> dict[str, Any]:
        """The deck.gl spec for Panel's DeckGL pane (``mapStyle`` None: no tiles)."""
        return layers.deck_spec(self.map_layers(), view=self.view(), lang=self.lang)

    def view(self) -> Any:
        """The whole city in the cockpit's map area (about 1100 × 520 px on a 1080p screen;
        on a 4K screen the same view shows the city with room around it)."""
        return layers.view_for_bounds(self.bounds(), width=MAP_WIDTH_PX,
                                      height=MAP_HEIGHT_PX)
