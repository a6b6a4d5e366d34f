"""Labels in Chinese and English: the one catalogue of every user-facing label.

Every user-facing label has both languages; the workspace's ``city.language`` picks the
default. Command-line tables show both (``名称 name``) since they are read by GIS staff of
either language.
"""

from __future__ import annotations

__all__ = ["DASHBOARD", "FACILITY_KINDS", "KPI_NAMES", "LABELS", "LANGS", "LEVELS", "RESOURCES",
           "ROAD_CLASSES", "STATUSES", "TIERS", "UNITS", "bilingual", "label", "pair", "pick"]

LANGS = ("zh", "en")

#: tier -> (zh, en)
TIERS: dict[str, tuple[str, str]] = {
    "lockdown": ("封控区", "lockdown zone"), "control": ("管控区", "control zone"),
    "prevention": ("防范区", "prevention zone"),
}
STATUSES: dict[str, tuple[str, str]] = {
    "proposed": ("建议", "proposed"), "active": ("生效", "active"), "lifted": ("已解除", "lifted"),
}
#: facility kind -> (zh, en)
FACILITY_KINDS: dict[str, tuple[str, str]] = {
    "hospital": ("医院", "hospital"), "fever_clinic": ("发热门诊", "fever clinic"),
    "clinic": ("诊所", "clinic"), "pharmacy": ("药店", "pharmacy"),
    "supermarket": ("超市", "supermarket"), "market": ("农贸市场", "market"),
    "convenience_store": ("便利店", "convenience store"), "warehouse": ("仓库", "warehouse"),
    "quarantine_site": ("隔离点", "quarantine site"), "shelter": ("避难场所", "shelter"),
    "school": ("学校", "school"), "nursing_home": ("养老院", "nursing home"),
    "testing_site": ("核酸检测点", "testing site"),
}
#: resource -> (zh, en)
RESOURCES: dict[str, tuple[str, str]] = {
    "water": ("饮用水", "water"), "grain": ("粮食", "grain"), "vegetables": ("蔬菜", "vegetables"),
    "protein": ("肉禽蛋", "meat, fish and eggs"), "antigen_tests": ("抗原试剂", "antigen tests"),
    "masks": ("口罩", "masks"), "medicine": ("慢性病药品", "chronic-disease medicine"),
    "beds": ("床位", "hospital beds"),
}
#: unit -> (zh, en)
UNITS: dict[str, tuple[str, str]] = {
    "L": ("升", "L"), "kg": ("千克", "kg"), "test": ("人份", "tests"), "piece": ("只", "pieces"),
    "pack": ("盒", "packs"), "bed": ("张", "beds"), "days": ("天", "days"),
    "per_km2": ("人/平方公里", "persons/km²"), "persons": ("人", "persons"),
    "cases": ("例", "cases"), "score": ("0–1", "0–1"), "m": ("米", "m"),
    "km": ("公里", "km"),
}
#: road class -> (zh, en)
ROAD_CLASSES: dict[str, tuple[str, str]] = {
    "expressway": ("快速路", "expressway"), "arterial": ("主干路", "arterial"),
    "secondary": ("次干路", "secondary"), "local": ("支路", "local"),
}
#: admin level -> (zh, en)
LEVELS: dict[str, tuple[str, str]] = {
    "district": ("区", "district"), "street": ("街道", "street"),
    "community": ("社区", "community"), "grid": ("网格", "grid"),
}


#: The KPI tiles, in display order (also the CSS suffix: ``ct-kpi-<name>``).
KPI_NAMES: tuple[str, ...] = ("new_cases", "lockdown_residents", "control_residents",
                              "high_risk_communities", "bed_occupancy", "low_cover")

