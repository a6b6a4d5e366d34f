"""Parse the date columns of a source file, refusing to guess.

A date read wrongly is worse than a date not read: "03/05/2026" read as 3 May instead of
5 March moves a case by two months and changes every zone decision built on it. So without a
format only forms with one possible reading are accepted:

=====================  ===========================================
form                   example
=====================  ===========================================
ISO, with time         ``2026-03-05``, ``2026-3-5``, ``2026-03-05T10:00:00+08:00``
year first             ``2026/03/05``, ``2026.03.05``
compact                ``20260305`` (text or an 8-digit whole number)
Chinese                ``2026年3月5日``, ``2026年03月05号 10:30``
=====================  ===========================================

Values already read as dates (GDAL reads GeoJSON and GeoPackage dates as ``datetime64``, some
readers give ``datetime``/``date`` objects) are taken as they are. Day-month forms such as
``03/05/2026`` or ``05-03-26`` are refused with an ``ambiguous_date`` error, even when every
value in the column happens to fit only one order: the message says which format the data is
consistent with, and the fix is one line of the mapping file (``[dates] report_date =
"%d/%m/%Y"``). With a format, values are parsed strictly with :func:`datetime.strptime`.

Results are naive dates (the wall-clock date as written; time of day and time zone are
dropped) in a ``datetime64[s]`` column, which also holds the implausible years the
``date_out_of_range`` warning points at.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Any

import numpy as np
import pandas as pd

from ingest._distinct import distinct
from ingest.report import Report

__all__ = ["ACCEPTED_FORMS", "EARLIEST", "check_date_format", "parse_dates"]

#: Human-readable list of the forms read without a format, for messages.
ACCEPTED_FORMS = "2026-03-05, 2026/03/05, 2026.03.05, 20260305, 2026年3月5日"

#: Dates before this are implausible for any record the twin holds.
EARLIEST = dt.date(1900, 1, 1)

_TIME = r"(?:[T\s]+\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
_ZH_TIME = r"(?:\s*\d{1,2}[:时]\d{2}(?:[:分]\d{2}秒?|分)?)?"
_YMD = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})" + _TIME)
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_ZH = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?" + _ZH_TIME)
_DAY_MONTH = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})(" + _TIME + ")")

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_BLANKS = frozenset({"", "nan", "nat", "none", "null", "n/a", "na", "#n/a", "-", "--", "—",
                     "/", "\\n"})

# A parsed value: a date, None (unreadable) or the parts of an ambiguous day-month form.
_Parsed = dt.date | None | tuple[int, int, int, str, str, str]


def check_date_format(fmt: str) -> str | None:
    """Return why ``fmt`` is not a usable date format, or ``None`` when it is.

    A format must be accepted by :func:`datetime.strptime` and give back a full date: a date
    formatted with it and parsed again must be the same day.
    """
    if not isinstance(fmt, str) or "%" not in fmt:
        return f"{fmt!r} is not a strptime format (it has no % directive), e.g. \"%d/%m/%Y\""
    probe = dt.datetime(2026, 11, 25, 13, 45, 30)
    try:
        back = dt.datetime.strptime(probe.strftime(fmt), fmt)
    except ValueError as exc:
        return f"{fmt!r} is not a valid strptime format ({exc})"
    if back.date() != probe.date():
        return (f"{fmt!r} does not give a full date (it needs the year, month and day, e.g. "
                "%Y, %m and %d)")
    return None


def parse_dates(values: pd.Series, *, field: str, fmt: str | None,
                report: Report) -> pd.Series:
    """Return ``values`` as naive dates (``datetime64[s]``, midnight), reporting problems.

    Parameters
    ----------
    values
        A source column: ``datetime64`` (naive or with a time zone), or text, numbers and
        date objects. The index holds record numbers and is kept.
    field
        The canonical field, named in the report.
    fmt
        A :func:`datetime.strptime` format from the mapping file's ``[dates]``, or ``None`` to
        accept only the unambiguous forms listed in the module docstring.
    report
        Receives ``bad_value`` (unreadable, left empty), ``ambiguous_date`` (an error: the
        day-month order is unknown) and ``date_out_of_range`` warnings, all with record numbers.

    Returns
    -------
    pandas.Series
        Same index; unreadable and ambiguous values are ``NaT``.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        # Keep the date as written in its own zone: the wall-clock date is what people read.
        values = values.dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        out = values.dt.normalize().astype("datetime64[s]")
    else:
        out = _parse_objects(values, field=field, fmt=fmt, report=report)
    _check_range(out, field, report)
    return out


