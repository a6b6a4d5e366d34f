"""The infections the zone rules count: confirmed and asymptomatic cases, never suspected cases
or close contacts (:data:`twin.schema.INFECTION_STATUSES`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from twin.schema import INFECTION_STATUSES

__all__ = ["INFECTIONS", "infections"]

#: Case statuses that count as an infection, for proposals and downgrades
#: (:data:`twin.schema.INFECTION_STATUSES`).
INFECTIONS = INFECTION_STATUSES


def infections(facts: Any, start: dt.date | None = None,
               end: dt.date | None = None) -> pd.DataFrame:
    """Base cells, dates and counts of the infections reported from ``start`` to ``end``
    (inclusive; ``None`` leaves that side open), from a :class:`twin.facts.Facts`."""
    cases = facts.cases(facts.base, start, end)
    return cases[cases["status"].astype(str).isin(INFECTIONS) & (cases["n"] > 0)]
