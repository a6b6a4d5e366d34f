"""Canonical layer kinds of the city information model, their schemas and vocabularies.

Each kind (design.md, "The city information model") has a geometry family, required and
optional fields with units, and labels in Chinese and English. Ingest maps source files onto
these schemas; the store refuses frames that do not fit them.

The domain's lists (case statuses and which of them are infections, zone tiers and zone
statuses) are defined here once; every other module imports them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twin.errors import SchemaError

__all__ = ["BUILDING_USES", "CASE_STATUSES", "FACILITY_KINDS", "INFECTION_STATUSES", "KINDS",
           "OPEN_ZONE_STATUSES", "ZONE_STATUSES", "ZONE_TIERS", "Field", "Kind", "get_kind",
           "schema_problems"]


@dataclass(frozen=True)
class Field:
    """One field of a kind's schema."""

    name: str
    dtype: str  # "str", "int", "float", "date"
    zh: str
    en: str
    unit: str = ""
    values: tuple[str, ...] = ()  # allowed values, when the field is an enumeration


@dataclass(frozen=True)
class Kind:
    """A canonical layer kind."""

    name: str
    zh: str
    en: str
    #: Allowed geometry families: "point", "line", "polygon", or "none" for a plain table.
    geometry: frozenset[str]
    required: tuple[Field, ...]
    optional: tuple[Field, ...] = field(default=())
    #: Whether a version may be a raster (GeoTIFF) instead of a table.
    raster: bool = False

    @property
    def fields(self) -> tuple[Field, ...]:
        """Required then optional fields."""
        return self.required + self.optional


_BOUNDARY_LEVELS = ("district", "street", "community", "grid")
BUILDING_USES = ("residential", "commercial", "office", "industrial", "public", "mixed", "other")
FACILITY_KINDS = ("hospital", "fever_clinic", "clinic", "pharmacy", "supermarket", "market",
                  "convenience_store", "warehouse", "quarantine_site", "shelter", "school",
                  "nursing_home", "testing_site")
CASE_STATUSES = ("confirmed", "asymptomatic", "suspected", "close_contact")
#: Case statuses that count as infections (new cases, zone proposals, risk, beds); suspected
#: cases and close contacts are not infections.
INFECTION_STATUSES = ("confirmed", "asymptomatic")
#: Control-zone tiers, strictest first: lockdown 封控区, control 管控区, prevention 防范区.
ZONE_TIERS = ("lockdown", "control", "prevention")
#: Statuses of a zone version: proposed by the system, active once people decide, lifted.
ZONE_STATUSES = ("proposed", "active", "lifted")
#: Zones still in force or under decision (drawn, exported and planned for by default).
OPEN_ZONE_STATUSES = ("proposed", "active")

