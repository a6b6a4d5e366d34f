"""Risk per H3 cell and per admin unit: where next week's infections will be, weighted for
severity, explained.

The risk of a unit comes from :mod:`twin.forecast`: ``expected`` is the unit's expected new
infections over the next ``risk.horizon_days`` (7) days, fitted on the workspace's own history
up to the scoring date. The forecast splits it into what comes from the unit's **own** recent
infections, from its **neighbours** (the cells one and two H3 steps away, the area around
and the district's level; "spread from around" in the reasons) and from the district's
**trend** (the renewal-equation
reproduction number: positive when rising, negative when falling). The **vulnerable** part
weighs it for severity: residents aged 65+ (those living alone counted twice) fall ill more
gravely, so::

    weighted   = expected · (1 + ω · vulnerable_share)          ω = risk.vulnerable_weight
    per_10k    = weighted / max(residents, risk.min_residents) × 10,000
    score      = per_10k / (per_10k + risk.grades.high_per_10k)

so ``score`` is in [0, 1), ranks units like ``per_10k`` does (what a budget of residents to
test or close is best spent on) and is 0.5 exactly at the "high" threshold. Each component's
*contribution* is ``score × part / weighted`` with ``own + neighbours + trend + vulnerable =
weighted``, so contributions sum to the score (the trend's is negative when the district's
curve falls).

Grades (``[risk.grades]`` in ``twin.toml``): ``per_10k >= high_per_10k`` (default 20: two
expected new infections per 1,000 residents in a week, severity-weighted; a place to act on
now: test, trace, consider closure) with at least ``high_min_expected`` (1) infection
expected in the unit is high (高风险); ``>= medium_per_10k`` (2) with ``medium_min_expected``
(0.25) medium (中风险, watch); otherwise low (低风险).
"""

from __future__ import annotations

import datetime as dt
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
    "GRADE_LABELS",
    "RECENT_DAYS",
    "RiskError",
    "RiskTable",
    "explain",
    "grade",
    "reason",
    "risk",
    "score",
]

#: Case statuses that count as new infections (:data:`twin.schema.INFECTION_STATUSES`).
COUNTED_STATUSES: tuple[str, ...] = INFECTION_STATUSES
#: The components in their fixed order.
COMPONENTS: tuple[str, ...] = ("own", "neighbours", "trend", "vulnerable")
#: Days of infections reported as ``cases_recent`` (and the same before, ``cases_previous``).
RECENT_DAYS = 7
#: grade -> (Chinese, English)
GRADE_LABELS: dict[str, tuple[str, str]] = {
    "high": ("高风险", "high risk"), "medium": ("中风险", "medium risk"),
    "low": ("低风险", "low risk"),
}
_PER = 10_000.0
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
    grades = merged["grades"]
    if not 0 < grades["medium_per_10k"] < grades["high_per_10k"]:
        raise RiskError(f"risk.grades must satisfy 0 < medium_per_10k < high_per_10k, got "
                        f"medium_per_10k={grades['medium_per_10k']}, "
                        f"high_per_10k={grades['high_per_10k']}")
    if merged["min_residents"] < 0 or min(grades["high_min_expected"],
                                           grades["medium_min_expected"]) < 0:
        raise RiskError("risk.min_residents and the grades' minimum expected infections must "
                        "be 0 or more")
    if merged["vulnerable_weight"] < 0:
        raise RiskError(f"risk.vulnerable_weight must be 0 or more, got "
                        f"{merged['vulnerable_weight']}")
    if not 1 <= int(merged["horizon_days"]) <= 28:
        raise RiskError(f"risk.horizon_days must be 1 to 28, got {merged['horizon_days']}")
    return merged


# == pure scoring ==============================================================================
def grade(per_10k: np.ndarray | pd.Series | float, grades: Mapping[str, float],
          expected: np.ndarray | pd.Series | float | None = None) -> np.ndarray:
    """``"high"``, ``"medium"`` or ``"low"`` of severity-weighted expected infections per 10k
    residents (and, when given, expected infections) by the ``risk.grades`` thresholds."""
    x = np.atleast_1d(np.asarray(per_10k, dtype=float))
    n = (np.full(x.shape, np.inf) if expected is None
         else np.atleast_1d(np.asarray(expected, dtype=float)))
    high = (x >= grades["high_per_10k"]) & (n >= grades.get("high_min_expected", 0.0))
    medium = (x >= grades["medium_per_10k"]) & (n >= grades.get("medium_min_expected", 0.0))
    return np.where(high, "high", np.where(medium, "medium", "low")).astype(object)


