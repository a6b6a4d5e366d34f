"""Synonym tables of ingest: column names, enumerated values and units, in one place.

Departments name the same thing in many ways: 用途, ``USE``, ``building`` (an OSM tag key);
住宅, ``Residential``, ``apartments``. This module holds every table that turns such spellings
into the canonical names of :mod:`twin.schema`:

- :data:`FIELD_SYNONYMS` (and per-kind :data:`KIND_FIELD_SYNONYMS`, :data:`KIND_PREFIXES`):
  column names that mean a canonical field, best first;
- :data:`ENUMERATIONS`: for each enumerated field of a kind, every canonical value with its
  Chinese and English labels and the source spellings that mean it (Chinese, English, common
  OpenStreetMap tag values);
- :data:`UNITS`: unit spellings with their family and factor to the family's base unit
  (metres, kilograms, litres, km/h, persons);
- :data:`RESOURCE_UNITS`: the canonical unit each stock resource is counted in.

Where :mod:`twin.schema` lists the allowed values of a field, the codes here are the same
(checked at import); where it lists none (stock resources and units, road classes) this module
is the reference. Resource codes are the keys of ``[needs.*]`` in ``twin/defaults.toml`` plus
``beds``.

Matching is forgiving about spelling but never guesses: a value matches when its *key*
(:func:`value_key`: Unicode NFKC, case-folded, runs of spaces/underscores/hyphens as one ``_``)
equals the key of a listed spelling; ``key=value`` OSM tags also match on their value part.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from twin.schema import BUILDING_USES, CASE_STATUSES, FACILITY_KINDS, KINDS, Field

__all__ = [
    "BASE_UNITS",
    "ENUMERATIONS",
    "FIELD_SYNONYMS",
    "KIND_FIELD_SYNONYMS",
    "KIND_PREFIXES",
    "RESOURCE_UNITS",
    "UNITS",
    "CanonicalValue",
    "Unit",
    "allowed_values",
    "enumeration",
    "field_synonyms",
    "normalise_value",
    "parse_unit",
    "value_key",
    "value_table",
]


# -- enumerated values --------------------------------------------------------------------------
@dataclass(frozen=True)
class CanonicalValue:
    """One canonical value of an enumerated field, its labels and the spellings that mean it."""

    code: str
    zh: str
    en: str
    synonyms: tuple[str, ...] = ()


def _values(*rows: tuple[str, str, str, tuple[str, ...]]) -> tuple[CanonicalValue, ...]:
    return tuple(CanonicalValue(code, zh, en, syn) for code, zh, en, syn in rows)


_BOUNDARY_LEVELS = _values(
    ("district", "区", "district", ("区县", "县", "县区", "县级市", "区级", "市辖区", "county",
                                    "区划级别_区")),
    ("street", "街道", "street", ("乡镇", "镇", "乡", "街道办", "街道办事处", "街乡镇", "街镇",
                                   "街道级", "subdistrict", "sub_district", "township", "town")),
    ("community", "社区", "community", ("村", "居委会", "村委会", "居委", "社区居委会",
                                         "村居", "社区级", "village", "neighbourhood",
                                         "neighborhood", "residential_committee")),
    ("grid", "网格", "grid", ("网格单元", "grid_cell", "cell")),
)

_BUILDING_USES = _values(
    ("residential", "住宅", "residential", (
        "居住", "住宅楼", "居民楼", "民居", "住房", "宿舍", "公寓", "别墅", "house", "apartments",
        "apartment", "detached", "semidetached_house", "terrace", "dormitory", "bungalow",
        "residence", "housing", "home")),
    ("commercial", "商业", "commercial", (
        "商业楼", "商场", "商铺", "商服", "酒店", "宾馆", "retail", "shop", "supermarket",
        "hotel", "kiosk", "mall", "business")),
    ("office", "办公", "office", ("办公楼", "写字楼", "商务", "offices")),
    ("industrial", "工业", "industrial", (
        "厂房", "工厂", "仓储", "仓库", "物流", "warehouse", "factory", "manufacture",
        "storage", "logistics")),
    ("public", "公共", "public", (
        "公共建筑", "公共服务", "公建", "学校", "医院", "教育", "医疗", "文化", "体育",
        "政府", "机关", "school", "hospital", "university", "college", "kindergarten",
        "civic", "government", "public_building", "train_station", "transportation",
        "church", "temple", "mosque", "sports_hall", "stadium", "fire_station")),
    ("mixed", "混合", "mixed", ("商住", "综合", "混合用途", "商住混合", "mixed_use", "mixeduse")),
    ("other", "其他", "other", ("其它", "未知", "不详", "yes", "unknown", "misc")),
)

_FACILITY_KINDS = _values(
    ("hospital", "医院", "hospital", (
        "综合医院", "人民医院", "专科医院", "中医院", "定点医院", "方舱医院", "方舱",
        "field_hospital", "amenity=hospital", "healthcare=hospital")),
    ("fever_clinic", "发热门诊", "fever clinic", ("发热诊室", "发热哨点", "发热哨点诊室")),
    ("clinic", "社区卫生服务中心", "clinic", (
        "社区卫生服务站", "卫生服务中心", "卫生院", "乡镇卫生院", "诊所", "门诊部", "卫生室",
        "村卫生室", "health_centre", "health_center", "doctors", "amenity=clinic",
        "amenity=doctors", "healthcare=clinic")),
    ("pharmacy", "药店", "pharmacy", (
        "药房", "大药房", "零售药店", "drugstore", "chemist", "amenity=pharmacy",
        "shop=chemist", "healthcare=pharmacy")),
    ("supermarket", "超市", "supermarket", (
        "大型超市", "商超", "大卖场", "hypermarket", "shop=supermarket")),
    ("market", "农贸市场", "market", (
        "菜市场", "集贸市场", "农产品市场", "批发市场", "marketplace", "wet_market",
        "amenity=marketplace")),
    ("convenience_store", "便利店", "convenience store", (
        "便民店", "小卖部", "convenience", "shop=convenience")),
    ("warehouse", "仓库", "warehouse", (
        "物资仓库", "储备库", "物资储备库", "应急物资储备库", "仓储", "物流中心", "配送中心",
        "depot", "distribution_centre", "distribution_center", "building=warehouse")),
    ("quarantine_site", "隔离点", "quarantine site", (
        "集中隔离点", "隔离酒店", "集中隔离场所", "隔离场所", "quarantine", "quarantine_hotel",
        "isolation_site")),
    ("shelter", "避难场所", "shelter", (
        "应急避难场所", "避难所", "安置点", "emergency_shelter", "amenity=shelter",
        "emergency=assembly_point", "assembly_point")),
    ("school", "学校", "school", (
        "小学", "中学", "初中", "高中", "大学", "幼儿园", "primary_school", "high_school",
        "university", "college", "kindergarten", "amenity=school", "amenity=university",
        "amenity=college", "amenity=kindergarten")),
    ("nursing_home", "养老院", "nursing home", (
        "敬老院", "养老机构", "福利院", "养老中心", "老年公寓", "elderly_home", "care_home",
        "retirement_home", "amenity=nursing_home", "social_facility=nursing_home")),
    ("testing_site", "核酸检测点", "testing site", (
        "核酸采样点", "采样点", "核酸检测", "检测点", "便民采样点", "pcr_site", "test_site",
        "testing_station", "covid_testing")),
)

_CASE_STATUSES = _values(
    ("confirmed", "确诊", "confirmed", ("确诊病例", "确诊患者", "阳性", "confirmed_case")),
    ("asymptomatic", "无症状感染者", "asymptomatic", ("无症状", "无症状感染", "asymptomatic_case",
                                                      "asymptomatic_infection")),
    ("suspected", "疑似", "suspected", ("疑似病例", "suspect", "suspected_case")),
    ("close_contact", "密切接触者", "close contact", ("密接", "密切接触", "contact")),
)

_RESOURCES = _values(
    ("water", "饮用水", "water", ("水", "桶装水", "瓶装水", "矿泉水", "纯净水", "生活用水",
                                   "drinking_water", "bottled_water")),
    ("grain", "粮食", "grain", ("米面", "大米", "面粉", "米", "面", "粮油", "rice", "flour",
                                 "cereals", "staples")),
    ("vegetables", "蔬菜", "vegetables", ("菜", "青菜", "蔬菜包", "vegetable", "veg", "greens")),
    ("protein", "肉蛋", "meat, fish and eggs", (
        "肉禽蛋", "肉蛋奶", "肉类", "禽蛋", "鸡蛋", "肉", "蛋", "猪肉", "水产", "蛋白",
        "meat", "eggs", "fish", "meat_fish_eggs")),
    ("antigen_tests", "抗原试剂", "antigen tests", (
        "抗原", "抗原检测试剂", "抗原试剂盒", "抗原检测盒", "antigen", "antigen_test",
        "rapid_test", "rapid_tests", "rat")),
    ("masks", "口罩", "masks", ("医用口罩", "n95", "n95口罩", "kn95", "mask", "face_mask")),
    ("medicine", "药品包", "medicine packs", (
        "药品", "药包", "慢病药", "慢性病药品", "常用药", "medicine_pack", "medicines",
        "drugs")),
    ("beds", "床位", "beds", ("病床", "床", "bed", "hospital_beds")),
)

_STOCK_UNITS = _values(
    ("kg", "千克", "kg", ("公斤", "kilogram", "kilograms", "kgs")),
    ("L", "升", "L", ("l", "litre", "litres", "liter", "liters", "公升")),
    ("piece", "个", "piece", ("只", "片", "件", "枚", "pcs", "pc", "pieces", "each", "ea")),
    ("test", "人份", "test", ("测试", "tests", "test_kit", "kit", "kits")),
    ("pack", "份", "pack", ("包", "盒", "袋", "packs", "box", "boxes", "bag")),
    ("bed", "张", "bed", ("床", "床位", "beds")),
)

_ROAD_CLASSES = _values(
    ("expressway", "快速路", "expressway", (
        "高速", "高速公路", "高架", "高架路", "城市快速路", "motorway", "motorway_link", "trunk",
        "trunk_link", "freeway", "highway=motorway", "highway=trunk")),
    ("arterial", "主干路", "arterial", (
        "主干道", "主路", "干道", "primary", "primary_link", "highway=primary", "main")),
    ("secondary", "次干路", "secondary", (
        "次干道", "secondary_link", "tertiary", "tertiary_link", "collector",
        "highway=secondary", "highway=tertiary")),
    ("local", "支路", "local", (
        "街巷", "小区路", "内部道路", "residential", "service", "unclassified", "living_street",
        "road", "minor", "highway=residential", "highway=service", "highway=unclassified")),
)

#: (kind, field) -> canonical values. OSM ``tertiary`` counts as a secondary road (it links
#: local streets to the network, like a 次干路) and ``building=yes`` as use ``other``: the tag
#: says only that the building exists.
ENUMERATIONS: dict[tuple[str, str], tuple[CanonicalValue, ...]] = {
    ("boundaries", "level"): _BOUNDARY_LEVELS,
    ("buildings", "use"): _BUILDING_USES,
    ("facilities", "kind"): _FACILITY_KINDS,
    ("cases", "status"): _CASE_STATUSES,
    ("stocks", "resource"): _RESOURCES,
    ("stocks", "unit"): _STOCK_UNITS,
    ("roads", "class"): _ROAD_CLASSES,
}

#: Canonical unit each resource is counted in (``[needs.*].unit`` in ``twin/defaults.toml``).
RESOURCE_UNITS: dict[str, str] = {
    "water": "L", "grain": "kg", "vegetables": "kg", "protein": "kg", "antigen_tests": "test",
    "masks": "piece", "medicine": "pack", "beds": "bed",
}


def value_key(text: object) -> str:
    """Return the matching key of a value: NFKC, case-folded, separators as one ``_``."""
    s = unicodedata.normalize("NFKC", str(text)).casefold().strip()
    return re.sub(r"[\s_\-]+", "_", s).strip("_")


def enumeration(kind: str, field: str) -> tuple[CanonicalValue, ...] | None:
    """Return the canonical values of ``kind``'s enumerated ``field``, or ``None``."""
    return ENUMERATIONS.get((kind, field))


