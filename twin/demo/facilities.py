"""Facilities (hospitals, shops, warehouses, quarantine sites, ...) placed in fitting buildings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin.demo.buildings import TEMPLATES, Buildings
from twin.demo.layout import Admin, Grid, to_crs
from twin.offsets import wgs84_to_gcj02

__all__ = ["FACILITY_TYPES", "FacilityType", "chinese_number", "make_facilities"]


@dataclass(frozen=True)
class FacilityType:
    """One kind of facility: how many, how big and where it goes."""

    zh: str
    kind: str  # canonical kind of the city information model
    per_capita: int  # one facility per this many residents
    capacity: tuple[int, int]
    unit: str
    templates: tuple[str, ...]  # building templates it may occupy
    periphery: bool = False  # only in the outer part of the city


_RES = ("res_tower", "res_slab", "res_mid", "res_low")
FACILITY_TYPES: tuple[FacilityType, ...] = (
    FacilityType("医院", "hospital", 60_000, (100, 1500), "床位", ("public",)),
    FacilityType("发热门诊", "fever_clinic", 60_000, (50, 400), "人次/日", ("public",)),
    FacilityType(
        "社区卫生服务中心",
        "clinic",
        30_000,
        (100, 600),
        "人次/日",
        ("public", "mixed", "res_mid", "res_slab"),
    ),
    FacilityType(
        "药店", "pharmacy", 10_000, (50, 300), "人次/日", ("commercial", "mixed", "res_mid")
    ),
    FacilityType("超市", "supermarket", 12_000, (500, 5000), "人次/日", ("commercial", "mixed")),
    FacilityType(
        "农贸市场", "market", 25_000, (1000, 8000), "人次/日", ("commercial", "other", "mixed")
    ),
    FacilityType(
        "便利店",
        "convenience_store",
        6_000,
        (100, 800),
        "人次/日",
        ("commercial", "mixed", "office", *_RES),
    ),
    FacilityType("仓库", "warehouse", 100_000, (500, 20_000), "吨", ("industrial",)),
    FacilityType(
        "隔离点",
        "quarantine_site",
        150_000,
        (100, 1500),
        "间",
        ("public", "commercial", "other", "industrial", "res_slab", "res_mid"),
        periphery=True,
    ),
    FacilityType("学校", "school", 10_000, (500, 3000), "人", ("public",)),
    FacilityType(
        "养老院", "nursing_home", 30_000, (50, 500), "床位", ("public", "res_mid", "other")
    ),
    FacilityType(
        "核酸检测点",
        "testing_site",
        20_000,
        (500, 5000),
        "人次/日",
        ("public", "commercial", *_RES),
    ),
)

_BRANDS = {
    "药店": ("康宁", "仁和堂", "百草", "惠民", "济世", "安泰"),
    "超市": ("惠万家", "鲜丰", "优选", "家乐汇", "百佳乐", "邻家"),
    "便利店": ("晨光", "邻里", "便民", "快易", "星点", "好日子"),
}
_DIGITS = "零一二三四五六七八九"


def chinese_number(k: int) -> str:
    """1..999 in Chinese numerals (一, 十二, 一百零五)."""
    if k < 10:
        return _DIGITS[k]
    if k < 20:
        return "十" + (_DIGITS[k % 10] if k % 10 else "")
    if k < 100:
        return _DIGITS[k // 10] + "十" + (_DIGITS[k % 10] if k % 10 else "")
    rest = k % 100
    tail = "" if rest == 0 else ("零" + _DIGITS[rest] if rest < 10 else chinese_number(rest))
    if 10 <= rest < 20:
        tail = "一" + tail
    return _DIGITS[k // 100] + "百" + tail


def _stem(name: str, suffix: str) -> str:
    return name[: -len(suffix)] if name.endswith(suffix) else name


def make_facilities(
    rng: np.random.Generator,
    b: Buildings,
    admin: Admin,
    grid: Grid,
    residents: int,
) -> pd.DataFrame:
    """Facilities with GCJ-02 coordinates, Chinese names, capacities and addresses.

    Returns
    -------
    pandas.DataFrame
        The CSV columns (编号, 名称, 类型, 经度, 纬度, 容量, 容量单位, 地址) plus helper columns
        ``kind``, ``building``, ``x``, ``y`` (UTM), ``district``.
    """
    taken = np.zeros(len(b), dtype=bool)
    tmpl_names = np.array(TEMPLATES)[b.template]
    periphery = b.block_d[b.block] > np.quantile(b.block_d[b.block], 0.6)
    rows: list[pd.DataFrame] = []
    for ft in FACILITY_TYPES:
        n = max(1, round(residents / ft.per_capita))
        ok = np.isin(tmpl_names, ft.templates) & ~taken
        if ft.periphery:
            ok &= periphery
        cand = np.flatnonzero(ok)
        if len(cand) < n:  # a small town may lack e.g. public blocks: use any building left
            cand = np.concatenate([cand, rng.permutation(np.flatnonzero(~ok & ~taken))])[:n]
            pick = cand
        else:
            pick = np.sort(rng.choice(cand, size=n, replace=False))
        taken[pick] = True
        lo, hi = ft.capacity
        # Big hospitals and markets sit in the centre.
        centrality = np.clip(1.0 - b.block_d[b.block[pick]], 0.0, 1.0)
        cap = lo + (hi - lo) * np.clip(0.6 * rng.random(n) + 0.4 * centrality, 0, 1)
        cap = (np.round(cap / 10) * 10).astype(np.int64) if hi >= 500 else np.rint(cap)
        rows.append(
            pd.DataFrame(
                {
                    "类型": ft.zh,
                    "kind": ft.kind,
                    "building": pick,
                    "容量": cap.astype(np.int64),
                    "容量单位": ft.unit,
                }
            )
        )
    fac = pd.concat(rows, ignore_index=True)
    bi = fac["building"].to_numpy()
    comm = b.community[bi]
    street = admin.community_street[comm]
    district = admin.street_district[street]
    fac["x"], fac["y"] = b.x[bi], b.y[bi]
    fac["district"] = district
    fac["编号"] = [f"F{i + 1:06d}" for i in range(len(fac))]

    names: list[str] = []
    counters: dict[tuple[str, int], int] = {}
    for kind_zh, d, s, c, bl in zip(fac["类型"], district, street, comm, b.block[bi], strict=True):
        dn = admin.district_name[d]
        sn = _stem(admin.street_name[s], "街道")
        cn = _stem(admin.community_name[c], "社区")
        # Numbered per district (hospitals, warehouses) or per street (schools).
        key = (kind_zh, int(s) if kind_zh == "学校" else int(d))
        counters[key] = counters.get(key, 0) + 1
        k = counters[key]
        if kind_zh == "医院":
            names.append(f"{dn}第{chinese_number(k)}人民医院")
        elif kind_zh == "社区卫生服务中心":
            names.append(f"{cn}社区卫生服务中心")
        elif kind_zh in _BRANDS:
            brands = _BRANDS[kind_zh]
            label = "大药房" if kind_zh == "药店" else kind_zh
            names.append(f"{brands[int(c) % len(brands)]}{label}({cn}店)")
        elif kind_zh == "仓库":
            names.append(f"{dn}应急物资储备库{k}号")
        elif kind_zh == "隔离点":
            names.append(f"{b.block_name[bl] or cn}集中隔离点")
        elif kind_zh == "学校":
            names.append(f"{sn}第{chinese_number(k)}{'中学' if k % 3 == 0 else '小学'}")
        else:
            names.append(f"{cn}{kind_zh}")
    fac["名称"] = _dedupe(names)

    # Address on the nearer of the two roads bounding the building's block.
    iu = np.clip(np.searchsorted(grid.u_lines, b.u[bi]) - 1, 0, len(grid.u_lines) - 2)
    iv = np.clip(np.searchsorted(grid.v_lines, b.v[bi]) - 1, 0, len(grid.v_lines) - 2)
    du = np.minimum(b.u[bi] - grid.u_lines[iu], grid.u_lines[iu + 1] - b.u[bi])
    dv = np.minimum(b.v[bi] - grid.v_lines[iv], grid.v_lines[iv + 1] - b.v[bi])
    on_u = du < dv
    road_u = np.where(b.u[bi] - grid.u_lines[iu] < grid.u_lines[iu + 1] - b.u[bi], iu, iu + 1)
    road_v = np.where(b.v[bi] - grid.v_lines[iv] < grid.v_lines[iv + 1] - b.v[bi], iv, iv + 1)
    road = np.where(on_u, road_u, road_v)
    along = np.where(on_u, b.v[bi] - grid.v_lines[0], b.u[bi] - grid.u_lines[0])
    side = np.where(on_u, b.u[bi] > grid.u_lines[road_u], b.v[bi] > grid.v_lines[road_v])
    # House numbers run along the road, odd on one side and even on the other.
    number = (along // 30).astype(int) % 999 * 2 + 1 + side.astype(int)
    fac["地址"] = [
        f"示范市{admin.district_name[d]}{admin.street_name[s]}"
        f"{grid.u_names[r] if ou else grid.v_names[r]}{num}号"
        for d, s, r, ou, num in zip(district, street, road, on_u, number, strict=True)
    ]

    lon, lat = to_crs(fac["x"].to_numpy(), fac["y"].to_numpy(), "EPSG:4326")
    glon, glat = wgs84_to_gcj02(lon, lat)
    fac["经度"] = np.round(glon, 6)
    fac["纬度"] = np.round(glat, 6)
    return fac


def _dedupe(names: list[str]) -> list[str]:
    """Number repeated names (二店, (二), (三), ...) so that every name is unique."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        if seen[n] == 1:
            out.append(n)
        elif n.endswith("店)"):  # a second branch: 康宁大药房(东湖二店)
            out.append(f"{n[:-2]}{chinese_number(seen[n])}店)")
        else:
            out.append(f"{n}({chinese_number(seen[n])})")
    return out
