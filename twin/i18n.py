"""Labels in Chinese and English.

Every user-facing label has both languages; the workspace's ``city.language`` picks the
default. Command-line tables show both (``名称 name``) since they are read by GIS staff of
either language.
"""

from __future__ import annotations

__all__ = ["LABELS", "bilingual", "label"]

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
    # resources of the needs table and stocks
    "water": ("饮用水", "water"),
    "grain": ("粮食", "grain"),
    "vegetables": ("蔬菜", "vegetables"),
    "protein": ("肉禽蛋", "meat, fish and eggs"),
    "antigen_tests": ("抗原试剂", "antigen tests"),
    "masks": ("口罩", "masks"),
    "medicine": ("药品包", "medicine packs"),
    "beds": ("床位", "beds"),
}


def label(key: str, lang: str = "zh") -> str:
    """Return the label of ``key`` in ``lang`` (``"zh"`` or ``"en"``); the key if unknown."""
    zh, en = LABELS.get(key, (key, key))
    return zh if lang == "zh" else en


def bilingual(key: str) -> str:
    """Return ``"中文 English"`` for ``key``."""
    zh, en = LABELS.get(key, (key, key))
    return zh if zh == en else f"{zh} {en}"
