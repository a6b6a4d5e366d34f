"""Bilingual labels and units used by the layers' legends and tooltips."""

from __future__ import annotations

from layers.errors import LayerInputError

__all__ = ["FACILITY_KINDS", "LANGS", "RESOURCES", "ROAD_CLASSES", "TIERS", "UNITS", "check_lang",
           "pair", "pick"]

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
    "protein": ("肉禽蛋鱼", "meat, fish, eggs"), "antigen_tests": ("抗原试剂", "antigen tests"),
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


def check_lang(lang: str) -> str:
    """``lang`` if it is ``"zh"`` or ``"en"``; otherwise a :class:`LayerInputError`."""
    if lang not in LANGS:
        raise LayerInputError(f"lang must be 'zh' or 'en', not {lang!r}")
    return lang


def pick(table: dict[str, tuple[str, str]], key: str, lang: str) -> str:
    """The ``lang`` label of ``key`` in ``table`` (the key itself when unknown)."""
    zh, en = table.get(key, (key, key))
    return zh if lang == "zh" else en


def pair(table: dict[str, tuple[str, str]], key: str) -> tuple[str, str]:
    """``(zh, en)`` of ``key`` in ``table`` (the key twice when unknown)."""
    return table.get(key, (key, key))