def allowed_values(kind: str, field: str) -> tuple[str, ...]:
    """Return the canonical codes of an enumerated field (empty when it is free text)."""
    return tuple(v.code for v in ENUMERATIONS.get((kind, field), ()))


@cache
def value_table(kind: str, field: str) -> Mapping[str, str]:
    """Return ``{value_key(spelling): code}`` for every spelling of an enumerated field."""
    table: dict[str, str] = {}
    for value in ENUMERATIONS.get((kind, field), ()):
        for spelling in (value.code, value.zh, value.en, *value.synonyms):
            table.setdefault(value_key(spelling), value.code)
    return table


def normalise_value(kind: str, field: str, raw: object,
                    extra: Mapping[str, str] | None = None) -> str | None:
    """Return the canonical code ``raw`` means, or ``None`` when it is not a known spelling.

    Parameters
    ----------
    kind, field
        The enumerated field.
    raw
        The source value.
    extra
        ``{source value: canonical code}`` from a mapping file; it wins over the built-in
        synonyms and is matched exactly first, then by key.
    """
    if extra:
        if raw in extra:
            return extra[raw]
        keyed = {value_key(k): v for k, v in extra.items()}
        hit = keyed.get(value_key(raw))
        if hit is not None:
            return hit
    table = value_table(kind, field)
    key = value_key(raw)
    if key in table:
        return table[key]
    if "=" in key:  # an OSM tag "amenity=hospital": fall back on its value part
        return table.get(key.split("=", 1)[1].strip("_"))
    return None


