"""Risk per H3 cell and per admin unit: an explainable score in [0, 1] with a grade.

The score is a weighted mean of four components, each first mapped to [0, 1] ("normalised");
a component's *contribution* is its weight (normalised so the weights sum to 1) times its
normalised value, and the score is the sum of the contributions. ``W`` is
``risk.window_days`` (7) and ``α`` is ``risk.prior_residents`` (2000).

Cases
    New infections: statuses in :data:`COUNTED_STATUSES` (confirmed and asymptomatic;
    suspected cases and close contacts are not infections). ``cases_recent`` counts report
    dates ``D-W+1 … D`` for the scoring date ``D``, ``cases_previous`` the ``W`` days before.

incidence (smoothed, per 10,000 residents per ``W`` days)
    Empirical-Bayes (Poisson–gamma) shrinkage towards the prior rate ``r`` (cases per resident
    over the same window) of the unit's district::

        rate_W  = (cases_recent + α·r_W)  / (residents + α) × 10,000
        rate_2W = (cases_recent + cases_previous + α·r_2W) / (residents + α) × 10,000
        incidence = (rate_W + rate_2W / 2) / 2

    i.e. the mean of the last window's rate and the two-window rate per window, which weighs
    the last ``W`` days three times as much as the ``W`` days before. ``r`` is the district's
    own rate (its cases over its residents, from the base cells); for the ``district`` level
    and for cells without a known district (or a district of under one resident) it is the
    city's rate; H3 rollups take the resident-weighted mean of their base cells' district
    rates (plain mean when they have no residents). A unit with no residents gets
    ``r × 10,000 + cases / α × 10,000`` — no division by zero; one case there adds
    ``10,000 / α`` (5 per 10k). Normalised as ``incidence / (incidence + INCIDENCE_HALF)``.

growth (this window against the previous one)
    ``growth = (cases_recent + 1) / (cases_previous + 1)``; normalised as
    ``clip(log2(growth) / log2(GROWTH_FULL), 0, 1)``: flat or falling is 0, a ``GROWTH_FULL``
    (4)-fold rise or more is 1.

vulnerable (share of residents)
    ``(age_65_plus + elderly_living_alone) / residents`` — residents aged 65+, those living
    alone counted twice; 0 without residents. Normalised as ``min(1, share / VULNERABLE_FULL)``.

exposure (crowded facilities nearby)
    For a base cell: the number of facilities of the kinds in :data:`CROWDED_KINDS` (times
    their weights) in the cells within :data:`EXPOSURE_RING` steps (~400 m at resolution 10).
    Rollup cells and admin units take the resident-weighted mean of their base cells (plain mean
    when they have no residents): the exposure of their average resident. Normalised as
    ``exposure / (exposure + EXPOSURE_HALF)``.

Grades: ``score >= risk.grades.high`` is high (高风险), ``>= risk.grades.medium`` medium
(中风险), otherwise low (低风险).

Adding a case in the recent window never lowers a unit's score (incidence and growth both
rise, and the district rate rises too). A case in the *previous* window raises incidence but
lowers growth, so it may lower the score: a falling curve is less risky.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from twin.dates import parse_day
from twin.errors import RiskError
from twin.facts import Facts, Level
from twin.privacy import suppress_count
from twin.schema import INFECTION_STATUSES

__all__ = [
    "COMPONENTS",
    "COUNTED_STATUSES",
    "CROWDED_KINDS",
    "EXPOSURE_HALF",
    "EXPOSURE_RING",
    "GRADE_LABELS",
    "GROWTH_FULL",
    "INCIDENCE_HALF",
    "VULNERABLE_FULL",
    "RiskError",
    "RiskTable",
    "explain",
    "grade",
    "prior_rates",
    "reason",
    "risk",
    "score",
]

# -- parameters that are not (yet) in twin.toml ----------------------------------------------
#: Case statuses that count as new infections (:data:`twin.schema.INFECTION_STATUSES`).
COUNTED_STATUSES: tuple[str, ...] = INFECTION_STATUSES
#: Smoothed incidence (per 10k residents per window) at which the component is 0.5.
INCIDENCE_HALF = 50.0
#: Week-on-week growth factor at which the growth component reaches 1.
GROWTH_FULL = 4.0
#: Share of vulnerable residents (65+, living alone counted twice) at which the component is 1.
VULNERABLE_FULL = 0.5
#: Ring size, in base-resolution cells, around a cell in which crowded facilities count.
EXPOSURE_RING = 3
#: Weighted number of crowded facilities in the ring at which the component is 0.5.
EXPOSURE_HALF = 2.0
#: Facility kinds where people crowd, with their weight in the exposure count.
CROWDED_KINDS: dict[str, float] = {
    "market": 1.0, "supermarket": 1.0, "school": 1.0, "hospital": 1.0, "fever_clinic": 1.0,
    "testing_site": 1.0, "nursing_home": 1.0, "clinic": 0.5, "convenience_store": 0.25,
    "pharmacy": 0.25,
}

#: The components in their fixed order.
COMPONENTS: tuple[str, ...] = ("incidence", "growth", "vulnerable", "exposure")
#: grade -> (Chinese, English)
GRADE_LABELS: dict[str, tuple[str, str]] = {
    "high": ("高风险", "high risk"), "medium": ("中风险", "medium risk"),
    "low": ("低风险", "low risk"),
}
_PER = 10_000.0
#: A district (or city) with fewer residents than this has no rate of its own.
_MIN_RESIDENTS = 1.0
_ADMIN = ("community", "street", "district")


# == configuration =============================================================================
def _risk_config(config: Mapping[str, Any] | Any | None, facts: Facts | None = None
                 ) -> dict[str, Any]:
    """The ``[risk]`` section: from ``config`` (a full config or its risk section), the
    workspace, or the defaults, with missing keys filled from the defaults."""
    from twin.config import default_config

    merged = default_config()["risk"]
    if config is None and facts is not None:
        config = facts.workspace.config["risk"]
    if config is not None:
        try:
            section = config["risk"]
        except (KeyError, TypeError):
            section = config
        for key, value in dict(section).items():
            if isinstance(value, Mapping):
                merged[key] = {**merged.get(key, {}), **dict(value)}
            else:
                merged[key] = value
    weights = merged["weights"]
    if any(weights.get(c, 0) < 0 for c in COMPONENTS) or sum(
            weights.get(c, 0) for c in COMPONENTS) <= 0:
        raise RiskError(f"risk.weights must be non-negative with a positive sum, got {weights}")
    if not 0 < merged["grades"]["medium"] < merged["grades"]["high"] <= 1:
        raise RiskError(f"risk.grades must satisfy 0 < medium < high <= 1, got "
                        f"{merged['grades']}")
    return merged


# == pure scoring ==============================================================================
def grade(scores: np.ndarray | pd.Series | float, grades: Mapping[str, float]
          ) -> np.ndarray:
    """``"high"``, ``"medium"`` or ``"low"`` for each score by the ``risk.grades`` thresholds."""
    s = np.atleast_1d(np.asarray(scores, dtype=float))
    return np.where(s >= grades["high"], "high",
                    np.where(s >= grades["medium"], "medium", "low")).astype(object)


def prior_rates(base: pd.DataFrame, by: str = "district_code") -> pd.DataFrame:
    """Prior rates (cases per resident) of each base unit: its group's, else the city's.

    ``base`` has ``residents``, ``cases_recent``, ``cases_previous`` and the group column
    ``by``. Returns ``prior_rate_recent`` (per ``W`` days) and ``prior_rate_2w`` (per ``2W``
    days) aligned with ``base``. A group without residents, or a unit without a group, takes
    the city's rate; a city without residents has rate 0.
    """
    res = base["residents"].astype(float)
    recent = base["cases_recent"].astype(float)
    both = recent + base["cases_previous"].astype(float)
    total = float(res.sum())
    city = ((float(recent.sum()) / total, float(both.sum()) / total) if total >= _MIN_RESIDENTS
            else (0., 0.))
    out = pd.DataFrame({"prior_rate_recent": city[0], "prior_rate_2w": city[1]},
                       index=base.index)
    if by in base:
        groups = base[by]
        sums = pd.DataFrame({"r": res, "c": recent, "b": both, "g": groups}).groupby(
            "g", dropna=True)[["r", "c", "b"]].sum()
        sums = sums[sums["r"] >= _MIN_RESIDENTS]
        known = groups.isin(sums.index).to_numpy()
        if known.any():
            out.loc[known, "prior_rate_recent"] = groups[known].map(
                sums["c"] / sums["r"]).astype(float).to_numpy()
            out.loc[known, "prior_rate_2w"] = groups[known].map(
                sums["b"] / sums["r"]).astype(float).to_numpy()
    return out


def score(frame: pd.DataFrame, config: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Score units from their inputs (the pure part of :func:`risk`).

    ``frame`` needs ``residents``, ``cases_recent``, ``cases_previous``,
    ``prior_rate_recent``, ``prior_rate_2w`` (cases per resident), ``age_65_plus``,
    ``elderly_living_alone`` and ``exposure`` (weighted crowded facilities in the ring); absent
    group or exposure columns count as 0. ``config`` is the ``[risk]`` section (defaults when
    None). Returns a copy with the columns of :class:`RiskTable`.
    """
    cfg = _risk_config(config)
    alpha = float(cfg["prior_residents"])
    out = frame.copy()
    for column in ("age_65_plus", "elderly_living_alone", "exposure"):
        if column not in out:
            out[column] = 0.0
    res = out["residents"].fillna(0).astype(float).clip(lower=0).to_numpy()
    recent = out["cases_recent"].fillna(0).astype(float).to_numpy()
    previous = out["cases_previous"].fillna(0).astype(float).to_numpy()
    rate_w = (recent + alpha * out["prior_rate_recent"].fillna(0).to_numpy()) / (res + alpha)
    rate_2w = ((recent + previous + alpha * out["prior_rate_2w"].fillna(0).to_numpy())
               / (res + alpha))
    out["incidence_recent"] = rate_w * _PER
    out["incidence_2w"] = rate_2w * _PER
    incidence = (out["incidence_recent"] + out["incidence_2w"] / 2) / 2
    growth = (recent + 1) / (previous + 1)
    vulnerable_n = (out["age_65_plus"].fillna(0).astype(float)
                    + out["elderly_living_alone"].fillna(0).astype(float)).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        vulnerable = np.where(res > 0, vulnerable_n / np.where(res > 0, res, 1), 0.0)
    exposure = out["exposure"].fillna(0).astype(float).clip(lower=0).to_numpy()
    values = {"incidence": incidence.to_numpy(), "growth": growth,
              "vulnerable": vulnerable, "exposure": exposure}
    norms = {
        "incidence": values["incidence"] / (values["incidence"] + INCIDENCE_HALF),
        "growth": np.clip(np.log2(growth) / math.log2(GROWTH_FULL), 0, 1),
        "vulnerable": np.clip(vulnerable / VULNERABLE_FULL, 0, 1),
        "exposure": exposure / (exposure + EXPOSURE_HALF),
    }
    weights = {c: float(cfg["weights"].get(c, 0.0)) for c in COMPONENTS}
    total_weight = sum(weights.values())
    total = np.zeros(len(out))
    for c in COMPONENTS:
        out[c] = values[c]
        out[f"{c}_norm"] = norms[c]
        out[f"{c}_contrib"] = weights[c] / total_weight * norms[c]
        total = total + out[f"{c}_contrib"].to_numpy()
    out["score"] = np.clip(total, 0.0, 1.0)
    out["grade"] = grade(out["score"].to_numpy(), cfg["grades"]) if len(out) else []
    out["grade_zh"] = out["grade"].map(lambda g: GRADE_LABELS[g][0])
    out["grade_en"] = out["grade"].map(lambda g: GRADE_LABELS[g][1])
    contribs = out[[f"{c}_contrib" for c in COMPONENTS]].to_numpy()
    out["main_reason"] = (np.array(COMPONENTS, dtype=object)[contribs.argmax(axis=1)]
                          if len(out) else [])
    return out