#: The dashboards' labels: key -> (zh, en); titles capitalised in English.
DASHBOARD: dict[str, tuple[str, str]] = {
    "title": ("数字驾驶舱", "Cockpit"),
    "new_cases": ("今日新增感染", "New infections today"),
    "lockdown_residents": ("封控区居民", "Residents in lockdown"),
    "control_residents": ("管控区居民", "Residents in control zones"),
    "high_risk_communities": ("高风险社区", "High-risk communities"),
    "bed_occupancy": ("床位占用", "Hospital bed occupancy"),
    "low_cover": ("保障不足一天的物资", "Under 1 day of supplies"),
    "elderly": ("其中65岁以上", "aged 65+"),
    "trend_up": ("较前7天上升", "up on the previous 7 days"),
    "trend_down": ("较前7天下降", "down on the previous 7 days"),
    "trend_flat": ("与前7天持平", "flat on the previous 7 days"),
    "last7": ("近7天", "last 7 days"),
    "zones_count": ("个区域", "zones"),
    "top10": ("风险最高的十个社区", "Ten highest-risk communities"),
    "top10_expected": ("预计新增最多的十个社区", "Ten communities with most expected infections"),
    "sort_score": ("按风险", "by risk"),
    "sort_expected": ("按预计新增", "by expected"),
    "expected": ("未来7天预计", "Expected, 7 days"),
    "community": ("社区", "Community"),
    "grade": ("等级", "Grade"),
    "score": ("得分", "Score"),
    "reason": ("主要原因", "Main reason"),
    "alerts": ("预警", "Alerts"),
    "no_alerts": ("无预警", "No alerts"),
    "trend": ("每日新增感染", "New infections per day"),
    "date": ("日期", "Date"),
    "play": ("播放", "Play"),
    "pause": ("暂停", "Pause"),
    "layers": ("图层", "Layers"),
    "risk": ("风险", "Risk"),
    "cases": ("病例", "Cases"),
    "zones": ("管控区域", "Zones"),
    "facilities": ("设施", "Facilities"),
    "residents": ("人口", "Residents"),
    "roads": ("道路", "Roads"),
    "updated": ("数据已更新", "new data loaded"),
    "refused": ("无权访问", "Access refused"),
    "no_facts": ("工作空间尚无融合数据", "the workspace has no fused facts yet"),
    "logout": ("退出", "Log out"),
    "high_risk_detail": ("未来7天每万人预计≥{n}", "≥{n} per 10k expected in 7 days"),
    "beds_unit": ("张", "beds"),
    "none": ("无", "none"),
    "proposals": ("建议区域", "Proposals"),
    "cover": ("保障天数", "Days of cover"),
    "routes": ("调拨线路", "Dispatch routes"),
    "buildings": ("三维建筑", "3D buildings"),
    "buildings_zoom": ("放大后显示三维建筑", "zoom in to see 3D buildings"),
    "legend_new": ("每日新增", "new per day"),
    "legend_mean7": ("7日均值", "7-day mean"),
    "legend_forecast": ("预测", "forecast"),
    "legend_fan50": ("50% 区间", "50% interval"),
    "legend_fan90": ("90% 区间", "90% interval"),
    "loading": ("正在准备态势数据…", "preparing the situation…"),
}



#: key -> (Chinese, English)
LABELS: dict[str, tuple[str, str]] = {
    "author": ("作者", "author"),
    "bounds": ("范围", "bounds"),
    "created_at": ("创建时间", "created"),
    "current": ("当前", "current"),
    "file": ("文件", "file"),
    "kind": ("类型", "kind"),
    "layer": ("图层", "layer"),
    "note": ("说明", "note"),
    "rows": ("行数", "rows"),
    "size": ("规模", "size"),
    "source": ("来源", "source"),
    "source_crs": ("源坐标系", "source CRS"),
    "updated_at": ("更新时间", "updated"),
    "version": ("版本", "version"),
    "versions": ("版本数", "versions"),
    "workspace": ("工作空间", "workspace"),
    "city": ("城市", "city"),
    "seed": ("随机种子", "seed"),
    "path": ("路径", "path"),
    "format": ("格式", "format"),
    "crs": ("坐标系", "CRS"),
    "encoding": ("编码", "encoding"),
    "coords": ("坐标偏移", "coordinate offset"),
    "status": ("状态", "status"),
    "errors": ("错误", "errors"),
    "warnings": ("警告", "warnings"),
    "seconds": ("秒", "seconds"),
    "date": ("日期", "date"),
    "severity": ("级别", "severity"),
    "rule": ("规则", "rule"),
    "place": ("地点", "place"),
    "message_zh": ("说明", "message (zh)"),
    "message_en": ("说明（英）", "message"),
    **RESOURCES,  # resources of the needs table and stocks
}


def label(key: str, lang: str = "zh") -> str:
    """Return the label of ``key`` in ``lang`` (``"zh"`` or ``"en"``); the key if unknown."""
    zh, en = LABELS.get(key, (key, key))
    return zh if lang == "zh" else en


def bilingual(key: str) -> str:
    """Return ``"中文 English"`` for ``key``."""
    zh, en = LABELS.get(key, (key, key))
    return zh if zh == en else f"{zh} {en}"


def pick(table: dict[str, tuple[str, str]], key: str, lang: str) -> str:
    """The ``lang`` label of ``key`` in ``table`` (the key itself when unknown)."""
    zh, en = table.get(key, (key, key))
    return zh if lang == "zh" else en


def pair(table: dict[str, tuple[str, str]], key: str) -> tuple[str, str]:
    """``(zh, en)`` of ``key`` in ``table`` (the key twice when unknown)."""
    return table.get(key, (key, key))
