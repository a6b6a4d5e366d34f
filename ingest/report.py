"""The validation report of one ingested file.

A report collects every problem of a file at once, grouped by code: each group has a severity
(errors block publishing, warnings do not), one message, the number of affected records and a
few sample record numbers, so that GIS staff can fix all of a file's problems in one go. It
prints as text for the terminal and as JSON for programs and the dashboards.

Record numbers are 1-based positions of records in the source: the n-th feature of a vector
file, the n-th data row of a CSV (the header is not counted).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["SAMPLE_ROWS", "Problem", "Report", "Severity"]

#: How many sample record numbers a problem keeps.
SAMPLE_ROWS = 5


class Severity(StrEnum):
    """How bad a problem is: errors block publishing, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass
class Problem:
    """One kind of problem, with how many records it affects and a few of them."""

    code: str
    severity: Severity
    message: str
    count: int = 0
    rows: list[int] = field(default_factory=list)
    field: str | None = None
    #: A few of the affected records' own ids (``way/123``, a building code), when known.
    ids: list[str] = dataclasses.field(default_factory=list)


@dataclass
class Report:
    """Everything ingest found out about one file.

    Attributes
    ----------
    source
        The file's name as the user gave it (never a path GDAL opened).
    kind
        The canonical kind the file was read as.
    layer
        The target layer name in the workspace.
    status
        ``"published"``, ``"unchanged"`` (the same content is already the current version),
        ``"validated"`` (a dry run without errors) or ``"refused"``.
    problems
        Problem groups, in the order they were first found.
    info
        Facts about the file: format, driver, encoding, source CRS, coordinate offset, records
        read and kept, bounds, SHA-256, seconds taken.
    version
        The catalog entry of the published version, when one was published.
    """

    source: str
    kind: str
    layer: str | None = None
    status: str = "refused"
    problems: list[Problem] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    version: dict[str, Any] | None = None

    # -- collecting ----------------------------------------------------------------------
    def error(self, code: str, message: str, *, rows: Iterable[int] = (),
              count: int | None = None, field: str | None = None,
              ids: Iterable[object] = ()) -> None:
        """Record an error (blocks publishing); see :meth:`add`."""
        self.add(Severity.ERROR, code, message, rows=rows, count=count, field=field, ids=ids)

    def warning(self, code: str, message: str, *, rows: Iterable[int] = (),
                count: int | None = None, field: str | None = None,
                ids: Iterable[object] = ()) -> None:
        """Record a warning (does not block publishing); see :meth:`add`."""
        self.add(Severity.WARNING, code, message, rows=rows, count=count, field=field, ids=ids)

    def add(self, severity: Severity, code: str, message: str, *, rows: Iterable[int] = (),
            count: int | None = None, field: str | None = None,
            ids: Iterable[object] = ()) -> None:
        """Record a problem, merging it into an earlier one of the same code and field.

        Parameters
        ----------
        severity
            Error or warning.
        code
            Stable machine-readable code, e.g. ``"missing_field"``.
        message
            What is wrong, the offending value and the fix. When merged, the first message
            of the group is kept, so it should describe the group, not one record.
        rows
            1-based numbers of the affected records (any iterable; only a few are kept).
        count
            Number of affected records when ``rows`` is not the full list.
        field
            The canonical or source field concerned, if any.
        ids
            The affected records' own ids, in the order of ``rows`` (only a few are kept).
        """
        rows = list(rows) if not isinstance(rows, list) else rows
        sample_ids = [str(i) for i in itertools.islice(ids, SAMPLE_ROWS)]
        n = len(rows) if count is None else count
        for problem in self.problems:
            if (problem.code, problem.field, problem.severity) == (code, field, severity):
                problem.count += n
                missing = SAMPLE_ROWS - len(problem.rows)
                if missing > 0:
                    problem.rows.extend(int(r) for r in rows[:missing])
                problem.ids.extend(sample_ids[:SAMPLE_ROWS - len(problem.ids)])
                return
        self.problems.append(Problem(code=code, severity=Severity(severity), message=message,
                                     count=n, rows=[int(r) for r in rows[:SAMPLE_ROWS]],
                                     field=field, ids=sample_ids))

    # -- reading -------------------------------------------------------------------------
    @property
    def errors(self) -> list[Problem]:
        """Problems that block publishing."""
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        """Problems that do not block publishing."""
        return [p for p in self.problems if p.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        """Whether the file may be published (no errors)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        data = asdict(self)
        data["ok"] = self.ok
        data["problems"] = [{**asdict(p), "severity": str(p.severity)} for p in self.problems]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Rebuild a report from :meth:`to_dict` output."""
        problems = [Problem(**{"ids": [], **p, "severity": Severity(p["severity"])})
                    for p in data.get("problems", [])]
        return cls(source=data["source"], kind=data["kind"], layer=data.get("layer"),
                   status=data.get("status", "refused"), problems=problems,
                   info=dict(data.get("info", {})), version=data.get("version"))

    def to_text(self) -> str:
        """Format the report for a terminal: status, facts, then errors and warnings."""
        verdict = {
            "published": f"published as {self.layer} version "
                         f"{(self.version or {}).get('version', '?')} 已发布",
            "unchanged": f"unchanged: this content is already the current version of "
                         f"{self.layer} 内容未变",
            "validated": "valid (dry run, nothing published) 校验通过（未发布）",
            "refused": "refused, nothing published 已拒绝（未发布）",
        }.get(self.status, self.status)
        lines = [f"{self.source} → {self.kind}: {verdict}"]
        facts = [f"{k}: {v}" for k, v in self.info.items() if v not in (None, "", [])
                 and k in _SHOWN_FACTS]
        if facts:
            lines.append("  " + " · ".join(facts))
        for title, group in (("errors 错误", self.errors), ("warnings 警告", self.warnings)):
            if not group:
                continue
            lines.append(f"{title} ({len(group)}):")
            for p in group:
                where = f" [{p.field}]" if p.field else ""
                rows = ""
                if p.rows:
                    more = ", …" if p.count > len(p.rows) else ""
                    rows = f" (rows {', '.join(map(str, p.rows))}{more})"
                if p.ids:
                    more = ", …" if p.count > len(p.ids) else ""
                    rows += f" (ids {', '.join(p.ids)}{more})"
                count = f"{p.count} × " if p.count else ""
                lines.append(f"  - {count}{p.code}{where}: {p.message}{rows}")
        return "\n".join(lines)


_SHOWN_FACTS = ("format", "driver", "layer", "encoding", "source_crs", "coords", "rows_read",
                "rows_kept", "bands", "size", "seconds")
