"""Risk scores: hand-worked answers, properties of the pure scoring, the demo city, the CLI."""

from __future__ import annotations

import datetime as dt
import json
import math
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
from twin.risk import (
    COMPONENTS,
    COUNTED_STATUSES,
    CROWDED_KINDS,
    EXPOSURE_HALF,
    GROWTH_FULL,
    INCIDENCE_HALF,
    VULNERABLE_FULL,
    RiskError,
    explain,
    grade,
    prior_rates,
    risk,
    score,
)

DEFAULTS = {"window_days": 7, "prior_residents": 2000,
            "weights": {"incidence": 0.5, "growth": 0.2, "vulnerable": 0.15, "exposure": 0.15},
            "grades": {"high": 0.6, "medium": 0.3}}


def units(rows: list[dict[str, float]], district: str | list[str] = "D") -> pd.DataFrame:
    """A frame of base units with prior rates from their districts."""
    frame = pd.DataFrame(rows)
    for column in ("age_65_plus", "elderly_living_alone", "exposure", "cases_previous"):
        if column not in frame:
            frame[column] = 0.0
    frame["district_code"] = district
    return frame.join(prior_rates(frame))


# == hand-worked answers ======================================================================
def test_known_answer_every_component() -> None:
    """8,000 residents, 50 cases this week and none before, prior 0 (worked by hand).

    rate_7 = rate_14 = 50 / (8000 + 2000) × 10⁴ = 50 → incidence (50 + 50/2) / 2 = 37.5,
    normalised 37.5 / 87.5; growth 51 → 1; vulnerable (1600 + 400) / 8000 = 0.25 → 0.5;
    exposure 2 → 2 / (2 + 2) = 0.5. Score 0.5·3/7 + 0.2 + 0.15·0.5 + 0.15·0.5 = 0.5643.
    """
    frame = pd.DataFrame([{"residents": 8000.0, "cases_recent": 50, "cases_previous": 0,
                           "prior_rate_recent": 0.0, "prior_rate_2w": 0.0,
                           "age_65_plus": 1600.0, "elderly_living_alone": 400.0,
                           "exposure": 2.0}])
    row = score(frame, DEFAULTS).iloc[0]
    assert INCIDENCE_HALF == 50 and GROWTH_FULL == 4 and VULNERABLE_FULL == 0.5
    assert EXPOSURE_HALF == 2
    assert row["incidence"] == pytest.approx(37.5)
    assert row["incidence_norm"] == pytest.approx(3 / 7)
    assert row["growth"] == pytest.approx(51) and row["growth_norm"] == 1
    assert row["vulnerable"] == pytest.approx(0.25) and row["vulnerable_norm"] == 0.5
    assert row["exposure_norm"] == pytest.approx(0.5)
    assert row["incidence_contrib"] == pytest.approx(0.5 * 3 / 7)
    assert row["score"] == pytest.approx(0.5 * 3 / 7 + 0.2 + 0.075 + 0.075)
    assert row["grade"] == "medium" and row["grade_zh"] == "中风险"
    assert row["main_reason"] == "incidence"
    en = explain(row, "en")
    assert en.startswith("medium risk, score 0.56: incidence 37.5 per 10k")
    assert "contributes 0.21" in en and "growth ×51.00" in en and "vulnerable 25%" in en
    zh = explain(row, "zh")
    assert zh.startswith("中风险，得分 0.56：发病率 每万人 37.5") and "贡献 0.21" in zh


def test_known_ranking_with_district_prior() -> None:
    """Three compounds of one district, ranked by hand.

    District: 10,010 residents, 41 cases this week, 51 in two weeks, so r_7 = 41/10010 and
    r_14 = 51/10010. A (8,000 residents, 40 + 10 cases) is the outbreak: ~43 per 10k.
    B (10 residents, 1 case) has the highest raw rate (1,000 per 10k) but is shrunk to
    (1 + 2000·r_7)/2010 ≈ 45.7 and (1 + 2000·r_14)/2010 ≈ 55.7 → 36.8 per 10k.
    C (2,000 residents, no case) has only the prior: (2000·r_7/4000 + 2000·r_14/4000/2)/2.
    """
    frame = units([
        {"residents": 8000.0, "cases_recent": 40, "cases_previous": 10},
        {"residents": 10.0, "cases_recent": 1, "cases_previous": 0},
        {"residents": 2000.0, "cases_recent": 0, "cases_previous": 0},
    ])
    out = score(frame, DEFAULTS)
    r7, r14 = 41 / 10010, 51 / 10010

    def incidence(res: float, c7: int, c14: int) -> float:
        return ((c7 + 2000 * r7) / (res + 2000) * 1e4
                + (c14 + 2000 * r14) / (res + 2000) * 1e4 / 2) / 2

    expected = [incidence(8000, 40, 50), incidence(10, 1, 1), incidence(2000, 0, 0)]
    assert out["incidence"].tolist() == pytest.approx(expected)
    assert expected[0] > expected[1] > expected[2]
    growth = [math.log2(41 / 11) / 2, math.log2(2) / 2, 0.0]
    assert out["growth_norm"].tolist() == pytest.approx(growth)
    expected_score = [0.5 * i / (i + 50) + 0.2 * g for i, g in zip(expected, growth,
                                                                   strict=True)]
    assert out["score"].tolist() == pytest.approx(expected_score)
    assert list(np.argsort(-out["score"].to_numpy())) == [0, 1, 2]


