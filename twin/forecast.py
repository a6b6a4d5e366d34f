"""Expected new infections per H3 cell over the next days, with prediction intervals.

The model is fitted on the workspace's own history up to the forecast date ``D`` and nothing
after it. For every base cell ``i`` and forecast origin ``t`` it predicts the infections
(:data:`twin.schema.INFECTION_STATUSES`) reported on days ``t+1 … t+H``::

    μ_i = m_d(i) · (c_own7·own7 + c_prev7·prev7 + c_own3·own3 + c_ring1·ring1
                    + c_ring2·ring2 + c_area1·area1 + c_area2·area2
                    + c_district·district + c_city·city)

Features (all counts of infections, by report date)
    ``own7`` the cell's last 7 days (``t-6 … t``), ``prev7`` the 7 days before, ``own3`` the
    last 3 days; ``ring1`` / ``ring2`` the last 7 days of the cells exactly one / two H3 steps
    away (:func:`twin.grid.disk_distances`); ``area1`` / ``area2`` the cell's residents'
    share of the last 7 days in the area around it (its parent cell one resolution coarser
    with the parents one step away; the parents two steps away); ``district`` / ``city`` its
    residents' share of its district's / the city's last 7 days (new clusters that seed far
    from any known case).

Trend ``m_d``
    Each district's reproduction number over the last 7 days from the renewal equation
    (Cori et al. 2013), vectorised over districts: ``R = (1 + Σ I_s) / (1 + Σ Λ_s)`` with
    ``Λ_s = Σ_j w_j I_(s-j)`` and ``w`` a discretised gamma generation interval
    (:data:`GENERATION_MEAN`, :data:`GENERATION_SD` days); the daily growth rate
    ``r = (R^(1/κ) − 1) / θ`` (Wallinga & Lipsitch 2007, κ and θ the gamma's shape and scale)
    turns into the factor ``m = exp(γ · r · H)`` of the next ``H`` days over the last ``H``,
    clipped to [1/4, 4]. ``γ`` (how far the trend carries on) is fitted; a district without
    residents or cases takes the city's ``R``.

Observation model
    Negative binomial with mean ``μ`` and dispersion ``k`` (variance ``μ + μ²/k``), pooled
    over all cells. ``c`` (non-negative), ``γ`` and ``k`` are fitted by maximum likelihood
    (L-BFGS-B with the analytic gradient) on :data:`TRAIN_ORIGINS` past origins
    ``t_j = D − H − 3j`` whose outcomes lie entirely on or before ``D`` (and with a week of
    history before them); cells with nothing in any feature nor outcome are subsampled with
    weights. With too little history (fewer than ``7 + H`` days) the
    :data:`DEFAULT_COEFFICIENTS` apply.

Intervals
    50 % and 90 % central intervals from the negative binomial quantiles. Sums over areas
    (H3 rollups, admin units, the city) take the summed mean and their own dispersion, fitted
    on the same past origins at that level (a shared trend error does not average out over a
    district, so a district's interval is relatively wider than the sum of independent cells
    would give); the city uses the dispersion of its districts. Days within the horizon split
    each cell's mean by the trend (``m^(h/H)`` for day ``h``).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from twin.dates import parse_day
from twin.errors import ForecastError
from twin.schema import INFECTION_STATUSES

__all__ = [
    "DEFAULT_COEFFICIENTS",
    "FEATURES",
    "GENERATION_MEAN",
    "GENERATION_SD",
    "TRAIN_ORIGINS",
    "CaseSeries",
    "Forecast",
    "ForecastError",
    "case_series",
    "forecast",
    "generation_interval",
    "nb_quantiles",
    "reproduction_numbers",
]

FEATURES: tuple[str, ...] = ("own7", "prev7", "own3", "ring1", "ring2", "area1", "area2",
                              "district", "city")
#: The coefficients without enough history to fit them: roughly persistence of the own cell
#: with a little spread to the neighbours.
DEFAULT_COEFFICIENTS: dict[str, float] = {
    "own7": 0.7, "prev7": 0.1, "own3": 0.3, "ring1": 0.05, "ring2": 0.02, "area1": 0.1,
    "area2": 0.05, "district": 0.5, "city": 0.05}
DEFAULT_GAMMA = 1.0
DEFAULT_DISPERSION = 1.0
#: Generation interval (infection to infection), days: gamma with this mean and sd.
GENERATION_MEAN = 4.0
GENERATION_SD = 2.0
_GI_DAYS = 14
#: Past forecast origins the model is fitted on, and their spacing in days.
TRAIN_ORIGINS = 5
TRAIN_STEP = 3
#: Cells with nothing in any feature or outcome kept per origin for the fit (weighted).
_QUIET_SAMPLE = 5_000
_PRIOR_ROWS = 100.0
_M_CLIP = 4.0
#: Prior on the trend's carry-over γ: normal around 1 (the renewal equation's own projection)
#: with this sd, against the scale degeneracy of γ and the coefficients in a steady phase.
GAMMA_PRIOR_SD = 0.25
_EPS = 1e-9
#: The first day number a training origin may have: a week of features before it (days
#: before the first infection of the series have none, truly).
_MIN_ORIGIN = 6
#: Admin levels of the base table, finest first.
ADMIN_LEVELS = ("community", "street", "district")


# == the case series ===========================================================================
@dataclass(frozen=True)
class CaseSeries:
    """Infections per base cell and day, with what the forecast needs of each cell.

    ``cells`` (sorted ``uint64``) are every base cell with a static row or an infection;
    ``case_cell`` / ``case_day`` / ``case_n`` the infections as (cell position, day number
    since ``first``, count); ``near_*`` the pairs of a cell that ever had an infection and a
    cell one or two steps from it.
    """

    cells: np.ndarray
    residents: np.ndarray
    vulnerable: np.ndarray
    age_65_plus: np.ndarray
    codes: dict[str, np.ndarray]
    first: dt.date
    last: dt.date
    case_cell: np.ndarray
    case_day: np.ndarray
    case_n: np.ndarray
    near_src: np.ndarray = field(repr=False)
    near_dst: np.ndarray = field(repr=False)
    near_k: np.ndarray = field(repr=False)
    district: np.ndarray = field(repr=False)
    district_codes: np.ndarray = field(repr=False)
    parent: np.ndarray = field(repr=False)
    parent_src: np.ndarray = field(repr=False)
    parent_dst: np.ndarray = field(repr=False)
    parent_k: np.ndarray = field(repr=False)
    parent_residents: np.ndarray = field(repr=False)

    @property
    def days(self) -> int:
        """Number of days from ``first`` to ``last``."""
        return (self.last - self.first).days + 1

    def index(self, day: dt.date) -> int:
        """The day number of ``day`` (may be negative or past the end)."""
        return (day - self.first).days

    def window(self, end: int, length: int) -> np.ndarray:
        """Infections per cell on days ``end-length+1 … end`` (day numbers)."""
        keep = (self.case_day <= end) & (self.case_day > end - length)
        return np.bincount(self.case_cell[keep], weights=self.case_n[keep],
                           minlength=len(self.cells))

    def district_daily(self, end: int, length: int) -> np.ndarray:
        """Infections per district (rows, in :attr:`district_codes` order, plus a last row
        for cells without a district) and day ``end-length+1 … end`` (columns)."""
        keep = (self.case_day <= end) & (self.case_day > end - length)
        n_d = len(self.district_codes) + 1
        rows = self.district[self.case_cell[keep]]
        rows = np.where(rows < 0, n_d - 1, rows)
        cols = self.case_day[keep] - (end - length + 1)
        out = np.zeros((n_d, length))
        np.add.at(out, (rows, cols), self.case_n[keep])
        return out

    def ring_sums(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sums of ``values`` over the cells exactly one and exactly two steps away."""
        out = []
        for k in (1, 2):
            pick = self.near_k == k
            out.append(np.bincount(self.near_dst[pick],
                                   weights=values[self.near_src[pick]],
                                   minlength=len(self.cells)))
        return out[0], out[1]

    def area_shares(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each cell's residents' share of ``values`` summed over the area around it: its
        parent cell (one resolution coarser) with the parents one step away, and the parents
        exactly two steps away (values × cell residents / residents of that area)."""
        n_p = len(self.parent_residents)
        per_parent = np.bincount(self.parent, weights=values, minlength=n_p)
        out = []
        for ks in ((0, 1), (2,)):
            pick = np.isin(self.parent_k, ks)
            total = np.bincount(self.parent_dst[pick], weights=per_parent[self.parent_src[pick]],
                                minlength=n_p)
            res = np.bincount(self.parent_dst[pick],
                              weights=self.parent_residents[self.parent_src[pick]], minlength=n_p)
            rate = np.where(res > 0, total / np.where(res > 0, res, 1), 0.0)
            out.append(rate[self.parent] * self.residents)
        return out[0], out[1]


def case_series(facts: Any) -> CaseSeries:
    """The :class:`CaseSeries` of a :class:`twin.facts.Facts` (cached per fact set)."""
    key = str(facts.set.path)
    with _LOCK:
        cached = _SERIES.get(key)
    if cached is not None:
        return cached
    made = _build_series(facts)
    with _LOCK:
        _SERIES[key] = made
        while len(_SERIES) > 4:
            _SERIES.popitem(last=False)
    return made


_LOCK = threading.Lock()
_SERIES: OrderedDict[str, CaseSeries] = OrderedDict()


def _build_series(facts: Any) -> CaseSeries:
    from twin import grid

    base = facts.base
    available = facts.columns(base)
    wanted = [c for c in ("residents", "age_65_plus", "elderly_living_alone",
                          *(f"{lvl}_code" for lvl in ADMIN_LEVELS)) if c in available]
    table = facts.read(base, columns=wanted)
    cases = facts.cases(base)
    cases = cases[cases["status"].astype(str).isin(INFECTION_STATUSES) & (cases["n"] > 0)]
    case_cells = cases["cell"].to_numpy(np.uint64)
    cells = np.union1d(table["cell"].to_numpy(np.uint64), case_cells)
    order = pd.Index(table["cell"].to_numpy(np.uint64))
    pos = order.get_indexer(cells)

    def column(name: str) -> np.ndarray:
        if name not in table:
            return np.zeros(len(cells))
        values = table[name].fillna(0).to_numpy(float)
        return np.where(pos >= 0, values[np.maximum(pos, 0)], 0.0)

    codes: dict[str, np.ndarray] = {}
    for lvl in ADMIN_LEVELS:
        name = f"{lvl}_code"
        if name in table:
            values = table[name].astype(object).to_numpy()
            codes[lvl] = np.where(pos >= 0, values[np.maximum(pos, 0)], None)
    # cells that hold only cases and are missing from the static table take no codes: the
    # fused facts list them in their case-cells table, which Facts.read already joined
    district_codes = np.array(sorted({str(c) for c in codes.get("district", []) if c
                                      is not None and c == c}), dtype=object)
    if "district" in codes:
        lookup = {c: i for i, c in enumerate(district_codes)}
        district = np.array([lookup.get(str(c), -1) if c is not None and c == c else -1
                             for c in codes["district"]], dtype=np.int64)
    else:
        district = np.full(len(cells), -1, np.int64)
    if len(cases):
        days = cases["date"].to_numpy("datetime64[D]")
        first = days.min().astype(dt.date)
        last = days.max().astype(dt.date)
        case_day = (days - days.min()).astype(np.int64)
    else:
        first = last = dt.date.today()
        case_day = np.zeros(0, np.int64)
    case_cell = np.searchsorted(cells, case_cells)
    ever = np.unique(case_cell)
    src, near, steps = grid.disk_distances(cells[ever], 2)
    dst = np.searchsorted(cells, near)
    dst = np.minimum(dst, len(cells) - 1) if len(cells) else dst
    ok = (steps > 0) & (cells[dst] == near) if len(cells) else steps > 0
    residents = column("residents")
    age = column("age_65_plus")
    parents_all = grid.cell_parents(cells, max(int(base) - 1, 0))
    parents, parent = np.unique(parents_all, return_inverse=True)
    p_src, p_near, p_steps = grid.disk_distances(parents, 2)
    p_dst = np.searchsorted(parents, p_near)
    p_dst = np.minimum(p_dst, len(parents) - 1) if len(parents) else p_dst
    p_ok = parents[p_dst] == p_near if len(parents) else p_steps >= 0
    return CaseSeries(
        cells=cells, residents=residents, vulnerable=age + column("elderly_living_alone"),
        age_65_plus=age, codes=codes, first=first, last=last, case_cell=case_cell,
        case_day=case_day, case_n=cases["n"].to_numpy(float), near_src=ever[src[ok]],
        near_dst=dst[ok], near_k=steps[ok], district=district, district_codes=district_codes,
        parent=parent.astype(np.int64), parent_src=p_src[p_ok], parent_dst=p_dst[p_ok],
        parent_k=p_steps[p_ok], parent_residents=np.bincount(parent, weights=residents,
                                                             minlength=len(parents)))


# == the trend =================================================================================
def generation_interval(mean: float = GENERATION_MEAN, sd: float = GENERATION_SD,
                        days: int = _GI_DAYS) -> np.ndarray:
    """Discretised gamma generation interval ``w_1 … w_days`` (sums to 1)."""
    shape, scale = (mean / sd) ** 2, sd ** 2 / mean
    edges = stats.gamma.cdf(np.arange(days + 1) + 0.5, shape, scale=scale)
    w = np.diff(edges)
    return w / w.sum()


def reproduction_numbers(daily: np.ndarray, window: int = 7,
                         w: np.ndarray | None = None) -> np.ndarray:
    """Reproduction number of each row of ``daily`` (areas × days, oldest first) over its
    last ``window`` days by the renewal equation, with a gamma(1, 1) prior: 1 without data."""
    w = generation_interval() if w is None else w
    daily = np.asarray(daily, float)
    n_days = daily.shape[1]
    lam = np.zeros((daily.shape[0], window))
    for s in range(window):
        day = n_days - window + s
        lags = np.arange(1, len(w) + 1)
        ok = day - lags >= 0
        lam[:, s] = daily[:, day - lags[ok]] @ w[ok]
    recent = daily[:, n_days - window:].sum(axis=1)
    return (1.0 + recent) / (1.0 + lam.sum(axis=1))


def _growth(r_number: np.ndarray) -> np.ndarray:
    """Daily growth rate from the reproduction number (gamma generation interval)."""
    shape, scale = (GENERATION_MEAN / GENERATION_SD) ** 2, GENERATION_SD ** 2 / GENERATION_MEAN
    return (np.power(np.maximum(r_number, 1e-6), 1.0 / shape) - 1.0) / scale


# == features ==================================================================================
@dataclass(frozen=True)
class _Features:
    matrix: np.ndarray  # cells × FEATURES
    rate: np.ndarray  # daily growth rate per cell (its district's)
    reproduction: np.ndarray  # R per cell (its district's)
    own7: np.ndarray
    prev7: np.ndarray


def _features(series: CaseSeries, t: int) -> _Features:
    own7 = series.window(t, 7)
    prev7 = series.window(t - 7, 7)
    own3 = series.window(t, 3)
    ring1, ring2 = series.ring_sums(own7)
    area1, area2 = series.area_shares(own7)
    daily = series.district_daily(t, 7 + _GI_DAYS)
    n_d = len(series.district_codes)
    r_d = reproduction_numbers(daily)
    r_city = reproduction_numbers(daily.sum(axis=0, keepdims=True))[0]
    res = series.residents
    known = series.district >= 0
    res_d = np.bincount(series.district[known], weights=res[known], minlength=n_d)
    cases_d = daily[:n_d, -7:].sum(axis=1)
    has = (res_d > 0) & ((cases_d > 0) | (daily[:n_d].sum(axis=1) > 0))
    r_d = np.where(has, r_d[:n_d], r_city)
    idx = np.maximum(series.district, 0)
    r_cell = np.where(known, r_d[idx] if n_d else r_city, r_city)
    total_res = float(res.sum())
    city_rate = float(cases_d.sum() + daily[n_d:, -7:].sum()) / total_res if total_res else 0.
    rate_d = np.where(res_d > 0, cases_d / np.where(res_d > 0, res_d, 1), city_rate)
    district = res * np.where(known, rate_d[idx] if n_d else city_rate, city_rate)
    matrix = np.column_stack([own7, prev7, own3, ring1, ring2, area1, area2, district,
                              res * city_rate])
    return _Features(matrix, _growth(r_cell), r_cell, own7, prev7)


def _trend_factor(rate: np.ndarray, gamma: float, horizon: int) -> np.ndarray:
    return np.clip(np.exp(gamma * rate * horizon), 1 / _M_CLIP, _M_CLIP)


# == fitting ===================================================================================
def _nb_loglik(y: np.ndarray, mu: np.ndarray, k: float) -> np.ndarray:
    return (special.gammaln(y + k) - special.gammaln(k) - special.gammaln(y + 1)
            + k * np.log(k) - (k + y) * np.log(k + mu) + y * np.log(mu))


@dataclass(frozen=True)
class _Fit:
    coefficients: np.ndarray
    gamma: float
    dispersion: float
    origins: tuple[int, ...]
    fitted: bool


def _fit(series: CaseSeries, t: int, horizon: int, rng_seed: int = 0
         ) -> tuple[_Fit, list[tuple[_Features, np.ndarray]]]:
    origins = [t - horizon - TRAIN_STEP * j for j in range(TRAIN_ORIGINS)]
    origins = [o for o in origins if o >= _MIN_ORIGIN]
    default = _Fit(np.array([DEFAULT_COEFFICIENTS[f] for f in FEATURES]), DEFAULT_GAMMA,
                   DEFAULT_DISPERSION, (), False)
    if not origins:
        return default, []
    rng = np.random.default_rng(rng_seed)
    train: list[tuple[_Features, np.ndarray]] = []
    xs, ys, rs, ws = [], [], [], []
    for o in origins:
        feats = _features(series, o)
        y = series.window(o + horizon, horizon)
        train.append((feats, y))
        busy = (feats.matrix[:, :-2].sum(axis=1) > 0) | (y > 0)
        quiet = np.flatnonzero(~busy & (feats.matrix[:, -2:].sum(axis=1) > 0))
        weight = np.ones(int(busy.sum()))
        if len(quiet) > _QUIET_SAMPLE:
            picked = rng.choice(quiet, _QUIET_SAMPLE, replace=False)
            qw = np.full(_QUIET_SAMPLE, len(quiet) / _QUIET_SAMPLE)
        else:
            picked, qw = quiet, np.ones(len(quiet))
        rows = np.concatenate([np.flatnonzero(busy), picked])
        xs.append(feats.matrix[rows])
        ys.append(y[rows])
        rs.append(feats.rate[rows])
        ws.append(np.concatenate([weight, qw]))
    x, y, rate, wt = (np.concatenate(a) for a in (xs, ys, rs, ws))
    if y.sum() <= 0 or len(y) < 2 * len(FEATURES):
        return default, train
    n_f = len(FEATURES)
    # the terms in y alone, per distinct outcome (a few dozen values, most rows 0)
    values, where = np.unique(y, return_inverse=True)
    weight_of = np.bincount(where, weights=wt, minlength=len(values))

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        c = np.exp(theta[:n_f])
        gamma, k = theta[n_f], math.exp(theta[n_f + 1])
        m = _trend_factor(rate, gamma, horizon)
        base = x @ c
        mu = m * base + _EPS
        dmu = y / mu - (k + y) / (k + mu)
        grad = np.empty_like(theta)
        grad[:n_f] = ((wt * dmu * m)[:, None] * x).sum(axis=0) * c
        clipped = (m <= 1 / _M_CLIP) | (m >= _M_CLIP)
        grad[n_f] = float(np.sum(wt * dmu * np.where(clipped, 0.0, m * base * rate * horizon)))
        log_k_mu = np.log(k + mu)
        by_value = weight_of @ (special.digamma(values + k) - special.digamma(k))
        dk = by_value + float(np.sum(wt * (math.log(k) + 1 - log_k_mu - (k + y) / (k + mu))))
        grad[n_f + 1] = dk * k
        ll = float(weight_of @ (special.gammaln(values + k) - special.gammaln(k))
                   + np.sum(wt * (k * math.log(k) - (k + y) * log_k_mu + y * np.log(mu))))
        scale = float(wt.sum())
        # the prior on γ, as if worth this many rows' likelihood
        ll -= 0.5 * (gamma - DEFAULT_GAMMA) ** 2 / GAMMA_PRIOR_SD ** 2 * _PRIOR_ROWS
        grad[n_f] -= (gamma - DEFAULT_GAMMA) / GAMMA_PRIOR_SD ** 2 * _PRIOR_ROWS
        return -ll / scale, -grad / scale

    start = np.concatenate([np.log([DEFAULT_COEFFICIENTS[f] for f in FEATURES]),
                            [DEFAULT_GAMMA, math.log(DEFAULT_DISPERSION)]])
    bounds = [(-12.0, 3.0)] * n_f + [(0.0, 1.5), (math.log(0.05), math.log(1e3))]
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        found = optimize.minimize(objective, start, jac=True, method="L-BFGS-B",
                                  bounds=bounds, options={"maxiter": 200, "ftol": 1e-7})
    theta = found.x
    return _Fit(np.exp(theta[:n_f]), float(theta[n_f]), float(math.exp(theta[n_f + 1])),
                tuple(origins), True), train


def _fit_dispersion(mu: np.ndarray, y: np.ndarray, fallback: float) -> float:
    """Negative-binomial dispersion of outcomes ``y`` around means ``mu`` (max likelihood)."""
    keep = (mu > 0) | (y > 0)
    mu, y = mu[keep] + _EPS, y[keep]
    if len(y) < 3 or y.sum() <= 0:
        return fallback
    found = optimize.minimize_scalar(lambda lk: -float(np.sum(_nb_loglik(y, mu, math.exp(lk)))),
                                     bounds=(math.log(0.05), math.log(1e4)), method="bounded")
    return float(math.exp(found.x))


def nb_quantiles(mu: np.ndarray, k: float | np.ndarray,
                 probs: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> np.ndarray:
    """Quantiles (columns, in ``probs`` order) of negative binomials with means ``mu`` and
    dispersion ``k`` (variance ``mu + mu²/k``); 0 where ``mu`` is 0."""
    mu = np.asarray(mu, float)
    k = np.broadcast_to(np.asarray(k, float), mu.shape)
    p = k / (k + np.maximum(mu, _EPS))
    out = np.column_stack([stats.nbinom.ppf(q, k, p) for q in probs])
    out[mu <= 0] = 0
    return out


# == the forecast ==============================================================================
@dataclass(frozen=True)
class Forecast:
    """Expected infections per base cell over ``horizon`` days after ``date``.

    ``expected`` is ``μ`` per cell of :attr:`series` (its ``cells`` order); ``own``,
    ``neighbours`` and ``trend`` split it (``own + neighbours + trend = expected``: the
    cell's own recent infections, its neighbours' and its district's level, and what the
    district's trend adds or takes away); ``reproduction`` is the district's ``R``.
    """

    series: CaseSeries = field(repr=False)
    date: dt.date
    horizon: int
    expected: np.ndarray = field(repr=False)
    own: np.ndarray = field(repr=False)
    neighbours: np.ndarray = field(repr=False)
    trend: np.ndarray = field(repr=False)
    factor: np.ndarray = field(repr=False)
    reproduction: np.ndarray = field(repr=False)
    own7: np.ndarray = field(repr=False)
    prev7: np.ndarray = field(repr=False)
    coefficients: dict[str, float]
    gamma: float
    dispersion: float
    fitted: bool
    _train: list[tuple[np.ndarray, np.ndarray]] = field(repr=False, default_factory=list)
    _dispersions: dict[str, float] = field(repr=False, default_factory=dict)

    def groups(self, level: Any) -> np.ndarray:
        """The unit of each base cell at ``level``: an H3 resolution (parent cells), an admin
        level (codes; ``None`` for cells outside every unit), ``"cell"`` or ``"city"``."""
        cells = self.series.cells
        if level in ("cell", None):
            return cells
        if level == "city":
            return np.zeros(len(cells), np.int64)
        if isinstance(level, (int, np.integer)) or str(level).isdigit():
            from twin.grid import cell_parents

            return cell_parents(cells, int(level))
        if level in self.series.codes:
            return self.series.codes[level]
        raise ForecastError(f"unknown level {level!r}; use cell, an H3 resolution, "
                            f"{', '.join(ADMIN_LEVELS)} or city")

    def dispersion_at(self, level: Any) -> float:
        """The dispersion of the sums over units of ``level`` (fitted on the past origins)."""
        name = "district" if level == "city" else str(level)
        if level in ("cell", None):
            return self.dispersion
        with _LOCK:
            if name in self._dispersions:
                return self._dispersions[name]
        if not self._train:
            value = self.dispersion
        else:
            groups = self.groups("district" if level == "city" else level)
            mus, ys = [], []
            for mu, y in self._train:
                frame = pd.DataFrame({"g": groups, "mu": mu, "y": y}).groupby(
                    "g", dropna=True, observed=True)[["mu", "y"]].sum()
                mus.append(frame["mu"].to_numpy())
                ys.append(frame["y"].to_numpy())
            value = _fit_dispersion(np.concatenate(mus), np.concatenate(ys), self.dispersion)
        with _LOCK:
            self._dispersions[name] = value
        return value

    def by(self, level: Any) -> pd.DataFrame:
        """Sums per unit of ``level``: ``unit``, ``expected``, ``own``, ``neighbours``,
        ``trend``, ``cases_recent`` (last 7 days), ``cases_previous`` (the 7 before),
        ``reproduction`` (weighted by the cells' expected infections before the trend),
        ``residents``, ``age_65_plus``, ``vulnerable`` and the interval bounds ``lo90``,
        ``lo50``, ``median``, ``hi50``, ``hi90``."""
        groups = self.groups(level)
        s = self.series
        before = self.own + self.neighbours
        frame = pd.DataFrame({
            "unit": groups, "expected": self.expected, "own": self.own,
            "neighbours": self.neighbours, "trend": self.trend, "cases_recent": self.own7,
            "cases_previous": self.prev7, "rw": before * self.reproduction, "w": before,
            "r_res": s.residents * self.reproduction, "residents": s.residents,
            "age_65_plus": s.age_65_plus, "vulnerable": s.vulnerable})
        out = frame.groupby("unit", dropna=True, observed=True, sort=True).sum()
        out["reproduction"] = np.where(
            out["w"] > 0, out["rw"] / out["w"].where(out["w"] > 0, 1),
            np.where(out["residents"] > 0,
                     out["r_res"] / out["residents"].where(out["residents"] > 0, 1), 1.0))
        out = out.drop(columns=["rw", "w", "r_res"])
        q = nb_quantiles(out["expected"].to_numpy(), self.dispersion_at(level))
        for i, name in enumerate(("lo90", "lo50", "median", "hi50", "hi90")):
            out[name] = q[:, i]
        return out.reset_index()

    def daily(self, level: Any = "city") -> pd.DataFrame:
        """Expected infections per unit and day ``date+1 … date+horizon`` with intervals:
        ``unit``, ``date``, ``expected``, ``lo90``, ``lo50``, ``median``, ``hi50``, ``hi90``."""
        groups = self.groups(level)
        h = np.arange(1, self.horizon + 1)
        steps = np.power(self.factor[:, None], h[None, :] / self.horizon)
        shares = steps / steps.sum(axis=1, keepdims=True)
        per_day = self.expected[:, None] * shares
        frame = pd.DataFrame(per_day, columns=h)
        frame["unit"] = groups
        sums = frame.groupby("unit", dropna=True, observed=True, sort=True).sum()
        long = sums.stack().rename("expected").reset_index()
        long.columns = ["unit", "day", "expected"]
        long["date"] = [self.date + dt.timedelta(days=int(d)) for d in long["day"]]
        q = nb_quantiles(long["expected"].to_numpy(), self.dispersion_at(level))
        for i, name in enumerate(("lo90", "lo50", "median", "hi50", "hi90")):
            long[name] = q[:, i]
        return long.drop(columns=["day"])


def forecast(facts_or_series: Any, date: str | dt.date | None = None, *,
             horizon: int = 7) -> Forecast:
    """Fit the model on the history up to ``date`` and forecast the next ``horizon`` days.

    Parameters
    ----------
    facts_or_series
        A :class:`twin.facts.Facts` or a :class:`CaseSeries`.
    date
        The forecast date ``D``: infections reported up to and including it are known;
        default the last date with an infection.
    horizon
        Days ahead, 1 to 28.
    """
    series = (facts_or_series if isinstance(facts_or_series, CaseSeries)
              else case_series(facts_or_series))
    if not 1 <= int(horizon) <= 28:
        raise ForecastError(f"the forecast horizon must be 1 to 28 days, got {horizon}")
    horizon = int(horizon)
    day = (parse_day(date, "forecast date", error=ForecastError) if date is not None
           else series.last)
    key = (id(series), day, horizon)
    with _LOCK:
        cached = _FORECASTS.get(key)
    if cached is not None and cached.series is series:
        return cached
    t = series.index(day)
    fit, train = _fit(series, t, horizon)
    feats = _features(series, t)
    c = fit.coefficients
    m = _trend_factor(feats.rate, fit.gamma, horizon)
    own = feats.matrix[:, :3] @ c[:3]
    neighbours = feats.matrix[:, 3:] @ c[3:]
    expected = m * (own + neighbours)
    past = [(_trend_factor(f.rate, fit.gamma, horizon) * (f.matrix @ c), y) for f, y in train]
    made = Forecast(
        series=series, date=day, horizon=horizon, expected=expected, own=own,
        neighbours=neighbours, trend=expected - own - neighbours, factor=m,
        reproduction=feats.reproduction, own7=feats.own7, prev7=feats.prev7,
        coefficients=dict(zip(FEATURES, c.tolist(), strict=True)), gamma=fit.gamma,
        dispersion=fit.dispersion, fitted=fit.fitted, _train=past)
    with _LOCK:
        _FORECASTS[key] = made
        while len(_FORECASTS) > 16:
            _FORECASTS.popitem(last=False)
    return made


_FORECASTS: OrderedDict[tuple[int, dt.date, int], Forecast] = OrderedDict()


def summary(fc: Forecast) -> Mapping[str, Any]:
    """The fitted parameters, for reports and ``twin forecast --json``."""
    return {"date": fc.date.isoformat(), "horizon_days": fc.horizon, "fitted": fc.fitted,
            "coefficients": fc.coefficients, "trend_gamma": fc.gamma,
            "dispersion": fc.dispersion}
