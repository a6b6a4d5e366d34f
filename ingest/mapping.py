"""Map a source file's columns onto a canonical kind: field names, values, units and dates.

:func:`map_fields` picks the source column of every canonical field (the mapping file's choice,
else a guess from the synonym tables of :mod:`ingest.values`), converts each column to the
field's type and unit, normalises enumerations to canonical codes, parses dates with
:mod:`ingest.dates` and keeps the other columns as extra attributes. Every problem goes to the
:class:`~ingest.report.Report`; records keep their source numbers (the frame's index).

Most files need no mapping file: the demo city's files and files with English, Chinese or
OpenStreetMap-style headers (``Name``, ``名称``, ``高度(米)``, ``height_ft``, ``building``) map
automatically. When a guess is wrong or impossible, a mapping file (``twin ingest --mapping
FILE``) says what the file means. Its format (TOML; every table is optional)::

    # buildings.shp from the housing bureau
    extras = "keep"            # keep the file's other columns ("drop" to leave them out)

    [fields]                   # canonical field = source column
    id = "BLDG_NO"             # (CSV point files may also give lon, lat or wkt columns)
    use = "USAGE"
    height_m = "HGT"

    [values.use]               # source value = canonical value, for this field
    "R" = "residential"
    "C" = "commercial"
    "9" = "other"

    [dates]                    # canonical date field = strptime format of the source
    report_date = "%d/%m/%Y"

    [units]                    # canonical numeric field = the unit the source uses
    height_m = "ft"            # m, ft, km, cm | kg, t, g, jin (斤) | L, mL, m3 | km/h, mph
    quantity = "t"

    [defaults]                 # canonical field = constant, when the file has no column for it
    level = "community"

Field names are the canonical ones of :mod:`twin.schema`; canonical values those of
:mod:`ingest.values`. Unknown tables, keys, fields, values, units and bad date formats are all
refused at once by :func:`load_mapping` with a did-you-mean, like ``twin.toml``.

Conversions, in order, for each mapped column:

- text: stripped; blank cells (``""``, ``NULL``, ``N/A``, ``-``…) are missing; whole numbers
  read as floats (a code 990101 in a shapefile) are written without ``.0``;
- numbers: full-width digits, thousands separators (``12,345``), ``万`` (×10,000) and a unit
  after the number (``12米``) are read; units come from the cell, else the mapping file, else
  the header (``高度(英尺)``, ``height_ft``) and are converted to the field's unit (metres,
  km/h; stock quantities to kg or L, with the ``unit`` column set to match);
- enumerations: normalised to canonical codes through the mapping file's ``[values.FIELD]``,
  then the built-in synonyms;
- dates: :func:`ingest.dates.parse_dates`.

A value that cannot be converted becomes missing (warning ``bad_value``; enumerations:
``unknown_value``); a record left without a required value is dropped (warning
``row_dropped``, each dropped record counted once).
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ingest._distinct import as_strings, map_distinct
from ingest.dates import check_date_format, parse_dates
from ingest.errors import MappingError
from ingest.report import Report
from ingest.values import (
    BASE_UNITS,
    KIND_PREFIXES,
    UNITS,
    Unit,
    allowed_values,
    enumeration,
    field_synonyms,
    normalise_value,
    parse_unit,
    value_key,
)
from twin.schema import KINDS, Field, Kind

__all__ = ["BLANKS", "COORDINATE_FIELDS", "MappingSpec", "format_value_pairs", "guess_column",
           "load_mapping", "map_fields", "parse_value_pairs", "render_mapping"]

#: Cells that mean "no value" in departments' files.
BLANKS = frozenset({"", "nan", "nat", "none", "null", "n/a", "na", "#n/a", "-", "--", "—", "/",
                    "\\n"})

#: Unit family of each canonical unit in the schema.
_FIELD_FAMILY = {"m": "length", "km/h": "speed", "persons": "persons"}
#: Numeric fields counted in a per-record unit column: (kind, field) -> unit column. Their
#: mass and volume units are converted to kg and L.
_UNIT_COLUMNS = {("stocks", "quantity"): "unit"}
_UNIT_TEXT = {(kind, unit) for (kind, _), unit in _UNIT_COLUMNS.items()}
#: Words that may follow a count without being a unit: 6层, 120床, 300人.
_COUNT_WORDS = {"floors": ("层", "楼", "f", "floors", "storeys"), "capacity": ("床", "张", "人")}
_TOP_KEYS = ("fields", "values", "dates", "units", "defaults", "extras")
#: Roles a mapping file may give in [fields] besides canonical fields: the columns a CSV reader
#: builds point geometries from. map_fields ignores them (the reader has used them).
COORDINATE_FIELDS = ("lon", "lat", "wkt")


@dataclass
class MappingSpec:
    """What a mapping file says about a source file (all parts optional).

    Attributes
    ----------
    fields
        Canonical field -> source column.
    values
        Canonical field -> {source value: canonical value}.
    dates
        Canonical date field -> :func:`datetime.strptime` format of the source.
    units
        Canonical numeric field -> unit of the source (``"ft"``, ``"t"``, ``"斤"``…).
    defaults
        Canonical field -> constant used when the source has no column for the field.
    extras
        ``"keep"`` the source's other columns as extra attributes, or ``"drop"`` them.
    """

    fields: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    dates: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    extras: Literal["keep", "drop"] = "keep"


# -- the mapping file ---------------------------------------------------------------------------
def _all_fields() -> dict[str, Field]:
    fields: dict[str, Field] = {}
    for kind in KINDS.values():
        for f in kind.fields:
            fields.setdefault(f.name, f)
    return fields


def _enum_codes(name: str) -> set[str]:
    """Canonical values of an enumerated field name over all kinds (empty: free text)."""
    codes: set[str] = set()
    for kind in KINDS.values():
        if any(f.name == name for f in kind.fields):
            codes.update(allowed_values(kind.name, name))
    return codes


def _unit_families(kind: str | None, name: str) -> tuple[str, ...]:
    """Unit families a numeric field may be given in (empty: no conversion)."""
    if name == "quantity" and (kind in (None, "stocks")):
        return ("mass", "volume")
    f = _all_fields().get(name) if kind is None else next(
        (f for f in KINDS[kind].fields if f.name == name), None)
    if f is None or f.dtype not in ("int", "float"):
        return ()
    family = _FIELD_FAMILY.get(f.unit)
    return (family,) if family and family != "persons" else ()


def _hint(word: str, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def _toml_string(value: str) -> str:
    # A TOML basic string: JSON's escaping is a subset TOML reads back exactly.
    import json

    return json.dumps(str(value), ensure_ascii=False)


def render_mapping(spec: MappingSpec) -> str:
    """The mapping file (TOML) that :func:`load_mapping` reads back as ``spec``."""
    lines = [f"extras = {_toml_string(spec.extras)}"]
    for table in ("fields", "dates", "units", "defaults"):
        entries = getattr(spec, table)
        if entries:
            lines += ["", f"[{table}]"]
            for key, value in entries.items():
                shown = _toml_string(value) if isinstance(value, str) else repr(value)
                lines.append(f"{_toml_string(key)} = {shown}")
    for field_name, table in spec.values.items():
        if table:
            lines += ["", f"[values.{_toml_string(field_name)}]"]
            lines += [f"{_toml_string(k)} = {_toml_string(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


_PAIR_SEPARATORS = re.compile(r"[;；\n]+")


def parse_value_pairs(text: str) -> dict[str, str]:
    """Value synonyms typed as ``source=canonical`` pairs, e.g. ``阳性=confirmed; 疑似=suspected``.

    Pairs are separated by ``;``, ``；`` or new lines; ``=``, ``＝`` or ``→`` separate the
    source value from the canonical one. Whether the canonical values exist is checked by the
    ingest, as for a mapping file.

    Raises
    ------
    MappingError
        For a pair without a separator, with an empty side, or a source value given twice.
    """
    pairs: dict[str, str] = {}
    for part in _PAIR_SEPARATORS.split(text or ""):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"(.+?)\s*[=＝→]\s*(.*)", part)
        if match is None or not match.group(1).strip() or not match.group(2).strip():
            raise MappingError(f"value synonym {part!r} is not source=canonical; write e.g. "
                               "阳性=confirmed, separated by ;")
        source, target = match.group(1).strip(), match.group(2).strip()
        if source in pairs:
            raise MappingError(f"value {source!r} is mapped twice; keep one")
        pairs[source] = target
    return pairs


def format_value_pairs(pairs: Mapping[str, str]) -> str:
    """The text :func:`parse_value_pairs` reads back as ``pairs``."""
    return "; ".join(f"{k}={v}" for k, v in pairs.items())


def load_mapping(path: Path) -> MappingSpec:
    """Read and check a mapping file (format in the module docstring).

    Raises
    ------
    MappingError
        When the file cannot be read or is not TOML, or lists every problem found: unknown
        tables or keys, unknown canonical fields or values, units that do not fit the field,
        date formats that do not give a full date, wrong value types.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise MappingError(f"cannot read the mapping file {path.name}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise MappingError(f"the mapping file {path.name} is not UTF-8 text; save it as UTF-8"
                           ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"the mapping file {path.name} is not valid TOML: {exc}. Quote "
                           "names and values, e.g. use = \"用途\"") from None
    spec, problems = _parse_spec(data)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise MappingError(f"the mapping file {path.name} has {len(problems)} problem"
                           f"{'s' if len(problems) > 1 else ''}:\n{lines}")
    return spec