def test_no_residents_uses_the_prior() -> None:
    """A unit without residents: incidence = prior + cases/α per 10k, no NaN, vulnerable 0."""
    frame = pd.DataFrame([{"residents": 0.0, "cases_recent": 1, "cases_previous": 0,
                           "prior_rate_recent": 0.001, "prior_rate_2w": 0.002}])
    row = score(frame, DEFAULTS).iloc[0]
    rate7 = 0.001 * 1e4 + 1 / 2000 * 1e4  # 10 + 5
    rate14 = 0.002 * 1e4 + 1 / 2000 * 1e4  # 20 + 5
    assert row["incidence"] == pytest.approx((rate7 + rate14 / 2) / 2)
    assert row["vulnerable"] == 0 and row["exposure"] == 0
    assert np.isfinite(row[[f"{c}_contrib" for c in COMPONENTS]].to_numpy(float)).all()


def test_prior_rates_fall_back_to_the_city() -> None:
    frame = pd.DataFrame({"residents": [1000.0, 0.0, 500.0], "cases_recent": [4, 2, 0],
                          "cases_previous": [0, 0, 3], "district_code": ["A", "B", None]})
    prior = prior_rates(frame)
    # A has its own rate; B has no residents and the third no district: the city's rate.
    assert prior["prior_rate_recent"].tolist() == pytest.approx([4 / 1000, 6 / 1500, 6 / 1500])
    assert prior["prior_rate_2w"].tolist() == pytest.approx([4 / 1000, 9 / 1500, 9 / 1500])


def test_weights_are_normalised_and_thresholds_are_read() -> None:
    frame = pd.DataFrame([{"residents": 100.0, "cases_recent": 3, "cases_previous": 0,
                           "prior_rate_recent": 0.0, "prior_rate_2w": 0.0}])
    doubled = {**DEFAULTS, "weights": {k: 2 * v for k, v in DEFAULTS["weights"].items()}}
    assert score(frame, doubled)["score"].iloc[0] == pytest.approx(
        score(frame, DEFAULTS)["score"].iloc[0])
    only_growth = {**DEFAULTS, "weights": {"incidence": 0, "growth": 1, "vulnerable": 0,
                                           "exposure": 0}, "grades": {"high": 0.9,
                                                                      "medium": 0.5}}
    row = score(frame, only_growth).iloc[0]
    assert row["score"] == pytest.approx(1.0) and row["grade"] == "high"
    with pytest.raises(RiskError):
        score(frame, {**DEFAULTS, "weights": dict.fromkeys(COMPONENTS, 0)})


# == properties ===============================================================================
unit_rows = st.lists(st.fixed_dictionaries({
    "residents": st.floats(0, 50_000), "cases_recent": st.integers(0, 500),
    "cases_previous": st.integers(0, 500), "age_65_plus": st.floats(0, 1),
    "elderly_living_alone": st.floats(0, 1), "exposure": st.floats(0, 50),
}), min_size=1, max_size=8)
weights = st.fixed_dictionaries({c: st.floats(0, 10) for c in COMPONENTS}).filter(
    lambda w: sum(w.values()) > 0.01)


