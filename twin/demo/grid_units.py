"""The demo city's grid units (网格), their staff, and a day of hotline requests.

Each community is cut into a few grid units (strips across its longer side, so that the units
tile the community exactly); every unit gets a grid worker, every community an officer, and
some units a volunteer. The hotline export is a day of residents' requests on the demo's last
day, in the layout of a 12345 hotline system's CSV export (GBK), most of them near the recent
cases (where the zones are), with a few repeated calls that intake links as duplicates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from twin.demo.layout import Admin

__all__ = ["HOTLINE_CATEGORIES", "GridUnits", "make_grid_units", "make_hotline", "make_staff"]

#: Categories as the hotline system writes them, with their share of requests.
HOTLINE_CATEGORIES: dict[str, float] = {
    "物资短缺": 0.30, "药品需求": 0.22, "发热就医": 0.14, "老人残障帮扶": 0.12,
    "违反管控": 0.07, "配送受阻": 0.10, "其他": 0.05,
}
_PRIORITIES = {"特急": 0.06, "紧急": 0.24, "一般": 0.60, "较低": 0.10}
_CHANNELS = {"12345热线": 0.70, "网格员上报": 0.20, "网上留言": 0.10}
_TEXTS = {
    "物资短缺": ("家中蔬菜和米面快吃完了，封控在家无法外出购买",
                 "小区团购物资三天未送达，家里断粮"),
    "药品需求": ("老人高血压药只剩一天，需要代购降压药", "孩子需要退烧药，药店无法配送"),
    "发热就医": ("家人发烧38.5度，需要安排就医", "独居老人发热咳嗽，请求上门核酸"),
    "老人残障帮扶": ("独居老人行动不便，需要上门送餐", "残障人士需要协助取药和采购"),
    "违反管控": ("楼下有人聚集打牌未戴口罩", "有人翻越小区围挡外出"),
    "配送受阻": ("快递和外卖被拦在小区门口无法送达", "物资车辆在卡口无法进入"),
    "其他": ("咨询核酸检测时间安排", "楼道垃圾长时间无人清运"),
}
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国玉兰文红"


@dataclass
class GridUnits:
    """The grid units: codes, names, parent community codes and CGCS2000 polygons."""

    code: list[str]
    name: list[str]
    parent: list[str]
    geometry_4490: np.ndarray
    community: np.ndarray  # index into the communities


def _strips(polygon: shapely.Geometry, k: int) -> list[shapely.Geometry]:
    """``polygon`` cut into ``k`` strips across its longer side (they tile it exactly)."""
    minx, miny, maxx, maxy = polygon.bounds
    pad = 1e-6
    pieces = []
    for i in range(k):
        if maxx - minx >= maxy - miny:
            x0 = minx + (maxx - minx) * i / k - (pad if i == 0 else 0)
            x1 = minx + (maxx - minx) * (i + 1) / k + (pad if i == k - 1 else 0)
            box = shapely.box(x0, miny - pad, x1, maxy + pad)
        else:
            y0 = miny + (maxy - miny) * i / k - (pad if i == 0 else 0)
            y1 = miny + (maxy - miny) * (i + 1) / k + (pad if i == k - 1 else 0)
            box = shapely.box(minx - pad, y0, maxx + pad, y1)
        piece = shapely.intersection(polygon, box)
        if not piece.is_empty and piece.area > 0:
            pieces.append(piece)
    return pieces


def make_grid_units(admin: Admin) -> GridUnits:
    """Two to five grid units per community, by its area (about one per 0.4 km²)."""
    codes, names, parents, geoms, community = [], [], [], [], []
    for c, (code, name) in enumerate(zip(admin.community_code, admin.community_name,
                                         strict=True)):
        area_km2 = admin.community_utm[c].area / 1e6
        k = int(np.clip(round(area_km2 / 0.4), 2, 5))
        for j, piece in enumerate(_strips(admin.community_4490[c], k), start=1):
            codes.append(f"{code}{j:02d}")
            names.append(f"{name.removesuffix('社区')}第{j}网格")
            parents.append(code)
            geoms.append(piece)
            community.append(c)
    return GridUnits(codes, names, parents, np.array(geoms, dtype=object),
                     np.array(community, dtype=np.int64))


def _person(rng: np.random.Generator, n: int) -> np.ndarray:
    s = rng.choice(list(_SURNAMES), n)
    g = rng.choice(list(_GIVEN), (n, 2))
    two = rng.random(n) < 0.6
    return np.array([a + b + (c if t else "") for a, b, c, t in
                     zip(s, g[:, 0], g[:, 1], two, strict=True)], dtype=object)


def _phones(rng: np.random.Generator, n: int) -> np.ndarray:
    prefix = rng.choice(["138", "139", "150", "186", "177", "135"], n)
    return np.array([f"{p}{v:08d}" for p, v in zip(prefix, rng.integers(0, 10**8, n),
                                                  strict=True)], dtype=object)


def make_staff(rng: np.random.Generator, units: GridUnits, admin: Admin) -> pd.DataFrame:
    """A grid worker per unit, an officer per community (on its first unit), some volunteers.

    The first unit's grid worker has the login ``grid`` (the demo's grid worker account).
    """
    rows = []
    first_of: dict[int, str] = {}
    for i, (code, c) in enumerate(zip(units.code, units.community, strict=True)):
        first_of.setdefault(int(c), code)
        rows.append((code, "网格员", "grid" if i == 0 else ""))
        if rng.random() < 0.4:
            rows.append((code, "志愿者", ""))
    for code in first_of.values():
        rows.append((code, "社区干部", ""))
    rows.sort(key=lambda r: (r[0], ["网格员", "社区干部", "志愿者"].index(r[1])))
    n = len(rows)
    return pd.DataFrame({
        "网格编码": [r[0] for r in rows],
        "姓名": _person(rng, n),
        "联系电话": _phones(rng, n),
        "角色": [r[1] for r in rows],
        "登录账号": [r[2] for r in rows],
    })


def _choice(rng: np.random.Generator, table: dict[str, float], n: int) -> np.ndarray:
    keys = list(table)
    p = np.array(list(table.values()))
    return np.array(keys, dtype=object)[rng.choice(len(keys), n, p=p / p.sum())]


def make_hotline(rng: np.random.Generator, day: dt.date, *, n: int, building_ids: np.ndarray,
                 lon: np.ndarray, lat: np.ndarray, weights: np.ndarray,
                 address: np.ndarray) -> pd.DataFrame:
    """``n`` hotline requests over ``day`` (07:00-19:00), at buildings drawn by ``weights``.

    About half give the building id (the address was resolved), the rest coordinates only (the
    caller's position from the app); about 3 % are repeated calls within two hours.
    """
    b = rng.choice(len(building_ids), n, p=weights / weights.sum())
    seconds = np.sort(rng.integers(7 * 3600, 19 * 3600, n))
    category = _choice(rng, HOTLINE_CATEGORIES, n)
    phones = _phones(rng, n)
    names = _person(rng, n)
    # Repeated calls: the same caller, place and category again within two hours.
    repeat = np.flatnonzero(rng.random(n) < 0.03)
    repeat = repeat[repeat > 0]
    source = np.maximum(repeat - rng.integers(1, 6, len(repeat)), 0)
    b[repeat], category[repeat] = b[source], category[source]
    phones[repeat], names[repeat] = phones[source], names[source]
    seconds[repeat] = np.minimum(seconds[source] + rng.integers(300, 7200, len(repeat)),
                                 19 * 3600)
    order = np.argsort(seconds, kind="stable")
    b, seconds, category = b[order], seconds[order], category[order]
    phones, names = phones[order], names[order]
    start = dt.datetime.combine(day, dt.time())
    times = [(start + dt.timedelta(seconds=int(s))).strftime("%Y-%m-%d %H:%M:%S")
             for s in seconds]
    with_id = rng.random(n) < 0.5
    texts = np.array([_TEXTS[c][int(k)] for c, k in
                      zip(category, rng.integers(0, 2, n), strict=True)], dtype=object)
    honorific = np.where(rng.random(n) < 0.5, "先生", "女士")
    return pd.DataFrame({
        "工单编号": [f"RX{day:%Y%m%d}{i + 1:05d}" for i in range(n)],
        "受理时间": times,
        "诉求类别": category,
        "紧急程度": _choice(rng, _PRIORITIES, n),
        "来源渠道": _choice(rng, _CHANNELS, n),
        "诉求地址": address[b],
        "建筑编号": np.where(with_id, building_ids[b], ""),
        "经度": np.where(with_id, "", np.char.mod("%.6f", lon[b])),
        "纬度": np.where(with_id, "", np.char.mod("%.6f", lat[b])),
        "诉求内容": texts,
        "来电人": [f"{s[0]}{h}" for s, h in zip(names, honorific, strict=True)],
        "联系电话": phones,
    })
