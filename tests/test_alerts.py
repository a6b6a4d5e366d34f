"""Alert rules, their thresholds from twin.toml, de-duplication and history."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.conftest import fused_demo, run_twin
from twin import Workspace
from twin.alerts import alert_history, evaluate, raise_alerts
from twin.facts import Facts


@pytest.fixture(scope="module")
def demo_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return fused_demo(tmp_path_factory.mktemp("alerts"), seed=3)[0]


def _with_alert_settings(ws: Workspace, **values: float) -> Workspace:
    text = ws.config_path.read_text(encoding="utf-8")
    for key, value in values.items():
        line = next(line for line in text.splitlines() if line.startswith(f"{key} = "))
        text = text.replace(line, f"{key} = {value}")
    ws.config_path.write_text(text, encoding="utf-8")
    return Workspace.open(ws.root)


def test_stale_layers_follow_refresh_hours(demo_ws: Workspace) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    alerts, _ = evaluate(demo_ws, "2026-04-30", now=soon)
    assert [a for a in alerts if a.rule == "stale_layer"] == []
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=30)
    alerts, _ = evaluate(demo_ws, "2026-04-30", now=later)
    stale = {a.place for a in alerts if a.rule == "stale_layer"}
    assert stale == {"cases", "stocks"}  # 24 h; the other kinds allow weeks or a year
    message = next(a for a in alerts if a.place == "cases")
    assert "已 30 小时未更新" in message.message_zh and "30 h old" in message.message_en


def test_a_layers_own_refresh_interval_overrides_its_kinds(demo_ws: Workspace) -> None:
    from twin.catalog import set_meta

    set_meta(demo_ws, "cases", actor="gis1", refresh_hours=100.0)
    try:
        now = dt.datetime.now(dt.UTC)
        alerts, _ = evaluate(demo_ws, "2026-04-30", now=now + dt.timedelta(hours=30))
        assert "cases" not in {a.place for a in alerts if a.rule == "stale_layer"}
        alerts, _ = evaluate(demo_ws, "2026-04-30", now=now + dt.timedelta(hours=150))
        due = next(a for a in alerts if a.rule == "stale_layer" and a.place == "cases")
        assert (due.severity, due.data["state"]) == ("warning", "due")
        alerts, _ = evaluate(demo_ws, "2026-04-30", now=now + dt.timedelta(hours=250))
        late = next(a for a in alerts if a.rule == "stale_layer" and a.place == "cases")
        assert (late.severity, late.data["state"]) == ("critical", "overdue")
        assert "已逾期" in late.message_zh and "overdue" in late.message_en
    finally:
        set_meta(demo_ws, "cases", actor="gis1", refresh_hours=None)


def test_bed_occupancy_threshold(demo_ws: Workspace, tmp_path: Path) -> None:
    day = dt.date(2026, 4, 30)
    week2 = Facts(demo_ws).read("district", columns=["fac_hospital_capacity"],
                                start=day - dt.timedelta(days=13), end=day)
    needed = week2["cases"].sum() * 0.05
    capacity = week2["fac_hospital_capacity"].sum()
    share = needed / capacity
    assert 0 < share < 1
    below = _with_alert_settings(demo_ws, bed_occupancy=round(min(1.0, share * 1.5), 6))
    assert [a for a in evaluate(below, day)[0] if a.rule == "beds"] == []
    above = _with_alert_settings(demo_ws, bed_occupancy=round(share / 2, 6))
    [alert] = [a for a in evaluate(above, day)[0] if a.rule == "beds"]
    assert alert.data["needed"] == pytest.approx(needed)
    assert alert.data["capacity"] == pytest.approx(capacity)
    assert alert.severity == "warning"
    _with_alert_settings(demo_ws, bed_occupancy=0.85)


def test_alerts_are_kept_once(demo_ws: Workspace) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=30)
    alerts, _ = evaluate(demo_ws, "2026-04-29", now=later)
    first = raise_alerts(demo_ws, alerts)
    assert first and len(first) == len(alerts)
    assert raise_alerts(demo_ws, alerts) == []  # same rule, place and date: nothing new
    history = alert_history(demo_ws, "2026-04-29")
    assert {h["key"] for h in history} >= {a.key for a in alerts}
    assert all(h["data_date"] >= "2026-04-29" for h in history)


def test_cli(demo_ws: Workspace) -> None:
    result = run_twin("alerts", str(demo_ws.root), "--date", "2026-04-30", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"new", "skipped_rules", "history"}
    text = run_twin("alerts", str(demo_ws.root), "--no-evaluate")
    assert text.returncode == 0 and "预警" in text.stdout


def test_zone_rules_low_cover_and_downgrade(demo_ws: Workspace) -> None:
    from twin.zones import Zones, propose

    propose(demo_ws, "2026-04-30")
    zones = Zones(demo_ws)
    lockdown = next(z for z in zones.list(status="proposed") if z.tier == "lockdown")
    zones.save(lockdown.zone_id, lockdown.version, status="active", author="planner",
               reason="approved by the command centre", valid_from="2026-04-30")
    ws = _with_alert_settings(demo_ws, min_days_of_cover=1000.0)
    alerts, skipped = evaluate(ws, "2026-04-30")
    assert skipped == []
    [low] = [a for a in alerts if a.rule == "low_cover" and a.place == lockdown.zone_id]
    assert "water" in low.data["resources"] and "物资保障不足" in low.message_zh
    assert "饮用水" in low.message_zh and "water" in low.message_en
    # Long after the last infection inside, the lockdown may go down to control.
    later, _ = evaluate(ws, "2026-06-30")
    [due] = [a for a in later if a.rule == "downgrade_due" and a.place == lockdown.zone_id]
    assert due.data["suggested_tier"] == "control"
    assert "连续7天无新增感染者" in due.message_zh
    assert [a for a in alerts if a.rule == "downgrade_due"] == []  # not yet on the 30th
    _with_alert_settings(demo_ws, min_days_of_cover=1.0)


def test_area_turning_high_risk(demo_ws: Workspace) -> None:
    """With a low threshold, the communities that cross it on a date raise one alert each."""
    from twin.facts import Facts
    from twin.risk import risk

    ws = _with_alert_settings(demo_ws, high_per_10k=10.0)
    facts = Facts(ws)

    def high(day: dt.date) -> set[str]:
        frame = risk(facts, level="community", date=day).frame
        return set(frame.loc[frame["grade"] == "high", "code"])

    # the first date of the rising outbreak on which some community turns high
    day, expected = dt.date(2026, 3, 20), set()
    while not expected and day < dt.date(2026, 4, 30):
        day += dt.timedelta(days=1)
        expected = high(day) - high(day - dt.timedelta(days=1))
    assert expected, "the threshold should make some community turn high on some date"
    alerts, _ = evaluate(ws, day)
    assert {a.place for a in alerts if a.rule == "high_risk"} == expected
    assert all("转为高风险" in a.message_zh for a in alerts if a.rule == "high_risk")
    _with_alert_settings(demo_ws, high_per_10k=20.0)
