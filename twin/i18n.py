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
                              "high_risk_communities", "bed_occupancy", "low_cover",
                              "open_events", "event_close_time")

#: The dashboards' labels: key -> (zh, en); titles capitalised in English.
DASHBOARD: dict[str, tuple[str, str]] = {
    "title": ("数字驾驶舱", "Cockpit"),
    "new_cases": ("今日新增感染", "New infections today"),
    "lockdown_residents": ("封控区居民", "Residents in lockdown"),
    "control_residents": ("管控区居民", "Residents in control zones"),
    "high_risk_communities": ("高风险社区", "High-risk communities"),
    "bed_occupancy": ("床位占用", "Hospital bed occupancy"),
    "low_cover": ("保障不足一天的物资", "Under 1 day of supplies"),
    "open_events": ("网格待办事件", "Open grid events"),
    "event_close_time": ("今日办结中位时长", "Median time to close today"),
    "events_overdue": ("超时", "overdue"),
    "events_new_today": ("今日新报", "new today"),
    "events_closed_today": ("今日办结", "closed today"),
    "hours_unit": ("小时", "h"),
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
    "events": ("网格事件", "Grid events"),
    "buildings": ("三维建筑", "3D buildings"),
    "buildings_zoom": ("放大后显示三维建筑", "zoom in to see 3D buildings"),
    "legend_new": ("每日新增", "new per day"),
    "legend_mean7": ("7日均值", "7-day mean"),
    "legend_forecast": ("预测", "forecast"),
    "legend_fan50": ("50% 区间", "50% interval"),
    "legend_fan90": ("90% 区间", "90% interval"),
    "loading": ("正在准备态势数据…", "preparing the situation…"),
    # the zone editor (/zones)
    "zone_editor": ("管控区域编辑", "Zone editor"),
    "catalog": ("图层目录", "Layer catalog"),
    "events_page": ("网格事件调度", "Grid event dispatch"),
    "tasks": ("网格任务", "Grid tasks"),
    "mode_view": ("浏览", "Pan"),
    "mode_draw": ("画多边形", "Draw polygon"),
    "mode_brush_add": ("刷子 加", "Brush +"),
    "mode_brush_remove": ("刷子 减", "Brush −"),
    "mode_modify": ("改轮廓", "Edit outline"),
    "brush_size": ("刷子半径（圈）", "Brush radius (rings)"),
    "undo": ("撤销", "Undo"),
    "redo": ("重做", "Redo"),
    "zone": ("区域", "Zone"),
    "open_zone": ("打开", "Open"),
    "new_zone": ("新建区域", "New zone"),
    "status_proposed": ("建议", "proposed"),
    "status_active": ("生效", "active"),
    "status_lifted": ("已解除", "lifted"),
    "valid_from": ("生效日期", "Valid from"),
    "save_reason": ("保存理由（必填）", "Reason for the change (required)"),
    "reason_placeholder": ("例如：按流调结果扩大到整栋楼",
                           "e.g. extended to the whole block after tracing"),
    "save": ("保存", "Save"),
    "keep_mine": ("保留我的修改", "Keep mine"),
    "keep_theirs": ("采用对方的修改", "Keep theirs"),
    "active_from": ("生效日期", "Active from"),
    "reject_reason": ("驳回理由", "Reason for rejecting"),
    "reject_placeholder": ("例如：病例已隔离，无需封控", "e.g. the case was already isolated"),
    "accept": ("采纳所选", "Accept selected"),
    "reject": ("驳回所选", "Reject selected"),
    "edit_first": ("先编辑再采纳", "Edit first"),
    "propose_now": ("按所选日期重新建议", "Propose for this date"),
    "apply_downgrade": ("应用所选降级", "Apply selected downgrades"),
    "from_version": ("从版本", "From version"),
    "to_version": ("到版本", "To version"),
    "show_diff": ("在地图上显示差异", "Show the difference on the map"),
    "hide_diff": ("隐藏差异", "Hide it"),
    "export_geojson": ("下载 GeoJSON", "Download GeoJSON"),
    "export_gpkg": ("下载 GeoPackage", "Download GeoPackage"),
    "export_hint": ("导出建议及生效区域：合并后的轮廓，中英文属性。",
                    "Proposed and active zones with dissolved outlines and zh/en properties."),
    "tab_edit": ("编辑", "Edit"),
    "tab_proposals": ("待审建议", "Proposals"),
    "tab_downgrades": ("到期降级", "Downgrades due"),
    "tab_history": ("历史", "History"),
    "tab_export": ("导出", "Export"),
    "editor_hint": ("打开一个区域或新建区域，然后在地图上画多边形或用刷子增减单元。",
                    "Open a zone or start a new one, then draw a polygon or brush cells on the "
                    "map."),
    "history_hint": ("打开一个区域后显示其全部版本。", "Open a zone to see every version of it."),
    "downgrade_hint": ("按第九版防控方案判断所选日期到期的降级；选中后一键应用（理由自动填写）。",
                       "Downgrades due on the chosen date by the 9th-edition rules; select and "
                       "apply (the reason is filled in)."),
    "cells": ("单元", "cells"),
    "residents_unit": ("常住人口", "residents"),
    "age_65_plus": ("65岁以上", "aged 65+"),
    "children": ("儿童", "children"),
    "elderly_living_alone": ("独居老人", "elderly living alone"),
    "chronic_patients": ("慢病患者", "chronic patients"),
    "buildings_n": ("建筑", "buildings"),
    "floor_area": ("建筑面积", "floor area"),
    "hectares": ("公顷", "ha"),
    "resource": ("物资", "Resource"),
    "demand": ("需求", "Demand"),
    "stock_inside": ("区内库存", "Stock inside"),
    "gap": ("缺口", "Gap"),
    "days_cover": ("保障天数", "Days of cover"),
    "lowest_cover": ("区内最短保障", "Lowest cover inside"),
    "days_unit": ("天", "days"),
    "whole_city": ("全市", "Whole city"),
    "choose_zone": ("— 选择要编辑的区域 —", "— choose a zone to edit —"),
    "unsaved_changes": ("⚠ 当前区域有未保存的修改：请先保存，或撤销修改",
                        "⚠ the open zone has unsaved changes: save them or undo them first"),
    "unsaved": ("未保存", "unsaved"),
    "tier": ("级别", "Tier"),
    "proposed_on": ("建议日期", "Proposed on"),
    "downgrade": ("降级", "Downgrade"),
    "last_infection": ("末例感染", "Last infection"),
    "tier_since": ("本级别起始", "Tier since"),
    "reached_on": ("满足日期", "Reached on"),
    "rule": ("依据", "Rule"),
    "version": ("版本", "Version"),
    "when": ("时间", "When"),
    "author": ("修改人", "Who"),
    "mine": ("我的", "mine"),
    "theirs": ("对方", "theirs"),
    "added_here_removed_there": ("我新增、对方已移除的单元", "cells I add that they removed"),
    "removed_here_added_there": ("我移除、对方新增的单元", "cells I remove that they added"),
    "conflict_title": ("保存冲突：同事已修改同一区域",
                       "Save conflict: a colleague changed this zone"),
    "conflict_who": ("对方的修改", "Their changes"),
    "conflict_hint": ("不冲突的修改已自动合并；请选择冲突部分保留谁的修改，然后再次保存。",
                      "Edits of different cells merge by themselves; choose whose edit wins "
                      "where they clash."),
    "conflict": ("⚠ 保存冲突，未写入：请选择保留哪一方",
                 "⚠ conflict, nothing written: choose a side"),
    "resolved_reason": ("解决保存冲突", "resolved a save conflict"),
    "reason_required": ("⚠ 请填写保存理由", "⚠ give a reason for the change"),
    "reject_reason_required": ("⚠ 请填写驳回理由", "⚠ give a reason for rejecting"),
    "select_rows": ("⚠ 请先在表中勾选", "⚠ select rows in the table first"),
    "pick_zone": ("⚠ 请先选择区域", "⚠ pick a zone first"),
    "nothing_open": ("没有正在编辑的区域：请打开或新建", "no zone is open: open or start one"),
    "polygon_too_small": ("⚠ 多边形内没有单元中心，请画大一些",
                          "⚠ the polygon holds no cell centre; draw it larger"),
    "no_change": ("没有需要保存的修改", "nothing to save"),
    "opened": ("已打开 {zone}（版本 {version}）", "opened {zone} (version {version})"),
    "new_zone_started": ("新建区域：在地图上画多边形或用刷子",
                         "new zone: draw a polygon or brush cells"),
    "created": ("✓ 已创建 {zone}", "✓ created {zone}"),
    "saved": ("✓ 已保存 {zone} 版本 {version}", "✓ saved {zone} version {version}"),
    "saved_merged": ("✓ 已保存 {zone} 版本 {version}，已与 {merged} 自动合并",
                     "✓ saved {zone} version {version}, merged with {merged}"),
    "accepted": ("✓ 已采纳 {zone}，自 {day} 起生效", "✓ accepted {zone}, active from {day}"),
    "rejected": ("✓ 已驳回 {zone}（理由已记入历史）",
                 "✓ rejected {zone} (the reason is in its history)"),
    "proposed_for": ("✓ 已按 {day} 建议：新建 {created}，更新 {updated}，不变 {unchanged}",
                     "✓ proposed for {day}: {created} new, {updated} updated, {unchanged} "
                     "unchanged"),
    "downgraded": ("✓ {zone} 已降为{tier}，自 {day} 起",
                   "✓ {zone} downgraded to {tier} from {day}"),
    "colleague_saved": ("⚠ 同事 {author} 已保存 {zone} 版本 {version}；保存时将自动合并",
                        "⚠ {author} saved {zone} version {version}; your save will merge with it"),
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
