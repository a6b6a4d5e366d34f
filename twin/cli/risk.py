"""``twin risk``: the explainable risk score of every cell or admin unit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from twin.cli._common import emit, json_option, table, writing
from twin.store import Workspace

__all__ = ["register"]

_LEVELS = ("cell", "community", "street", "district", "10", "9", "8", "7")


def _printable(frame: Any) -> Any:
    """A copy with cells as hex strings (for CSV and JSON)."""
    out = frame.copy()
    if "cell" in out:
        from twin.grid import cells_to_strings

        out["cell"] = cells_to_strings(out["cell"].to_numpy())
    return out


@click.command("risk")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--date", "day", help="Scoring date (YYYY-MM-DD); default the last date with "
              "cases.")
@click.option("--level", default="community", show_default=True,
              type=click.Choice(_LEVELS, case_sensitive=False),
              help="cell (the base resolution), an H3 resolution or an admin level.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="Show the N rows with the highest scores.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write every row with all components to this CSV file.")
@json_option
def risk_cmd(workspace: Path, day: str | None, level: str, top: int, csv_path: Path | None,
             as_json: bool) -> None:
    """Risk score (0-1) and grade (高/中/低风险) of every cell or admin unit on a date.

    The score is a weighted sum of four components, each mapped to [0, 1]: smoothed
    incidence (recent cases per 10,000 residents, shrunk towards the district's rate),
    growth (this week against last week), the share of vulnerable residents and exposure to
    crowded facilities nearby. Weights, the window and the grade thresholds are in the
    workspace's twin.toml under [risk]. Prints the top N with the main reason of each.
    """
    from twin.facts import Facts
    from twin.risk import COMPONENTS, risk

    facts = Facts(Workspace.open(workspace))
    result = risk(facts, level=level.lower(), date=day)
    frame = result.frame
    if csv_path is not None:
        with writing(csv_path):
            _printable(frame).to_csv(csv_path, index=False, encoding="utf-8-sig")
    shown = frame.head(top)
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
                    "score": float(row["score"]), "grade": row["grade"],
                    "components": {c: {"value": float(row[c]),
                                       "normalised": float(row[f"{c}_norm"]),
                                       "contribution": float(row[f"{c}_contrib"])}
                                   for c in COMPONENTS},
                    "explain": {"zh": result.explain(row, "zh"),
                                "en": result.explain(row, "en")}})
        return out

    rows = [row for _, row in shown.iterrows()]
    data = {"level": str(result.level), "date": result.date.isoformat(),
            "window_days": result.window_days, "rows_total": len(frame),
            "grades": result.counts(), "top": [record(r) for r in rows]}

    def text() -> str:
        counts = result.counts()
        head = (f"risk 风险 · level {result.level} · {result.date.isoformat()} · last "
                f"{result.window_days} days · {len(frame):,} rows · 高风险 high "
                f"{counts['high']} · 中风险 medium {counts['medium']} · 低风险 low "
                f"{counts['low']}")
        headers = [key if key == "cell" else "code", *(["名称 name"] if key == "code" else []),
                   "常住人口 residents", "新增 cases", "得分 score", "等级 grade",
                   "主要原因 main reason"]
        body = []
        for r in rows:
            zh, en = r["grade_zh"], r["grade_en"]
            body.append([ident(r), *([r["name"]] if key == "code" else []),
                         f"{float(r['residents']):,.0f}", int(r["cases_recent"]),
                         f"{float(r['score']):.2f}", f"{zh} {en}",
                         result.reason(r, "zh" if lang == "zh" else "en")])
        return head + "\n" + table(body, headers) if body else head + "\n(no rows)"

    emit(data, as_json, text)


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``twin`` group."""
    cli.add_command(risk_cmd)