# == explanations ==============================================================================
def _component_text(row: Mapping[str, Any], c: str, lang: str, window: int,
                    suppress_below: int | None = None) -> str:
    contrib = float(row[f"{c}_contrib"])

    def n(value: Any) -> str:  # a case count as the reader may see it
        return (str(int(value)) if suppress_below is None
                else suppress_count(int(value), suppress_below))

    if c == "incidence":
        recent, prev = int(row["cases_recent"]), int(row["cases_previous"])
        if lang == "zh":
            return (f"发病率 每万人 {float(row['incidence']):.1f}（近{window}天 {n(recent)} 例，"
                    f"近{2 * window}天 {n(recent + prev)} 例；贡献 {contrib:.2f}）")
        return (f"incidence {float(row['incidence']):.1f} per 10k ({n(recent)} cases in "
                f"{window} days, {n(recent + prev)} in {2 * window}; "
                f"contributes {contrib:.2f})")
    if c == "growth":
        recent, prev = int(row["cases_recent"]), int(row["cases_previous"])
        if suppress_below is not None and (0 < recent < suppress_below
                                           or 0 < prev < suppress_below):
            # a ratio of two small counts gives them away: say only which way it goes
            rising = float(row["growth"]) > 1
            if lang == "zh":
                return (f"增长 环比{'上升' if rising else '未升'}（近{window}天 {n(recent)} 例 "
                        f"对 前{window}天 {n(prev)} 例；贡献 {contrib:.2f}）")
            return (f"growth: {'rising' if rising else 'not rising'} on the previous {window} "
                    f"days ({n(recent)} vs {n(prev)}; contributes {contrib:.2f})")
        if lang == "zh":
            return (f"增长 环比 ×{float(row['growth']):.2f}（近{window}天 "
                    f"{n(row['cases_recent'])} 例 对 前{window}天 "
                    f"{n(row['cases_previous'])} 例；贡献 {contrib:.2f}）")
        return (f"growth ×{float(row['growth']):.2f} on the previous {window} days "
                f"({n(row['cases_recent'])} vs {n(row['cases_previous'])}; "
                f"contributes {contrib:.2f})")
    if c == "vulnerable":
        share = 100 * float(row["vulnerable"])
        if lang == "zh":
            return f"脆弱人群 {share:.0f}%（65岁以上，独居老人计两次；贡献 {contrib:.2f}）"
        return (f"vulnerable {share:.0f}% (aged 65+, living alone counted twice; "
                f"contributes {contrib:.2f})")
    exposure = float(row["exposure"])
    if lang == "zh":
        return (f"暴露 周边{EXPOSURE_RING}圈内人员密集场所 {exposure:.1f} 处"
                f"（贡献 {contrib:.2f}）")
    return (f"exposure {exposure:.1f} crowded facilities within {EXPOSURE_RING} cells "
            f"(contributes {contrib:.2f})")


