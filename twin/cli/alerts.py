"""``twin alerts``: evaluate the alert rules and show the alert history."""

from __future__ import annotations

from pathlib import Path

import click

from twin.cli._common import emit, json_option, table
from twin.store import Workspace

__all__ = ["register"]


@click.command("alerts")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--date", "day", help="Evaluate the rules for this data date (default: the "
                                     "last date with cases).")
@click.option("--since", help="Show the history from this data date on (YYYY-MM-DD).")
@click.option("--no-evaluate", is_flag=True, help="Only show the history.")
@json_option
def alerts_cmd(workspace: Path, day: str | None, since: str | None, no_evaluate: bool,
               as_json: bool) -> None:
    """Raise alerts by rule (stale layers, hospital beds, high-risk areas, low cover, due
    downgrades) and list the alert history, newest first.

    Thresholds are in [alerts] of twin.toml. An alert is kept once per rule, place and date.
    """
    from twin.alerts import alert_history, evaluate, raise_alerts

    ws = Workspace.open(workspace)
    new, skipped = [], []
    if not no_evaluate:
        alerts, skipped = evaluate(ws, day)
        new = raise_alerts(ws, alerts)
    history = alert_history(ws, since)
    emit({"new": [a.to_dict() for a in new], "skipped_rules": skipped, "history": history},
         as_json, lambda: "\n".join(
             [f"{len(new)} new alert(s) 新预警"
              + (f"; rules not available yet: {', '.join(skipped)}" if skipped else ""), "",
              table([(h["data_date"], h["severity"], h["rule"], h["place"], h["message_zh"],
                      h["message_en"]) for h in history],
                    ["date", "severity", "rule", "place", "message_zh", "message_en"])
              if history else "no alerts 无预警"]))


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``twin`` group."""
    cli.add_command(alerts_cmd)