def score(frame: pd.DataFrame, config: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Score units from their forecast (the pure part of :func:`risk`).

    ``frame`` needs ``residents``, ``expected`` and its parts ``own``, ``neighbours`` and
    ``trend`` (expected infections; they sum to ``expected``), ``age_65_plus`` and
    ``elderly_living_alone`` (absent: 0). ``config`` is the ``[risk]`` section (defaults when
    None). Returns a copy with the columns of :class:`RiskTable`.
    """
    cfg = _risk_config(config)
    omega = float(cfg["vulnerable_weight"])
    high = float(cfg["grades"]["high_per_10k"])
    out = frame.copy()
    for column in ("age_65_plus", "elderly_living_alone", "own", "neighbours", "trend"):
        if column not in out:
            out[column] = 0.0
    res = out["residents"].fillna(0).astype(float).clip(lower=0).to_numpy()
    expected = out["expected"].fillna(0).astype(float).clip(lower=0).to_numpy()
    vulnerable_n = (out["age_65_plus"].fillna(0).astype(float)
                    + out["elderly_living_alone"].fillna(0).astype(float)).to_numpy()
    share = np.where(res > 0, vulnerable_n / np.where(res > 0, res, 1), 0.0)
    out["vulnerable_share"] = share
    weighted = expected * (1 + omega * share)
    floor = max(float(cfg["min_residents"]), 1.0)
    per_10k = weighted / np.maximum(res, floor) * _PER
    out["expected_per_10k"] = expected / np.maximum(res, floor) * _PER
    out["weighted_per_10k"] = per_10k
    s = per_10k / (per_10k + high)
    parts = {c: out[c].fillna(0).astype(float).to_numpy() for c in ("own", "neighbours",
                                                                   "trend")}
    parts["vulnerable"] = expected * omega * share
    out["vulnerable"] = parts["vulnerable"]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(weighted > 0, s / np.where(weighted > 0, weighted, 1), 0.0)
    for c in COMPONENTS:
        out[f"{c}_contrib"] = parts[c] * factor
    out["score"] = np.clip(s, 0.0, 1.0)
    out["grade"] = grade(per_10k, cfg["grades"], expected) if len(out) else []
    out["grade_zh"] = out["grade"].map(lambda g: GRADE_LABELS[g][0])
    out["grade_en"] = out["grade"].map(lambda g: GRADE_LABELS[g][1])
    contribs = out[[f"{c}_contrib" for c in COMPONENTS]].to_numpy()
    out["main_reason"] = (np.array(COMPONENTS, dtype=object)[contribs.argmax(axis=1)]
                          if len(out) else [])
    return out


# == explanations ==============================================================================
def _component_text(row: Mapping[str, Any], c: str, lang: str, horizon: int,
                    suppress_below: int | None = None) -> str:
    contrib = float(row[f"{c}_contrib"])

    def n(value: Any) -> str:  # a case count as the reader may see it
        return (str(int(value)) if suppress_below is None
                else suppress_count(int(value), suppress_below))

    def e(value: Any) -> str:  # an expected count: small ones would hint at small counts
        v = float(value)
        if suppress_below is not None and 0 < v < suppress_below:
            return f"<{suppress_below}"
        return f"{v:.1f}"

    def signed(value: Any) -> str:
        v = float(value)
        if suppress_below is not None and 0 < abs(v) < suppress_below:
            return f"{'+' if v > 0 else '−'}<{suppress_below}"
        return f"{v:+.1f}"

    if c == "own":
        recent, prev = int(row["cases_recent"]), int(row["cases_previous"])
        if lang == "zh":
            return (f"本地病例 近{RECENT_DAYS}天 {n(recent)} 例、此前{RECENT_DAYS}天 "
                    f"{n(prev)} 例 → 未来{horizon}天预计 {e(row['own'])} 例"
                    f"（贡献 {contrib:.2f}）")
        return (f"own cases: {n(recent)} in the last {RECENT_DAYS} days, {n(prev)} in the "
                f"{RECENT_DAYS} before → {e(row['own'])} expected in the next "
                f"{horizon} days (contributes {contrib:.2f})")
    if c == "neighbours":
        if lang == "zh":
            return f"周边传播 → 预计 {e(row['neighbours'])} 例（贡献 {contrib:.2f}）"
        return (f"spread from around → {e(row['neighbours'])} expected "
                f"(contributes {contrib:.2f})")
    if c == "trend":
        r = float(row.get("reproduction", 1.0))
        part = float(row["trend"])
        if lang == "zh":
            way = "上升" if r > 1.05 else "下降" if r < 0.95 else "持平"
            return (f"所在区趋势 再生数 R={r:.2f}（{way}）→ {signed(part)} 例"
                    f"（贡献 {contrib:+.2f}）")
        way = "rising" if r > 1.05 else "falling" if r < 0.95 else "flat"
        return (f"district trend: R = {r:.2f} ({way}) → {signed(part)} expected "
                f"(contributes {contrib:+.2f})")
    share = 100 * float(row["vulnerable_share"])
    if lang == "zh":
        return (f"脆弱人群 {share:.0f}%（65岁以上，独居老人计两次）按重症风险加权"
                f"（贡献 {contrib:.2f}）")
    return (f"vulnerable residents {share:.0f}% (aged 65+, living alone counted twice) "
            f"weigh it for severity (contributes {contrib:.2f})")


def explain(row: Mapping[str, Any] | pd.Series, lang: str = "en", *,
            horizon_days: int = 7, suppress_below: int | None = None) -> str:
    """Why a unit has its grade: the forecast, the score and every component, largest
    contribution first. ``row`` is one row of a :class:`RiskTable` frame."""
    order = sorted(COMPONENTS, key=lambda c: -abs(float(row[f"{c}_contrib"])))
    parts = [_component_text(row, c, lang, horizon_days, suppress_below) for c in order]
    zh, en = GRADE_LABELS[str(row["grade"])]
    lo, hi = int(row.get("lo90", 0)), int(row.get("hi90", 0))
    if lang == "zh":
        return (f"{zh}，得分 {float(row['score']):.2f}：未来{horizon_days}天预计新增 "
                f"{float(row['expected']):.1f} 例（90% 区间 {lo}–{hi}），加权后每万人 "
                f"{float(row['weighted_per_10k']):.1f}；" + "；".join(parts))
    return (f"{en}, score {float(row['score']):.2f}: {float(row['expected']):.1f} new "
            f"infections expected in the next {horizon_days} days (90% interval {lo}–{hi}), "
            f"{float(row['weighted_per_10k']):.1f} per 10k severity-weighted; "
            + "; ".join(parts))


def reason(row: Mapping[str, Any] | pd.Series, lang: str = "en", *,
           window_days: int = 7, suppress_below: int | None = None) -> str:
    """The component that contributes most, as one phrase.

    With ``suppress_below``, case counts from 1 to ``suppress_below - 1`` read ``"<N"``
    (the privacy rule for viewers). ``window_days`` is the forecast horizon.
    """
    return _component_text(row, str(row["main_reason"]), lang, window_days, suppress_below)


# == the table =================================================================================
@dataclass(frozen=True)
class RiskTable:
    """Risk of every cell or unit of one level on one date.

    ``frame`` has one row per cell (``cell``, ``uint64``) or admin unit (``code``, ``name``,
    ``parent_code``) with: ``residents``, ``age_65_plus``, ``elderly_living_alone``;
    ``cases_recent`` / ``cases_previous`` (infections in the last 7 days up to ``date`` and
    the 7 before); the forecast of the next ``window_days`` days: ``expected`` with
    ``lo90``, ``lo50``, ``median``, ``hi50``, ``hi90``, ``reproduction`` (the district's R);
    ``expected_per_10k``, ``vulnerable_share`` and ``weighted_per_10k``; for each component
    (``own``, ``neighbours``, ``trend``, ``vulnerable``) its part of the weighted expected
    infections and ``<component>_contrib``; ``score`` in [0, 1); ``grade`` (high/medium/low),
    ``grade_zh``, ``grade_en``; ``main_reason``. Sorted by grade, then by score (highest
    first): a high rate under a grade's minimum of expected infections comes after it.
    ``window_days`` is the forecast horizon.
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

    def top(self, n: int = 10, by: str = "score") -> pd.DataFrame:
        """The ``n`` highest-risk rows: by grade, then score (a unit with a high rate but
        under a grade's minimum of expected infections comes after that grade), or the
        ``n`` with the highest ``by`` (``expected``, ``weighted_per_10k``)."""
        if by == "score":
            return self.frame.iloc[risk_order(self.frame)[:n]]
        if by not in ("expected", "weighted_per_10k", "cases_recent"):
            raise RiskError(f"cannot sort risk by {by!r}; use score or expected")
        return self.frame.sort_values(by, ascending=False, kind="stable").head(n)

    def counts(self) -> dict[str, int]:
        """Number of rows per grade."""
        found = self.frame["grade"].value_counts()
        return {g: int(found.get(g, 0)) for g in ("high", "medium", "low")}

    def explain(self, row: Mapping[str, Any] | pd.Series | int | str, lang: str = "en", *,
                suppress_below: int | None = None) -> str:
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
        return explain(row, lang, horizon_days=self.window_days, suppress_below=suppress_below)

    def reason(self, row: Mapping[str, Any] | pd.Series, lang: str = "en", *,
               suppress_below: int | None = None) -> str:
        """The main reason of a row, as one phrase (see :func:`reason`)."""
        return reason(row, lang, window_days=self.window_days, suppress_below=suppress_below)


# == from facts ================================================================================
def normalise_level(facts: Facts, level: Level) -> Level:
    """``cell`` → the base resolution, digits → an int; admin levels as they are."""
    if isinstance(level, str):
        if level == "cell":
            return facts.base
        if level.isdigit():
            level = int(level)
    if isinstance(level, (int, np.integer)):
        if int(level) not in facts.levels:
            raise RiskError(f"the facts have no resolution {int(level)}; levels are "
                            f"{', '.join(map(str, facts.levels))}")
        return int(level)
    if level in _ADMIN:
        return level
    raise RiskError(f"unknown level {level!r}; use cell, {', '.join(map(str, facts.levels))}"
                    .replace(", grid", ""))


def _last_case_date(facts: Facts) -> dt.date:
    cases = facts.cases(facts.base)
    cases = cases[cases["status"].isin(COUNTED_STATUSES)]
    if cases.empty:
        return dt.date.today()
    return pd.Timestamp(cases["date"].max()).date()


def risk_frame(fc: Any, facts: Facts, level: Level, cfg: Mapping[str, Any]) -> pd.DataFrame:
    """Score the forecast ``fc`` (:class:`twin.forecast.Forecast`) summed to ``level``."""
    by = fc.by("cell" if level == facts.base else level)
    by = by.rename(columns={"vulnerable": "vulnerable_n"})
    by["elderly_living_alone"] = by["vulnerable_n"] - by["age_65_plus"]
    by = by.drop(columns=["vulnerable_n"])
    if level == facts.base or isinstance(level, int):
        frame = by.rename(columns={"unit": "cell"})
        frame["cell"] = frame["cell"].to_numpy(np.uint64)
        cells = facts.static(level, ["residents"]) if level != facts.base else None
        if cells is not None:  # keep every cell of the level, also those without cases
            frame = cells[["cell"]].merge(frame, on="cell", how="outer")
    else:
        units = facts.static(level, [])
        frame = units.merge(by.rename(columns={"unit": "code"}), on="code", how="left")
    numbers = [c for c in frame.columns if c not in ("cell", "code", "name", "parent_code")]
    frame[numbers] = frame[numbers].fillna(0.0)
    frame["reproduction"] = frame["reproduction"].replace(0.0, 1.0)
    for column in ("cases_recent", "cases_previous"):
        frame[column] = frame[column].round().astype(np.int64)
    return score(frame, cfg)


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
        The scoring date ``D`` (infections reported up to and including it are known);
        default the last date with a counted case (today when there are none).
    config
        The ``[risk]`` section (or a whole configuration); default the workspace's.
    """
    from twin.forecast import forecast

    cfg = _risk_config(config, facts)
    lvl = normalise_level(facts, level)
    day = (parse_day(date, "scoring date", error=RiskError) if date is not None
           else _last_case_date(facts))
    horizon = int(cfg["horizon_days"])
    fc = forecast(facts, day, horizon=horizon)
    scored = risk_frame(fc, facts, lvl, cfg)
    scored = scored.iloc[risk_order(scored)]
    return RiskTable(scored.reset_index(drop=True), lvl, day, horizon, cfg)


def risk_order(frame: pd.DataFrame) -> np.ndarray:
    """Positions of ``frame``'s rows from the highest risk: by grade, then by score."""
    rank = frame["grade"].map({"high": 0, "medium": 1, "low": 2}).to_numpy()
    return np.lexsort((-frame["score"].to_numpy(), rank))
