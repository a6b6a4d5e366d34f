"""Deterministic Chinese place names built from character pools."""

from __future__ import annotations

import numpy as np

__all__ = [
    "COMPOUND_SUFFIXES",
    "FIRST_CHARS",
    "SECOND_CHARS",
    "unique_names",
]

# Characters common in Chinese place names.  Two pools so that names read naturally
# (first: direction/nature/virtue, second: landform/plant/place); 100 x 100 pairs cover the
# 4,000 communities of the megacity with room to spare.
FIRST_CHARS = (
    "东西南北中新长安平和兴华明德仁康宁福泰永庆临江湖海山河松柏桂兰梅竹枫杨柳金银玉青翠紫"
    "云霞春秋阳光月星龙凤鹤白石清丰盛嘉瑞祥景锦绣望虹滨沧洪汇宏广振昌隆顺裕富贵吉利恒远"
    "辰曙朝旭晓澄"
)
SECOND_CHARS = (
    "湖园林桥河江山岭峰湾洲港浦塘溪泉川田苑庄村门坊亭楼台阁院堤坝岸渡口滩矶岛屿洋源泽"
    "池潭坡坪岗冈谷原野圃坞屯营寨堡城关里庭轩斋馆宫殿寺塔阳光明华辉晖霞虹彩锦绣"
    "荷莲桃李杏菊松"
)

#: Compound (小区) name suffixes by building-use group.
COMPOUND_SUFFIXES: dict[str, tuple[str, ...]] = {
    "residential": ("花园", "小区", "新村", "苑", "公寓", "家园", "名邸", "雅居", "佳苑", "里"),
    "commercial": ("广场", "商厦", "商城", "购物中心", "天地"),
    "office": ("大厦", "中心", "商务楼", "国际大厦"),
    "mixed": ("汇", "城", "中心", "时代广场"),
    "industrial": ("工业园", "产业园", "物流园", "科技园"),
    "public": ("学校", "文化中心", "体育中心", "医疗园区", "中学"),
    "other": ("配套用房", "仓储点", "服务站"),
}


def _pairs() -> np.ndarray:
    first = np.array(list(dict.fromkeys(FIRST_CHARS)))
    second = np.array(list(dict.fromkeys(SECOND_CHARS)))
    a, b = np.meshgrid(first, second, indexing="ij")
    pairs = np.char.add(a.ravel(), b.ravel())
    # A repeated character ("湖湖") reads badly.
    keep = a.ravel() != b.ravel()
    return pairs[keep]


_PAIRS = _pairs()


def unique_names(
    rng: np.random.Generator, n: int, suffix: str, exclude: set[str] = frozenset()
) -> list[str]:
    """Draw ``n`` distinct two-character names with a suffix.

    Parameters
    ----------
    rng
        Source of randomness (the result depends only on its state).
    n
        How many names.
    suffix
        Appended to every name, e.g. ``"区"``, ``"街道"``, ``"社区"``, ``"路"``.
    exclude
        Stems (names without suffix) not to use, to keep levels apart.

    Returns
    -------
    list of str
        ``n`` names, unique, in random order.
    """
    order = rng.permutation(len(_PAIRS))
    stems = [s for s in _PAIRS[order].tolist() if s not in exclude]
    if n > len(stems):
        raise ValueError(f"only {len(stems)} distinct names available, {n} requested")
    return [s + suffix for s in stems[:n]]
