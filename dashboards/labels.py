"""Bilingual labels of the dashboards (zh-CN first, English second). No Panel here."""

from __future__ import annotations

__all__ = ["KPI_NAMES", "LABELS", "label"]

#: The KPI tiles, in display order (also the CSS suffix: ``ct-kpi-<name>``).
KPI_NAMES: tuple[str, ...] = ("new_cases", "lockdown_residents", "control_residents",
                              "high_risk_communities", "bed_occupancy", "low_cover")

LABELS: dict[str, tuple[str, str]] = {
    "title": ("数字驾驶舱", "Cockpit"),
    "new_cases": ("今日新增感染", "New infections today"),
    "lockdown_residents": ("封控区居民", "Residents in lockdown"),
    "control_residents": ("管控区居民", "Residents in control zones"),
    "high_risk_communities": ("高风险社区", "High-risk communities"),
    "bed_occupancy": ("床位占用", "Hospital bed occupancy"),
    "low_cover": ("保障不足一天的物资", "Supplies under 1 day of cover"),
    "elderly": ("其中65岁以上", "aged 65+"),
    "trend_up": ("较前7天上升", "up on the previous 7 days"),
    "trend_down": ("较前7天下降", "down on the previous 7 days"),
    "trend_flat": ("与前7天持平", "flat on the previous 7 days"),
    "last7": ("近7天", "last 7 days"),
    "zones_count": ("个区域", "zones"),
    "top10": ("风险最高的十个社区", "Ten highest-risk communities"),
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
    "high_risk_detail": ("按风险等级阈值", "by the risk grade thresholds"),
    "beds_unit": ("张", "beds"),
    "none": ("无", "none"),
    "proposals": ("建议区域", "Proposals"),
    "cover": ("保障天数", "Days of cover"),
    "routes": ("调拨线路", "Dispatch routes"),
    "buildings": ("三维建筑", "3D buildings"),
    "buildings_zoom": ("放大后显示三维建筑", "zoom in to see 3D buildings"),
    "legend_new": ("每日新增", "new per day"),
    "legend_mean7": ("7日均值", "7-day mean"),
    "loading": ("正在准备态势数据…", "preparing the situation…"),
}


def label(key: str, lang: str) -> str:
    """The label ``key`` in ``lang`` (``"zh"`` or ``"en"``); the key itself when unknown."""
    pair = LABELS.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "zh" else pair[1]