def _parse_spec(data: dict[str, Any]) -> tuple[MappingSpec, list[str]]:
    problems: list[str] = []
    known = _all_fields()
    spec = MappingSpec()

    def table(key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            problems.append(f"{key!r} must be a table ([{key}]), got {value!r}")
            return {}
        return value

    def canonical(section: str, name: str) -> bool:
        if name in known:
            return True
        problems.append(f"'{section}.{name}': {name!r} is not a canonical field"
                        f"{_hint(name, known)} Fields: {', '.join(known)}")
        return False

    for key in data:
        if key not in _TOP_KEYS:
            problems.append(f"unknown key {key!r}{_hint(key, _TOP_KEYS)} The file may have "
                            f"{', '.join(_TOP_KEYS)}")

    for name, source in table("fields").items():
        if name in COORDINATE_FIELDS or canonical("fields", name):
            if isinstance(source, str) and source.strip():
                spec.fields[name] = source
            else:
                problems.append(f"'fields.{name}' must be the name of a source column (text), "
                                f"got {source!r}")

    for name, mapping in table("values").items():
        if not canonical("values", name):
            continue
        if not isinstance(mapping, dict):
            problems.append(f"'values.{name}' must be a table ([values.{name}]) of "
                            f"\"source value\" = \"canonical value\", got {mapping!r}")
            continue
        codes = _enum_codes(name)
        good: dict[str, str] = {}
        for source, target in mapping.items():
            if not isinstance(target, str):
                problems.append(f"'values.{name}.{source}' must be text, got {target!r}")
            elif codes and target not in codes:
                problems.append(f"'values.{name}.{source}' = {target!r} is not a value of "
                                f"{name!r}{_hint(target, codes)} Allowed: "
                                f"{', '.join(sorted(codes))}")
            else:
                good[source] = target
        spec.values[name] = good

    for name, fmt in table("dates").items():
        if not canonical("dates", name):
            continue
        if known[name].dtype != "date":
            problems.append(f"'dates.{name}': {name!r} is not a date field")
        elif (why := check_date_format(fmt)) is not None:
            problems.append(f"'dates.{name}': {why}")
        else:
            spec.dates[name] = fmt

    unit_names = sorted({u.code for u in UNITS.values()})
    for name, unit_text in table("units").items():
        if not canonical("units", name):
            continue
        families = _unit_families(None, name)
        unit = parse_unit(unit_text) if isinstance(unit_text, str) else None
        if not families:
            problems.append(f"'units.{name}': {name!r} takes no unit conversion")
        elif unit is None:
            problems.append(f"'units.{name}' = {unit_text!r} is not a known unit"
                            f"{_hint(str(unit_text), unit_names)} Known: "
                            f"{', '.join(unit_names)}")
        elif unit.family not in families:
            problems.append(f"'units.{name}' = {unit_text!r} is a {unit.family} unit, but "
                            f"{name!r} is measured in {' or '.join(families)}")
        else:
            spec.units[name] = unit_text

    for name, value in table("defaults").items():
        if not canonical("defaults", name):
            continue
        if isinstance(value, dict | list):
            problems.append(f"'defaults.{name}' must be a single value, got {value!r}")
            continue
        codes = _enum_codes(name)
        if codes and isinstance(value, str):
            # A default may use any spelling the values table knows (级别 = "社区").
            hits = {normalise_value(k.name, name, value) for k in KINDS.values()} - {None}
            if value not in codes and not hits:
                problems.append(f"'defaults.{name}' = {value!r} is not a value of {name!r}"
                                f"{_hint(value, codes)} Allowed: {', '.join(sorted(codes))}")
                continue
        spec.defaults[name] = value

    extras = data.get("extras", "keep")
    if extras in ("keep", "drop"):
        spec.extras = extras
    else:
        problems.append(f"'extras' must be \"keep\" or \"drop\", got {extras!r}")
    return spec, problems


# -- column names -------------------------------------------------------------------------------
_SEPARATORS = re.compile(r"[\s_\-.:/·・,;'\"]+")
_BRACKETS = re.compile(r"[()\[\]{}<>（）【】〔〕「」]")
_BRACKET_SUFFIX = re.compile(r"(.+?)\s*[(\[{<【〔]\s*(.*?)\s*[)\]}>】〕]\s*")
# Unit words glued to a Chinese header (高度米, 数量吨); ASCII ones need a separator, or
# "weight" would be "weigh" in tonnes.
_GLUED_UNITS = sorted(((s, u) for s, u in UNITS.items() if not s.isascii()),
                      key=lambda item: -len(item[0]))


def _key(text: str) -> str:
    s = unicodedata.normalize("NFKC", str(text)).casefold()
    return _SEPARATORS.sub("", _BRACKETS.sub("", s))


def _header_forms(column: str) -> list[tuple[str, Unit | None]]:
    """Matching keys of a header, each with the unit it names: as is, then without a unit."""
    s = unicodedata.normalize("NFKC", str(column)).casefold().strip()
    forms: list[tuple[str, Unit | None]] = [(_key(s), None)]
    if m := _BRACKET_SUFFIX.fullmatch(s):
        forms.append((_key(m[1]), parse_unit(m[2]) if m[2] else None))
    tokens = [t for t in re.split(r"[\s_]+", s) if t]
    if len(tokens) > 1 and (unit := parse_unit(tokens[-1])) is not None:
        forms.append((_key(" ".join(tokens[:-1])), unit))
    for spelling, unit in _GLUED_UNITS:
        if s.endswith(spelling) and len(s) > len(spelling):
            forms.append((_key(s[: -len(spelling)]), unit))
            break
    return [(k, u) for k, u in forms if k]


def _header_unit(column: str) -> Unit | None:
    """The unit a header names (``高度(英尺)`` -> ft), if any."""
    return next((u for _, u in _header_forms(column)[1:] if u is not None), None)


def _candidates(columns: list[str], fld: Field, kind: str | None) -> list[tuple[tuple[int, int],
                                                                               int, str]]:
    """Columns that look like ``fld``: ``((tier, synonym rank), position, column)``, best first.

    Tier 0 is a synonym, with or without a unit suffix; tier 1 a synonym after a kind prefix
    (``建筑编号`` in a buildings file).
    """
    ranks: dict[str, int] = {}
    for rank, name in enumerate(field_synonyms(fld, kind)):
        ranks.setdefault(_key(name), rank)
    prefixes = [_key(p) for p in KIND_PREFIXES.get(kind or "", ())]
    found = []
    for pos, column in enumerate(columns):
        best: tuple[int, int] | None = None
        for key, _unit in _header_forms(column):
            options = [(0, key)] + [(1, key[len(p):]) for p in prefixes
                                    if key.startswith(p) and len(key) > len(p)]
            for tier, k in options:
                if k in ranks and (best is None or (tier, ranks[k]) < best):
                    best = (tier, ranks[k])
        if best is not None:
            found.append((best, pos, column))
    return sorted(found)


def guess_column(columns: list[str], field: Field, *, kind: Kind | str | None = None
                 ) -> str | None:
    """Return the column of ``columns`` that most likely holds ``field``, or ``None``.

    Matching ignores case, spaces, underscores, hyphens, brackets and a unit suffix
    (``高度(米)``, ``height_m``, ``Height (m)`` all mean ``height_m``); names come from
    :func:`ingest.values.field_synonyms`. With ``kind``, kind-specific names (``道路名称`` for a
    road's name) and prefixes (``建筑编号``) count too.
    """
    kind_name = kind.name if isinstance(kind, Kind) else kind
    found = _candidates([str(c) for c in columns], field, kind_name)
    return found[0][2] if found else None


def _choose_columns(columns: list[str], kind: Kind, spec: MappingSpec,
                    report: Report) -> tuple[dict[str, str], set[str]]:
    """Return {canonical: source column} and the fields whose mapping-file choice failed."""
    chosen: dict[str, str] = {}
    failed: set[str] = set()
    names = [f.name for f in kind.fields]
    for name, source in spec.fields.items():
        if name in COORDINATE_FIELDS:
            continue
        if name not in names:
            report.error("mapping_unknown_field",
                         f"the mapping file maps field {name!r}, which kind {kind.name!r} does "
                         f"not have{_hint(name, names)} Fields of {kind.name}: "
                         f"{', '.join(names)}", field=name)
        elif source in columns:
            chosen[name] = source
        else:
            failed.add(name)
            report.error("mapping_unknown_column",
                         f"the mapping file takes field {name!r} from column {source!r}, but "
                         f"the file has no such column{_hint(source, columns)} The file has "
                         f"columns {_list(columns)}", field=name)

    # Guess the rest: best (tier, rank) pairs first, each column used once.
    claimed = set(chosen.values())
    todo = [f for f in kind.fields if f.name not in chosen and f.name not in failed]
    pairs = []
    candidates: dict[str, list[str]] = {}
    for order, f in enumerate(todo):
        found = _candidates(columns, f, kind.name)
        candidates[f.name] = [c for _, _, c in found]
        pairs.extend((score, order, pos, f.name, c) for score, pos, c in found)
    for _score, _order, _pos, name, column in sorted(pairs):
        if name not in chosen and column not in claimed:
            chosen[name] = column
            claimed.add(column)
    for f in todo:
        if f.name not in chosen:
            continue
        others = [c for c in candidates[f.name] if c not in claimed]
        if others:
            report.warning(
                "ambiguous_column",
                f"columns {_list([chosen[f.name], *others])} all look like field {f.name!r} "
                f"({f.zh}); using {chosen[f.name]!r}. To use another, name it in a mapping "
                f"file: [fields] {f.name} = \"{others[0]}\"", field=f.name)
    return chosen, failed


def _list(names: Iterable[str], limit: int = 30) -> str:
    names = list(names)
    text = ", ".join(repr(n) for n in names[:limit])
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


# -- values -------------------------------------------------------------------------------------
def _apply(series: pd.Series, func: Callable[[Any], Any]) -> pd.Series:
    """``func`` of every value, computed once per distinct value (an object series)."""
    return pd.Series(map_distinct(series, func), index=series.index, dtype=object)


def _texts(series: pd.Series) -> pd.Series:
    """:func:`_to_text` of every value; for a column of text, in Arrow's kernels."""
    import pyarrow.compute as pc

    strings = as_strings(series)
    if strings is None:
        return _apply(series, _to_text)
    trimmed = pc.utf8_trim_whitespace(strings)
    blank = pc.is_in(pc.utf8_lower(trimmed), value_set=_BLANKS_ARROW())
    values = pc.if_else(blank, None, trimmed).to_numpy(zero_copy_only=False)
    return pd.Series(values, index=series.index, dtype=object)


@functools.cache
def _BLANKS_ARROW() -> Any:  # noqa: N802 (a constant, built on first use)
    import pyarrow as pa

    return pa.array(sorted(BLANKS), type=pa.string())


def _is_blank(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float | np.floating):
        return bool(np.isnan(v))
    return isinstance(v, str) and v.strip().casefold() in BLANKS


def _to_text(v: Any) -> str | None:
    if _is_blank(v):
        return None
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        # Codes read as floats (990101.0) are whole numbers; write them as such.
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return str(v).strip()


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:([, '])\d{3})(?:\1\d{3})*(?:\.\d+)?")
_SUFFIX = re.compile(r"(.*?\d\.?)\s*([^\d\s.,+\-]+)")


def _to_number(v: Any, counts: tuple[str, ...] = ()) -> tuple[float | None, Unit | None]:
    """A number and the unit written after it, or ``(None, None)``; blank -> (nan, None).

    ``counts`` are words that may follow the number without being a unit (6层 for floors).
    """
    if _is_blank(v):
        return math.nan, None
    if isinstance(v, bool | np.bool_):
        return None, None
    if isinstance(v, int | float | np.integer | np.floating):
        f = float(v)
        return (f if math.isfinite(f) else None), None
    s = unicodedata.normalize("NFKC", str(v)).strip().replace("\u2212", "-")
    unit, factor = None, 1.0
    if m := _SUFFIX.fullmatch(s):
        if m[2] == "万":
            factor = 1e4
        elif m[2].casefold() in counts:
            pass
        elif (unit := parse_unit(m[2])) is None:
            return None, None
        s = m[1]
    if _THOUSANDS.fullmatch(s):
        s = re.sub(r"[, ']", "", s)
    if not _NUMBER.fullmatch(s):
        return None, None
    return float(s) * factor, unit


def _examples(values: Iterable[Any], n: int = 5) -> str:
    distinct = list(dict.fromkeys(str(v) for v in values))
    more = f" and {len(distinct) - n} more" if len(distinct) > n else ""
    return ", ".join(repr(v) for v in distinct[:n]) + more


def _label(f: Field) -> str:
    return f"{f.name!r} ({f.zh})"


class _Mapper:
    """Converts the mapped columns of one frame; collects which records lost a value."""

    def __init__(self, kind: Kind, spec: MappingSpec, report: Report, index: pd.Index):
        self.kind, self.spec, self.report, self.index = kind, spec, report, index
        self.conversions: dict[str, str] = {}
        #: Units written in the quantity cells and the column's unit (stocks).
        self.quantity_units: tuple[np.ndarray, Unit | None] | None = None

    def text(self, f: Field, series: pd.Series) -> pd.Series:
        out = _texts(series)
        replace = self.spec.values.get(f.name)
        if enumeration(self.kind.name, f.name) is not None:
            return self.enum(f, out, replace or {})
        if replace:
            keyed = {value_key(k): v for k, v in replace.items()}
            out = _apply(out, lambda v: None if v is None else replace.get(
                v, keyed.get(value_key(v), v)))
        return out

    def enum(self, f: Field, text: pd.Series, replace: dict[str, str]) -> pd.Series:
        kind = self.kind.name
        allowed = allowed_values(kind, f.name)
        bad_targets = sorted({v for v in replace.values() if v not in allowed})
        if bad_targets:
            self.report.error("mapping_bad_value",
                              f"the mapping file maps values of {f.name!r} to "
                              f"{_examples(bad_targets)}, which are not among its values "
                              f"{', '.join(allowed)}", field=f.name)
            replace = {k: v for k, v in replace.items() if v in allowed}
        out = _apply(text, lambda v: None if v is None else normalise_value(kind, f.name, v,
                                                                              replace))
        unknown = text.notna().to_numpy() & out.isna().to_numpy()
        if unknown.any():
            labels = ", ".join(f"{v.code} {v.zh}" for v in enumeration(kind, f.name) or ())
            self.report.warning(
                "unknown_value",
                f"field {_label(f)} has values that are not known spellings of its values: "
                f"{_examples(text[unknown])}; allowed: {labels}. "
                + ("Those records are dropped. " if f in self.kind.required else
                   "They are left empty. ")
                + f"Map them in a mapping file: [values.{f.name}] "
                f"\"{text[unknown].iloc[0]}\" = \"{allowed[0]}\"",
                rows=self.index[unknown], field=f.name)
        return out

    def number(self, f: Field, series: pd.Series, source: str | None) -> pd.Series:
        families = _unit_families(self.kind.name, f.name)
        target_family = _FIELD_FAMILY.get(f.unit)
        fits = {*families, target_family} - {None}
        # The column's unit: the mapping file's, else the header's.
        column_unit = None
        if f.name in self.spec.units:
            column_unit = parse_unit(self.spec.units[f.name])
            if column_unit is None or column_unit.family not in families:
                self.report.error("mapping_bad_unit",
                                  f"the mapping file gives {f.name!r} in "
                                  f"{self.spec.units[f.name]!r}, which does not apply to it",
                                  field=f.name)
                column_unit = None
        elif source is not None and (header := _header_unit(source)) is not None:
            if header.family in fits:
                column_unit = header
            else:
                self.report.warning(
                    "unit_mismatch",
                    f"column {source!r} names a {header.family} unit ({header.code}), which "
                    f"does not fit field {_label(f)}; its numbers are taken as they are",
                    field=f.name)

        if (pd.api.types.is_numeric_dtype(series.dtype)
                and not pd.api.types.is_bool_dtype(series.dtype)):
            values = series.astype("float64").to_numpy(copy=True)
            bad = np.isinf(values)
            cell_units = np.full(len(values), None, dtype=object)
        else:
            counts = _COUNT_WORDS.get(f.name, ())
            parsed = _apply(series, lambda v: _to_number(v, counts))
            values = np.array([np.nan if p[0] is None else p[0] for p in parsed], dtype=float)
            cell_units = np.array([p[1] for p in parsed], dtype=object)
            bad = np.array([p[0] is None for p in parsed], dtype=bool)
        for i in np.flatnonzero(pd.notna(cell_units)):
            if cell_units[i].family not in fits:  # "12 kg" as a height
                bad[i] = True
                cell_units[i] = None

        if (self.kind.name, f.name) in _UNIT_COLUMNS:
            # Converted per record with the unit column: see _unit_column.
            self.quantity_units = (cell_units, column_unit)
        else:
            # A unit written in the cell wins over the column's.
            factors = np.full(len(values), column_unit.factor if column_unit else 1.0)
            for i in np.flatnonzero(pd.notna(cell_units)):
                factors[i] = cell_units[i].factor
            values = values * factors
            if column_unit is not None and column_unit.factor != 1:
                self.conversions[f.name] = (f"{column_unit.code} -> "
                                            f"{BASE_UNITS[column_unit.family]}")
        values[bad] = np.nan

        if f.dtype == "int":
            fractional = ~bad & ~np.isnan(values) & (np.round(values) != values)
            values[fractional] = np.nan
            bad |= fractional
        if bad.any():
            what = "whole numbers" if f.dtype == "int" else "numbers"
            self.report.warning(
                "bad_value",
                f"values of field {_label(f)} are not {what} (e.g. {_examples(series[bad], 3)})"
                "; they are left empty", rows=self.index[bad], field=f.name)
        if f.dtype == "int":
            ints = np.where(np.isnan(values), None, np.round(values))
            return pd.Series(pd.array(ints, dtype="Int64"), index=self.index)
        return pd.Series(values, index=self.index, dtype="float64")


def _unit_column(mapper: _Mapper, data: dict[str, pd.Series], report: Report) -> None:
    """Stocks: bring mass and volume quantities to kg and L, per record, and say so in ``unit``.

    A record's unit is, most specific first: one written in the quantity cell (``5吨``), its
    unit column, the mapping file's or header's unit for the quantity column.
    """
    if "quantity" not in data or mapper.quantity_units is None:
        return
    cell_units, column_unit = mapper.quantity_units
    qty = data["quantity"].to_numpy(dtype=float, copy=True)
    if "unit" in data:
        texts = data["unit"].to_numpy(dtype=object, copy=True)
    else:
        texts = np.full(len(qty), None, dtype=object)
    units = texts.copy()
    conflict = np.zeros(len(qty), dtype=bool)
    converted = set()
    for i in range(len(qty)):
        text_unit = parse_unit(texts[i]) if texts[i] is not None else None
        own = cell_units[i] or text_unit
        if column_unit is not None and (cell_units[i] is not None or texts[i] is not None):
            conflict[i] = own != column_unit
        unit = own if (cell_units[i] is not None or texts[i] is not None) else column_unit
        if unit is not None and unit.family in ("mass", "volume"):
            qty[i] *= unit.factor
            units[i] = BASE_UNITS[unit.family]
            if unit.factor != 1:
                converted.add(f"{unit.code} -> {units[i]}")
    if conflict.any():
        report.warning("unit_conflict",
                       f"records give a unit that differs from the one the mapping file or "
                       f"header gives for quantity ({column_unit.code}); each record's own "
                       "unit is used", rows=mapper.index[conflict], field="quantity")
    if converted:
        mapper.conversions["quantity"] = ", ".join(sorted(converted))
    data["quantity"] = pd.Series(qty, index=mapper.index, dtype="float64")
    data["unit"] = pd.Series(units, index=mapper.index, dtype=object)


# -- the stage ----------------------------------------------------------------------------------
def map_fields(frame: pd.DataFrame, kind: Kind, spec: MappingSpec | None,
               report: Report) -> pd.DataFrame:
    """Return ``frame`` with canonical columns of ``kind``, converted, then the extras.

    Parameters
    ----------
    frame
        The raw frame of a reader; its index is the 1-based source record number. A
        GeoDataFrame stays one, its geometry column untouched (and last).
    kind
        The canonical kind the file is read as.
    spec
        What the mapping file says, or ``None`` to guess everything.
    report
        Receives the problems (codes ``mapping_unknown_field``, ``mapping_unknown_column``,
        ``mapping_bad_value``, ``mapping_bad_unit``, ``missing_field`` (errors);
        ``ambiguous_column``, ``bad_value``, ``unknown_value``, ``unit_mismatch``,
        ``unit_conflict``, ``row_dropped`` and those of :func:`ingest.dates.parse_dates`) and
        ``info["mapping"]`` = {canonical field: source column}.

    Returns
    -------
    pandas.DataFrame
        Canonical columns present (mapped or defaulted) in schema order, then the extra
        columns under their source names (``NAME_source`` when a name is canonical), then
        the geometry. Records without a required value are dropped; the others keep their
        numbers.
    """
    spec = spec if spec is not None else MappingSpec()
    geometry = _geometry_name(frame)
    frame = _unique_columns(frame, geometry, report)
    columns = [c for c in frame.columns if c != geometry]
    chosen, failed = _choose_columns(columns, kind, spec, report)
    report.info["mapping"] = {f.name: chosen[f.name] for f in kind.fields if f.name in chosen}
    report.info["source_columns"] = [str(c) for c in columns]

    index = frame.index
    mapper = _Mapper(kind, spec, report, index)
    data: dict[str, pd.Series] = {}
    defaulted: dict[str, Any] = {}
    for f in kind.fields:
        if f.name in chosen:
            series, source = frame[chosen[f.name]], chosen[f.name]
        elif f.name in spec.defaults:
            value = spec.defaults[f.name]
            series = pd.Series([value] * len(index), index=index, dtype=object)
            source = None
            defaulted[f.name] = value
        else:
            if f in kind.required and f.name not in failed:
                report.error("missing_field", _missing_message(f, columns), field=f.name)
            continue
        if f.dtype == "date":
            errors_before = len(report.errors)
            data[f.name] = parse_dates(series, field=f.name, fmt=spec.dates.get(f.name),
                                       report=report)
            if len(report.errors) > errors_before:
                # The file is refused anyway; dropping every record would only add noise.
                failed.add(f.name)
        elif f.dtype in ("int", "float"):
            data[f.name] = mapper.number(f, series, source)
        elif (kind.name, f.name) in _UNIT_TEXT:
            data[f.name] = _texts(series)  # normalised after _unit_column
        else:
            data[f.name] = mapper.text(f, series)
    if defaulted:
        report.info["mapping_defaults"] = defaulted
    if (kind.name, "quantity") in _UNIT_COLUMNS:
        _unit_column(mapper, data, report)
        if "unit" in data:
            unit_field = next(f for f in kind.fields if f.name == "unit")
            data["unit"] = mapper.text(unit_field, data["unit"])
    if mapper.conversions:
        report.info["unit_conversions"] = mapper.conversions

    # Extras under their own names, never under a canonical one.
    taken = {f.name for f in kind.fields} | ({geometry} if geometry else set())
    renamed: dict[str, str] = {}
    extras: dict[str, pd.Series] = {}
    if spec.extras == "keep":
        used = set(chosen.values())
        kept = [c for c in columns if c not in used]
        # Extras that need no new name keep theirs; the renamed ones avoid all of them.
        reserved = taken | {c for c in kept if c not in taken}
        for column in kept:
            name = column
            if name in taken:
                name = f"{name}_source"
                while name in reserved:
                    name = f"{name}_source"
                reserved.add(name)
            if name != column:
                renamed[column] = name
            extras[name] = frame[column]
    if renamed:
        report.info["renamed_extras"] = renamed

    # Drop records without a required value; each counted once, under its first such field.
    dropped = np.zeros(len(index), dtype=bool)
    for f in kind.required:
        if f.name not in data or f.name in failed:
            continue
        missing = data[f.name].isna().to_numpy() & ~dropped
        if missing.any():
            report.warning("row_dropped",
                           f"records dropped: required field {_label(f)} is empty or could "
                           "not be read", rows=index[missing], field=f.name)
            dropped |= missing

    out = pd.DataFrame({**data, **extras}, index=index)
    if geometry is not None:
        out[geometry] = frame[geometry]
        out = type(frame)(out, geometry=geometry, crs=frame.crs)
    return out[~dropped] if dropped.any() else out


def _geometry_name(frame: pd.DataFrame) -> str | None:
    name = getattr(frame, "_geometry_column_name", None)
    return name if name is not None and name in frame.columns else None


def _unique_columns(frame: pd.DataFrame, geometry: str | None, report: Report) -> pd.DataFrame:
    """Column names as text and distinct (a CSV may repeat a header)."""
    names = [str(c) for c in frame.columns]
    if len(set(names)) == len(names) and list(frame.columns) == names:
        return frame
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        unique.append(name if n == 0 else f"{name}_{n + 1}")
    repeated = sorted({n for n in names if seen[n] > 1})
    if repeated:
        report.warning("duplicate_column",
                       f"the file repeats column names {_list(repeated)}; later ones are "
                       f"read as NAME_2, NAME_3, …", field=None)
    out = frame.copy()
    out.columns = unique
    if geometry is not None:
        out = out.set_geometry(geometry)
    return out


def _missing_message(f: Field, columns: list[str]) -> str:
    # Only labels long enough for a close match to mean something ("id" ~ "kind" does not).
    labels = [w for w in (f.zh, f.en, f.name) if len(w) >= (2 if not w.isascii() else 4)]
    near = next((m for w in labels
                 for m in difflib.get_close_matches(w, columns, n=1, cutoff=0.6)), None)
    near = [near] if near else []
    hint = f" ({near[0]!r}?)" if near else ""
    example = near[0] if near else "…"
    return (f"no column for required field {f.name!r} ({f.zh}, {f.en}); the file has columns "
            f"{_list(columns)}; name it in a mapping file: [fields] {f.name} = "
            f"\"{example}\"{hint}")

