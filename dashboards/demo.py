"""The demo chain after fusion: risk, zones, gaps, dispatch, alerts and a demo viewer account.

:func:`prepare_demo` is a plain function so that ``twin demo`` can call it after it ingests and
fuses the demo city, before it serves the cockpit. No Panel here.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from twin import grid
from twin.users import UserExistsError, Users

__all__ = ["DEMO_VIEWER", "prepare_demo"]

#: The demo viewer account's name.
DEMO_VIEWER = "demo"


def prepare_demo(ws: Any, *, password: str | None = None, activate: int = 3,
                 author: str = "demo") -> dict[str, Any]:
    """Compute risk, propose zones (activating some), gaps, dispatch and alerts for ``ws``.

    Parameters
    ----------
    ws
        A fused workspace (``twin.store.Workspace``).
    password
        The demo viewer's password; a random one when not given (returned, shown once).
    activate
        How many proposed lockdown zones (and their control rings) to make active.
    author
        Name written in the audit rows.

    Returns
    -------
    dict
        Counts of each step, and the demo account (``user``, ``password`` — None when the
        account already existed).
    """
    from twin.alerts import evaluate, raise_alerts
    from twin.dispatch import dispatch
    from twin.facts import Facts
    from twin.risk import risk
    from twin.supply import workspace_gaps
    from twin.zones import Zones, active_areas, propose

    facts = Facts(ws)
    table = risk(facts, level="community")
    proposal = propose(ws, author=author)
    zones = Zones(ws)
    activated = []
    if not zones.list(status="active"):
        proposed = zones.list(status="proposed")
        lockdown = sorted((z for z in proposed if z.tier == "lockdown"),
                          key=lambda z: -len(z.cells))[:activate]
        for z in lockdown:
            zones.save(z.zone_id, z.version, status="active", valid_from=z.valid_from,
                       author=author, reason="示范 demo activation")
            activated.append(z.zone_id)
        locked = [zones.get(a).cells for a in activated]
        near = (set(map(int, grid.grid_disk(np.concatenate(locked), 2))) if locked else set())
        for z in proposed:  # the control rings around the activated lockdown zones
            if z.tier == "control" and near & set(map(int, z.cells)):
                zones.save(z.zone_id, z.version, status="active", valid_from=z.valid_from,
                           author=author, reason="示范 demo activation")
                activated.append(z.zone_id)
    areas = active_areas(ws)
    gaps = workspace_gaps(ws, level="zone", zones=areas) if areas else None
    plan = dispatch(ws, zones=areas or None)
    alerts, skipped = evaluate(ws)
    new = raise_alerts(ws, alerts)
    users = Users(ws)
    account: dict[str, Any] = {"user": DEMO_VIEWER, "password": None}
    try:
        pw = password or secrets.token_urlsafe(9)
        users.add(DEMO_VIEWER, "viewer", pw, actor=author)
        account["password"] = pw
    except UserExistsError:
        pass
    return {"risk": table.counts(), "zones": {k: len(v) for k, v in proposal.items()
                                              if isinstance(v, list)},
            "activated": activated, "gap_rows": 0 if gaps is None else len(gaps),
            "dispatch_routes": len(plan.routes), "alerts_new": len(new),
            "alerts_skipped_rules": skipped, "account": account}