def explain(row: Mapping[str, Any] | pd.Series, lang: str = "en", *,
            window_days: int = 7) -> str:
    """Why a unit has its grade: score, grade and every component, largest contribution first.

    ``row`` is one row of a :class:`RiskTable` frame (or :func:`score`'s output).
    """
    order = sorted(COMPONENTS, key=lambda c: -float(row[f"{c}_contrib"]))
    parts = [_component_text(row, c, lang, window_days) for c in order]
    zh, en = GRADE_LABELS[str(row["grade"])]
    if lang == "zh":
        return f"{zh}，得分 {float(row['score']):.2f}：" + "；".join(parts)
    return f"{en}, score {float(row['score']):.2f}: " + "; ".join(parts)


def reason(row: Mapping[str, Any] | pd.Series, lang: str = "en", *,
           window_days: int = 7, suppress_below: int | None = None) -> str:
    """The component that contributes most, as one phrase.

    With ``suppress_below``, case counts from 1 to ``suppress_below - 1`` read ``"<N"``
    (the privacy rule for viewers).
    """
    return _component_text(row, str(row["main_reason"]), lang, window_days, suppress_below)


# == the table =================================================================================
@dataclass(frozen=True)
class RiskTable:
    """Risk of every cell or unit of one level on one date.

    ``frame`` has one row per cell (``cell``, ``uint64``) or admin unit (``code``, ``name``,
    ``parent_code``) with: ``residents``; ``cases_recent`` / ``cases_previous`` (new
    infections in the last ``window_days`` days up to ``date`` and the ``window_days``
    before); ``prior_rate_recent`` / ``prior_rate_2w`` (the shrinkage target, cases per
    resident); ``incidence_recent`` / ``incidence_2w`` (smoothed, per 10k residents); for each
    component ``incidence`` (per 10k per window), ``growth`` (ratio), ``vulnerable`` (share),
    ``exposure`` (weighted crowded facilities): the value, ``<component>_norm`` in [0, 1] and
    ``<component>_contrib``; ``score`` in [0, 1]; ``grade`` (high/medium/low), ``grade_zh``,
    ``grade_en``; ``main_reason`` (the component contributing most). Sorted by score,
    highest first.
    """

    frame: pd.DataFrame
    level: Level
    date: dt.date
    window_days: int
    config: dict[str, Any] = field(repr=False)

    @property
    def key(self) -> str:
        """The key column: ``cell`` or ``code``."""
        return "cell" if "cell" in self.frame else "code"

    def __len__(self) -> int:
        return len(self.frame)

    def top(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` rows with the highest scores."""
        return self.frame.head(n)

    def counts(self) -> dict[str, int]:
        """Number of rows per grade."""
        found = self.frame["grade"].value_counts()
        return {g: int(found.get(g, 0)) for g in ("high", "medium", "low")}

    def explain(self, row: Mapping[str, Any] | pd.Series | int | str, lang: str = "en") -> str:
        """:func:`explain` of a row, or of the row whose key (cell or code) is ``row``."""
        if not isinstance(row, (Mapping, pd.Series)):
            wanted: Any = str(row)
            if self.key == "cell":
                wanted = np.uint64(row if isinstance(row, (int, np.integer))
                                   else int(str(row), 16))
            matches = self.frame[self.frame[self.key] == wanted]
            if matches.empty:
                raise RiskError(f"no {self.key} {row!r} at level {self.level!r}")
            row = matches.iloc[0]
        return explain(row, lang, window_days=self.window_days)

    def reason(self, row: Mapping[str, Any] | pd.Series, lang: str = "en", *,
               suppress_below: int | None = None) -> str:
        """The main reason of a row, as one phrase (see :func:`reason`)."""
        return reason(row, lang, window_days=self.window_days, suppress_below=suppress_below)


# == from facts ================================================================================
def _normalise_level(facts: Facts, level: Level) -> Level:
    if isinstance(level, str):
        if level == "cell":
            return facts.base
        if level.isdigit():
            level = int(level)
    if isinstance(level, (int, np.integer)):
        return int(level)
    if level in _ADMIN:
        return level
    raise RiskError(f"unknown level {level!r}; use cell, {', '.join(map(str, facts.levels))}"
                    .replace(", grid", ""))


def _counted(facts: Facts, level: Level, start: dt.date, end: dt.date) -> pd.Series:
    cases = facts.cases(level, start, end)
    cases = cases[cases["status"].isin(COUNTED_STATUSES)]
    return cases.groupby(cases.columns[0], observed=True)["n"].sum()


def _last_case_date(facts: Facts) -> dt.date:
    cases = facts.cases(facts.base)
    cases = cases[cases["status"].isin(COUNTED_STATUSES)]
    if cases.empty:
        return dt.date.today()
    return pd.Timestamp(cases["date"].max()).date()


def _units(facts: Facts, level: Level, start: dt.date, recent_start: dt.date,
           end: dt.date, extra: list[str]) -> pd.DataFrame:
    available = facts.columns(level)
    wanted = [c for c in ["residents", "age_65_plus", "elderly_living_alone", *extra]
              if c in available]
    table = facts.read(level, columns=wanted, start=start, end=end)
    key = table.columns[0]
    recent = _counted(facts, level, recent_start, end)
    both = _counted(facts, level, start, end)
    table["cases_recent"] = table[key].map(recent).fillna(0).astype(np.int64)
    table["cases_previous"] = (table[key].map(both).fillna(0).astype(np.int64)
                               - table["cases_recent"])
    keep = ("cases_recent", "cases_previous")
    table = table.drop(columns=[c for c in table.columns
                                if c == "cases" or (c.startswith("cases_") and c not in keep)])
    for column in ("residents", "age_65_plus", "elderly_living_alone"):
        if column not in table:
            table[column] = 0.0
    return table


def _base_exposure(facts: Facts, base: pd.DataFrame) -> pd.Series:
    """Weighted crowded facilities within :data:`EXPOSURE_RING` cells of each base cell."""
    from twin.grid import grid_disk

    weight = np.zeros(len(base))
    for kind, w in CROWDED_KINDS.items():
        if f"fac_{kind}_n" in base:
            weight = weight + w * base[f"fac_{kind}_n"].fillna(0).to_numpy(dtype=float)
    sources = base.loc[weight > 0, "cell"].to_numpy(dtype=np.uint64)
    counts = weight[weight > 0]
    exposure: dict[int, float] = {}
    for cell, n in zip(sources.tolist(), counts.tolist(), strict=True):
        for near in grid_disk(np.array([cell], dtype=np.uint64), EXPOSURE_RING).tolist():
            exposure[near] = exposure.get(near, 0.0) + n
    if not exposure:
        return pd.Series(0.0, index=base.index)
    near = pd.Series(list(exposure.values()),
                     index=np.fromiter(exposure.keys(), dtype=np.uint64, count=len(exposure)))
    return pd.Series(near.reindex(base["cell"].to_numpy(dtype=np.uint64)).fillna(0.0)
                     .to_numpy(dtype=float), index=base.index)


def _weighted_mean(values: pd.Series, residents: pd.Series, groups: pd.Series) -> pd.Series:
    """Resident-weighted mean of ``values`` per group; the plain mean without residents."""
    frame = pd.DataFrame({"v": values.to_numpy(), "r": residents.to_numpy(),
                          "vr": (values * residents).to_numpy(), "g": groups.to_numpy()})
    sums = frame.groupby("g", dropna=True).agg(vr=("vr", "sum"), r=("r", "sum"),
                                               v=("v", "mean"))
    return pd.Series(np.where(sums["r"] > 0, sums["vr"] / sums["r"].where(sums["r"] > 0, 1),
                              sums["v"]), index=sums.index)


def risk(facts: Facts, *, level: Level = "community", date: str | dt.date | None = None,
         config: Mapping[str, Any] | None = None) -> RiskTable:
    """The risk of every cell or admin unit of ``level`` on ``date``.

    Parameters
    ----------
    facts
        The fused facts of a workspace.
    level
        ``"cell"`` (the base resolution), an H3 resolution (``10``, ``9``, ``8``, ``7``, also as
        strings) or ``"community"``, ``"street"``, ``"district"``.
    date
        The scoring date ``D`` (cases reported up to and including it); default the last date
        with a counted case (today when there are none).
    config
        The ``[risk]`` section (or a whole configuration); default the workspace's.
    """
    cfg = _risk_config(config, facts)
    lvl = _normalise_level(facts, level)
    day = (parse_day(date, "scoring date", error=RiskError) if date is not None
           else _last_case_date(facts))
    window = int(cfg["window_days"])
    if window < 1:
        raise RiskError(f"risk.window_days must be at least 1, got {window}")
    recent_start = day - dt.timedelta(days=window - 1)
    start = day - dt.timedelta(days=2 * window - 1)

    available = facts.columns(facts.base)
    codes = [c for c in ("community_code", "street_code", "district_code") if c in available]
    fac = [f"fac_{k}_n" for k in CROWDED_KINDS if f"fac_{k}_n" in available]
    base = _units(facts, facts.base, start, recent_start, day, [*codes, *fac])
    base = base.join(prior_rates(base, "district_code"))
    base["exposure"] = _base_exposure(facts, base)

    if lvl == facts.base:
        frame = base.drop(columns=[*fac])
    else:
        frame = _units(facts, lvl, start, recent_start, day, [])
        key = frame.columns[0]
        if isinstance(lvl, int):
            from twin.grid import cell_parents

            groups = pd.Series(cell_parents(base["cell"].to_numpy(dtype=np.uint64), lvl),
                               index=base.index)
        else:
            groups = base.get(f"{lvl}_code", pd.Series(np.nan, index=base.index))
        res = base["residents"].fillna(0).astype(float)
        for column in ("prior_rate_recent", "prior_rate_2w", "exposure"):
            frame[column] = frame[key].map(_weighted_mean(base[column], res, groups))
        city = prior_rates(base, by="__none__").iloc[:1]
        for column in ("prior_rate_recent", "prior_rate_2w"):
            fallback = float(city[column].iloc[0]) if len(city) else 0.0
            if lvl == "district":
                frame[column] = fallback
            frame[column] = frame[column].fillna(fallback)
        frame["exposure"] = frame["exposure"].fillna(0.0)
    scored = score(frame, cfg).sort_values("score", ascending=False, kind="stable")
    return RiskTable(scored.reset_index(drop=True), lvl, day, window, cfg)
