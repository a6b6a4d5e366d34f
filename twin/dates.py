"""Dates given by people (``--date``, ``--since``, ``valid_from``…): one parser, one message.

Every command and function that takes a day takes it as ``YYYY-MM-DD`` (ISO 8601; a time of
day after it is ignored) or as a date object, and refuses anything else with an error that
quotes the value and shows the expected form. Dates in *source files* are another matter:
:mod:`ingest.dates` reads the many ways departments write them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from twin.errors import DateError, TwinError

__all__ = ["parse_day"]


def parse_day(value: Any, what: str = "date", *,
              error: type[TwinError] = DateError) -> dt.date:
    """The calendar day of ``value``: a ``YYYY-MM-DD`` string or a date-like object.

    Parameters
    ----------
    value
        ``"2026-04-30"`` (also ``"20260430"`` or an ISO date and time), a
        :class:`datetime.date` or :class:`~datetime.datetime` (``pandas.Timestamp`` too), or a
        :class:`numpy.datetime64`.
    what
        What the value is, for the message (e.g. ``"--since"``, ``"valid_from"``).
    error
        The error to raise; a module may use its own (e.g. ``ZoneError``).

    Raises
    ------
    DateError
        (or ``error``) When ``value`` is not a calendar date, e.g. ``"yesterday"`` or
        ``"2026-02-30"``.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64) and not np.isnat(value):
        return value.astype("datetime64[D]").astype(dt.date)
    if isinstance(value, str):
        text = value.strip()
        for parse in (dt.date.fromisoformat, lambda t: dt.datetime.fromisoformat(t).date()):
            try:
                return parse(text)
            except ValueError:
                continue
    raise error(f"not a date: {value!r} ({what}); write dates as YYYY-MM-DD, e.g. 2026-04-30")
