"""Field mapping, value normalisation, dates and record validation of ingest."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
import tomllib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.dates import parse_dates
from ingest.errors import MappingError
from ingest.mapping import MappingSpec, guess_column, load_mapping, map_fields
from ingest.report import Report
from ingest.validate import validate_records
from ingest.values import (
    ENUMERATIONS,
    RESOURCE_UNITS,
    allowed_values,
    normalise_value,
    parse_unit,
)
from twin.demo import generate_demo_city
from twin.schema import KINDS

BUILDINGS, FACILITIES, STOCKS, CASES = (KINDS[k] for k in ("buildings", "facilities", "stocks",
                                                           "cases"))


def frame(data: dict, *, start: int = 1) -> pd.DataFrame:
    """A raw reader frame: text columns, index = 1-based record numbers."""
    n = len(next(iter(data.values())))
    return pd.DataFrame(data, index=pd.RangeIndex(start, start + n))


def codes(report: Report) -> dict[str, int]:
    return {p.code: p.count for p in report.problems}


def problem(report: Report, code: str, field: str | None = None):
    found = [p for p in report.problems if p.code == code and (field is None or p.field == field)]
    assert found, f"no {code} [{field}] in {report.to_text()}"
    return found[0]


def dropped(report: Report) -> int:
    return sum(p.count for p in report.problems if p.code == "row_dropped")


def run(data: pd.DataFrame, kind, spec: MappingSpec | None = None) -> tuple[pd.DataFrame, Report]:
    report = Report(source="test", kind=kind.name)
    return map_fields(data, kind, spec, report), report


# -- the demo city maps with no mapping file ----------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "city"
    generate_demo_city(out, size="small")
    return out, json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def _read(root: Path, entry: dict) -> pd.DataFrame:
    path = root / entry["path"]
    if entry["format"] == "csv":
        raw = pd.read_csv(path, dtype=str, encoding=entry["encoding"].lower(),
                          keep_default_na=False)
    else:
        raw = gpd.read_file(path, layer=entry["layer"], engine="pyogrio")
    raw.index = pd.RangeIndex(1, len(raw) + 1)
    return raw


def test_every_demo_file_maps_automatically(demo: tuple[Path, dict]) -> None:
    root, manifest = demo
    entries = [e for e in manifest["files"] if e["format"] != "geotiff"]
    assert len(entries) == 10  # four boundary layers (with the grid units) and six files
    for entry in entries:
        kind = KINDS[entry["kind"]]
        raw = _read(root, entry)
        report = Report(source=entry["path"], kind=kind.name)
        out = validate_records(map_fields(raw, kind, None, report), kind, report)
        assert report.problems == [], (entry["name"], report.to_text())
        assert len(out) == entry["rows"]
        assert list(out.index) == list(range(1, entry["rows"] + 1))
        assert {f.name for f in kind.required} <= set(report.info["mapping"])
        for f in kind.fields:
            if allowed_values(kind.name, f.name) and f.name in out:
                assert set(out[f.name]) <= set(allowed_values(kind.name, f.name)), f.name
        if isinstance(raw, gpd.GeoDataFrame):
            assert isinstance(out, gpd.GeoDataFrame)
            assert out.geometry.equals(raw.geometry) and out.crs == raw.crs
            assert out.columns[-1] == raw.geometry.name
    # spot checks of what the files mean
    by_name = {e["name"]: e for e in entries}
    report = Report(source="x", kind="population")
    pop = map_fields(_read(root, by_name["population_groups"]), KINDS["population"], None,
                     report)
    assert report.info["mapping"]["children"] == "0-14岁"
    assert pop["persons"].sum() == manifest["totals"]["residents"]
    assert list(pop.columns[-1:]) == ["社区名称"]  # kept as an extra
    report = Report(source="x", kind="facilities")
    fac = map_fields(_read(root, by_name["facilities"]), FACILITIES, None, report)
    assert fac["kind"].value_counts()["convenience_store"] == 10
    assert {"经度", "纬度", "地址"} <= set(fac.columns)
    report = Report(source="x", kind="stocks")
    stocks = map_fields(_read(root, by_name["stocks"]), STOCKS, None, report)
    assert set(stocks["resource"]) <= set(RESOURCE_UNITS)
    assert (stocks["unit"] == stocks["resource"].map(RESOURCE_UNITS)).all()
    assert stocks["as_of"].dtype == "datetime64[s]"


# -- column names -------------------------------------------------------------------------------
def test_english_and_chinese_headers() -> None:
    raw = frame({"ID": ["F1", "F2"], "Name": ["City Hospital", "Corner Shop"],
                 "Type": ["Hospital", "amenity=pharmacy"], "Longitude": ["121.4", "121.5"],
                 "Latitude": ["31.2", "31.3"], "Capacity (persons)": ["600", "1,200"]})
    out, report = run(raw, FACILITIES)
    assert report.info["mapping"] == {"id": "ID", "kind": "Type", "name": "Name",
                                      "capacity": "Capacity (persons)"}
    assert list(out.columns) == ["id", "kind", "name", "capacity", "Longitude", "Latitude"]
    assert list(out["kind"]) == ["hospital", "pharmacy"]
    assert list(out["capacity"]) == [600.0, 1200.0]

    raw = frame({"建筑编号": ["b1"], "建筑用途": ["商住"], "楼层数": ["６"],
                 "建筑高度（米）": ["18.5"], "居住人口": ["40"]})
    out, report = run(raw, BUILDINGS)
    assert report.info["mapping"] == {"id": "建筑编号", "use": "建筑用途", "floors": "楼层数",
                                      "height_m": "建筑高度（米）", "residents": "居住人口"}
    assert out.iloc[0].tolist() == ["b1", "mixed", 6, 18.5, 40.0]
    assert report.problems == []


@pytest.mark.parametrize("column", ["height_m", "Height (m)", "高度(米)", "高度（米）", "HEIGHT",
                                    "height_ft", "建筑高度", "高度米", "Height [ft]"])
def test_guess_column_ignores_case_separators_and_units(column: str) -> None:
    height = next(f for f in BUILDINGS.fields if f.name == "height_m")
    assert guess_column(["编号", column, "备注"], height) == column
    assert guess_column(["编号", "备注", "weight"], height) is None


def test_ambiguous_columns_pick_the_best_and_warn() -> None:
    raw = frame({"名称": ["a"], "name": ["b"], "编号": ["1"], "类型": ["超市"]})
    out, report = run(raw, FACILITIES)
    assert report.info["mapping"]["name"] == "name"  # the canonical name beats the label
    warning = problem(report, "ambiguous_column", "name")
    assert "'名称'" in warning.message and '[fields] name = "名称"' in warning.message
    assert list(out.columns) == ["id", "kind", "name", "名称"]


def test_missing_required_field_is_an_error_naming_the_columns() -> None:
    raw = frame({"编号": ["1"], "层数": ["3"], "Remarks": ["x"]})
    out, report = run(raw, BUILDINGS)
    error = problem(report, "missing_field", "use")
    assert error.severity == "error"
    assert "'use' (用途" in error.message
    assert "'编号', '层数', 'Remarks'" in error.message
    assert '[fields] use = "' in error.message
    assert len(out) == 1 and "use" not in out.columns


# -- mapping files ------------------------------------------------------------------------------
def test_mapping_file_overrides_a_guess_and_is_documented(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    path.write_text('extras = "drop"\n[fields]\nname = "简称"\nlon = "X"\n'
                    '[values.kind]\n"9" = "warehouse"\n', encoding="utf-8")
    spec = load_mapping(path)
    assert spec == MappingSpec(fields={"name": "简称", "lon": "X"},
                               values={"kind": {"9": "warehouse"}}, extras="drop")
    raw = frame({"编号": ["1", "2"], "名称": ["甲仓库", "乙超市"], "简称": ["甲", "乙"],
                 "类型": ["9", "超市"], "X": ["121", "121"]})
    out, report = run(raw, FACILITIES, spec)
    assert report.problems == []
    assert list(out["name"]) == ["甲", "乙"]
    assert list(out["kind"]) == ["warehouse", "supermarket"]
    assert list(out.columns) == ["id", "kind", "name"]  # extras dropped

    # the example in the module docstring is a valid mapping file
    import ingest.mapping as module
    doc = module.__doc__
    example = textwrap.dedent(doc[doc.index("optional)::") + 11:doc.index("Field names are")])
    example_path = tmp_path / "example.toml"
    example_path.write_text(example, encoding="utf-8")
    spec = load_mapping(example_path)
    assert spec.units == {"height_m": "ft", "quantity": "t"}
    assert spec.defaults == {"level": "community"}
    assert tomllib.loads(example)["dates"] == {"report_date": "%d/%m/%Y"}


def test_mapping_naming_a_missing_column_suggests_the_closest() -> None:
    raw = frame({"编号": ["1"], "用途类型": ["住宅"]})
    out, report = run(raw, BUILDINGS, MappingSpec(fields={"use": "用途类别"}))
    error = problem(report, "mapping_unknown_column", "use")
    assert error.severity == "error"
    assert "did you mean '用途类型'?" in error.message
    assert "'编号', '用途类型'" in error.message
    assert "missing_field" not in codes(report)  # one problem, not two
    assert "use" not in out.columns


def test_bad_mapping_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'extra = "keep"\n'
        '[fields]\nhieght_m = "H"\n'
        '[values.use]\n"R" = "residental"\n'
        '[dates]\nreport_date = "%d/%m"\nonset_date = "%Q"\n'
        '[units]\nheight_m = "kg"\nquantity = "stone"\n'
        '[defaults]\nlevel = "town hall"\n', encoding="utf-8")
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    message = str(info.value)
    assert "bad.toml has 8 problems" in message
    for part in ("unknown key 'extra'; did you mean 'extras'?",
                 "'hieght_m' is not a canonical field; did you mean 'height_m'?",
                 "'residental' is not a value of 'use'; did you mean 'residential'?",
                 "'dates.report_date': '%d/%m' does not give a full date",
                 "'dates.onset_date'",
                 "'units.height_m' = 'kg' is a mass unit",
                 "'units.quantity' = 'stone' is not a known unit",
                 "'defaults.level' = 'town hall'"):
        assert part in message, part

    path.write_text("[fields]\nuse = 用途\n", encoding="utf-8")
    with pytest.raises(MappingError, match="not valid TOML"):
        load_mapping(path)
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "missing.toml")


# -- numbers and units --------------------------------------------------------------------------
def test_units_feet_tonnes_and_jin() -> None:
    raw = frame({"编号": ["1", "2", "3"], "用途": ["住宅"] * 3, "height_ft": ["100", "33", ""]})
    out, report = run(raw, BUILDINGS)
    assert out["height_m"].tolist()[:2] == pytest.approx([30.48, 10.0584])
    assert report.info["unit_conversions"] == {"height_m": "ft -> m"}
    out, _ = run(frame({"编号": ["1"], "用途": ["住宅"], "H": ["10"]}), BUILDINGS,
                 MappingSpec(fields={"height_m": "H"}, units={"height_m": "ft"}))
    assert out["height_m"].iloc[0] == pytest.approx(3.048)
    out, _ = run(frame({"编号": ["1"], "用途": ["住宅"], "高度": ["12米"]}), BUILDINGS)
    assert out["height_m"].iloc[0] == 12.0

    raw = frame({"设施编号": ["F1"] * 5, "物资": ["粮食", "蔬菜", "饮用水", "口罩", "饮用水"],
                 "数量": ["2", "300", "1.5", "1,000", "2000"],
                 "单位": ["吨", "斤", "立方米", "只", "毫升"], "日期": ["2026-04-30"] * 5})
    out, report = run(raw, STOCKS)
    assert out["quantity"].tolist() == pytest.approx([2000.0, 150.0, 1500.0, 1000.0, 2.0])
    assert out["unit"].tolist() == ["kg", "kg", "L", "piece", "L"]
    assert report.problems == []

    # the whole column in tonnes, from the mapping file or the header
    raw = frame({"设施编号": ["F1", "F2"], "物资": ["粮食", "粮食"], "数量": ["1.5", "2"],
                 "日期": ["2026-04-30"] * 2})
    out, report = run(raw, STOCKS, MappingSpec(units={"quantity": "t"}))
    assert out["quantity"].tolist() == [1500.0, 2000.0]
    assert out["unit"].tolist() == ["kg", "kg"]
    raw = raw.rename(columns={"数量": "数量(吨)"}).assign(单位=["吨", "kg"])
    out, report = run(raw, STOCKS)
    assert out["quantity"].tolist() == [1500.0, 2.0]  # each record's own unit wins
    assert problem(report, "unit_conflict", "quantity").rows == [2]


def test_full_width_digits_and_thousands_separators() -> None:
    raw = frame({"社区代码": ["1", "2", "3", "4", "5", "6"],
                 "常住人口": ["１２，３４５", "1,234", "2.5万", "1 234 567", "12,34", "abc"],
                 "65岁以上": ["１００", "-", "", "7", "8", "9"]})
    out, report = run(raw, KINDS["population"])
    assert out["persons"].tolist() == [12345.0, 1234.0, 25000.0, 1234567.0]
    assert out.index.tolist() == [1, 2, 3, 4]
    assert out["age_65_plus"].tolist() == pytest.approx([100.0, np.nan, np.nan, 7.0],
                                                         nan_ok=True)
    bad = problem(report, "bad_value", "persons")
    assert bad.rows == [5, 6] and "'12,34'" in bad.message
    assert problem(report, "row_dropped", "persons").rows == [5, 6]
    assert "bad_value" not in {p.code for p in report.problems if p.field == "age_65_plus"}

    out, report = run(frame({"编号": ["1", "2"], "用途": ["住宅"] * 2, "层数": ["3.5", "4.0"]}),
                      BUILDINGS)
    assert out["floors"].dtype == "Int64" and out["floors"].tolist()[1] == 4
    assert pd.isna(out["floors"].iloc[0])
    assert problem(report, "bad_value", "floors").rows == [1]


# -- enumerations -------------------------------------------------------------------------------
def test_unknown_enumeration_values_are_listed_and_required_ones_dropped() -> None:
    raw = frame({"编号": list("123456"), "用途": ["住宅", "别墅区", "别墅区", "??", "apartments",
                                                 "building=office"]})
    out, report = run(raw, BUILDINGS)
    unknown = problem(report, "unknown_value", "use")
    assert unknown.count == 3 and unknown.rows == [2, 3, 4]
    assert "'别墅区', '??'" in unknown.message
    assert "residential 住宅" in unknown.message
    assert '[values.use] "别墅区" = "residential"' in unknown.message
    assert out["use"].tolist() == ["residential", "residential", "office"]
    assert out.index.tolist() == [1, 5, 6]
    assert dropped(report) == 3


def test_synonym_tables_cover_the_canonical_values() -> None:
    for kind in KINDS.values():
        for f in kind.fields:
            if f.values:
                assert allowed_values(kind.name, f.name) == f.values
    needs = tomllib.loads((Path(__file__).parents[1] / "twin" / "defaults.toml")
                          .read_text(encoding="utf-8"))["needs"]
    assert set(allowed_values("stocks", "resource")) == {*needs, "beds"}
    assert {r: RESOURCE_UNITS[r] for r in needs} == {r: n["unit"] for r, n in needs.items()}
    assert set(RESOURCE_UNITS.values()) == set(allowed_values("stocks", "unit"))
    for values in ENUMERATIONS.values():
        assert all(v.zh and v.en for v in values)
    assert allowed_values("roads", "class") == ("expressway", "arterial", "secondary", "local")
    cases = {("roads", "class", "motorway"): "expressway", ("roads", "class", "支路"): "local",
             ("roads", "class", "highway=tertiary"): "secondary",
             ("facilities", "kind", "shop=convenience"): "convenience_store",
             ("facilities", "kind", "Fever Clinic"): "fever_clinic",
             ("facilities", "kind", "社区卫生服务中心"): "clinic",
             ("buildings", "use", "Warehouse"): "industrial",
             ("buildings", "use", "building=house"): "residential",
             ("boundaries", "level", "街道"): "street",
             ("cases", "status", "密接"): "close_contact",
             ("stocks", "unit", "人份"): "test", ("stocks", "unit", "张"): "bed"}
    for (kind, field, raw), code in cases.items():
        assert normalise_value(kind, field, raw) == code, raw
    assert parse_unit("斤").factor == 0.5 and parse_unit("m³").code == "m3"


# -- dates --------------------------------------------------------------------------------------
def test_ambiguous_dates_are_refused_with_the_consistent_format() -> None:
    report = Report(source="t", kind="cases")
    values = pd.Series(["03/05/2026", "13/05/2026", "2026-03-07", ""], index=[4, 5, 6, 7])
    out = parse_dates(values, field="report_date", fmt=None, report=report)
    error = problem(report, "ambiguous_date", "report_date")
    assert error.severity == "error" and error.rows == [4, 5]
    assert "3 May 2026 or 5 March 2026" in error.message
    assert "consistent with %d/%m/%Y (day first) only" in error.message
    assert '[dates] report_date = "%d/%m/%Y"' in error.message
    assert out.isna().tolist() == [True, True, False, True]

    # both orders fit: still refused, and the message says so
    report = Report(source="t", kind="cases")
    parse_dates(pd.Series(["05-03-26"]), field="onset_date", fmt=None, report=report)
    message = problem(report, "ambiguous_date").message
    assert "fits both %d-%m-%y and %m-%d-%y" in message

    # the mapping stage keeps the records (the error refuses the file anyway)
    raw = frame({"id": ["a", "b"], "report_date": ["03/05/2026", "04/05/2026"],
                 "status": ["确诊", "疑似"]})
    out, report = run(raw, CASES)
    assert len(out) == 2 and dropped(report) == 0 and not report.ok


def test_explicit_format_is_applied_strictly() -> None:
    raw = frame({"id": ["a", "b", "c"], "report_date": ["03/05/2026", "13/05/2026", "2026-05-01"],
                 "status": ["confirmed"] * 3})
    out, report = run(raw, CASES, MappingSpec(dates={"report_date": "%d/%m/%Y"}))
    assert out["report_date"].tolist() == [pd.Timestamp("2026-05-03"), pd.Timestamp("2026-05-13")]
    bad = problem(report, "bad_value", "report_date")
    assert bad.rows == [3] and "'%d/%m/%Y'" in bad.message
    assert problem(report, "row_dropped", "report_date").rows == [3]


def test_unambiguous_forms_are_read() -> None:
    report = Report(source="t", kind="cases")
    values = pd.Series(["2026-03-05", "2026-3-5 14:30", "2026-03-05T23:59:59+08:00",
                        "2026/03/05", "2026.03.05", "20260305", "2026年3月5日",
                        "２０２６年０３月０５号", 20260305,
                        dt.date(2026, 3, 5), None, "1066-10-14", "2026-02-30", "next week"],
                       index=range(1, 15))
    out = parse_dates(values, field="as_of", fmt=None, report=report)
    assert out.dtype == "datetime64[s]"
    assert (out.iloc[:10] == pd.Timestamp("2026-03-05")).all()
    assert out.iloc[10:].isna().tolist() == [True, False, True, True]
    assert problem(report, "bad_value", "as_of").rows == [13, 14]
    assert problem(report, "date_out_of_range", "as_of").rows == [12]
    assert report.ok

    report = Report(source="t", kind="cases")
    stamps = pd.Series(pd.to_datetime(["2026-03-05 10:00", None]).tz_localize("Asia/Shanghai"))
    out = parse_dates(stamps, field="report_date", fmt=None, report=report)
    assert out.iloc[0] == pd.Timestamp("2026-03-05") and pd.isna(out.iloc[1])
    assert report.problems == []


# -- validation ---------------------------------------------------------------------------------
def test_duplicate_ids_are_warned_and_kept() -> None:
    raw = frame({"编号": ["B1", "B2", "B1", " B2 ", "B3"], "用途": ["住宅"] * 5}, start=10)
    report = Report(source="t", kind="buildings")
    out = validate_records(map_fields(raw, BUILDINGS, None, report), BUILDINGS, report)
    duplicate = problem(report, "duplicate_id", "id")
    assert duplicate.severity == "warning" and duplicate.rows == [12, 13]
    assert "B1" in duplicate.message
    assert len(out) == 5


def test_out_of_range_values() -> None:
    raw = frame({"编号": list("12345"), "用途": ["住宅"] * 5, "层数": ["0", "3", "300", "2", "30"],
                 "高度": ["3", "-1", "10", "50", "90"]})
    report = Report(source="t", kind="buildings")
    out = validate_records(map_fields(raw, BUILDINGS, None, report), BUILDINGS, report)
    assert problem(report, "out_of_range", "floors").rows == [1, 3]
    assert problem(report, "out_of_range", "height_m").rows == [2]
    assert out["floors"].isna().tolist() == [True, False, True, False, False]
    assert out["height_m"].isna().tolist() == [False, True, False, False, False]
    assert problem(report, "implausible_height", "height_m").rows == [4]  # 25 m per floor
    assert len(out) == 5 and report.ok

    raw = frame({"设施编号": ["F1", "F2"], "物资": ["口罩", "饮用水"], "数量": ["-5", "10"],
                 "单位": ["个", "个"], "日期": ["2026-04-30"] * 2})
    report = Report(source="t", kind="stocks")
    out = validate_records(map_fields(raw, STOCKS, None, report), STOCKS, report)
    assert problem(report, "out_of_range", "quantity").rows == [1]
    assert problem(report, "row_dropped", "quantity").rows == [1]
    assert problem(report, "unit_mismatch", "unit").rows == [2]  # water in pieces
    assert out.index.tolist() == [2]

    raw = frame({"id": ["a"], "report_date": ["2026-03-01"], "onset_date": ["2026-03-04"],
                 "status": ["confirmed"]})
    report = Report(source="t", kind="cases")
    validate_records(map_fields(raw, CASES, None, report), CASES, report)
    assert problem(report, "onset_after_report", "onset_date").rows == [1]

    raw = frame({"等级": ["支路", "主干路"], "限速": ["300", "60"]})
    report = Report(source="t", kind="roads")
    out = validate_records(map_fields(raw, KINDS["roads"], None, report), KINDS["roads"], report)
    assert problem(report, "out_of_range", "speed_kmh").rows == [1]
    assert out["speed_kmh"].isna().tolist() == [True, False]

    raw = frame({"区划代码": ["1", "101"], "名称": ["区", "街"], "级别": ["区", "街道"]})
    report = Report(source="t", kind="boundaries")
    validate_records(map_fields(raw, KINDS["boundaries"], None, report), KINDS["boundaries"],
                     report)
    assert problem(report, "missing_parent", "parent_code").rows == [2]


def test_markup_is_kept_verbatim_and_control_characters_removed() -> None:
    xss = '<script>alert("x")</script>'
    raw = frame({"编号": ["F1", "F2", "F3"],
                 "名称": [xss, "好\x07药房\u200b", "　超市\u3000一号　"],
                 "类型": ["药店"] * 3, "备注": ['<img src=x onerror="y">', "ok", "a\nb"]})
    report = Report(source="t", kind="facilities")
    out = validate_records(map_fields(raw, FACILITIES, None, report), FACILITIES, report)
    assert out["name"].tolist() == [xss, "好药房", "超市 一号"]
    assert out["备注"].tolist() == ['<img src=x onerror="y">', "ok", "a b"]
    assert problem(report, "markup_in_text", "name").rows == [1]
    assert problem(report, "markup_in_text", "备注").rows == [1]
    assert problem(report, "control_characters", "name").rows == [2]
    assert report.ok and len(out) == 3


def test_extras_are_kept_and_collisions_renamed() -> None:
    raw = gpd.GeoDataFrame(
        {"编号": ["1", "2"], "道路名称": ["甲路", "乙路"], "name": ["Jia Rd", "Yi Rd"],
         "等级": ["快速路", "次干路"], "class_source": ["x", "y"], "车道数": ["6", "2"]},
        geometry=[shapely.LineString([(0, 0), (1, 1)])] * 2, crs=4326,
        index=pd.RangeIndex(1, 3))
    spec = MappingSpec(fields={"name": "道路名称", "class": "等级"})
    out, report = run(raw, KINDS["roads"], spec)
    assert list(out.columns) == ["class", "name", "编号", "name_source", "class_source",
                                 "车道数", "geometry"]
    assert out["name_source"].tolist() == ["Jia Rd", "Yi Rd"]
    assert report.info["renamed_extras"] == {"name": "name_source"}
    assert isinstance(out, gpd.GeoDataFrame) and out.crs == raw.crs

    # a source column named like a canonical field it does not hold
    raw = frame({"编号": ["1"], "用途": ["住宅"], "类型": ["x"], "use": ["ignored"]})
    out, _ = run(raw, BUILDINGS, MappingSpec(fields={"use": "用途"}))
    assert out["use"].tolist() == ["residential"]
    assert out["use_source"].tolist() == ["ignored"]


def test_no_records() -> None:
    report = Report(source="t", kind="buildings")
    out = validate_records(map_fields(frame({"编号": [], "用途": []}), BUILDINGS, None, report),
                           BUILDINGS, report)
    assert len(out) == 0
    assert problem(report, "no_records").severity == "error"


# -- record numbers and conservation ------------------------------------------------------------
def test_record_numbers_survive_every_step() -> None:
    raw = frame({"编号": ["a", "b", "", "d", "e", "f"],
                 "用途": ["住宅", "商业", "住宅", "火星", "办公", "工业"],
                 "层数": ["1", "2", "3", "4", "5", "-3"]}, start=101)
    raw = raw.drop(index=[102])  # an earlier stage dropped record 102
    report = Report(source="t", kind="buildings")
    mapped = map_fields(raw, BUILDINGS, None, report)
    assert mapped.index.tolist() == [101, 105, 106]
    out = validate_records(mapped, BUILDINGS, report)
    assert out.index.tolist() == [101, 105, 106]
    assert out.loc[105, "id"] == "e" and out.loc[106, "use"] == "industrial"
    assert problem(report, "row_dropped", "id").rows == [103]
    assert problem(report, "unknown_value", "use").rows == [104]
    assert problem(report, "out_of_range", "floors").rows == [106]


_USES = st.sampled_from(["住宅", "residential", "Apartments", "商业", "xx", "", None, "  办公 "])
_NUMBERS = st.one_of(st.none(), st.sampled_from(["", "3", "１２", "1,200", "abc", "-2", "2.5"]),
                     st.integers(-5, 300).map(str))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(["", "B1", "B2", " b3 "])),
                               _USES, _NUMBERS, _NUMBERS), max_size=25),
       start=st.integers(1, 1000))
def test_records_are_never_lost_or_invented(rows: list[tuple], start: int) -> None:
    raw = pd.DataFrame(rows or None, columns=["编号", "用途", "层数", "高度(米)"], dtype=object,
                       index=pd.RangeIndex(start, start + len(rows)))
    report = Report(source="t", kind="buildings")
    mapped = map_fields(raw, BUILDINGS, None, report)
    assert len(raw) == len(mapped) + dropped(report)
    assert set(mapped.index) <= set(raw.index)
    out = validate_records(mapped, BUILDINGS, report)
    assert len(raw) == len(out) + dropped(report)
    assert out.index.is_monotonic_increasing
    for number in out.index:  # every kept record still holds its own values
        assert out.loc[number, "id"] == str(raw.loc[number, "编号"]).strip()
    if len(out):
        assert set(out["use"]) <= set(allowed_values("buildings", "use"))
        floors = out["floors"].dropna()
        assert ((floors >= 1) & (floors <= 200)).all()
    assert np.isin(list(codes(report)), [
        "bad_value", "unknown_value", "row_dropped", "out_of_range", "implausible_height",
        "duplicate_id", "no_records"]).all()


def test_a_rendered_mapping_reads_back_the_same(tmp_path) -> None:
    from ingest.mapping import MappingSpec, load_mapping, render_mapping

    spec = MappingSpec(fields={"id": "BLDG \"NO\"", "use": "用途"}, dates={},
                       units={"height_m": "ft"}, values={"use": {"R": "residential",
                                                                 "住 宅": "residential"}},
                       defaults={"floors": 3}, extras="drop")
    path = tmp_path / "m.toml"
    path.write_text(render_mapping(spec), encoding="utf-8")
    assert load_mapping(path) == spec
    dated = MappingSpec(dates={"report_date": "%d/%m/%Y"})
    path.write_text(render_mapping(dated), encoding="utf-8")
    assert load_mapping(path) == dated


# -- value synonyms typed on the catalog page -------------------------------------------------
def test_value_pairs_typed_on_the_page() -> None:
    from ingest.mapping import parse_value_pairs

    assert parse_value_pairs("阳性=confirmed；疑似 → suspected\n 密接＝close_contact; ") == {
        "阳性": "confirmed", "疑似": "suspected", "密接": "close_contact"}
    assert parse_value_pairs("  ") == {}
    for bad, says in (("阳性", "source=canonical"), ("=confirmed", "source=canonical"),
                      ("阳性=", "source=canonical"), ("a=b; a=c", "mapped twice")):
        with pytest.raises(MappingError, match=says):
            parse_value_pairs(bad)


_PAIR_TEXT = st.text(st.characters(blacklist_characters=";；\n=＝→", blacklist_categories=(
    "Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_PAIR_TEXT, _PAIR_TEXT, max_size=6))
def test_value_pairs_read_back_as_written(pairs: dict[str, str]) -> None:
    from ingest.mapping import format_value_pairs, parse_value_pairs

    assert parse_value_pairs(format_value_pairs(pairs)) == pairs
