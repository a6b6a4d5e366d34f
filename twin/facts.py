"""Reading fused cell facts, fast enough for a dashboard callback.

A fact set (built by :func:`twin.fuse.fuse`) holds, per level, a static table and a case
series:

- levels ``10`` (the base resolution), ``9``, ``8``, ``7`` (rollups; H3 cells in column
  ``cell``, ``uint64``) and ``"community"``, ``"street"``, ``"district"`` (admin units in column
  ``code``, with ``name`` and ``parent_code``);
- static columns: ``residents``, the age groups, ``buildings_n``, ``footprint_m2``,
  ``floor_m2`` and their per-use variants, ``fac_<kind>_n`` / ``fac_<kind>_capacity``,
  ``stock_<resource>``; base cells also carry ``community_code``, ``street_code`` and
  ``district_code``;
- a case series ``(cell or code, date, status, n)``.

:meth:`Facts.read` joins the static columns with the new cases of a date window. Files are
immutable, so tables are cached in memory per process (keyed by file path).
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from twin.dates import parse_day
from twin.errors import FactsNotFoundError
from twin.schema import CASE_STATUSES
from twin.store import FactSet, Workspace

__all__ = ["Facts", "FactsNotFoundError", "Level"]

Level = int | str
_ADMIN = ("community", "street", "district", "grid")


@functools.lru_cache(maxsize=64)
def _read_table(path: str, columns: tuple[str, ...] | None) -> pd.DataFrame:
    return pq.read_table(path, columns=list(columns) if columns else None).to_pandas()


@functools.lru_cache(maxsize=64)
def _read_cases(path: str, start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
    filters = []
    if start is not None:
        filters.append(("date", ">=", start))
    if end is not None:
        filters.append(("date", "<=", end))
    frame = pq.read_table(path, filters=filters or None).to_pandas()
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def _day(value: str | dt.date | np.datetime64 | None, what: str) -> dt.date | None:
    return None if value is None else parse_day(value, what)


class Facts:
    """The current fact set of a workspace (or a given one).

    Raises
    ------
    FactsNotFoundError
        When the workspace has not been fused yet.
    """

    def __init__(self, workspace: Workspace, fact_set: FactSet | None = None) -> None:
        self.workspace = workspace
        fact_set = fact_set or workspace.current_facts()
        if fact_set is None:
            raise FactsNotFoundError(f"{workspace.root} has no fused facts yet; run "
                                     f"`twin fuse {workspace.root}`")
        self.set = fact_set
        self.base = int(fact_set.summary.get("base_resolution",
                                              workspace.config.base_resolution))

    @property
    def levels(self) -> list[Level]:
        """The levels of this fact set: resolutions, finest first, then admin levels."""
        names = sorted(p.stem for p in self.set.path.glob("cells_r*.parquet"))
        resolutions = sorted((int(n.removeprefix("cells_r")) for n in names), reverse=True)
        admin = [lv for lv in _ADMIN if (self.set.path / f"units_{lv}.parquet").exists()]
        return [*resolutions, *admin]

    def _path(self, prefix: str, level: Level) -> Path:
        if isinstance(level, str) and level.isdigit():
            level = int(level)
        if isinstance(level, (int, np.integer)):
            name = f"{'cells' if prefix == 'static' else 'cases'}_r{int(level)}.parquet"
        elif level in _ADMIN:
            name = f"{'units' if prefix == 'static' else 'cases'}_{level}.parquet"
        else:
            raise FactsNotFoundError(f"unknown level {level!r}; levels are "
                                     f"{', '.join(map(str, self.levels))}")
        path = self.set.path / name
        if not path.exists():
            raise FactsNotFoundError(f"the facts have no level {level!r}; levels are "
                                     f"{', '.join(map(str, self.levels))}")
        return path

    def columns(self, level: Level = 8) -> list[str]:
        """The static columns available at ``level``."""
        return pq.read_schema(self._path("static", level)).names

    def static(self, level: Level, columns: list[str] | None = None) -> pd.DataFrame:
        """The static facts of ``level``: all columns, or the keys plus ``columns``.

        The keys are ``cell`` for resolutions and ``code``, ``name``, ``parent_code`` for admin
        levels.
        """
        path = self._path("static", level)
        if columns is not None:
            is_cell = isinstance(level, (int, np.integer)) or str(level).isdigit()
            keys = ["cell"] if is_cell else ["code", "name", "parent_code"]
            available = pq.read_schema(path).names
            unknown = [c for c in columns if c not in available]
            if unknown:
                raise FactsNotFoundError(f"no column {', '.join(map(repr, unknown))} at level "
                                         f"{level!r}; see Facts.columns()")
            wanted = tuple(dict.fromkeys([*keys, *columns]))
            return _read_table(str(path), wanted).copy()
        return _read_table(str(path), None).copy()

    def cases(self, level: Level, start: str | dt.date | None = None,
              end: str | dt.date | None = None) -> pd.DataFrame:
        """New cases per unit, date and status between ``start`` and ``end`` (inclusive)."""
        return _read_cases(str(self._path("cases", level)), _day(start, "start of the window"),
                           _day(end, "end of the window")).copy()

    def read(self, level: Level, *, columns: list[str] | None = None,
             start: str | dt.date | None = None,
             end: str | dt.date | None = None) -> pd.DataFrame:
        """Static facts joined with the new cases of the window, one row per cell or unit.

        Case columns are ``cases`` (all statuses) and ``cases_<status>``; a window without
        ``start``/``end`` covers every date.
        """
        table = self.static(level, columns)
        key = table.columns[0]
        window = self.cases(level, start, end)
        counts = (window.pivot_table(index=window.columns[0], columns="status", values="n",
                                     aggfunc="sum", fill_value=0, observed=True)
                  if len(window) else pd.DataFrame())
        counts = counts.reindex(columns=list(CASE_STATUSES), fill_value=0)
        counts.columns = [f"cases_{s}" for s in counts.columns]
        counts.insert(0, "cases", counts.sum(axis=1))
        static_columns = [c for c in table.columns if c != key]
        table = table.merge(counts, left_on=key, right_index=True, how="outer")
        case_columns = ["cases", *(f"cases_{s}" for s in CASE_STATUSES)]
        table[case_columns] = table[case_columns].fillna(0).astype(np.int64)
        # Cells that hold only cases have no static row: their static facts are zero and
        # their admin codes come from the case-cells table of the base resolution.
        only_cases = table[static_columns[0]].isna() if static_columns else None
        if only_cases is not None and only_cases.any():
            table = self._fill_case_only(table, level, key, static_columns, only_cases)
        return table.reset_index(drop=True)

    def _fill_case_only(self, table: pd.DataFrame, level: Level, key: str,
                        static_columns: list[str], only_cases: pd.Series) -> pd.DataFrame:
        codes = [c for c in static_columns if c.endswith("_code")]
        numbers = [c for c in static_columns if c not in codes and c not in ("name",
                                                                             "parent_code")]
        extra_path = self.set.path / f"case_cells_r{self.base}.parquet"
        if codes and str(level) == str(self.base) and extra_path.exists():
            extra = _read_table(str(extra_path), None).set_index("cell")
            for code in codes:
                if code in extra:
                    filled = table.loc[only_cases, key].map(extra[code])
                    table.loc[only_cases, code] = filled
        for column in numbers:
            table[column] = table[column].fillna(0)
            if column.endswith("_n"):
                table[column] = table[column].astype(np.int64)
        return table

    def daily(self, level: Level = "district", start: str | dt.date | None = None,
              end: str | dt.date | None = None) -> pd.DataFrame:
        """City-wide new cases per date and status (a trend chart's data)."""
        window = self.cases(level, start, end)
        return (window.groupby(["date", "status"], observed=True)["n"].sum()
                .unstack(fill_value=0).reindex(columns=list(CASE_STATUSES), fill_value=0))
