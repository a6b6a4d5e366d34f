"""Check the records of a mapped frame: text hygiene, duplicate keys, ranges and consistency.

Runs after :func:`ingest.mapping.map_fields` (canonical columns, converted units) and the
geometry stages. Every check reports to the :class:`~ingest.report.Report` with record numbers
and goes on. What happens to a record, by check:

========================  ====================================================================
code                      effect
========================  ====================================================================
``no_records``            error: the file has no records left to publish.
``control_characters``    warning; control and invisible formatting characters (zero-width,
                          bidirectional overrides, byte-order marks) are removed. Tabs and line
                          breaks become spaces, full-width and no-break spaces ordinary ones,
                          and text is stripped, silently: those are layout, not content.
``markup_in_text``        warning only: text such as ``<script>…`` is data and is kept verbatim
                          (never escaped or interpreted here; the dashboards escape on output).
``duplicate_id``          warning only, naming the later records: every record is kept, since
                          which of two is right is for staff to decide (design.md: duplicate ids
                          are a warning). Keys: ``id`` (buildings, facilities, cases), ``code``
                          (boundaries), ``community_code`` (population) and ``facility_id`` +
                          ``resource`` + ``as_of`` (stocks).
``out_of_range``          a required field's record is dropped (``row_dropped``); an optional
                          field's value is left empty. Ranges in :data:`RANGES`: counts and
                          quantities >= 0, floors 1..200, height_m 0..700, speed_kmh 5..150.
``implausible_height``    warning only: height per floor below 1.5 m or above 10 m.
``onset_after_report``    warning only: a case's onset date after its report date.
``missing_parent``        warning only: a street, community or grid without ``parent_code``.
``group_exceeds_persons`` warning only: a population group larger than the residents.
``unit_mismatch``         warning only: a stock counted in another unit than its resource's
                          (water in pieces); it cannot be converted, so demand and supply will
                          not add up until the source is fixed.
``row_dropped``           a record dropped by this stage (each counted once).
========================  ====================================================================
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from ingest._distinct import as_strings, map_distinct
from ingest.report import Report
from ingest.values import RESOURCE_UNITS
from twin.schema import Kind

__all__ = ["KEYS", "RANGES", "validate_records"]

#: Field -> (lowest, highest) plausible value, for any kind that has the field.
RANGES: dict[str, tuple[float, float]] = {
    "capacity": (0.0, math.inf),
    "quantity": (0.0, math.inf),
    "persons": (0.0, math.inf),
    "residents": (0.0, math.inf),
    "age_65_plus": (0.0, math.inf),
    "children": (0.0, math.inf),
    "elderly_living_alone": (0.0, math.inf),
    "chronic_patients": (0.0, math.inf),
    "floors": (1.0, 200.0),
    "height_m": (0.0, 700.0),
    "speed_kmh": (5.0, 150.0),
}

#: Kind -> the fields that identify a record.
KEYS: dict[str, tuple[str, ...]] = {
    "buildings": ("id",),
    "facilities": ("id",),
    "cases": ("id",),
    "boundaries": ("code",),
    "population": ("community_code",),
    "stocks": ("facility_id", "resource", "as_of"),
}

#: Metres per floor outside this range make a building's height or floors doubtful.
METRES_PER_FLOOR = (1.5, 10.0)

_GROUPS = ("age_65_plus", "children", "elderly_living_alone", "chronic_patients")
_NEEDS_PARENT = ("street", "community", "grid")

# Layout characters: become one space. Control and invisible formatting characters: removed.
_LAYOUT = re.compile(r"[\t\n\r\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u2069\ufeff\ufff9-\ufffb]")
# Tags (<script>, <img …>, </b>, <!-- …>) and javascript: URLs.
_MARKUP = re.compile(r"</?[a-z!][^<>]*>|javascript\s*:", re.IGNORECASE)


def validate_records(frame: pd.DataFrame, kind: Kind, report: Report) -> pd.DataFrame:
    """Return ``frame`` with text cleaned, implausible values handled and bad records dropped.

    Parameters
    ----------
    frame
        Output of :func:`ingest.mapping.map_fields` (index: 1-based record numbers, kept).
    kind
        The canonical kind.
    report
        Receives the problems listed in the module docstring.
    """
    if len(frame) == 0:
        report.error("no_records", f"the file has no {kind.en} records to publish (it is empty "
                     "or every record was dropped; see the other problems)")
        return frame
    frame = frame.copy()
    required = {f.name for f in kind.required}
    dropped = np.zeros(len(frame), dtype=bool)

    def drop(mask: np.ndarray, name: str, why: str) -> None:
        nonlocal dropped
        new = mask & ~dropped
        if new.any():
            report.warning("row_dropped", f"records dropped: {why}", rows=frame.index[new],
                           field=name)
            dropped |= new

    # Text hygiene, for canonical and extra text columns alike.
    geometry = getattr(frame, "_geometry_column_name", None)
    for column in frame.columns:
        if column == geometry or not _is_text(frame[column]):
            continue
        was_blank = frame[column].isna().to_numpy()
        cleaned, control, markup = _clean_column(frame[column])
        frame[column] = cleaned
        if control.any():
            report.warning(
                "control_characters",
                f"text in column {column!r} contains control or invisible characters; they "
                "were removed", rows=frame.index[control], field=column)
        if markup.any():
            example = str(frame[column][markup].iloc[0])
            example = example if len(example) <= 40 else example[:40] + "…"
            report.warning(
                "markup_in_text",
                f"text in column {column!r} looks like HTML or script (e.g. {example!r}); it "
                "is kept verbatim as data (never run; the dashboards escape it), but check "
                "the source", rows=frame.index[markup], field=column)
        if column in required:
            drop(~was_blank & cleaned.isna().to_numpy(), column,
                 f"required field {column!r} held only control characters")

    _duplicates(frame, kind, report)

    for name, (low, high) in RANGES.items():
        if name not in frame.columns or name not in {f.name for f in kind.fields}:
            continue
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float,
                                                                       na_value=np.nan)
        out = ~np.isnan(values) & ((values < low) | (values > high))
        if not out.any():
            continue
        span = f">= {low:g}" if math.isinf(high) else f"{low:g}..{high:g}"
        effect = ("those records are dropped" if name in required
                  else "they are left empty")
        report.warning(
            "out_of_range",
            f"values of field {name!r} outside {span} (e.g. {_examples(values[out])}); "
            f"{effect}", rows=frame.index[out], field=name)
        if name in required:
            drop(out, name, f"required field {name!r} is out of range")
        else:
            frame.loc[out, name] = np.nan if frame[name].dtype.kind == "f" else pd.NA

    _consistency(frame, kind, report)
    return frame[~dropped] if dropped.any() else frame


def _is_text(series: pd.Series) -> bool:
    return series.dtype == object or isinstance(series.dtype, pd.StringDtype)


def _clean(value: Any) -> tuple[Any, bool, bool]:
    if not isinstance(value, str):
        return value, False, False
    text = _LAYOUT.sub(" ", value)
    cleaned = _CONTROL.sub("", text)
    control = cleaned != text
    cleaned = cleaned.strip()
    return (cleaned if cleaned else None), control, bool(_MARKUP.search(cleaned))


# Values that _clean could change: a layout, control or invisible character, a space at
# either end, an empty string, or the "<" or ":" that markup needs (RE2 syntax, for Arrow).
_NEEDS_CLEANING = (r"[\x{00}-\x{1f}\x{7f}-\x{a0}\x{1680}\x{2000}-\x{200f}\x{2028}-\x{202f}"
                   r"\x{205f}-\x{2064}\x{2066}-\x{2069}\x{3000}\x{feff}\x{fff9}-\x{fffb}<:]"
                   r"|^ | $|^$")


def _clean_column(series: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    import pyarrow.compute as pc

    strings = as_strings(series)
    control = np.zeros(len(series), dtype=bool)
    markup = np.zeros(len(series), dtype=bool)
    if strings is None:
        todo = np.arange(len(series))
    else:  # only the few values that need it go through Python
        needs = pc.fill_null(pc.match_substring_regex(strings, _NEEDS_CLEANING), False)
        todo = np.flatnonzero(needs.to_numpy(zero_copy_only=False))
        if not len(todo):
            return series, control, markup
    raw = series.to_numpy(dtype=object)
    out = raw.copy()
    if len(todo):
        results = map_distinct(raw[todo], _clean)
        cleaned_values = np.empty(len(todo), dtype=object)
        cleaned_values[:] = [r[0] for r in results]
        out[todo] = cleaned_values
        control[todo] = [r[1] for r in results]
        markup[todo] = [r[2] for r in results]
    cleaned = pd.Series(out, index=series.index, dtype=object, name=series.name)
    if isinstance(series.dtype, pd.StringDtype):
        cleaned = cleaned.astype(series.dtype)
    return cleaned, control, markup


def _examples(values: Any, n: int = 3) -> str:
    distinct = list(dict.fromkeys(f"{v:g}" if isinstance(v, float) else str(v) for v in values))
    return ", ".join(distinct[:n]) + (", …" if len(distinct) > n else "")


def _duplicates(frame: pd.DataFrame, kind: Kind, report: Report) -> None:
    keys = KEYS.get(kind.name, ())
    if not keys or not all(k in frame.columns for k in keys):
        return
    present = frame[list(keys)].notna().all(axis=1).to_numpy()
    repeated = frame.duplicated(subset=list(keys), keep="first").to_numpy() & present
    if not repeated.any():
        return
    label = " + ".join(keys)
    shown = frame.loc[repeated, list(keys)].astype(str).agg(" / ".join, axis=1)
    report.warning(
        "duplicate_id",
        f"records repeat the {label} of an earlier record (e.g. {_examples(shown)}); all are "
        f"kept: check whether they describe the same {kind.en} twice",
        rows=frame.index[repeated], field=label)


def _consistency(frame: pd.DataFrame, kind: Kind, report: Report) -> None:
    cols = frame.columns
    if {"height_m", "floors"} <= set(cols):
        h = pd.to_numeric(frame["height_m"], errors="coerce").to_numpy(float, na_value=np.nan)
        n = pd.to_numeric(frame["floors"], errors="coerce").to_numpy(float, na_value=np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_floor = h / n
        low, high = METRES_PER_FLOOR
        odd = (n > 0) & ~np.isnan(per_floor) & ((per_floor < low) | (per_floor > high))
        if odd.any():
            report.warning(
                "implausible_height",
                f"height per floor is below {low:g} m or above {high:g} m (e.g. "
                f"{n[odd][0]:g} floors, {h[odd][0]:g} m); kept, check floors and height_m",
                rows=frame.index[odd], field="height_m")
    if {"onset_date", "report_date"} <= set(cols):
        onset, reported = frame["onset_date"], frame["report_date"]
        late = (onset.notna() & reported.notna() & (onset > reported)).to_numpy()
        if late.any():
            report.warning("onset_after_report",
                           "the onset date is after the report date; kept, check both dates",
                           rows=frame.index[late], field="onset_date")
    if kind.name == "boundaries" and "level" in cols:
        parent = frame["parent_code"] if "parent_code" in cols else pd.Series(
            None, index=frame.index, dtype=object)
        orphan = (frame["level"].isin(_NEEDS_PARENT) & parent.isna()).to_numpy()
        if orphan.any():
            report.warning("missing_parent",
                           "streets, communities and grids need a parent_code (上级代码) so "
                           "their facts roll up; these have none",
                           rows=frame.index[orphan], field="parent_code")
    if "persons" in cols:
        persons = pd.to_numeric(frame["persons"], errors="coerce")
        for group in _GROUPS:
            if group not in cols:
                continue
            size = pd.to_numeric(frame[group], errors="coerce")
            over = (size.notna() & persons.notna() & (size > persons)).to_numpy()
            if over.any():
                report.warning("group_exceeds_persons",
                               f"{group!r} is larger than the residents (persons); kept, "
                               "check both", rows=frame.index[over], field=group)
    if kind.name == "stocks" and {"resource", "unit"} <= set(cols):
        expected = frame["resource"].map(RESOURCE_UNITS)
        wrong = (expected.notna() & frame["unit"].notna()
                 & (expected != frame["unit"])).to_numpy()
        if wrong.any():
            pairs = sorted({f"{r} in {u}" for r, u in zip(frame["resource"][wrong],
                                                           frame["unit"][wrong], strict=True)})
            report.warning(
                "unit_mismatch",
                f"stocks counted in another unit than their resource's ({', '.join(pairs[:5])}"
                f"; expected {', '.join(f'{r} in {u}' for r, u in RESOURCE_UNITS.items())}); "
                "they cannot be converted, so fix the source", rows=frame.index[wrong],
                field="unit")
