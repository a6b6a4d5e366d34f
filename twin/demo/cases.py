"""A 60-day outbreak: seeded clusters that grow, spread to neighbouring compounds, and are
(mostly) brought under control.

Each cluster starts in a residential compound.  Its expected daily cases grow exponentially;
most clusters are controlled after about five weeks and decline, the rest keep growing more
slowly.  Every day's cases of a cluster land in compounds drawn with probability proportional
to residents times a Gaussian kernel around the seed whose width grows with time (spread to
neighbouring compounds), then in a building of that compound proportional to its residents.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from twin.demo.buildings import Buildings
from twin.schema import CASE_STATUSES

__all__ = ["DAYS", "LAST_DATE", "STATUSES", "case_ids", "make_cases"]

DAYS = 60
#: The outbreak window ends on a fixed date so that output does not depend on today.
LAST_DATE = dt.date(2026, 4, 30)
STATUSES = CASE_STATUSES
#: Share of each status, in the order of :data:`twin.schema.CASE_STATUSES`.
_STATUS_P = np.array([0.36, 0.57, 0.04, 0.03])
assert len(_STATUS_P) == len(STATUSES)
AGE_BANDS = ("0-14", "15-34", "35-64", "65+")
_AGE_P = np.array([0.10, 0.25, 0.43, 0.22])
SEVERITIES = ("mild", "moderate", "severe", "critical")
_SEV_P = np.array([[0.84, 0.12, 0.03, 0.01], [0.62, 0.24, 0.10, 0.04]])  # under 65, 65+
_ONSET_P = np.array([0.10, 0.20, 0.22, 0.18, 0.13, 0.10, 0.07])  # days before report


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijection on uint64 with good avalanche."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def case_ids(n: int, seed: int) -> list[str]:
    """Pseudonymous, unique, non-sequential ids ``P`` + 12 hex digits (keyed hash of the row)."""
    key = _mix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    h = _mix64(np.arange(n, dtype=np.uint64) ^ key) >> np.uint64(16)
    # 48 bits can collide (p ~ n^2 / 2^49); rehash the rare duplicates until unique.
    for _ in range(100):
        _, first = np.unique(h, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        h[dup] = _mix64(h[dup] ^ key) >> np.uint64(16)
    return [f"P{v:012x}" for v in h.tolist()]


def make_cases(
    rng: np.random.Generator,
    b: Buildings,
    residents: np.ndarray,
    n_clusters: int,
    target: int,
    seed: int,
) -> pd.DataFrame:
    """Cases with UTM position ``x``, ``y`` and the fields of the cases file.

    Returns
    -------
    pandas.DataFrame
        Columns id, report_date, onset_date, status, age_band, severity, x, y, day, cluster.
    """
    nblk = int(b.block.max()) + 1 if len(b) else 0
    blk_pop = np.bincount(b.block, weights=residents, minlength=nblk)
    cnt = np.bincount(b.block, minlength=nblk)
    bx = np.bincount(b.block, weights=b.x, minlength=nblk) / np.maximum(cnt, 1)
    by = np.bincount(b.block, weights=b.y, minlength=nblk) / np.maximum(cnt, 1)
    res_blk = np.flatnonzero(blk_pop > 0)

    # Cluster parameters.
    seeds = rng.choice(res_blk, size=n_clusters, replace=False, p=blk_pop[res_blk] / blk_pop.sum())
    start = rng.integers(0, 18, n_clusters)
    start[0] = 0
    growth = rng.uniform(0.11, 0.16, n_clusters)
    controlled = rng.random(n_clusters) < 0.75
    controlled[0] = True
    if n_clusters > 1:
        controlled[-1] = False  # at least one cluster still growing at the end
    control_day = rng.integers(32, 41, n_clusters)
    decline = rng.uniform(0.07, 0.14, n_clusters)
    weight = rng.uniform(0.5, 1.5, n_clusters)
    # Uncontrolled clusters are later and smaller, so the city-wide curve still turns down.
    start[~controlled] = np.maximum(start[~controlled], 15)
    weight[~controlled] *= 0.25

    t = np.arange(DAYS)[None, :]
    s = start[:, None]
    peak = np.where(controlled[:, None], control_day[:, None], 35)
    rising = np.exp(growth[:, None] * (np.minimum(t, peak) - s))
    after = np.where(
        controlled[:, None],
        np.exp(-decline[:, None] * np.maximum(t - peak, 0)),
        np.exp(0.3 * growth[:, None] * np.maximum(t - peak, 0)),
    )
    shape = np.where(t >= s, rising * after, 0.0) * weight[:, None]
    lam = shape * (target / shape.sum())
    counts = rng.poisson(lam)
    # The index case opens the window; the still-growing clusters report on the last day.
    counts[0, 0] = max(counts[0, 0], 1)
    counts[-1, -1] = max(counts[-1, -1], 1)

    # Place each cluster-day's cases in compounds near the seed.
    sigma0, sigma_growth = 250.0, 45.0
    blocks: list[np.ndarray] = []
    days: list[np.ndarray] = []
    clusters: list[np.ndarray] = []
    for c in range(n_clusters):
        d2 = (bx[res_blk] - bx[seeds[c]]) ** 2 + (by[res_blk] - by[seeds[c]]) ** 2
        smax = sigma0 + sigma_growth * DAYS
        near = d2 < (4.0 * smax) ** 2
        cand, d2n, popn = res_blk[near], d2[near], blk_pop[res_blk][near]
        for day in np.flatnonzero(counts[c]):
            sigma = sigma0 + sigma_growth * (day - start[c])
            w = popn * np.exp(-d2n / (2.0 * sigma**2))
            k = int(counts[c, day])
            blocks.append(cand[rng.choice(len(cand), size=k, p=w / w.sum())])
            days.append(np.full(k, day))
            clusters.append(np.full(k, c))
    blk = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)
    day = np.concatenate(days) if days else np.zeros(0, dtype=np.int64)
    cluster = np.concatenate(clusters) if clusters else np.zeros(0, dtype=np.int64)
    n = len(blk)

    # A resident building of the compound, proportional to its residents.
    order = np.argsort(b.block, kind="stable")
    cum = np.cumsum(residents[order])
    blk_start = np.concatenate([[0], np.cumsum(blk_pop)])[:-1]
    r = blk_start[blk] + rng.random(n) * blk_pop[blk]
    bi = order[np.minimum(np.searchsorted(cum, r, side="right"), len(cum) - 1)]
    # Jitter within the footprint (flats are spread over the building).
    u = b.u[bi] + rng.uniform(-0.4, 0.4, n) * b.w[bi]
    v = b.v[bi] + rng.uniform(-0.4, 0.4, n) * b.h[bi]

    status = rng.choice(len(STATUSES), size=n, p=_STATUS_P)
    age = rng.choice(len(AGE_BANDS), size=n, p=_AGE_P)
    sev_u = rng.random(n)
    sev = (sev_u[:, None] > np.cumsum(_SEV_P, axis=1)[(age == 3).astype(int)]).sum(axis=1)
    sev = np.minimum(sev, 3)
    has_onset = np.isin(status, (0, 2))
    onset_lag = rng.choice(len(_ONSET_P), size=n, p=_ONSET_P)
    has_sev = np.isin(status, (0, 2))

    first = LAST_DATE - dt.timedelta(days=DAYS - 1)
    dates = np.array([(first + dt.timedelta(days=int(i))).isoformat() for i in range(DAYS)])
    onset_dates = np.array(
        [(first + dt.timedelta(days=int(i))).isoformat() for i in range(-7, DAYS)]
    )
    df = pd.DataFrame(
        {
            "report_date": dates[day],
            "onset_date": np.where(has_onset, onset_dates[day - onset_lag + 7], None),
            "status": np.array(STATUSES)[status],
            "age_band": np.array(AGE_BANDS)[age],
            "severity": np.where(has_sev, np.array(SEVERITIES)[sev], None),
            "u": u,
            "v": v,
            "day": day,
            "cluster": cluster,
            "building": bi,
        }
    )
    # Order by date with pseudonymous ids, so that row order reveals no cluster structure.
    df["id"] = case_ids(n, seed)
    df = df.sort_values(["day", "id"], kind="stable").reset_index(drop=True)
    return df[["id", *[c for c in df.columns if c != "id"]]]