def _scaled(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    """Age groups as shares of residents (they never exceed residents)."""
    return [{**r, "age_65_plus": r["age_65_plus"] * r["residents"],
             "elderly_living_alone": r["elderly_living_alone"] * r["age_65_plus"]
             * r["residents"]} for r in rows]


@settings(max_examples=60, deadline=None)
@given(unit_rows, weights, st.lists(st.sampled_from("AB"), min_size=8, max_size=8))
def test_score_is_always_in_unit_interval(rows: list[dict[str, float]],
                                          w: dict[str, float], districts: list[str]) -> None:
    frame = units(_scaled(rows), districts[:len(rows)])
    out = score(frame, {**DEFAULTS, "weights": w})
    assert ((out["score"] >= 0) & (out["score"] <= 1)).all()
    for c in COMPONENTS:
        assert ((out[f"{c}_norm"] >= 0) & (out[f"{c}_norm"] <= 1)).all()
    assert out[[f"{c}_contrib" for c in COMPONENTS]].sum(axis=1).to_numpy() == pytest.approx(
        out["score"].to_numpy())


@settings(max_examples=60, deadline=None)
@given(unit_rows, st.data(), st.integers(1, 200),
       st.lists(st.sampled_from("AB"), min_size=8, max_size=8))
def test_adding_recent_cases_never_lowers_the_score(rows: list[dict[str, float]],
                                                    data: st.DataObject, added: int,
                                                    districts: list[str]) -> None:
    """More cases in the recent window (district rate recomputed) never lower a score."""
    i = data.draw(st.integers(0, len(rows) - 1))
    before = score(units(_scaled(rows), districts[:len(rows)]), DEFAULTS)
    more = [dict(r) for r in rows]
    more[i]["cases_recent"] += added
    after = score(units(_scaled(more), districts[:len(rows)]), DEFAULTS)
    assert after["score"].iloc[i] >= before["score"].iloc[i] - 1e-12
    assert after["incidence"].iloc[i] > before["incidence"].iloc[i]


@settings(max_examples=60, deadline=None)
@given(st.floats(1, 50), st.integers(2, 200), st.floats(1, 20), st.floats(0, 0.5))
def test_shrinkage_one_case_among_few_scores_below_many_among_many(
        few: float, many: int, background_k: float, elderly: float) -> None:
    """1 case among ``few`` residents vs ``many`` cases among ``many × few``: same raw rate.

    A case-free background (``background_k`` × 1000 residents) keeps the district rate below
    the raw rate, so shrinkage pulls the small unit down more.
    """
    background = 1000 * background_k
    rows = [{"residents": few, "cases_recent": 1, "age_65_plus": elderly * few},
            {"residents": few * many, "cases_recent": many,
             "age_65_plus": elderly * few * many},
            {"residents": background, "cases_recent": 0,
             "age_65_plus": elderly * background}]
    frame = units(rows)
    assert frame["prior_rate_recent"].iloc[0] < 1 / few
    out = score(frame, DEFAULTS)
    assert out["incidence"].iloc[0] < out["incidence"].iloc[1]
    assert out["score"].iloc[0] < out["score"].iloc[1]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=20), st.floats(0.01, 0.98),
       st.floats(0.01, 0.99))
def test_grades_follow_thresholds(scores: list[float], medium: float, gap: float) -> None:
    high = medium + gap * (1 - medium)
    grades = {"high": high, "medium": medium}
    for s, g in zip(scores, grade(np.array(scores), grades), strict=True):
        assert g == ("high" if s >= high else "medium" if s >= medium else "low")


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
    window = demo_ws.config["risk"]["window_days"]
    start = pd.Timestamp(last - dt.timedelta(days=window - 1))
    recent_total = counted.loc[counted["date"] >= start, "n"].sum()
    before = counted.loc[(counted["date"] < start)
                         & (counted["date"] >= start - pd.Timedelta(days=window)), "n"].sum()
    for level in ("cell", 9, "8", 7, "community", "street", "district"):
        table = risk(facts, level=level)
        frame = table.frame
        assert table.date == last
        assert len(frame) == len(facts.read(table.level, columns=["residents"],
                                            start=start - pd.Timedelta(days=window), end=last))
        assert frame["score"].between(0, 1).all()
        assert frame["score"].is_monotonic_decreasing
        assert frame["cases_recent"].sum() == recent_total, level
        assert frame["cases_previous"].sum() == before, level
        assert set(frame["grade"]) <= {"high", "medium", "low"}
        assert sum(table.counts().values()) == len(frame)
        assert frame[[f"{c}_contrib" for c in COMPONENTS]].notna().all().all()
        first = table.explain(frame.iloc[0], "en")
        assert first.startswith(frame["grade_en"].iloc[0]) and "contributes" in first
    # Communities shrink towards their district's rate; districts towards the city's.
    base = risk(facts, level="cell").frame
    communities = risk(facts, level="community").frame
    rates = base.groupby("district_code")["prior_rate_recent"].first()
    district_of = facts.static("community", ["residents"]).set_index("code")["parent_code"]
    street_parent = facts.static("street", ["residents"]).set_index("code")["parent_code"]
    expected = communities["code"].map(district_of).map(street_parent).map(rates)
    assert communities["prior_rate_recent"].to_numpy() == pytest.approx(expected.to_numpy())
    city = risk(facts, level="district").frame["prior_rate_recent"]
    assert city.to_numpy() == pytest.approx(recent_total / base["residents"].sum())
    # A cell holding a crowded facility is exposed to it.
    static = facts.static(facts.base, [f"fac_{k}_n" for k in CROWDED_KINDS])
    crowded = static.loc[static[[f"fac_{k}_n" for k in CROWDED_KINDS if k != "pharmacy"]]
                         .sum(axis=1) > 0, "cell"]
    exposed = base.set_index("cell").loc[crowded.to_numpy(), "exposure"]
    assert (exposed >= 0.25).all() and len(exposed) > 0
    # An earlier date, and errors.
    early = risk(facts, level="community", date="2026-04-05")
    assert early.date == dt.date(2026, 4, 5)
    with pytest.raises(RiskError):
        risk(facts, level="nowhere")
    with pytest.raises(RiskError):
        risk(facts, date="2026-02-30")


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
