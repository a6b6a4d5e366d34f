"""Stocks of supplies held at facilities (one row per facility and resource)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

__all__ = ["HOLDERS", "RESOURCES", "make_stocks"]

#: Resource -> (unit, per-resident daily need used to size city-wide stock).
RESOURCES: dict[str, tuple[str, float]] = {
    "粮食": ("kg", 0.25),
    "蔬菜": ("kg", 0.40),
    "肉禽蛋": ("kg", 0.15),
    "饮用水": ("L", 15.0),
    "口罩": ("个", 1.0),
    "抗原试剂": ("人份", 0.5),
    "药品包": ("份", 0.15 / 7.0),
}

#: Facility type -> {resource: share of the city-wide stock held by all facilities of the type}.
HOLDERS: dict[str, dict[str, float]] = {
    "仓库": {
        "粮食": 0.55,
        "蔬菜": 0.40,
        "肉禽蛋": 0.50,
        "饮用水": 0.55,
        "口罩": 0.40,
        "抗原试剂": 0.60,
        "药品包": 0.40,
    },
    "超市": {"粮食": 0.25, "蔬菜": 0.30, "肉禽蛋": 0.30, "饮用水": 0.25, "口罩": 0.15},
    "农贸市场": {"粮食": 0.12, "蔬菜": 0.25, "肉禽蛋": 0.15, "饮用水": 0.05, "口罩": 0.02},
    "便利店": {"粮食": 0.08, "蔬菜": 0.05, "肉禽蛋": 0.05, "饮用水": 0.15, "口罩": 0.08},
    "药店": {"口罩": 0.25, "抗原试剂": 0.40, "药品包": 0.40},
    "医院": {"口罩": 0.10, "药品包": 0.20},
}
_ORDER = [*RESOURCES, "床位"]


def make_stocks(
    rng: np.random.Generator, fac: pd.DataFrame, residents: int, last_date: dt.date
) -> pd.DataFrame:
    """Stock rows for ``fac`` (the table from :func:`twin.demo.facilities.make_facilities`).

    City-wide, each resource covers 3-6 days of the population's need (medicine packs: 2-4
    weeks of chronic patients' need); it is split over holders with lognormal noise and a
    per-district factor, so some districts are well stocked and some are short.  Hospitals
    and quarantine sites report their beds.  Most rows are dated the last day, some are 1-3
    days stale.
    """
    n_dist = int(fac["district"].max()) + 1
    dist_factor = rng.uniform(0.6, 1.4, n_dist)
    dist_factor[rng.integers(0, n_dist)] = rng.uniform(0.25, 0.45)  # one clearly short district
    cover = {r: rng.uniform(3.0, 6.0) for r in RESOURCES}
    cover["药品包"] = rng.uniform(14.0, 28.0)

    rows: list[pd.DataFrame] = []
    for kind, shares in HOLDERS.items():
        sub = fac[fac["类型"] == kind]
        if sub.empty:
            continue
        for res, share in shares.items():
            unit, need = RESOURCES[res]
            total = residents * need * cover[res] * share
            w = rng.lognormal(0.0, 0.5, len(sub)) * dist_factor[sub["district"].to_numpy()]
            qty = np.rint(total * w / w.sum()).astype(np.int64)
            rows.append(
                pd.DataFrame(
                    {"设施编号": sub["编号"].to_numpy(), "物资": res, "数量": qty, "单位": unit}
                )
            )
    beds = fac[fac["类型"].isin(["医院", "隔离点"])]
    rows.append(
        pd.DataFrame(
            {
                "设施编号": beds["编号"].to_numpy(),
                "物资": "床位",
                "数量": beds["容量"].to_numpy(np.int64),
                "单位": "张",
            }
        )
    )
    st = pd.concat(rows, ignore_index=True)
    stale = np.where(rng.random(len(st)) < 0.15, rng.integers(1, 4, len(st)), 0)
    st["日期"] = [(last_date - dt.timedelta(days=int(s))).isoformat() for s in stale]
    st["_r"] = st["物资"].map(_ORDER.index)
    st = st.sort_values(["设施编号", "_r"], kind="stable").drop(columns="_r")
    return st.reset_index(drop=True)
