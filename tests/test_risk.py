"""Risk scores: hand-worked answers, properties of the pure scoring, the demo city, the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from twin import Workspace
from twin.cli import risk as risk_cli
from twin.cli._common import TwinGroup
from twin.facts import Facts
from twin.risk import COMPONENTS, COUNTED_STATUSES, RiskError, explain, grade, risk, score

DEFAULTS = {"horizon_days": 7, "vulnerable_weight": 1.0, "min_residents": 50,
            "grades": {"high_per_10k": 20.0, "medium_per_10k": 2.0, "high_min_expected": 1.0,
                       "medium_min_expected": 0.25}}


# == hand-worked answers ======================================================================
def test_known_answer_every_component() -> None:
    """5,000 residents, 10 infections expected (6 own, 5 neighbours, −1 trend), 1,000 aged
    65+ of whom 250 live alone (worked by hand).

    vulnerable share (1000 + 250) / 5000 = 0.25 → weighted 10 × 1.25 = 12.5 → 25 per 10k
    → score 25 / (25 + 20) = 5/9, high (≥ 20 per 10k, ≥ 1 expected). Contributions
    are the parts over 12.5 times 5/9: own 6, neighbours 5, trend −1, vulnerable 2.5.
    """
    frame = pd.DataFrame([{"residents": 5000.0, "expected": 10.0, "own": 6.0,
                           "neighbours": 5.0, "trend": -1.0, "age_65_plus": 1000.0,
                           "elderly_living_alone": 250.0, "cases_recent": 8,
                           "cases_previous": 4, "lo90": 4, "hi90": 18, "reproduction": 0.9}])
    row = score(frame, DEFAULTS).iloc[0]
    s = 5 / 9
    assert row["vulnerable_share"] == pytest.approx(0.25)
    assert row["weighted_per_10k"] == pytest.approx(25.0)
    assert row["expected_per_10k"] == pytest.approx(20.0)
    assert row["score"] == pytest.approx(s)
    for c, part in (("own", 6), ("neighbours", 5), ("trend", -1), ("vulnerable", 2.5)):
        assert row[f"{c}_contrib"] == pytest.approx(s * part / 12.5), c
    assert row["grade"] == "high" and row["grade_zh"] == "高风险"
    assert row["main_reason"] == "own"
    en = explain(row, "en")
    assert en.startswith("high risk, score 0.56: 10.0 new infections expected in the next 7 "
                         "days (90% interval 4–18), 25.0 per 10k severity-weighted; own "
                         "cases: 8 in the last 7 days, 4 in the 7 before → 6.0 expected")
    assert "R = 0.90 (falling) → -1.0 expected (contributes -0.04)" in en
    zh = explain(row, "zh")
    assert zh.startswith("高风险，得分 0.56：未来7天预计新增 10.0 例（90% 区间 4–18）")
    assert "所在区趋势 再生数 R=0.90（下降）" in zh


def test_a_fraction_of_a_case_among_few_residents_is_not_high() -> None:
    """A park with no residents and 0.01 expected: its rate is taken over 50 residents
    (2 per 10k) and it needs 0.25 expected for medium: low. A compound of 40 with 1.2
    expected (300 per 10k over 50) is high."""
    frame = pd.DataFrame([{"residents": 0.0, "expected": 0.01, "own": 0.01},
                          {"residents": 40.0, "expected": 1.2, "own": 1.2}])
    out = score(frame, DEFAULTS)
    assert out["weighted_per_10k"].tolist() == pytest.approx([2.0, 240.0])
    assert out["grade"].tolist() == ["low", "high"]
    assert np.isfinite(out[[f"{c}_contrib" for c in COMPONENTS]].to_numpy(float)).all()


def test_thresholds_are_read_and_checked() -> None:
    frame = pd.DataFrame([{"residents": 10_000.0, "expected": 5.0, "own": 5.0}])
    assert score(frame, DEFAULTS)["grade"].iloc[0] == "medium"  # 5 per 10k
    low_bar = {**DEFAULTS, "grades": {**DEFAULTS["grades"], "high_per_10k": 4.0}}
    assert score(frame, low_bar)["grade"].iloc[0] == "high"
    assert score(frame, low_bar)["score"].iloc[0] == pytest.approx(5 / 9)
    no_weight = {**DEFAULTS, "vulnerable_weight": 0.0}
    old = pd.DataFrame([{**frame.iloc[0].to_dict(), "age_65_plus": 5000.0}])
    assert score(old, no_weight)["weighted_per_10k"].iloc[0] == pytest.approx(5.0)
    assert score(old, DEFAULTS)["weighted_per_10k"].iloc[0] == pytest.approx(7.5)
    with pytest.raises(RiskError, match="medium_per_10k < high_per_10k"):
        score(frame, {**DEFAULTS, "grades": {**DEFAULTS["grades"], "medium_per_10k": 30.0}})
    with pytest.raises(RiskError, match="vulnerable_weight"):
        score(frame, {**DEFAULTS, "vulnerable_weight": -1.0})


# == properties ===============================================================================
unit_rows = st.lists(st.fixed_dictionaries({
    "residents": st.floats(0, 50_000), "own": st.floats(0, 200),
    "neighbours": st.floats(0, 200), "trend_share": st.floats(-0.9, 3),
    "age_65_plus": st.floats(0, 1), "elderly_living_alone": st.floats(0, 1),
}), min_size=1, max_size=8)


def _frame(rows: list[dict[str, float]]) -> pd.DataFrame:
    """Parts that sum to expected; age groups as shares of residents."""
    out = []
    for r in rows:
        base = r["own"] + r["neighbours"]
        trend = base * r["trend_share"]
        out.append({"residents": r["residents"], "own": r["own"],
                    "neighbours": r["neighbours"], "trend": trend, "expected": base + trend,
                    "age_65_plus": r["age_65_plus"] * r["residents"],
                    "elderly_living_alone": r["elderly_living_alone"] * r["age_65_plus"]
                    * r["residents"]})
    return pd.DataFrame(out)


@settings(max_examples=80, deadline=None)
@given(unit_rows)
def test_scores_rank_like_weighted_rates_and_contributions_sum(rows) -> None:
    out = score(_frame(rows), DEFAULTS)
    assert ((out["score"] >= 0) & (out["score"] < 1)).all()
    assert out[[f"{c}_contrib" for c in COMPONENTS]].sum(axis=1).to_numpy() == pytest.approx(
        out["score"].to_numpy(), abs=1e-9)
    order_score = np.argsort(-out["score"].to_numpy(), kind="stable")
    rates = out["weighted_per_10k"].to_numpy()
    assert (np.diff(rates[order_score]) <= 1e-9 * (1 + rates.max())).all()


@settings(max_examples=80, deadline=None)
@given(unit_rows, st.data(), st.floats(0.01, 100))
def test_more_expected_infections_never_lower_the_score(rows, data, more: float) -> None:
    i = data.draw(st.integers(0, len(rows) - 1))
    before = score(_frame(rows), DEFAULTS)
    bigger = [dict(r) for r in rows]
    bigger[i]["own"] += more
    after = score(_frame(bigger), DEFAULTS)
    assert after["score"].iloc[i] >= before["score"].iloc[i] - 1e-12


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 500), min_size=1, max_size=20),
       st.lists(st.floats(0, 50), min_size=20, max_size=20), st.floats(0.1, 50),
       st.floats(1.01, 20))
def test_grades_follow_thresholds(rates, expected, medium: float, factor: float) -> None:
    high = medium * factor
    grades = {"high_per_10k": high, "medium_per_10k": medium, "high_min_expected": 1.0,
              "medium_min_expected": 0.25}
    for x, n, g in zip(rates, expected, grade(np.array(rates), grades,
                                              np.array(expected[:len(rates)])), strict=False):
        want = ("high" if x >= high and n >= 1 else "medium" if x >= medium and n >= 0.25
                else "low")
        assert g == want


# == the demo city, end to end ================================================================
@pytest.fixture(scope="module")
def demo_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    from tests.conftest import fused_demo

    return fused_demo(tmp_path_factory.mktemp("risk_demo"))[0]


def test_demo_city_every_level(demo_ws: Workspace) -> None:
    facts = Facts(demo_ws)
    cases = facts.cases(facts.base)
    counted = cases[cases["status"].isin(COUNTED_STATUSES)]
    last = pd.Timestamp(counted["date"].max()).date()
    start = pd.Timestamp(last - dt.timedelta(days=6))
    recent_total = counted.loc[counted["date"] >= start, "n"].sum()
    before = counted.loc[(counted["date"] < start)
                         & (counted["date"] >= start - pd.Timedelta(days=7)), "n"].sum()
    expected_total = None
    for level in ("cell", 9, "8", 7, "community", "street", "district"):
        table = risk(facts, level=level)
        frame = table.frame
        assert table.date == last
        assert len(frame) == len(facts.read(table.level, columns=["residents"]))
        assert frame["score"].between(0, 1).all()
        rank = frame["grade"].map({"high": 0, "medium": 1, "low": 2})
        assert rank.is_monotonic_increasing
        for _, scores in frame.groupby(rank)["score"]:
            assert scores.is_monotonic_decreasing
        assert frame["cases_recent"].sum() == recent_total, level
        assert frame["cases_previous"].sum() == before, level
        # the forecast is conserved over levels (cells outside every unit aside)
        if expected_total is None:
            expected_total = frame["expected"].sum()
        elif isinstance(table.level, int):
            assert frame["expected"].sum() == pytest.approx(expected_total), level
        else:
            assert frame["expected"].sum() <= expected_total + 1e-6
        assert (frame["own"] + frame["neighbours"] + frame["trend"]).to_numpy() == \
            pytest.approx(frame["expected"].to_numpy(), abs=1e-9)
        bounds = frame[["lo90", "lo50", "median", "hi50", "hi90"]].to_numpy()
        assert (np.diff(bounds, axis=1) >= 0).all(), level
        assert set(frame["grade"]) <= {"high", "medium", "low"}
        assert sum(table.counts().values()) == len(frame)
        assert frame[[f"{c}_contrib" for c in COMPONENTS]].notna().all().all()
        first = table.explain(frame.iloc[0], "en")
        assert first.startswith(frame["grade_en"].iloc[0]) and "contributes" in first
    by_expected = risk(facts, level="community").top(5, by="expected")
    assert by_expected["expected"].is_monotonic_decreasing
    # An earlier date, and errors.
    early = risk(facts, level="community", date="2026-04-05")
    assert early.date == dt.date(2026, 4, 5)
    with pytest.raises(RiskError):
        risk(facts, level="nowhere")
    with pytest.raises(RiskError):
        risk(facts, date="2026-02-30")
    with pytest.raises(RiskError, match="no resolution 5"):
        risk(facts, level=5)


def _cli() -> click.Group:
    group = TwinGroup("twin")
    risk_cli.register(group)
    return group


def test_cli_risk(demo_ws: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    root = str(demo_ws.root)
    text = runner.invoke(_cli(), ["risk", root, "--top", "3"])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0].startswith("risk 风险 · level community")
    assert "得分 score" in lines[1] and "主要原因 main reason" in lines[1]
    assert "预计 expected" in lines[1]
    assert len(lines) == 2 + 1 + 3

    out_csv = tmp_path / "risk.csv"
    as_json = runner.invoke(_cli(), ["risk", root, "--level", "cell", "--top", "5", "--json",
                                     "--csv", str(out_csv), "--date", "2026-04-20"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["level"] == "10" and data["date"] == "2026-04-20" and len(data["top"]) == 5
    top = data["top"][0]
    assert set(top["components"]) == set(COMPONENTS)
    assert top["score"] == pytest.approx(sum(c["contribution"]
                                             for c in top["components"].values()))
    assert "贡献" in top["explain"]["zh"] and "contributes" in top["explain"]["en"]
    written = pd.read_csv(out_csv, encoding="utf-8-sig", dtype={"cell": str})
    assert len(written) == data["rows_total"] and written["cell"].iloc[0] == top["cell"]

    bad = runner.invoke(_cli(), ["risk", root, "--date", "yesterday"])
    assert bad.exit_code == 1 and "not a date" in bad.output
    bad_json = runner.invoke(_cli(), ["risk", root, "--date", "x", "--json"])
    assert json.loads(bad_json.stdout)["error"]["type"] == "RiskError"
    assert runner.invoke(_cli(), ["risk", root, "--level", "parish"]).exit_code == 2


def test_the_top_ten_lists_grades_first() -> None:
    """A park's high rate with half an expected case is medium: it comes after every high."""
    from twin.risk import RiskTable

    frame = score(pd.DataFrame([
        {"residents": 40.0, "expected": 0.5, "own": 0.5},      # 125 per 10k, under 1 case
        {"residents": 5000.0, "expected": 12.0, "own": 12.0},  # 24 per 10k: high
        {"residents": 5000.0, "expected": 30.0, "own": 30.0},  # 60 per 10k: high
    ]), DEFAULTS).sort_values("score", ascending=False)
    table = RiskTable(frame.reset_index(drop=True), "community", dt.date(2026, 4, 1), 7,
                      DEFAULTS)
    assert table.frame["grade"].tolist() == ["medium", "high", "high"]  # by score alone
    assert table.top(3)["expected"].tolist() == [30.0, 12.0, 0.5]
    assert table.top(2, by="expected")["expected"].tolist() == [30.0, 12.0]
    with pytest.raises(RiskError, match="cannot sort"):
        table.top(3, by="name")
