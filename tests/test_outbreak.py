"""The independent outbreak simulator (tests/outbreak.py) on the small demo city."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyogrio
import pytest

from tests.conftest import fused_demo
from tests.outbreak import load_city, run_outbreak, simulate_outbreak
from twin import Workspace
from twin.demo.cases import LAST_DATE
from twin.facts import Facts
from twin.schema import INFECTION_STATUSES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict[str, Any]]:
    """A copy of the fused small demo whose cases were replaced by a simulated outbreak."""
    ws, _ = fused_demo(tmp_path_factory.mktemp("outbreak"))
    return ws, simulate_outbreak(ws.root, seed=0)


def _window() -> list[str]:
    return [(LAST_DATE - dt.timedelta(days=i)).isoformat() for i in range(59, -1, -1)]


def test_ingest_publishes_a_new_cases_version_without_errors(simulated):
    ws, summary = simulated
    report = summary["ingest"]
    assert report["status"] == "published"
    assert [p for p in report["problems"] if p["severity"] == "error"] == []
    assert summary["fuse"] == "cases-updated"
    versions = ws.versions("cases")
    assert [v.version for v in versions] == [1, 2]
    current = ws.version("cases")
    assert current.version == 2 == summary["cases_version"]
    assert current.source_name == Path(summary["source"]).name
    assert current.row_count == summary["total_cases"]


def test_facts_hold_the_simulated_cases_per_day(simulated):
    ws, summary = simulated
    facts = Facts(ws)
    daily = facts.daily("district")
    per_day = daily.sum(axis=1)
    per_day.index = [d.date().isoformat() for d in per_day.index]
    expected = pd.Series(summary["cases_per_day"])
    assert list(expected.index) == _window()
    assert per_day.reindex(expected.index, fill_value=0).tolist() == expected.tolist()
    infections = daily[list(INFECTION_STATUSES)].sum(axis=1)
    infections.index = per_day.index
    assert (infections.reindex(expected.index, fill_value=0).tolist()
            == list(summary["infection_cases_per_day"].values()))
    # The file as ingest read it, counted without the twin.
    source = pyogrio.read_dataframe(summary["source"])
    assert len(source) == summary["total_cases"] == sum(summary["cases_per_day"].values())
    counted = source["report_date"].astype(str).str[:10].value_counts()
    assert counted.reindex(expected.index, fill_value=0).tolist() == expected.tolist()
    # Conserved by the rollups: every level holds every case.
    for level in (facts.base, 7, "community", "district"):
        assert int(facts.cases(level)["n"].sum()) == summary["total_cases"], level


def test_dates_and_size_fit_the_demo(simulated):
    _, summary = simulated
    assert summary["last_date"] == LAST_DATE.isoformat()
    assert summary["first_date"] >= _window()[0]
    assert 0.75 * 600 <= summary["total_cases"] <= 1.25 * 600
    statuses = summary["cases_by_status"]
    assert statuses["confirmed"] > 0 and statuses["asymptomatic"] > 0
    assert summary["infection_cases"] >= 0.85 * summary["total_cases"]
    assert 0 < statuses["suspected"] + statuses["close_contact"] < 0.15 * summary["total_cases"]


def test_cases_appear_in_more_than_one_district(simulated):
    ws, summary = simulated
    districts = Facts(ws).read("district", columns=[])
    assert (districts["cases"] > 0).sum() >= 2
    assert summary["routes"]["work"] > 0  # commuting carried infections between districts


def test_a_daily_curve_rises_and_then_falls(simulated):
    ws, _ = simulated
    cases = Facts(ws).cases("district")
    cases = cases[cases["status"].isin(INFECTION_STATUSES)]
    dates = pd.to_datetime(_window())
    weekly = (cases.pivot_table(index="date", columns="code", values="n", aggfunc="sum")
              .reindex(dates, fill_value=0).fillna(0).rolling(7).sum().iloc[6:])
    weekly["city"] = weekly.sum(axis=1)
    turned = []
    for unit in weekly.columns:
        series = weekly[unit].to_numpy()
        peak = int(np.argmax(series))
        before, after = series[: peak + 1].min(), series[peak:].min()
        if 0 < peak < len(series) - 1 and series[peak] >= 20 and max(before, after) <= 0.6 * \
                series[peak]:
            turned.append(unit)
    assert turned, weekly.iloc[::7].to_string()


def test_observation_model(simulated):
    ws, _ = simulated
    cases = ws.read("cases")
    confirmed = cases[cases["status"] == "confirmed"]
    delay = (confirmed["report_date"] - confirmed["onset_date"]).dt.days
    assert delay.between(1, 4).all()
    assert cases.loc[cases["status"] == "asymptomatic", "onset_date"].isna().all()
    assert cases["id"].is_unique
    assert set(cases["age_band"]) <= {"0-14", "15-34", "35-64", "65+"}


def test_deterministic_for_a_seed(simulated):
    ws, summary = simulated
    city = load_city(ws)
    again, info = run_outbreak(city, seed=0)
    published = ws.read("cases").sort_values("id")
    assert sorted(again["id"]) == published["id"].tolist()
    assert info["scale"] == summary["scale"]
    counts = again.groupby("report_date").size()
    assert counts.sum() == summary["total_cases"]
    assert all(summary["cases_per_day"][d] == n for d, n in counts.items())
    other, _ = run_outbreak(city, seed=1)
    assert set(other["id"]).isdisjoint(again["id"])
    assert other.groupby("report_date").size().to_dict() != counts.to_dict()