_GROUPS = (
    Field("age_65_plus", "float", "65岁以上", "aged 65+", "persons"),
    Field("children", "float", "儿童", "children", "persons"),
    Field("elderly_living_alone", "float", "独居老人", "elderly living alone", "persons"),
    Field("chronic_patients", "float", "慢性病患者", "chronic patients", "persons"),
)

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("boundaries", "行政区划", "admin boundaries", frozenset({"polygon"}),
         (Field("level", "str", "级别", "level", values=_BOUNDARY_LEVELS),
          Field("code", "str", "区划代码", "code"),
          Field("name", "str", "名称", "name")),
         (Field("parent_code", "str", "上级代码", "parent code"),)),
    Kind("buildings", "建筑", "buildings", frozenset({"polygon"}),
         (Field("id", "str", "编号", "id"),
          Field("use", "str", "用途", "use", values=BUILDING_USES)),
         (Field("floors", "int", "层数", "floors"),
          Field("height_m", "float", "高度", "height", "m"),
          Field("residents", "float", "居民", "residents", "persons"))),
    Kind("facilities", "设施", "facilities", frozenset({"point"}),
         (Field("id", "str", "编号", "id"),
          Field("kind", "str", "类型", "kind", values=FACILITY_KINDS),
          Field("name", "str", "名称", "name")),
         (Field("capacity", "float", "容量", "capacity"),
          Field("capacity_unit", "str", "容量单位", "capacity unit"))),
    Kind("population", "人口", "population", frozenset({"point", "polygon", "none"}),
         (Field("persons", "float", "常住人口", "residents", "persons"),),
         (*_GROUPS, Field("community_code", "str", "社区代码", "community code")),
         raster=True),
    Kind("cases", "病例", "cases", frozenset({"point"}),
         (Field("id", "str", "编号", "pseudonymous id"),
          Field("report_date", "date", "报告日期", "report date"),
          Field("status", "str", "状态", "status", values=CASE_STATUSES)),
         (Field("onset_date", "date", "发病日期", "onset date"),
          Field("age_band", "str", "年龄段", "age band"),
          Field("severity", "str", "严重程度", "severity"))),
    Kind("stocks", "物资库存", "stocks", frozenset({"none"}),
         (Field("facility_id", "str", "设施编号", "facility id"),
          Field("resource", "str", "物资", "resource"),
          Field("quantity", "float", "数量", "quantity"),
          Field("unit", "str", "单位", "unit"),
          Field("as_of", "date", "日期", "as of"))),
    Kind("roads", "道路", "roads", frozenset({"line"}),
         (Field("class", "str", "等级", "class"),),
         (Field("name", "str", "名称", "name"),
          Field("speed_kmh", "float", "限速", "speed", "km/h"))),
)}

_FAMILIES = {"Point": "point", "MultiPoint": "point", "LineString": "line",
             "MultiLineString": "line", "LinearRing": "line", "Polygon": "polygon",
             "MultiPolygon": "polygon"}


def get_kind(name: str) -> Kind:
    """Return the canonical kind called ``name``.

    Raises
    ------
    SchemaError
        For an unknown kind, suggesting the closest known one.
    """
    try:
        return KINDS[name]
    except KeyError:
        hint = difflib.get_close_matches(name, list(KINDS), n=1)
        raise SchemaError(
            f"unknown layer kind {name!r}"
            + (f"; did you mean {hint[0]!r}?" if hint else "")
            + f" Known kinds: {', '.join(KINDS)}"
        ) from None


def schema_problems(kind: Kind, columns: list[str], geom_types: Mapping[str, Any] | None,
                    crs: Any) -> list[str]:
    """Return every way a frame's layout breaks ``kind``'s schema (empty when it fits).

    Parameters
    ----------
    kind
        The canonical kind.
    columns
        Attribute column names (without the geometry column).
    geom_types
        Counts of geometry type names (``{"Polygon": 10}``), or ``None`` for a plain table.
    crs
        The frame's CRS (a ``pyproj.CRS``) or ``None``.
    """
    problems = []
    missing = [f.name for f in kind.required if f.name not in columns]
    if missing:
        problems.append(f"missing required field{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing)} for kind {kind.name!r}")
    if geom_types is None:
        if "none" not in kind.geometry:
            problems.append(f"kind {kind.name!r} needs {'/'.join(sorted(kind.geometry))} "
                            "geometries, but the data has no geometry column")
        return problems
    if kind.geometry == frozenset({"none"}):
        problems.append(f"kind {kind.name!r} is a plain table; drop the geometry column")
        return problems
    families = {_FAMILIES.get(t, t) for t, n in geom_types.items() if n and t is not None}
    wrong = families - kind.geometry
    if wrong:
        problems.append(f"kind {kind.name!r} takes {'/'.join(sorted(kind.geometry - {'none'}))} "
                        f"geometries, found {', '.join(sorted(wrong))}")
    if crs is None:
        problems.append("the data has no CRS; the store keeps layers in EPSG:4326")
    elif crs.to_epsg() != 4326:
        problems.append(f"the data is in {crs.to_string()}, but the store keeps layers in "
                        "EPSG:4326; reproject with .to_crs(4326) first")
    return problems
