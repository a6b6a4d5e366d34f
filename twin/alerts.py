"""Rule-based alerts: what the cockpit's ticker shows, kept in history.

Each rule looks at the twin for one date and returns alerts with a severity, a place, and a
message in Chinese and English. Thresholds come from ``[alerts]`` in ``twin.toml``. Running the
rules again for the same date raises nothing twice: an alert's key (rule, place, date) is
unique in the history table.

Rules:

- ``stale_layer``: a layer older than its expected refresh interval (``alerts.refresh_hours``);
- ``beds``: hospital beds needed by active cases above ``alerts.bed_occupancy`` of capacity;
- ``high_risk``: an area turning high-risk (needs :mod:`twin.risk`);
- ``low_cover``: a zone with less than ``alerts.min_days_of_cover`` days of any resource (needs
  :mod:`twin.supply` and :mod:`twin.zones`);
- ``downgrade_due``: a zone whose downgrade is due (needs :mod:`twin.zones`).

Rules whose module is not available yet are skipped and reported as such.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from twin import db
from twin.dates import parse_day
from twin.i18n import label
from twin.store import Workspace

__all__ = ["RULES", "Alert", "alert_history", "evaluate", "raise_alerts"]

SEVERITIES = ("critical", "warning", "info")


@dataclass(frozen=True)
class Alert:
    """One alert."""

    rule: str
    severity: str  # critical, warning, info
    place: str  # a layer, a zone, an area code, or "city"
    date: str  # the data date it concerns (YYYY-MM-DD)
    message_zh: str
    message_en: str
    data: dict[str, Any]

    @property
    def key(self) -> str:
        """Unique per rule, place and date."""
        return f"{self.rule}|{self.place}|{self.date}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {**asdict(self), "key": self.key}


def _stale_layers(ws: Workspace, date: dt.date, now: dt.datetime) -> list[Alert]:
    """Layers past their refresh interval (the layer's own in the catalog, else the kind's
    ``[alerts.refresh_hours]``): a warning when due, critical when overdue (twice late)."""
    from twin.catalog import freshness

    alerts = []
    for layer in ws.layers():
        got = freshness(ws, layer.name, now=now)
        if got["state"] not in ("due", "overdue"):
            continue
        age, limit = got["age_hours"], got["refresh_hours"]
        state_zh = "已逾期" if got["state"] == "overdue" else "待更新"
        alerts.append(Alert(
            rule="stale_layer", severity="critical" if got["state"] == "overdue" else "warning",
            place=layer.name, date=date.isoformat(),
            message_zh=f"图层“{layer.name}”{state_zh}：已 {age:.0f} 小时未更新（应每 {limit:g} "
                       "小时更新）",
            message_en=f"layer {layer.name!r} is {got['state']}: {age:.0f} h old (expected "
                       f"every {limit:g} h)",
            data={"age_hours": age, "limit_hours": limit, "state": got["state"]}))
    return alerts


def _beds(ws: Workspace, date: dt.date, now: dt.datetime) -> list[Alert]:
    from twin.facts import Facts

    facts = Facts(ws)
    city = facts.read("district", columns=["fac_hospital_capacity"],
                      start=date - dt.timedelta(days=13), end=date)
    capacity = float(city["fac_hospital_capacity"].sum())
    active = int(city["cases"].sum())
    needed = active * float(ws.config["supply"]["bed_share_of_active_cases"])
    threshold = float(ws.config["alerts"]["bed_occupancy"])
    if capacity <= 0 or needed <= threshold * capacity:
        return []
    share = needed / capacity
    return [Alert(
        rule="beds", severity="critical" if share >= 1 else "warning", place="city",
        date=date.isoformat(),
        message_zh=f"医院床位需求达容量的 {share:.0%}（阈值 {threshold:.0%}）：{needed:,.0f} / "
                   f"{capacity:,.0f} 张",
        message_en=f"hospital beds needed at {share:.0%} of capacity (threshold "
                   f"{threshold:.0%}): {needed:,.0f} of {capacity:,.0f}",
        data={"needed": needed, "capacity": capacity, "active_cases": active})]


def _high_risk(ws: Workspace, date: dt.date, now: dt.datetime) -> list[Alert]:
    from twin.facts import Facts
    from twin.risk import reason, risk

    facts = Facts(ws)
    today = risk(facts, level="community", date=date).frame.set_index("code")
    before = risk(facts, level="community", date=date - dt.timedelta(days=1)).frame
    was_high = set(before.loc[before["grade"] == "high", "code"])
    turned = today[(today["grade"] == "high") & ~today.index.isin(was_high)]
    return [Alert(
        rule="high_risk", severity="critical", place=str(code), date=date.isoformat(),
        message_zh=f"{row['name']}转为高风险（得分 {row['score']:.2f}）：{reason(row, 'zh')}",
        message_en=f"{row['name']} turned high-risk (score {row['score']:.2f}): "
                   f"{reason(row, 'en')}",
        data={"score": round(float(row["score"]), 4), "code": str(code)})
        for code, row in turned.iterrows()]


def _downgrades_due(ws: Workspace, date: dt.date, now: dt.datetime) -> list[Alert]:
    from twin.zones import downgrades

    return [Alert(
        rule="downgrade_due", severity="info", place=d["zone_id"], date=date.isoformat(),
        message_zh=f"{d['name']}（{d['tier_zh']}）可降为{d['suggested_tier_zh']}：{d['rule_zh']}",
        message_en=f"{d['name']} ({d['tier']}) may go down to {d['suggested_tier']}: "
                   f"{d['rule']}",
        data={k: d[k] for k in ("zone_id", "version", "tier", "suggested_tier",
                                "last_infection", "became_tier_on", "counted_from",
                                "required_days", "reached_on")})
        for d in downgrades(ws, date)]


def _low_cover(ws: Workspace, date: dt.date, now: dt.datetime) -> list[Alert]:
    from twin.supply import workspace_gaps
    from twin.zones import active_areas

    zones = active_areas(ws)
    if not zones:
        return []
    limit = float(ws.config["alerts"]["min_days_of_cover"])
    gaps = workspace_gaps(ws, level="zone", zones=zones)
    short = gaps[(gaps["area"] != "city") & (gaps["days_of_cover"] < limit)
                 & (gaps["daily_demand"] > 0)]
    alerts = []
    for area, rows in short.groupby("area", sort=True):
        worst = rows.sort_values("days_of_cover").iloc[0]
        names_zh = "、".join(label(r, "zh") for r in rows["resource"])
        names_en = ", ".join(label(r, "en") for r in rows["resource"])
        alerts.append(Alert(
            rule="low_cover", severity="critical" if worst["days_of_cover"] < limit / 2
            else "warning", place=str(area), date=date.isoformat(),
            message_zh=f"区域 {area} 物资保障不足 {limit:g} 天：{names_zh}"
                       f"（最少 {worst['days_of_cover']:.1f} 天）",
            message_en=f"zone {area} has less than {limit:g} day(s) of {names_en} "
                       f"(lowest {worst['days_of_cover']:.1f} days)",
            data={"resources": rows["resource"].tolist(),
                  "days_of_cover": [round(float(v), 2) for v in rows["days_of_cover"]]}))
    return alerts


RuleFunction = Callable[[Workspace, dt.date, dt.datetime], list[Alert]]

#: name -> (rule, module it needs or None)
RULES: dict[str, tuple[RuleFunction, str | None]] = {
    "stale_layer": (_stale_layers, None),
    "beds": (_beds, None),
    "high_risk": (_high_risk, "twin.risk"),
    "downgrade_due": (_downgrades_due, "twin.zones"),
    "low_cover": (_low_cover, "twin.supply"),
}


def evaluate(ws: Workspace, date: dt.date | str | None = None, *,
             now: dt.datetime | None = None) -> tuple[list[Alert], list[str]]:
    """Run every rule for ``date`` (default: the last date with cases); return the alerts
    and the names of rules skipped because their module is not available."""
    now = now or dt.datetime.now(dt.UTC)
    if date is None:
        date = _last_case_date(ws) or now.date()
    else:
        date = parse_day(date, "data date of the alerts")
    alerts, skipped = [], []
    for name, (rule, needs) in RULES.items():
        if needs is not None and importlib.util.find_spec(needs) is None:
            skipped.append(name)
            continue
        alerts.extend(rule(ws, date, now))
    return alerts, skipped


def _last_case_date(ws: Workspace) -> dt.date | None:
    from twin.facts import Facts, FactsNotFoundError

    try:
        daily = Facts(ws).daily()
    except FactsNotFoundError:
        return None
    return daily.index.max().date() if len(daily) else None


def raise_alerts(ws: Workspace, alerts: list[Alert]) -> list[Alert]:
    """Keep ``alerts`` in the history; return those that are new."""
    new = []
    with ws.connect() as conn, db.write_transaction(conn, timeout=ws.config.busy_timeout_s):
        for alert in alerts:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO alerts (key, rule, severity, place, data_date, "
                "message_zh, message_en, data, raised_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (alert.key, alert.rule, alert.severity, alert.place, alert.date,
                 alert.message_zh, alert.message_en, json.dumps(alert.data, ensure_ascii=False),
                 dt.datetime.now(dt.UTC).isoformat(timespec="seconds")))
            if cursor.rowcount:
                new.append(alert)
    return new


def alert_history(ws: Workspace, since: dt.date | str | None = None) -> list[dict[str, Any]]:
    """Alerts kept in history, newest first, optionally from data date ``since`` on."""
    since = parse_day(since, "first data date of the history").isoformat() if since else None
    with ws.connect() as conn:
        rows = conn.execute("SELECT * FROM alerts WHERE data_date >= ? ORDER BY data_date DESC, "
                            "id DESC", (since or "",)).fetchall()
    return [{**dict(r), "data": json.loads(r["data"])} for r in rows]