# -- column names -------------------------------------------------------------------------------
#: Canonical field name -> other column names meaning it, best first (the canonical name and the
#: schema's Chinese and English labels are always tried first).
FIELD_SYNONYMS: dict[str, tuple[str, ...]] = {
    "id": ("编号", "编码", "标识", "标识码", "唯一标识", "identifier", "uid"),
    "name": ("名称", "名字", "title", "label"),
    "code": ("区划代码", "行政区划代码", "区划编码", "代码", "编码", "adcode", "admin_code",
             "division_code"),
    "parent_code": ("上级代码", "上级区划代码", "上级编码", "父级代码", "所属代码", "parent",
                    "parent_id", "parent_adcode"),
    "level": ("级别", "层级", "行政级别", "区划级别", "admin_level_name", "type"),
    "use": ("用途", "建筑用途", "使用性质", "功能", "用途类型", "usage", "function",
            "building_use", "category", "类型", "type", "building"),
    "floors": ("层数", "楼层数", "地上层数", "楼层", "总层数", "levels", "building_levels",
               "building:levels", "storeys", "stories", "num_floors", "floor_count",
               "number_of_floors"),
    "height_m": ("height", "高度", "建筑高度", "楼高", "高", "building_height"),
    "residents": ("居民", "居住人口", "人口", "人数", "居民数", "population", "pop",
                  "inhabitants"),
    "kind": ("类型", "设施类型", "类别", "种类", "分类", "type", "category", "facility_type",
             "amenity", "shop"),
    "capacity": ("容量", "规模", "容纳量", "接待能力", "床位数", "cap"),
    "capacity_unit": ("容量单位", "capacity unit", "规模单位"),
    "persons": ("常住人口", "人口", "人口数", "总人口", "人数", "居民", "residents",
                "population", "pop"),
    "age_65_plus": ("65岁以上", "65岁及以上", "65周岁以上", "65周岁及以上", "老年人口",
                    "老年人", "aged 65+", "age65plus", "age_65+", "over_65", "elderly"),
    "children": ("儿童", "0-14岁", "0~14岁", "0至14岁", "14岁以下", "14岁及以下", "少儿",
                 "0-14", "age_0_14", "under_15", "kids"),
    "elderly_living_alone": ("独居老人", "独居", "独居老年人", "living_alone",
                             "elderly_alone"),
    "chronic_patients": ("慢性病患者", "慢病患者", "慢性病", "慢病", "慢性病人数", "chronic",
                         "chronic_disease"),
    "community_code": ("社区代码", "社区编码", "社区编号", "所属社区代码", "community",
                       "区划代码", "code", "代码"),
    "report_date": ("报告日期", "报告时间", "确诊日期", "报告日", "上报日期", "reported",
                    "date_reported", "report date", "reportdate"),
    "onset_date": ("发病日期", "发病时间", "症状出现日期", "onset", "symptom_onset",
                   "date_onset"),
    "status": ("状态", "病例状态", "病例类型", "病例分类", "诊断类型", "分类", "classification",
               "case_status", "type"),
    "age_band": ("年龄段", "年龄组", "年龄", "age_group", "age", "ageband"),
    "severity": ("严重程度", "病情", "临床分型", "病情分级", "病情程度", "grade"),
    "facility_id": ("设施编号", "设施id", "设施编码", "机构编号", "仓库编号", "网点编号",
                    "facility", "site_id", "store_id", "编号", "id"),
    "resource": ("物资", "物资名称", "物资类别", "物资类型", "品类", "品名", "item", "supply",
                 "commodity", "goods"),
    "quantity": ("数量", "库存", "库存量", "库存数量", "存量", "qty", "amount", "stock",
                 "count"),
    "unit": ("单位", "计量单位", "units", "uom"),
    "as_of": ("日期", "统计日期", "盘点日期", "截至日期", "更新日期", "更新时间", "as of",
              "as_of_date", "date", "updated"),
    "class": ("等级", "道路等级", "道路类型", "级别", "类型", "highway", "fclass", "road_class",
              "grade", "type"),
    "speed_kmh": ("限速", "设计速度", "设计时速", "速度", "限速值", "maxspeed", "speed",
                  "speed_limit", "max_speed"),
}

