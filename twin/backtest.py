"""Backtests: does the risk map foresee next week's infections on this city's own history?

For each scoring date ``D`` the forecast and the risk are computed from the infections known
on ``D`` (nothing after it) and compared with the infections reported on ``D+1 … D+H``:

capture
    Rank the units of a level by the twin's risk score, take them from the top while their
    residents add up to at most ``budget`` (10 %) of the city's, and count the share of the
    next ``H`` days' infections inside: what a command centre that tests or closes that many
    residents would reach. The **naive** ranking does the same by last week's infections
    (the obvious rule without a model); ties keep the units' order.
coverage
    The share of units whose next-``H``-days infections fall inside the forecast's 50 % and
    90 % intervals, over the *active* units (with an infection in the 14 days before ``D`` or
    in the ``H`` days after; the many units with none anywhere are trivially covered).
weighted interval score (WIS)
    The proper score of a quantile forecast (Bracher et al. 2021) from the median and the 50 %
    and 90 % intervals, averaged over the active units; lower is better. The naive
    **persistence** forecast predicts last week's count again, with Poisson intervals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from twin.errors import ForecastError
from twin.forecast import CaseSeries, case_series, forecast

__all__ = ["backtest", "capture", "interval_score", "persistence_quantiles"]

#: Days of history before a backtest date that the forecast needs at least.
MIN_HISTORY_DAYS = 14


def capture(order: np.ndarray, residents: np.ndarray, outcome: np.ndarray,
            budget: float) -> float:
    """Share of ``outcome`` inside the units taken in ``order`` (positions) while their
    residents sum to at most ``budget`` of all residents; 0 when there is no outcome."""
    total = float(outcome.sum())
    if total <= 0:
        return float("nan")
    cum = np.cumsum(residents[order])
    # a little slack: a cumulative sum may round past the exact total of the same numbers
    taken = order[cum <= budget * float(residents.sum()) * (1 + 1e-12) + 1e-9]
    return float(outcome[taken].sum()) / total


def interval_score(y: np.ndarray, median: np.ndarray,
                   intervals: Mapping[float, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Weighted interval score per unit: ``(|y − m|/2 + Σ_α α/2 · IS_α) / (K + 1/2)`` with
    ``IS_α = (u − l) + 2/α · (l − y)⁺ + 2/α · (y − u)⁺`` for the central (1 − α) intervals."""
    y = np.asarray(y, float)
    total = 0.5 * np.abs(y - median)
    for alpha, (lo, hi) in intervals.items():
        width = hi - lo
        below = np.maximum(lo - y, 0.0)
        above = np.maximum(y - hi, 0.0)
        total = total + alpha / 2 * (width + 2 / alpha * below + 2 / alpha * above)
    return total / (len(intervals) + 0.5)


def persistence_quantiles(last: np.ndarray) -> dict[str, np.ndarray]:
    """The naive forecast: last week's count again, with Poisson quantiles around it."""
    last = np.asarray(last, float)
    out = {}
    for name, q in (("lo90", 0.05), ("lo50", 0.25), ("median", 0.5), ("hi50", 0.75),
                    ("hi90", 0.95)):
        out[name] = np.where(last > 0, stats.poisson.ppf(q, np.maximum(last, 1e-9)), 0.0)
    return out


def _default_dates(series: CaseSeries, horizon: int) -> tuple[dt.date, dt.date]:
    return (series.first + dt.timedelta(days=MIN_HISTORY_DAYS + 7),
            series.last - dt.timedelta(days=horizon))


