"""``twin risk``, ``twin forecast`` and ``twin backtest``: where next week's infections will
be, how many, and how well the model did on this city's own past."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from twin.cli._common import emit, json_option, step_progress, table, writing
from twin.store import Workspace

__all__ = ["register"]

_LEVELS = ("cell", "community", "street", "district", "10", "9", "8", "7")


def _printable(frame: Any) -> Any:
    """A copy with cells as hex strings (for CSV and JSON)."""
    out = frame.copy()
    for column in ("cell", "unit"):
        if column in out and str(out[column].dtype) == "uint64":
            from twin.grid import cells_to_strings

            out[column] = cells_to_strings(out[column].to_numpy())
    return out


def _level(value: str) -> Any:
    value = value.lower()
    return int(value) if value.isdigit() else value


@click.command("risk")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--date", "day", help="Scoring date (YYYY-MM-DD); default the last date with "
              "cases.")
@click.option("--level", default="community", show_default=True,
              type=click.Choice(_LEVELS, case_sensitive=False),
              help="cell (the base resolution), an H3 resolution or an admin level.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="Show the N rows with the highest scores.")
@click.option("--sort", "sort_by", type=click.Choice(["score", "expected"]), default="score",
              show_default=True, help="Order of the rows shown: risk score, or expected "
              "new infections.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write every row with all components to this CSV file.")
@json_option
def risk_cmd(workspace: Path, day: str | None, level: str, top: int, sort_by: str,
             csv_path: Path | None, as_json: bool) -> None:
    """Risk score (0-1) and grade (高/中/低风险) of every cell or admin unit on a date.

    The risk is the forecast of new infections over the next days (see `twin forecast`)
    per resident, weighted for severity by the share of residents aged 65+; each row says how
    much comes from its own cases, its neighbours, the district's trend and vulnerability.
    Grades by expected infections per 10,000 residents: thresholds under [risk.grades] in the
    workspace's twin.toml.
    """
    from twin.facts import Facts
    from twin.risk import COMPONENTS, risk

    facts = Facts(Workspace.open(workspace))
    result = risk(facts, level=_level(level), date=day)
    frame = result.frame
    if csv_path is not None:
        from twin.catalog import neutralise_csv

        with writing(csv_path):
            neutralise_csv(_printable(frame)).to_csv(csv_path, index=False, encoding="utf-8-sig")
    shown = result.top(top, by=sort_by)
    lang = facts.workspace.config.language
    key = result.key

    def ident(row: Any) -> str:
        return str(row[key]) if key == "code" else format(int(row[key]), "x")

    def record(row: Any) -> dict[str, Any]:
        out: dict[str, Any] = {key: ident(row)}
        if "name" in row:
            out["name"] = row["name"]
        out.update({"residents": float(row["residents"]),
                    "cases_recent": int(row["cases_recent"]),
                    "cases_previous": int(row["cases_previous"]),
                    "expected": float(row["expected"]),
                    "interval50": [float(row["lo50"]), float(row["hi50"])],
                    "interval90": [float(row["lo90"]), float(row["hi90"])],
                    "weighted_per_10k": float(row["weighted_per_10k"]),
                    "score": float(row["score"]), "grade": row["grade"],
                    "components": {c: {"expected_cases": float(row[c]),
                                       "contribution": float(row[f"{c}_contrib"])}
                                   for c in COMPONENTS},
                    "explain": {"zh": result.explain(row, "zh"),
                                "en": result.explain(row, "en")}})
        return out

    rows = [row for _, row in shown.iterrows()]
    data = {"level": str(result.level), "date": result.date.isoformat(),
            "horizon_days": result.window_days, "rows_total": len(frame),
            "grades": result.counts(), "sorted_by": sort_by, "top": [record(r) for r in rows]}

    def text() -> str:
        counts = result.counts()
        head = (f"risk 风险 · level {result.level} · {result.date.isoformat()} · next "
                f"{result.window_days} days · {len(frame):,} rows · 高风险 high "
                f"{counts['high']} · 中风险 medium {counts['medium']} · 低风险 low "
                f"{counts['low']}")
        headers = [key if key == "cell" else "code", *(["名称 name"] if key == "code" else []),
                   "常住人口 residents", "近7天 last 7 d", "预计 expected", "90%",
                   "得分 score", "等级 grade", "主要原因 main reason"]
        body = []
        for r in rows:
            zh, en = r["grade_zh"], r["grade_en"]
            body.append([ident(r), *([r["name"]] if key == "code" else []),
                         f"{float(r['residents']):,.0f}", int(r["cases_recent"]),
                         f"{float(r['expected']):.1f}",
                         f"{int(r['lo90'])}–{int(r['hi90'])}",
                         f"{float(r['score']):.2f}", f"{zh} {en}",
                         result.reason(r, "zh" if lang == "zh" else "en")])
        return head + "\n" + table(body, headers) if body else head + "\n(no rows)"

    emit(data, as_json, text)


@click.command("forecast")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--date", "day", help="Forecast date (YYYY-MM-DD): infections up to it are "
              "known; default the last date with cases.")
@click.option("--level", default="district", show_default=True,
              type=click.Choice([*_LEVELS, "city"], case_sensitive=False),
              help="Sum the forecast over these units.")
@click.option("--days", type=click.IntRange(1, 28), default=7, show_default=True,
              help="Days ahead.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="Show the N units with the most expected infections.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write every unit and every day to this CSV file.")
@json_option
def forecast_cmd(workspace: Path, day: str | None, level: str, days: int, top: int,
                 csv_path: Path | None, as_json: bool) -> None:
    """Expected new infections over the next days, with 50 % and 90 % intervals.

    Fitted on this workspace's own history up to the date and nothing after it: the cells'
    own recent infections at several lags, their H3 neighbours one and two steps away, the
    area and district around them, the district's reproduction number (renewal equation),
    and a negative binomial observation model. Prints the city-wide forecast per day and the
    units with the most expected infections; `twin backtest` shows how well it did before.
    """
    from twin.facts import Facts
    from twin.forecast import forecast, summary

    facts = Facts(Workspace.open(workspace))
    lvl = _level(level)
    if lvl == "cell":
        lvl = facts.base
    fc = forecast(facts, day, horizon=days)
    units = fc.by("cell" if lvl == facts.base else lvl).sort_values(
        "expected", ascending=False, kind="stable")
    names: dict[Any, str] = {}
    if lvl in ("community", "street", "district"):
        static = facts.static(lvl, [])
        names = dict(zip(static["code"], static["name"], strict=True))
        units.insert(1, "name", units["unit"].map(names))
    city = fc.daily("city")
    per_day = fc.daily("cell" if lvl == facts.base else lvl)
    if csv_path is not None:
        out = _printable(per_day)
        if names:
            out.insert(1, "name", out["unit"].map(names))
        from twin.catalog import neutralise_csv

        with writing(csv_path):
            neutralise_csv(out).to_csv(csv_path, index=False, encoding="utf-8-sig")
    total = fc.by("city").iloc[0]
    printable = _printable(units.head(top))

    def interval(row: Any, a: str, b: str) -> list[float]:
        return [float(row[a]), float(row[b])]

    data = {**summary(fc), "level": str(lvl),
            "city": {"expected": float(total["expected"]),
                     "interval50": interval(total, "lo50", "hi50"),
                     "interval90": interval(total, "lo90", "hi90"),
                     "days": [{"date": r["date"].isoformat(), "expected": float(r["expected"]),
                               "interval50": interval(r, "lo50", "hi50"),
                               "interval90": interval(r, "lo90", "hi90")}
                              for _, r in city.iterrows()]},
            "top": [{"unit": r["unit"], **({"name": r["name"]} if "name" in r else {}),
                     "expected": float(r["expected"]),
                     "interval50": interval(r, "lo50", "hi50"),
                     "interval90": interval(r, "lo90", "hi90"),
                     "cases_recent": float(r["cases_recent"]),
                     "reproduction": float(r["reproduction"])}
                    for _, r in printable.iterrows()]}

    def text() -> str:
        head = (f"forecast 预测 · {fc.date.isoformat()} · next {days} days · city 全市 "
                f"{float(total['expected']):,.0f} expected 预计 (50% "
                f"{int(total['lo50']):,}–{int(total['hi50']):,}, 90% "
                f"{int(total['lo90']):,}–{int(total['hi90']):,})"
                + ("" if fc.fitted else " · too little history to fit: default coefficients"))
        daily = table([[r["date"].isoformat(), f"{float(r['expected']):,.0f}",
                        f"{int(r['lo50']):,}–{int(r['hi50']):,}",
                        f"{int(r['lo90']):,}–{int(r['hi90']):,}"] for _, r in city.iterrows()],
                      ["日期 date", "预计 expected", "50%", "90%"])
        headers = ["unit", *(["名称 name"] if "name" in printable else []),
                   "近7天 last 7 d", "预计 expected", "50%", "90%", "R"]
        body = [[str(r["unit"]), *([r["name"]] if "name" in printable else []),
                 f"{float(r['cases_recent']):,.0f}", f"{float(r['expected']):,.1f}",
                 f"{int(r['lo50'])}–{int(r['hi50'])}", f"{int(r['lo90'])}–{int(r['hi90'])}",
                 f"{float(r['reproduction']):.2f}"] for _, r in printable.iterrows()]
        return f"{head}\n{daily}\n\n{table(body, headers)}"

    emit(data, as_json, text)


@click.command("backtest")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--start", help="First scoring date (YYYY-MM-DD); default three weeks after "
              "the first infection.")
@click.option("--end", help="Last scoring date; default the last one whose next days are "
              "known.")
@click.option("--step", type=click.IntRange(min=1), default=1, show_default=True,
              help="Days between scoring dates.")
@click.option("--level", default="9", show_default=True,
              type=click.Choice(_LEVELS, case_sensitive=False),
              help="The units ranked.")
@click.option("--budget", type=click.FloatRange(0, 1, min_open=True), default=0.10,
              show_default=True, help="Share of residents the top units may hold.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the table to this CSV file.")
@json_option
def backtest_cmd(workspace: Path, start: str | None, end: str | None, step: int, level: str,
                 budget: float, csv_path: Path | None, as_json: bool) -> None:
    """How well the risk map foresaw the following week's infections, date by date.

    For each date, from what was known that day only: the share of the next days'
    infections caught by the top units up to the residents budget, for the twin's risk and
    for the naive ranking by last week's infections; the forecast's 50 % / 90 % interval
    coverage (units with infections around the date) and its weighted interval score
    against a naive persistence forecast (lower is better).
    """
    from twin.backtest import backtest
    from twin.facts import Facts

    facts = Facts(Workspace.open(workspace))
    with step_progress("backtest 回测", not as_json) as on_step:
        result = backtest(facts, start=start, end=end, level=_level(level), budget=budget,
                          step=step,
                          progress=lambda i, n: on_step(i, n, f"date {i} of {n}"))
    if csv_path is not None:
        from twin.catalog import neutralise_csv

        with writing(csv_path):
            neutralise_csv(result).to_csv(csv_path, index=False, encoding="utf-8-sig")
    mean = result[["capture_twin", "capture_naive", "lead", "coverage50", "coverage90",
                   "wis_twin", "wis_naive"]].mean()
    data = {"level": level, "budget": budget, "dates": result.to_dict(orient="records"),
            "mean": {k: float(v) for k, v in mean.items()},
            "twin_ahead_at_every_date": bool((result["lead"] > 0).all())}

    def text() -> str:
        headers = ["日期 date", "下周病例 next", "本系统 twin", "朴素 naive", "领先 lead",
                   "50% 覆盖 cover", "90% 覆盖 cover", "WIS twin", "WIS naive"]
        body = [[r["date"], f"{r['cases_next']:,.0f}", f"{r['capture_twin']:.1%}",
                 f"{r['capture_naive']:.1%}", f"{r['lead']:+.1f}", f"{r['coverage50']:.0%}",
                 f"{r['coverage90']:.0%}", f"{r['wis_twin']:.2f}", f"{r['wis_naive']:.2f}"]
                for _, r in result.iterrows()]
        body.append(["mean 平均", "", f"{mean['capture_twin']:.1%}",
                     f"{mean['capture_naive']:.1%}", f"{mean['lead']:+.1f}",
                     f"{mean['coverage50']:.0%}", f"{mean['coverage90']:.0%}",
                     f"{mean['wis_twin']:.2f}", f"{mean['wis_naive']:.2f}"])
        head = (f"backtest 回测 · level {level} · top units up to {budget:.0%} of residents · "
                f"share of the next days' infections caught")
        return f"{head}\n{table(body, headers)}"

    emit(data, as_json, text)


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``twin`` group."""
    cli.add_command(risk_cmd)
    cli.add_command(forecast_cmd)
    cli.add_command(backtest_cmd)