#: Synonyms that hold for one kind only, tried before :data:`FIELD_SYNONYMS`.
KIND_FIELD_SYNONYMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("roads", "name"): ("道路名称", "路名", "road_name", "street_name", "街道名称"),
    ("facilities", "name"): ("设施名称", "机构名称", "单位名称", "网点名称", "店名"),
    ("boundaries", "name"): ("区划名称", "行政区名称", "社区名称", "街道名称", "区名"),
    ("cases", "id"): ("病例编号", "个案编号", "病例id", "case_id", "pseudonym", "pid"),
}

#: Prefixes a column name may carry before a field's name in a file of one kind:
#: 建筑编号 is ``id`` in a buildings file, ``road_name`` is ``name`` in a roads file. Stocks
#: have none: 物资编号 is an item code, not the facility's id.
KIND_PREFIXES: dict[str, tuple[str, ...]] = {
    "boundaries": ("行政区划", "行政区", "区划", "社区", "街道", "admin", "boundary"),
    "buildings": ("建筑物", "建筑", "房屋", "楼栋", "building", "bldg"),
    "facilities": ("设施", "机构", "网点", "facility", "poi", "site"),
    "cases": ("病例", "个案", "case"),
    "roads": ("道路", "road", "street"),
}


def field_synonyms(field: Field, kind: str | None = None) -> tuple[str, ...]:
    """Return the column names that mean ``field`` (of ``kind``, when given), best first."""
    names = (field.name, field.zh, field.en,
             *(KIND_FIELD_SYNONYMS.get((kind, field.name), ()) if kind else ()),
             *FIELD_SYNONYMS.get(field.name, ()))
    return tuple(dict.fromkeys(names))


