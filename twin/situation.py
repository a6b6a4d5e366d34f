"""The situation: everything the dashboards show, computed once per data version and date.

A :class:`Situation` is a read-only snapshot of a workspace for one :class:`DataKey` (fact set,
zone versions, alerts and ``twin.toml``). Every browser session of a server process reads the
same snapshot, so nothing heavy is computed per session: opening a screen or stepping a date is
a lookup once :meth:`Situation.precompute` has run (it runs in the background after new data
lands, the latest date first).

The per-date summaries (:meth:`Situation.day`) and risk tables are also written under
``cache/situation/<key>/`` in the workspace, so that the other server processes of
``twin serve --num-procs N`` read them instead of computing them again.

The date drives everything: :meth:`Situation.zones_on` gives the zones as they were valid on a
day (the newest version whose ``valid_from`` is not after it), and the zone residents, gaps and
tiles follow. The privacy policy (``[privacy]`` of ``twin.toml``) is applied here, so no layer
above can forget it: viewers get case counts at ``privacy.viewer_resolution`` and counts from 1
to ``privacy.suppress_below - 1`` as ``"<N"``, in the risk reasons too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.errors import LayerNotFoundError
from twin.facts import Facts, FactsNotFoundError
from twin.privacy import PrivacyPolicy
from twin.risk import RiskTable, risk
from twin.schema import INFECTION_STATUSES
from twin.supply import active_cases, workspace_gaps
from twin.zones import Zones, ZoneVersion, impact, outline_of

__all__ = ["INFECTIONS", "LOW_COVER_DAYS", "DataKey", "OnceCache", "Situation", "fingerprint"]

#: Statuses counted as new infections (suspects and contacts are not cases).
INFECTIONS = INFECTION_STATUSES
#: A resource with fewer days of cover than this counts as low cover.
LOW_COVER_DAYS = 1.0
#: Levels whose risk every date needs (the top ten and the default map).
PRECOMPUTED_LEVELS: tuple[Any, ...] = ("community", 8)
#: Bump when the layout of cached entries changes, so old caches are never read.
CACHE_FORMAT = 4


@dataclass(frozen=True)
class DataKey:
    """What a snapshot was computed from; a new key means new data."""

    facts: str | None
    zones: tuple[int, str]
    alerts: tuple[int, int]
    config: tuple[int, int]

    @property
    def digest(self) -> str:
        """A short stable name for the cache directory."""
        text = json.dumps([CACHE_FORMAT, self.facts, self.zones, self.alerts, self.config])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(workspace: Any) -> DataKey:
    """The current :class:`DataKey` of a workspace (two small queries and a stat)."""
    facts = workspace.current_facts()
    with workspace.connect() as conn:
        zones = conn.execute("SELECT count(*), coalesce(max(created_at), '') "
                             "FROM zone_versions").fetchone()
        alerts = conn.execute("SELECT count(*), coalesce(max(id), 0) FROM alerts").fetchone()
    stat = Path(workspace.config_path).stat()
    return DataKey(None if facts is None else facts.id, (int(zones[0]), str(zones[1])),
                   (int(alerts[0]), int(alerts[1])), (stat.st_mtime_ns, stat.st_size))


def _day(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


class _DiskCache:
    """JSON and Parquet entries under one directory, written atomically (tmp, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str, suffix: str) -> Path:
        return self.root / f"{name}{suffix}"

    def _write(self, path: Path, write: Callable[[Path], None]) -> None:
        with contextlib.suppress(OSError):  # a read-only workspace still serves
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
            os.close(fd)
            try:
                write(Path(tmp))
                Path(tmp).replace(path)
            finally:
                Path(tmp).unlink(missing_ok=True)

    def json(self, name: str, make: Callable[[], Any]) -> Any:
        path = self._path(name, ".json")
        with contextlib.suppress(OSError, ValueError):
            return json.loads(path.read_text(encoding="utf-8"))
        value = make()
        self._write(path, lambda p: p.write_text(json.dumps(value, ensure_ascii=False),
                                                 encoding="utf-8"))
        return value

    def frame(self, name: str, make: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        path = self._path(name, ".parquet")
        with contextlib.suppress(OSError, ValueError):
            return pd.read_parquet(path)
        value = make()
        self._write(path, lambda p: value.to_parquet(p, index=False))
        return value


class OnceCache:
    """Values made once per key and shared between threads, optionally LRU-bounded.

    When several sessions ask for the same key at once, one makes it and the others wait
    for that value instead of making it again.
    """

    def __init__(self, maxsize: int | None = None) -> None:
        self.maxsize = maxsize
        self._values: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._making: dict[Any, threading.Lock] = {}

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        """The value of ``key``, made by ``make()`` the first time."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            lock = self._making.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._values:
                    return self._values[key]
            value = make()
            with self._lock:
                self._values[key] = value
                while self.maxsize is not None and len(self._values) > self.maxsize:
                    self._values.popitem(last=False)
                self._making.pop(key, None)
            return value


class Situation:
    """One data version of a workspace as every dashboard shows it (thread-safe reads).

    Parameters
    ----------
    workspace
        The :class:`twin.store.Workspace`.
    key
        Its :func:`fingerprint` (computed when not given).
    cache
        Write and read the per-date entries under ``cache/situation/`` of the workspace.
    """

    def __init__(self, workspace: Any, key: DataKey | None = None, *, cache: bool = True
                 ) -> None:
        self.workspace = workspace
        self.key = key or fingerprint(workspace)
        self.config = workspace.config
        self.privacy = PrivacyPolicy.from_config(self.config)
        self._memo = OnceCache()
        self._disk = (_DiskCache(workspace.root / "cache" / "situation" / self.key.digest)
                      if cache else None)
        try:
            self.facts: Facts | None = Facts(workspace)
        except FactsNotFoundError:
            self.facts = None
        self.series = self._series()
        if len(self.series):
            self.start, self.end = self.series.index.min().date(), self.series.index.max().date()
        else:
            self.start = self.end = dt.date.today()
        self._versions = self._zone_versions()
        self._stop = threading.Event()

    # -- memo ---------------------------------------------------------------------------
    def _cached(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()`` once per key, even when several sessions ask at the same time."""
        return self._memo.get(key, make)

    def dates(self) -> list[dt.date]:
        """Every date of the case series, oldest first."""
        return [d.date() for d in pd.date_range(self.start, self.end, freq="D")]

    def clamp(self, date: Any) -> dt.date:
        """``date`` moved into ``[start, end]``."""
        day = _day(date) if date is not None else self.end
        return min(max(day, self.start), self.end)

    # -- series -------------------------------------------------------------------------
    def _series(self) -> pd.Series:
        if self.facts is None:
            return pd.Series(dtype=float)
        daily = self.facts.daily("district")
        series = daily[[s for s in INFECTIONS if s in daily]].sum(axis=1)
        series.index = pd.to_datetime(series.index)
        return series.asfreq("D", fill_value=0) if len(series) else series

    def trend(self, date: Any) -> pd.DataFrame:
        """Daily new infections up to ``date`` with their 7-day mean (``new``, ``mean7``)."""
        frame = self._cached("trend", lambda: pd.DataFrame({
            "new": self.series, "mean7": self.series.rolling(7, min_periods=1).mean()}))
        return frame[frame.index <= pd.Timestamp(self.clamp(date))]

    def new_cases(self, date: Any) -> dict[str, int]:
        """New infections on ``date``, in the 7 days up to it and in the 7 days before."""
        day = pd.Timestamp(self.clamp(date))
        s = self.series
        week = s[(s.index > day - pd.Timedelta(days=7)) & (s.index <= day)]
        before = s[(s.index > day - pd.Timedelta(days=14)) & (s.index <= day
                                                               - pd.Timedelta(days=7))]
        return {"today": int(s.get(day, 0)), "last7": int(week.sum()),
                "previous7": int(before.sum())}

    # -- zones --------------------------------------------------------------------------
    def _zone_versions(self) -> dict[str, list[ZoneVersion]]:
        by_zone: dict[str, list[ZoneVersion]] = {}
        for version in Zones(self.workspace).all_versions():
            by_zone.setdefault(version.zone_id, []).append(version)
        return by_zone

    def zones_on(self, date: Any, statuses: tuple[str, ...] = ("active",)
                 ) -> list[ZoneVersion]:
        """The zones as they were on ``date``: per zone, the newest version valid by then.

        A zone whose every version has a later ``valid_from`` did not exist yet; a zone whose
        version of that day is lifted (or not in ``statuses``) is left out.
        """
        day = self.clamp(date).isoformat() if date is not None else "9999-12-31"
        out = []
        for versions in self._versions.values():
            valid = [v for v in versions if (v.valid_from or "")[:10] <= day]
            if valid:
                current = max(valid, key=lambda v: v.version)
                if current.status in statuses:
                    out.append(current)
        return out

    def zone_cells(self, date: Any, tier: str) -> np.ndarray:
        """The base cells inside the active zones of ``tier`` on ``date``."""
        zones = [z for z in self.zones_on(date) if z.tier == tier]
        if not zones:
            return np.empty(0, np.uint64)
        return np.unique(np.concatenate([np.asarray(z.cells, np.uint64) for z in zones]))

    def outline(self, zone: ZoneVersion) -> Any:
        """A zone version's outline: the drawn one, else its cells dissolved (cached)."""
        def make() -> Any:
            import shapely

            if zone.outline is not None:
                return shapely.from_wkb(zone.outline)
            return outline_of(np.asarray(zone.cells, np.uint64))
        return self._cached(("outline", zone.zone_id, zone.version), make)

    def zone_frame(self, date: Any, statuses: tuple[str, ...] = ("active",)) -> Any:
        """The zones of :meth:`zones_on` as a GeoDataFrame (``code`` = zone id, ``name``,
        ``tier``, ``status``, ``valid_from``, ``geometry``) in EPSG:4326."""
        import geopandas as gpd

        zones = self.zones_on(date, statuses)
        return gpd.GeoDataFrame(
            {"code": [z.zone_id for z in zones], "name": [z.name for z in zones],
             "tier": [z.tier for z in zones], "status": [z.status for z in zones],
             "valid_from": [z.valid_from for z in zones]},
            geometry=[self.outline(z) for z in zones], crs=4326)

    # -- risk ---------------------------------------------------------------------------
    def risk(self, date: Any, level: Any = "community") -> RiskTable:
        """:func:`twin.risk.risk` of ``level`` on ``date`` (cached, shared)."""
        day = self.clamp(date)
        if self.facts is None:
            raise FactsNotFoundError("the workspace has no fused facts yet: run `twin fuse`")
        facts = self.facts

        def make() -> RiskTable:
            if self._disk is None or level not in PRECOMPUTED_LEVELS:
                return risk(facts, level=level, date=day)
            made: list[RiskTable] = []

            def compute() -> pd.DataFrame:
                made.append(risk(facts, level=level, date=day))
                return made[0].frame

            frame = self._disk.frame(f"risk-{level}-{day}", compute)
            if made:
                return made[0]
            cfg = dict(self.config["risk"])
            return RiskTable(frame, facts.base if level == "cell" else level, day,
                             int(cfg["horizon_days"]), cfg)
        return self._cached(("risk", level, day), make)

    # -- supply -------------------------------------------------------------------------
    def gaps(self, date: Any) -> pd.DataFrame:
        """Per zone active on ``date`` and resource: demand, supply, days of cover."""
        zones = self.zones_on(date)
        ident = tuple(sorted((z.zone_id, z.version) for z in zones))

        def make() -> pd.DataFrame:
            if not zones:
                return pd.DataFrame(columns=["area", "tier", "resource", "days_of_cover",
                                             "daily_demand"])
            try:
                return workspace_gaps(self.workspace, level="zone",
                                      zones={z.zone_id: (z.tier, z.cells) for z in zones})
            except LayerNotFoundError:
                return pd.DataFrame(columns=["area", "tier", "resource", "days_of_cover",
                                             "daily_demand"])
        return self._cached(("gaps", ident), make)

    def low_cover(self, date: Any) -> pd.DataFrame:
        """Zone/resource rows with less than :data:`LOW_COVER_DAYS` of cover on ``date``."""
        g = self.gaps(date)
        if g.empty:
            return g
        return g[(g["area"] != "city") & (g["daily_demand"] > 0)
                 & (g["days_of_cover"] < LOW_COVER_DAYS)]

    def _beds(self, day: dt.date) -> dict[str, float]:
        assert self.facts is not None
        capacity = self._cached("bed_capacity", lambda: float(self.facts.static(
            "district", ["fac_hospital_capacity"])["fac_hospital_capacity"].sum()))
        cases = self._cached("district_cases", lambda: self.facts.cases("district"))
        needed = active_cases(cases, as_of=day) * float(
            self.config["supply"]["bed_share_of_active_cases"])
        return {"needed": needed, "capacity": capacity,
                "occupancy": needed / capacity if capacity > 0 else None}

    # -- the day ------------------------------------------------------------------------
    def day(self, date: Any) -> dict[str, Any]:
        """Everything the tiles and the top ten show on ``date``, as plain JSON-ready data.

        Keys: ``date``; ``new_cases`` (today, last7, previous7); ``lockdown`` / ``control``
        (zones, residents, elderly); ``high_risk_communities``; ``beds`` (needed, capacity,
        occupancy); ``low_cover`` (rows, resources); ``top10``: rows with code, name, grade,
        score, ``expected`` (new infections over the horizon, with ``lo90`` / ``hi90``) and
        ``reason`` by language and privacy class (``reason["fine"|"viewer"][lang]``), by
        score; ``top10_expected``: the same by expected infections; ``forecast``: the
        city-wide forecast per day after ``date`` (date, expected, lo50, hi50, lo90, hi90).
        """
        day = self.clamp(date)

        def build() -> dict[str, Any]:
            if self._disk is None:
                return self._build_day(day)
            return self._disk.json(f"day-{day}", lambda: self._build_day(day))
        return self._cached(("day", day), build)

    def _build_day(self, day: dt.date) -> dict[str, Any]:
        out: dict[str, Any] = {"date": day.isoformat(), "new_cases": self.new_cases(day)}
        if self.facts is None:
            return out
        for tier in ("lockdown", "control"):
            cells = self.zone_cells(day, tier)
            totals = impact(self.facts, cells).totals
            out[tier] = {"zones": sum(z.tier == tier for z in self.zones_on(day)),
                         "residents": float(totals.get("residents", 0.0)),
                         "elderly": float(totals.get("age_65_plus", 0.0))}
        table = self.risk(day, "community")
        out["high_risk_communities"] = int(table.counts()["high"])
        out["beds"] = self._beds(day)
        low = self.low_cover(day)
        out["low_cover"] = {"rows": len(low),
                            "resources": sorted(set(low["resource"].astype(str)))}
        below = self.privacy.suppress_below

        def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [{
                "code": str(row["code"]), "name": str(row["name"]), "grade": str(row["grade"]),
                "score": round(float(row["score"]), 2),
                "expected": round(float(row["expected"]), 1),
                "lo90": int(row["lo90"]), "hi90": int(row["hi90"]),
                "reason": {"fine": {lang: table.reason(row, lang) for lang in ("zh", "en")},
                           "viewer": {lang: table.reason(row, lang, suppress_below=below)
                                      for lang in ("zh", "en")}}}
                for _, row in frame.iterrows()]
        out["top10"] = rows(table.top(10))
        out["top10_expected"] = rows(table.top(10, by="expected"))
        out["forecast"] = self._forecast_days(day)
        return out

    def _forecast_days(self, day: dt.date) -> list[dict[str, Any]]:
        from twin.forecast import forecast

        assert self.facts is not None
        fc = forecast(self.facts, day, horizon=int(self.config["risk"]["horizon_days"]))
        return [{"date": r["date"].isoformat(), "expected": round(float(r["expected"]), 1),
                 **{k: int(r[k]) for k in ("lo50", "hi50", "lo90", "hi90")}}
                for _, r in fc.daily("city").iterrows()]

    def forecast(self, date: Any) -> pd.DataFrame:
        """The city-wide forecast per day after ``date``: ``expected`` with ``lo50``,
        ``hi50``, ``lo90``, ``hi90``, indexed by date (empty without facts)."""
        columns = ["expected", "lo50", "hi50", "lo90", "hi90"]
        if self.facts is None:
            return pd.DataFrame(columns=columns)
        rows = self.day(date).get("forecast", [])
        frame = pd.DataFrame(rows, columns=["date", *columns])
        frame.index = pd.to_datetime(frame.pop("date"))
        return frame

    def dispatch_routes(self, date: Any) -> Any:
        """The dispatch plan's routes for the zones active on ``date`` (None: nothing to
        ship, or no stocks or facilities to plan with)."""
        from twin.dispatch import dispatch

        zones = self.zones_on(date)
        ident = tuple(sorted((z.zone_id, z.version) for z in zones))

        def make() -> Any:
            try:
                plan = dispatch(self.workspace, zones={z.zone_id: (z.tier, z.cells)
                                                       for z in zones} or None)
            except (LayerNotFoundError, FactsNotFoundError):
                return None
            return plan.routes if len(plan.routes) else None
        return self._cached(("routes", ident), make)

    # -- cases --------------------------------------------------------------------------
    def case_counts(self, date: Any, *, fine: bool) -> pd.DataFrame:
        """Infections of the 7 days up to ``date`` per cell, as a privacy class may see them.

        ``fine``: base cells with exact counts. Otherwise cells of
        ``privacy.viewer_resolution`` with ``display`` suppressed below
        ``privacy.suppress_below``. Columns ``cell`` (uint64), ``cases``, ``display``,
        ``suppressed``.
        """
        day = self.clamp(date)

        def make() -> pd.DataFrame:
            cases = self._base_infections()
            dates = cases["date"]
            cases = cases[(dates >= pd.Timestamp(day - dt.timedelta(days=6)))
                          & (dates <= pd.Timestamp(day))]
            frame = cases.groupby("cell", observed=True)["n"].sum().rename("cases").reset_index()
            frame = frame[frame["cases"] > 0]
            frame["cell"] = frame["cell"].astype(np.uint64)
            if fine:
                frame["cases"] = np.rint(frame["cases"]).astype(np.int64)
                frame["display"] = [f"{v:,d}" for v in frame["cases"]]
                frame["suppressed"] = False
                return frame.reset_index(drop=True)
            return self.privacy.aggregate(frame)
        if self.facts is None:
            return pd.DataFrame(columns=["cell", "cases", "display", "suppressed"])
        return self._cached(("cases", day, fine), make)

    def _base_infections(self) -> pd.DataFrame:
        """Every infection of the base case series (read once, filtered per date)."""
        def make() -> pd.DataFrame:
            assert self.facts is not None
            cases = self.facts.cases(self.facts.base)
            cases = cases[cases["status"].astype(str).isin(INFECTIONS)].copy()
            cases["date"] = pd.to_datetime(cases["date"])
            return cases
        return self._cached("base_infections", make)

    # -- alerts -------------------------------------------------------------------------
    def alerts(self, date: Any) -> list[dict[str, Any]]:
        """Alerts raised for data dates up to ``date``, newest first."""
        from twin.alerts import alert_history

        rows = self._cached("alerts", lambda: alert_history(self.workspace))
        day = self.clamp(date).isoformat()
        return [r for r in rows if r["data_date"] <= day]

    # -- background ---------------------------------------------------------------------
    def precompute(self, *, levels: tuple[Any, ...] = PRECOMPUTED_LEVELS,
                   stop: threading.Event | None = None) -> int:
        """Compute the day summary and the risk of ``levels`` for every date, latest first.

        Returns the number of dates done (fewer when ``stop`` or :meth:`close` interrupts).
        """
        done = 0
        for day in reversed(self.dates()):
            if self._stop.is_set() or (stop is not None and stop.is_set()):
                break
            if self.facts is not None:
                self.day(day)
                for level in levels:
                    self.risk(day, level)
                self.case_counts(day, fine=False)
            done += 1
        return done

    def close(self) -> None:
        """Stop a running :meth:`precompute` soon; the snapshot stays readable."""
        self._stop.set()

    def prune_cache(self) -> None:
        """Remove cache directories of other data versions."""
        if self._disk is None:
            return
        root = self._disk.root.parent
        with contextlib.suppress(OSError):
            for entry in root.iterdir():
                if entry.is_dir() and entry.name != self.key.digest:
                    shutil.rmtree(entry, ignore_errors=True)