def backtest(facts: Any, *, start: str | dt.date | None = None,
             end: str | dt.date | None = None, level: Any = 9, budget: float = 0.10,
             step: int = 1, config: Mapping[str, Any] | None = None,
             progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Backtest the risk ranking and the forecast at every ``step``-th date ``start … end``.

    Parameters
    ----------
    facts
        A :class:`twin.facts.Facts`.
    start, end
        The scoring dates; default from three weeks after the first infection to the last date
        whose next ``risk.horizon_days`` are all known.
    level
        The units ranked: an H3 resolution, ``cell`` or an admin level.
    budget
        The share of residents the top units may hold (0 < budget <= 1).
    progress
        Called with (dates done, dates in all) after each date.

    Returns
    -------
    pandas.DataFrame
        One row per date: ``date``, ``cases_next`` (infections in the next days),
        ``capture_twin``, ``capture_naive``, ``lead`` (twin − naive, points of percent),
        ``expected_next`` (the city-wide forecast) with ``lo90_next`` / ``hi90_next``,
        ``coverage50``, ``coverage90`` (active units), ``wis_twin``, ``wis_naive``,
        ``units_active``, ``fitted`` (False when the history was too short to fit).
    """
    from twin.risk import _risk_config, normalise_level, risk_frame

    if not 0 < budget <= 1:
        raise ForecastError(f"the residents budget must be in (0, 1], got {budget}")
    if step < 1:
        raise ForecastError(f"the step must be at least 1 day, got {step}")
    cfg = _risk_config(config, facts)
    horizon = int(cfg["horizon_days"])
    series = case_series(facts)
    lvl = normalise_level(facts, level)
    first, last = _default_dates(series, horizon)
    from twin.dates import parse_day

    d0 = parse_day(start, "start date", error=ForecastError) if start is not None else first
    d1 = parse_day(end, "end date", error=ForecastError) if end is not None else last
    if d1 > series.last - dt.timedelta(days=horizon):
        raise ForecastError(
            f"the backtest needs the {horizon} days after each date: the last infections are "
            f"of {series.last.isoformat()}, so the end can be "
            f"{(series.last - dt.timedelta(days=horizon)).isoformat()} at the latest")
    if d0 > d1:
        raise ForecastError(f"the start {d0.isoformat()} is after the end {d1.isoformat()}")
    dates = [d0 + dt.timedelta(days=i) for i in range(0, (d1 - d0).days + 1, step)]
    rows = []
    key = "cell" if lvl == facts.base or isinstance(lvl, int) else "code"
    for i, day in enumerate(dates):
        fc = forecast(series, day, horizon=horizon)
        t = series.index(day)
        outcome_cells = series.window(t + horizon, horizon)
        frame = risk_frame(fc, facts, lvl, cfg)
        groups = fc.groups("cell" if lvl == facts.base else lvl)
        per_unit = pd.Series(outcome_cells).groupby(groups, dropna=True).sum()
        units = frame[key].to_numpy(np.uint64) if key == "cell" else frame[key].to_numpy()
        y = per_unit.reindex(units).fillna(0.0).to_numpy()
        res = frame["residents"].to_numpy(float)
        twin_order = np.argsort(-frame["score"].to_numpy(), kind="stable")
        naive_order = np.argsort(-frame["cases_recent"].to_numpy(float), kind="stable")
        active = (frame["cases_recent"].to_numpy() + frame["cases_previous"].to_numpy()
                  + y) > 0
        inside50 = (y >= frame["lo50"].to_numpy()) & (y <= frame["hi50"].to_numpy())
        inside90 = (y >= frame["lo90"].to_numpy()) & (y <= frame["hi90"].to_numpy())
        wis_twin = interval_score(
            y, frame["median"].to_numpy(),
            {0.5: (frame["lo50"].to_numpy(), frame["hi50"].to_numpy()),
             0.1: (frame["lo90"].to_numpy(), frame["hi90"].to_numpy())})
        naive = persistence_quantiles(frame["cases_recent"].to_numpy(float))
        wis_naive = interval_score(y, naive["median"],
                                   {0.5: (naive["lo50"], naive["hi50"]),
                                    0.1: (naive["lo90"], naive["hi90"])})
        city = fc.by("city").iloc[0]
        tw = capture(twin_order, res, y, budget)
        nv = capture(naive_order, res, y, budget)
        rows.append({
            "date": day.isoformat(), "cases_next": float(y.sum()),
            "capture_twin": tw, "capture_naive": nv, "lead": 100 * (tw - nv),
            "expected_next": float(city["expected"]), "lo90_next": float(city["lo90"]),
            "hi90_next": float(city["hi90"]),
            "coverage50": float(inside50[active].mean()) if active.any() else float("nan"),
            "coverage90": float(inside90[active].mean()) if active.any() else float("nan"),
            "wis_twin": float(wis_twin[active].mean()) if active.any() else float("nan"),
            "wis_naive": float(wis_naive[active].mean()) if active.any() else float("nan"),
            "units_active": int(active.sum()), "fitted": bool(fc.fitted)})
        if progress is not None:
            progress(i + 1, len(dates))
    return pd.DataFrame(rows)