# -- units --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """A unit: its code, family and factor to the family's base unit."""

    code: str
    family: str  # "length" (m), "mass" (kg), "volume" (L), "speed" (km/h), "persons"
    factor: float


_UNIT_SPELLINGS: dict[Unit, tuple[str, ...]] = {
    Unit("m", "length", 1.0): ("m", "米", "公尺", "metre", "metres", "meter", "meters"),
    Unit("ft", "length", 0.3048): ("ft", "英尺", "feet", "foot"),
    Unit("km", "length", 1000.0): ("km", "千米", "公里", "kilometre", "kilometres",
                                   "kilometer", "kilometers"),
    Unit("cm", "length", 0.01): ("cm", "厘米"),
    Unit("kg", "mass", 1.0): ("kg", "千克", "公斤", "kilogram", "kilograms", "kgs"),
    Unit("t", "mass", 1000.0): ("t", "吨", "tonne", "tonnes", "公吨"),
    Unit("g", "mass", 0.001): ("g", "克", "gram", "grams"),
    Unit("jin", "mass", 0.5): ("jin", "斤", "市斤"),
    Unit("L", "volume", 1.0): ("l", "升", "公升", "litre", "litres", "liter", "liters"),
    Unit("mL", "volume", 0.001): ("ml", "毫升", "millilitre", "milliliter"),
    Unit("m3", "volume", 1000.0): ("m3", "立方米", "方", "cubic metre", "cubic meter", "cbm"),
    Unit("km/h", "speed", 1.0): ("km/h", "kmh", "kph", "km/hr", "公里/小时", "千米/小时",
                                 "公里每小时", "km/小时"),
    Unit("mph", "speed", 1.609344): ("mph", "英里/小时"),
    Unit("persons", "persons", 1.0): ("persons", "人", "人数", "people", "person"),
}