def _parse_objects(values: pd.Series, *, field: str, fmt: str | None,
                   report: Report) -> pd.Series:
    parse = (lambda v: _parse_with(v, fmt)) if fmt else _parse_free
    # Once per distinct value: a date column holds a few hundred dates in a million records.
    codes, uniques = distinct(values)
    parsed: list[_Parsed] = []
    blank_u = np.zeros(len(uniques), dtype=bool)
    result_u = np.full(len(uniques), np.datetime64("NaT"), dtype="datetime64[s]")
    ambiguous_u = np.zeros(len(uniques), dtype=bool)
    for i, v in enumerate(uniques):
        if _is_blank(v):
            blank_u[i] = True
            parsed.append(None)
            continue
        p = parse(v)
        parsed.append(p)
        if isinstance(p, dt.date):
            result_u[i] = np.datetime64(p.isoformat(), "D")
        elif isinstance(p, tuple):
            ambiguous_u[i] = True
    blank, result, ambiguous = blank_u[codes], result_u[codes], ambiguous_u[codes]
    bad = ~blank & ~ambiguous & np.isnat(result)
    index = values.index
    raw = values.to_numpy(dtype=object)

    if ambiguous.any():
        parts = [p for p in parsed if isinstance(p, tuple)]
        report.error("ambiguous_date", _ambiguous_message(field, parts),
                     rows=index[ambiguous], field=field)
    if bad.any():
        examples = ", ".join(repr(v) for v in list(dict.fromkeys(map(str, raw[bad])))[:3])
        if fmt:
            message = (f"values of field {field!r} do not match the mapping file's format "
                       f"{fmt!r} (e.g. {examples}); they are left empty")
        else:
            message = (f"values of field {field!r} are not dates in a form read without a "
                       f"format (e.g. {examples}); they are left empty. Accepted: "
                       f"{ACCEPTED_FORMS}; for other forms give the format in a mapping file: "
                       f"[dates] {field} = \"…\"")
        report.warning("bad_value", message, rows=index[bad], field=field)
    return pd.Series(result, index=index, name=values.name)


def _is_blank(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float | np.floating):
        return bool(np.isnan(v))
    if isinstance(v, np.datetime64):
        return bool(np.isnat(v))
    return isinstance(v, str) and v.strip().casefold() in _BLANKS


def _as_date(v: Any) -> dt.date | None:
    """Date and datetime objects as they are (timezone-aware ones by their own wall clock)."""
    if isinstance(v, pd.Timestamp | dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, np.datetime64):
        return pd.Timestamp(v).date()
    return None


def _text(v: Any) -> str:
    if isinstance(v, int | np.integer) and not isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return unicodedata.normalize("NFKC", str(v)).strip()


def _parse_with(v: Any, fmt: str) -> dt.date | None:
    as_date = _as_date(v)
    if as_date is not None:
        return as_date
    try:
        return dt.datetime.strptime(_text(v), fmt).date()
    except ValueError:
        return None


def _date(y: int, m: int, d: int) -> dt.date | None:
    try:
        return dt.date(y, m, d)
    except ValueError:
        return None


def _parse_free(v: Any) -> _Parsed:
    as_date = _as_date(v)
    if as_date is not None:
        return as_date
    if isinstance(v, bool):
        return None
    s = _text(v)
    if m := _YMD.fullmatch(s):
        return _date(int(m[1]), int(m[3]), int(m[4]))
    if m := _COMPACT.fullmatch(s):
        return _date(int(m[1]), int(m[2]), int(m[3]))
    if m := _ZH.fullmatch(s):
        return _date(int(m[1]), int(m[2]), int(m[3]))
    if m := _DAY_MONTH.fullmatch(s):
        return (int(m[1]), int(m[3]), _year(m[4]), m[2], m[4], s)
    return None


def _year(text: str) -> int:
    # Two-digit years are read as 20yy: the twin holds recent records. The value is refused
    # as ambiguous anyway; the year only shapes the message.
    return int(text) + 2000 if len(text) == 2 else int(text)


def _reading(d: dt.date) -> str:
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"


def _ambiguous_message(field: str, parts: list[tuple[int, int, int, str, str, str]]) -> str:
    a, b, year, sep, ytext, example = parts[0]
    ytok = "%Y" if len(ytext) == 4 else "%y"
    has_time = example.count(":") > 0
    time = (" %H:%M:%S" if example.count(":") == 2 else " %H:%M") if has_time else ""
    day_first = f"%d{sep}%m{sep}{ytok}{time}"
    month_first = f"%m{sep}%d{sep}{ytok}{time}"
    dmy, mdy = _date(year, b, a), _date(year, a, b)
    if dmy and mdy and dmy != mdy:
        reading = f"could mean {_reading(dmy)} or {_reading(mdy)}"
    elif dmy:
        reading = f"reads as {_reading(dmy)} only if the day comes first"
    elif mdy:
        reading = f"reads as {_reading(mdy)} only if the month comes first"
    else:
        reading = "is not a valid date in either order"
    fits_dmy = all(_date(y, q, p) for p, q, y, *_ in parts)
    fits_mdy = all(_date(y, p, q) for p, q, y, *_ in parts)
    if fits_dmy and not fits_mdy:
        consistent, suggest = f"the data is consistent with {day_first} (day first) only", day_first
    elif fits_mdy and not fits_dmy:
        consistent = f"the data is consistent with {month_first} (month first) only"
        suggest = month_first
    elif fits_dmy:
        consistent = f"the data fits both {day_first} and {month_first}; ask the sender"
        suggest = day_first
    else:
        consistent = "the data fits neither day-first nor month-first order; check the column"
        suggest = day_first
    return (f"dates like {example!r} {reading}; dates are never guessed. {consistent}. Give "
            f"the format in a mapping file: [dates] {field} = \"{suggest}\"")


def _check_range(dates: pd.Series, field: str, report: Report) -> None:
    latest = dt.date.today() + dt.timedelta(days=366)
    lo, hi = np.datetime64(EARLIEST.isoformat(), "D"), np.datetime64(latest.isoformat(), "D")
    arr = dates.to_numpy(dtype="datetime64[s]")
    valid = ~np.isnat(arr)
    out = valid & ((arr < lo) | (arr > hi))
    if out.any():
        report.warning(
            "date_out_of_range",
            f"dates of field {field!r} lie before {EARLIEST.isoformat()} or more than a year "
            "in the future (a typo or a placeholder such as 1900-01-01?); they are kept, "
            "check them",
            rows=dates.index[out], field=field)