#: Matching key of a spelling -> unit. Keys are case-folded, so "L" and "l" are both litres
#: and "M" is metres; a mapping file names units by these spellings.
UNITS: dict[str, Unit] = {
    value_key(s).replace("_", " "): unit
    for unit, spellings in _UNIT_SPELLINGS.items() for s in spellings
}

#: Base unit of each family.
BASE_UNITS: dict[str, str] = {"length": "m", "mass": "kg", "volume": "L", "speed": "km/h",
                              "persons": "persons"}


def parse_unit(text: object) -> Unit | None:
    """Return the unit ``text`` spells (``"ft"``, ``"吨"``, ``"km/h"``…), or ``None``."""
    key = value_key(text).replace("_", " ")
    return UNITS.get(key) or UNITS.get(key.replace(" ", ""))


# -- self-checks --------------------------------------------------------------------------------
def _check_tables() -> None:
    schema_values = {("buildings", "use"): BUILDING_USES, ("facilities", "kind"): FACILITY_KINDS,
                     ("cases", "status"): CASE_STATUSES}
    for kind in KINDS.values():
        for f in kind.fields:
            if f.values:
                schema_values[(kind.name, f.name)] = f.values
    for key, codes in schema_values.items():
        ours = allowed_values(*key)
        if tuple(ours) != tuple(codes):  # pragma: no cover - guards schema edits
            raise AssertionError(f"ingest.values lists {ours} for {key}, the schema {codes}")
    if set(RESOURCE_UNITS) != set(allowed_values("stocks", "resource")):  # pragma: no cover
        raise AssertionError("RESOURCE_UNITS and the resource enumeration disagree")
    for (kind, field), values in ENUMERATIONS.items():
        seen: dict[str, str] = {}
        for value in values:
            for spelling in (value.code, value.zh, value.en, *value.synonyms):
                other = seen.setdefault(value_key(spelling), value.code)
                if other != value.code:  # pragma: no cover - guards table edits
                    raise AssertionError(f"{kind}.{field}: {spelling!r} means both "
                                         f"{other!r} and {value.code!r}")


_check_tables()
