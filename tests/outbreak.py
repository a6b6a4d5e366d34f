"""An outbreak simulator independent of the demo generator, for backtests of the forecast.

The demo city's own cases (:mod:`twin.demo.cases`) are seeded clusters whose daily counts grow
exponentially and land around the seed compound through a Gaussian kernel.  A forecast tuned
on them could learn that shape.  This module makes a different outbreak on the same city, so
that a backtest measures generalisation:

- a stochastic, daily, metapopulation SEIR over the residential compounds (the base H3 cells
  with residents of the fused facts), with individual latent and infectious periods drawn
  from gamma distributions and isolation of every case on the day it is reported;
- transmission within a compound (household), within its community (neighbourhood), at work
  (each worker spends the day in a district drawn from a gravity model, so workplaces mix
  people from several home districts) and at markets and supermarkets (residents within
  1.5 km visit them; a handful are super-spreading venues with negative-binomial event sizes);
- from a response day that differs per district, compounds with reported cases are locked
  down (their within-compound and outgoing transmission is cut) for two weeks after their
  last report;
- observation: about 85 % of infections are reported, 1 to 4 days after onset, as confirmed
  (symptomatic) or asymptomatic cases, plus a few suspected cases and close contacts that are
  not infections; each row is placed at the case's home building jittered by about 150 m.

:func:`simulate_outbreak` replaces a workspace's cases layer with such an outbreak through the
normal ingest path (a GeoJSON file like the demo's, ingested as a new version of the cases
layer, then fused), exactly as a user loading a new case file would.  :func:`load_city` and
:func:`run_outbreak` give the simulated cases without touching the workspace.

Example (from the project root)::

    from tests.outbreak import simulate_outbreak
    summary = simulate_outbreak("/tmp/citydemo-copy/workspace", seed=3)
    summary["total_cases"], summary["cases_per_day"]["2026-04-01"]
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.demo.cases import LAST_DATE
from twin.schema import CASE_STATUSES, INFECTION_STATUSES
from twin.store import Workspace

__all__ = ["AGE_BANDS", "ROUTES", "City", "OutbreakParams", "load_city", "run_outbreak",
           "simulate_outbreak"]

AGE_BANDS = ("0-14", "15-34", "35-64", "65+")
SEVERITIES = ("mild", "moderate", "severe", "critical")
#: Severity shares of symptomatic cases under 65 and aged 65+.
_SEVERITY_P = np.array([[0.80, 0.15, 0.04, 0.01], [0.55, 0.27, 0.13, 0.05]])
#: Share of 15-34 among residents aged 15-64.
_YOUNG_ADULT_SHARE = 0.37
#: Residential building uses (people live there), as in the fusion of the twin.
_RESIDENTIAL_USES = ("residential", "mixed")
#: Facility kinds that are venues residents visit.
_VENUE_KINDS = ("market", "supermarket")
_AUTHOR = "outbreak-simulator"
#: Calibration: relative error of the total accepted, and most simulations run.
_TOLERANCE = 0.08
_MAX_RUNS = 30
#: d log(cases) / d log(transmission) assumed before two runs measure it, and the first
#: transmission scale tried (about right for the default parameters and the demo's sizes).
_SLOPE = 6.0
_FIRST_SCALE = 2.0


@dataclass(frozen=True)
class OutbreakParams:
    """Parameters of the epidemic and of its observation.

    Transmission rates are per infectious person and day before the calibration multiplies them
    all by one factor (so only their ratios matter when ``target_cases`` is given).

    Attributes
    ----------
    lead_days
        Days simulated before the first report date, so that reports start on day one.
    latent_mean, latent_shape, infectious_mean, infectious_shape
        Gamma distributions (mean in days, shape) of the latent (E) and infectious (I) periods,
        rounded to whole days, at least one.
    beta_home, beta_community, beta_work, beta_venue, beta_super
        Transmission within the compound, within the community, at the workplace, at an
        ordinary venue, and at a super-spreading venue (mean secondary infections per
        infectious visitor and day, before depletion of susceptibles).
    super_k
        Dispersion of super-spreading events (negative binomial; small is heavy-tailed).
    super_share
        Share of the venues that are super-spreading (at least one).
    workers
        Share of residents who commute to a workplace.
    gravity_exponent, gravity_offset_m
        Work district ``j`` of a home district ``i`` is drawn with weight
        ``residents_j / (distance_ij + offset) ** exponent``.
    venue_visit, venue_radius_m, venue_decay_m
        Daily probability that a resident visits a venue; residents visit venues within the
        radius, weighted by capacity times ``exp(-distance / decay)``.
    seeds, import_rate
        Infections on the first days (per million residents, at least three), and the daily rate
        of later imported infections per million residents.
    response_day, response_spread, late_district_delay
        Day (of the report window) from which a district locks compounds down, the spread of
        that day between districts, and the extra delay of one district that reacts late.
    response_work_cut, response_venue_cut
        From its response day, a district's residents also work from home and shop less:
        their workplace and venue transmission is cut by these shares.
    lock_days, lock_home_cut, lock_out_cut
        A compound with a report is locked down until ``lock_days`` after its last report: its
        within-compound transmission is cut by ``lock_home_cut`` and everything its residents
        do outside (community, work, venues) by ``lock_out_cut``.
    ascertainment, symptomatic, report_delay_p
        Share of infections reported; share of them that are symptomatic (reported as
        confirmed, the others as asymptomatic); probabilities of a report 1, 2, 3, 4 days after
        onset.
    suspected_share, close_contact_share
        Suspected cases and close contacts (not infections) as a share of all reported rows.
    jitter_m
        Root-mean-square distance of a reported location from the home building.
    """

    lead_days: int = 10
    latent_mean: float = 3.0
    latent_shape: float = 4.0
    infectious_mean: float = 5.0
    infectious_shape: float = 3.0
    beta_home: float = 0.22
    beta_community: float = 0.05
    beta_work: float = 0.10
    beta_venue: float = 0.05
    beta_super: float = 0.25
    super_k: float = 0.08
    super_share: float = 0.05
    workers: float = 0.45
    gravity_exponent: float = 2.0
    gravity_offset_m: float = 2000.0
    venue_visit: float = 0.25
    venue_radius_m: float = 1500.0
    venue_decay_m: float = 600.0
    seeds: float = 12.0
    import_rate: float = 1.0
    response_day: int = 16
    response_spread: int = 12
    late_district_delay: int = 14
    response_work_cut: float = 0.6
    response_venue_cut: float = 0.5
    lock_days: int = 14
    lock_home_cut: float = 0.7
    lock_out_cut: float = 0.9
    ascertainment: float = 0.85
    symptomatic: float = 0.4
    report_delay_p: tuple[float, float, float, float] = (0.30, 0.35, 0.20, 0.15)
    suspected_share: float = 0.04
    close_contact_share: float = 0.03
    jitter_m: float = 150.0


@dataclass(frozen=True)
class City:
    """The population the outbreak runs on, read from a fused workspace.

    Compounds are the base H3 cells with residents; positions are metres in ``crs`` (UTM).

    Attributes
    ----------
    cells, residents, district, community, x, y, child_share, old_share
        Per compound: H3 cell, residents (integers), index into ``district_codes`` and into
        the communities, residents-weighted position, shares of residents aged 0-14 and 65+.
    district_codes
        Code of each district index.
    home_compound, home_x, home_y, home_weight
        Home points (residential buildings, or the cell centre of a compound without one):
        compound, position and residents.
    venue_x, venue_y, venue_capacity, venue_ids
        Markets and supermarkets.
    crs
        The metric CRS of the positions.
    """

    cells: np.ndarray
    residents: np.ndarray
    district: np.ndarray
    community: np.ndarray
    x: np.ndarray
    y: np.ndarray
    child_share: np.ndarray
    old_share: np.ndarray
    district_codes: np.ndarray
    home_compound: np.ndarray
    home_x: np.ndarray
    home_y: np.ndarray
    home_weight: np.ndarray
    venue_x: np.ndarray
    venue_y: np.ndarray
    venue_capacity: np.ndarray
    venue_ids: np.ndarray
    crs: str

    @property
    def n_compounds(self) -> int:
        """Number of compounds."""
        return len(self.residents)

    def default_target(self) -> int:
        """The demo generator's expected number of cases for the size nearest to this city."""
        from twin.demo.sizes import SIZES

        total = max(float(self.residents.sum()), 1.0)
        size = min(SIZES.values(), key=lambda s: abs(math.log(s.residents / total)))
        return size.cases_target


# -- the city --------------------------------------------------------------------------------------
def _layer_of(ws: Workspace, kind: str) -> str | None:
    """The layer of ``kind`` that fusion reads (twin.toml's ``[fuse]`` choice, else the only)."""
    configured = ws.config["fuse"].get(kind, "")
    if configured:
        return configured
    names = [layer.name for layer in ws.layers() if layer.kind == kind]
    if len(names) > 1:
        raise ValueError(f"the workspace has several {kind} layers ({', '.join(names)}); name "
                         f"the one to use in twin.toml: [fuse] {kind} = \"{names[0]}\"")
    return names[0] if names else None


def _utm_crs(lon: float, lat: float) -> str:
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def load_city(workspace: Workspace | Path | str) -> City:
    """Read compounds, home buildings and venues of a fused workspace.

    Raises
    ------
    twin.errors.FactsNotFoundError
        When the workspace has not been fused.
    ValueError
        When the facts hold no residents.
    """
    import pyproj
    import shapely

    from twin import grid
    from twin.facts import Facts

    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    facts = Facts(ws)
    available = facts.columns(facts.base)
    wanted = [c for c in ("residents", "district_code", "community_code", "age_65_plus",
                          "children") if c in available]
    static = facts.static(facts.base, wanted)
    static = static[np.rint(static["residents"].to_numpy(float)) >= 1].reset_index(drop=True)
    if static.empty:
        raise ValueError(f"the facts of {ws.root} hold no residents; load a population layer "
                         "and fuse before simulating an outbreak")
    cells = static["cell"].to_numpy(np.uint64)
    residents = np.rint(static["residents"].to_numpy(float)).astype(np.int64)
    districts = static.get("district_code", pd.Series("", index=static.index)).fillna("")
    district_codes, district = np.unique(districts.astype(str).to_numpy(), return_inverse=True)
    communities = static.get("community_code", pd.Series("", index=static.index)).fillna("")
    _, community = np.unique(communities.astype(str).to_numpy(), return_inverse=True)
    raw = static["residents"].to_numpy(float)
    old = static["age_65_plus"].to_numpy(float) / raw if "age_65_plus" in static else None
    child = static["children"].to_numpy(float) / raw if "children" in static else None
    old_share = np.clip(np.nan_to_num(old, nan=0.15) if old is not None
                        else np.full(len(raw), 0.15), 0.0, 0.6)
    child_share = np.clip(np.nan_to_num(child, nan=0.12) if child is not None
                          else np.full(len(raw), 0.12), 0.0, 0.4)

    clng, clat = grid.cell_centres(cells)
    crs = _utm_crs(float(np.mean(clng)), float(np.mean(clat)))
    to_metric = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    cx, cy = to_metric.transform(clng, clat)

    # Residential buildings share their cell's residents in proportion to floor area.
    hx, hy, hc, hw = [cx], [cy], [np.arange(len(cells))], [np.zeros(len(cells))]
    buildings = _layer_of(ws, "buildings")
    if buildings is not None:
        frame = ws.read(buildings)
        frame = frame[frame["use"].isin(_RESIDENTIAL_USES).to_numpy()]
        geometry = frame.geometry.to_numpy()
        blng, blat = shapely.get_coordinates(shapely.centroid(geometry)).T
        floors = pd.to_numeric(frame.get("floors", pd.Series(1.0, index=frame.index)),
                               errors="coerce").fillna(1.0).clip(lower=1.0).to_numpy(float)
        weight = shapely.area(geometry) * floors
        compound = pd.Index(cells).get_indexer(grid.points_to_cells(blng, blat, facts.base))
        keep = (compound >= 0) & (weight > 0)
        bx, by = to_metric.transform(blng[keep], blat[keep])
        hx.append(bx)
        hy.append(by)
        hc.append(compound[keep])
        hw.append(weight[keep])
    home_x, home_y = np.concatenate(hx), np.concatenate(hy)
    home_compound, home_weight = np.concatenate(hc), np.concatenate(hw)
    area = np.bincount(home_compound, weights=home_weight, minlength=len(cells))
    # A compound without residential buildings keeps its cell centre as its one home point.
    centre_only = area[home_compound] == 0
    home_weight = np.where(centre_only, 1.0, home_weight)
    total = np.bincount(home_compound, weights=home_weight, minlength=len(cells))
    home_weight = home_weight / total[home_compound] * residents[home_compound]
    x = np.bincount(home_compound, weights=home_weight * home_x) / residents
    y = np.bincount(home_compound, weights=home_weight * home_y) / residents

    vx = vy = cap = np.empty(0)
    vids = np.empty(0, dtype=object)
    facilities = _layer_of(ws, "facilities")
    if facilities is not None:
        fac = ws.read(facilities)
        fac = fac[fac["kind"].isin(_VENUE_KINDS).to_numpy()]
        points = fac.geometry.representative_point()
        vx, vy = to_metric.transform(points.x.to_numpy(), points.y.to_numpy())
        cap = pd.to_numeric(fac.get("capacity", pd.Series(np.nan, index=fac.index)),
                            errors="coerce").to_numpy(float)
        cap = np.where(np.isfinite(cap) & (cap > 0), cap, np.nanmedian(cap) if
                       np.isfinite(cap).any() else 1.0)
        vids = fac["id"].astype(str).to_numpy(dtype=object)
    return City(cells=cells, residents=residents, district=district, community=community,
                x=x, y=y, child_share=child_share, old_share=old_share,
                district_codes=district_codes, home_compound=home_compound, home_x=home_x,
                home_y=home_y, home_weight=home_weight, venue_x=np.asarray(vx, float),
                venue_y=np.asarray(vy, float), venue_capacity=np.asarray(cap, float),
                venue_ids=vids, crs=crs)


# -- mixing structure ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Mixing:
    work: np.ndarray  # (compounds, districts): where a compound's workers work
    venues: Any  # sparse (compounds, venues): where a compound's residents shop, rows sum to 1
    super_venues: np.ndarray  # indices of super-spreading venues
    response_day: np.ndarray  # per district, in simulation days
    import_day: np.ndarray  # first and imported infections: simulation day …
    import_compound: np.ndarray  # … and compound


def _mixing(city: City, p: OutbreakParams, days: int, rng: np.random.Generator) -> _Mixing:
    from scipy import sparse
    from scipy.spatial import cKDTree

    nd = len(city.district_codes)
    n = city.residents.astype(float)
    mass = np.bincount(city.district, weights=n, minlength=nd)
    dx = np.bincount(city.district, weights=n * city.x, minlength=nd) / mass
    dy = np.bincount(city.district, weights=n * city.y, minlength=nd) / mass
    dist = np.hypot(dx[:, None] - dx[None, :], dy[:, None] - dy[None, :])
    gravity = mass[None, :] / (dist + p.gravity_offset_m) ** p.gravity_exponent
    gravity /= gravity.sum(axis=1, keepdims=True)
    work = gravity[city.district]

    nv = len(city.venue_x)
    if nv:
        # Residents visit the venues within the radius, by capacity and distance decay.
        reach = cKDTree(np.column_stack([city.x, city.y])).query_ball_point(
            np.column_stack([city.venue_x, city.venue_y]), p.venue_radius_m)
        rows = np.concatenate([np.asarray(r, dtype=np.int64) for r in reach])
        cols = np.repeat(np.arange(nv), [len(r) for r in reach])
        dist_m = np.hypot(city.x[rows] - city.venue_x[cols], city.y[rows] - city.venue_y[cols])
        vals = city.venue_capacity[cols] * np.exp(-dist_m / p.venue_decay_m)
        venues = sparse.csr_matrix((vals, (rows, cols)), shape=(city.n_compounds, nv))
        row_sum = np.asarray(venues.sum(axis=1)).ravel()
        venues = sparse.diags(np.where(row_sum > 0, 1.0 / np.maximum(row_sum, 1e-300),
                                       0.0)) @ venues
        n_super = max(1, round(p.super_share * nv))
        super_venues = np.sort(rng.choice(nv, size=n_super, replace=False,
                                          p=city.venue_capacity / city.venue_capacity.sum()))
    else:
        venues = sparse.csr_matrix((city.n_compounds, 0))
        super_venues = np.empty(0, dtype=np.int64)

    response = p.lead_days + p.response_day + rng.integers(0, p.response_spread + 1, nd)
    if nd > 1:
        response[rng.integers(nd)] += p.late_district_delay
    import_day, import_compound = _imports(city, p, p.lead_days + days, rng)
    return _Mixing(work=work, venues=venues.tocsr(), super_venues=super_venues,
                   response_day=response, import_day=import_day,
                   import_compound=import_compound)


# -- the epidemic ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Infections:
    """One row per infection (reported or not)."""

    day: np.ndarray  # simulation day of infection
    compound: np.ndarray
    onset: np.ndarray  # end of the latent period (symptom onset of the symptomatic)
    report: np.ndarray  # report day (meaningful where ascertained)
    ascertained: np.ndarray
    symptomatic: np.ndarray
    route: np.ndarray  # index into ROUTES


#: Routes of infection, in the order of :attr:`_Infections.route`.
ROUTES = ("home", "community", "work", "venue", "super_venue", "import")
#: Independent streams of the epidemic's random numbers.
(_U_NEW, _U_SUPER, _U_SUPER_WHO, _U_ROUTE, _U_WORKER, _U_WORKPLACE, _U_LATENT, _U_INFECTIOUS,
 _U_ASCERTAINED, _U_SYMPTOMATIC, _U_DELAY) = range(11)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 with good avalanche."""
    with np.errstate(over="ignore"):  # multiplication modulo 2**64 is the point
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


_MASK64 = (1 << 64) - 1


def _mix_int(x: int) -> int:
    """:func:`_mix64` of one Python integer."""
    x &= _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _hash(key: int, *parts: int | np.ndarray) -> np.ndarray:
    """A 64-bit hash of ``key`` and the integer ``parts`` (scalars first, then arrays)."""
    h, arrays = key, []
    for q in parts:
        if isinstance(q, np.ndarray):
            arrays.append(q)
        else:
            h = _mix_int(h + int(_GOLDEN) + int(q))
    out = np.full(np.broadcast_shapes(*(q.shape for q in arrays)), h, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for q in arrays:
            out = _mix64(out + _GOLDEN + q.astype(np.int64).astype(np.uint64))
    return out


def _uniform(h: np.ndarray, stream: int) -> np.ndarray:
    """Uniform numbers in (0, 1) of stream ``stream`` for the things hashed in ``h``.

    The epidemic draws every random number this way, keyed by what it is about (day,
    compound, which infection of the day, stream), and turns it into counts and durations by
    inverse distribution functions.  Runs at nearby transmission scales then share their
    randomness (common random numbers): the same infection keeps its periods, and a compound
    whose risk grows a little gets at least as many infections.  The calibration needs that.
    """
    with np.errstate(over="ignore"):
        x = _mix64(h + np.uint64(stream + 1) * _GOLDEN)
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def _gamma_days(u: np.ndarray, mean: float, shape: float, cap: int) -> np.ndarray:
    from scipy import stats

    days = np.rint(stats.gamma.ppf(u, shape, scale=mean / shape))
    return np.clip(days, 1, cap).astype(np.int64)


def _categorical(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Column drawn for each row of non-negative ``weights`` by its uniform ``u``."""
    cum = np.cumsum(weights, axis=1)
    return np.minimum((cum <= (u * cum[:, -1])[:, None]).sum(axis=1), weights.shape[1] - 1)


def _rank(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ``counts`` per compound: the compound of each item and its rank in the compound."""
    compound = np.repeat(np.arange(len(counts)), counts)
    return compound, np.arange(len(compound)) - np.repeat(np.cumsum(counts) - counts, counts)


def _imports(city: City, p: OutbreakParams, steps: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Day and compound of the first infections and of later imported ones (not calibrated)."""
    per_million = city.residents.sum() / 1e6
    seeds = max(3, round(p.seeds * per_million))
    later = rng.poisson(p.import_rate * per_million * max(steps - 14, 0))
    day = np.concatenate([rng.integers(0, 4, seeds), rng.integers(0, max(steps - 14, 1), later)])
    weight = city.residents / city.residents.sum()
    return day, rng.choice(city.n_compounds, size=len(day), p=weight)


def _epidemic(city: City, mix: _Mixing, p: OutbreakParams, days: int, scale: float,
              key: int) -> _Infections:
    from scipy import stats

    nc, nd = city.n_compounds, mix.work.shape[1]
    n = city.residents.astype(float)
    steps = p.lead_days + days
    max_latent, max_inf, max_delay = 12, 20, len(p.report_delay_p)
    horizon = steps + max_latent + max_inf + max_delay + 2
    d_inf = np.zeros((horizon, nc), np.int32)  # change of infectious residents per day
    d_work = np.zeros((horizon, nc * nd), np.int32)  # … of infectious workers by workplace
    reports = np.zeros((horizon, nc), np.int32)
    infectious = np.zeros(nc, np.int64)
    infectious_work = np.zeros(nc * nd, np.int64)
    susceptible = city.residents.copy()
    lock_until = np.full(nc, -1, np.int64)
    response = mix.response_day[city.district]
    venues, venues_t, venues_c = mix.venues, mix.venues.T.tocsr(), mix.venues.tocsc()
    regular = np.ones(venues.shape[1], bool)
    regular[mix.super_venues] = False
    delay_cum = np.cumsum(p.report_delay_p) / np.sum(p.report_delay_p)
    b_home, b_comm, b_work, b_venue, b_super = (scale * b for b in (
        p.beta_home, p.beta_community, p.beta_work, p.beta_venue, p.beta_super))
    compounds = np.arange(nc)
    out: list[tuple[np.ndarray, ...]] = []

    for t in range(steps):
        infectious += d_inf[t]
        infectious_work += d_work[t]
        if t > 0:
            newly = (reports[t - 1] > 0) & (t >= response)
            lock_until[newly] = t + p.lock_days
        locked = lock_until > t
        home = np.where(locked, 1.0 - p.lock_home_cut, 1.0)
        free = np.where(locked, 1.0 - p.lock_out_cut, 1.0)
        # After its response day a district's residents also work from home and shop less.
        responded = t >= response
        at_work = free * np.where(responded, 1.0 - p.response_work_cut, 1.0)
        shopping = free * np.where(responded, 1.0 - p.response_venue_cut, 1.0)

        # Hazards per susceptible resident of each compound, by route.
        i_free, n_free = infectious * free, n * free
        h_home = b_home * infectious * home / n
        comm_i = np.bincount(city.community, weights=i_free)
        comm_n = np.bincount(city.community, weights=n_free)
        h_comm = free * b_comm * comm_i[city.community] / comm_n[city.community]
        pool_i = (infectious_work.reshape(nc, nd) * at_work[:, None]).sum(axis=0)
        pool_n = p.workers * ((n * at_work) @ mix.work)
        lam_work = b_work * pool_i / np.maximum(pool_n, 1.0)
        h_work = at_work * p.workers * (mix.work @ lam_work)
        visit_i = p.venue_visit * (venues_t @ (infectious * shopping))
        visit_n = p.venue_visit * (venues_t @ (n * shopping))
        lam_venue = np.where(regular, b_venue * visit_i / np.maximum(visit_n, 1.0), 0.0)
        h_venue = shopping * p.venue_visit * (venues @ lam_venue)
        hazards = np.column_stack([h_home, h_comm, h_work, h_venue])
        risk = -np.expm1(-hazards.sum(axis=1))
        new = np.zeros(nc, np.int64)
        at_risk = (risk > 0) & (susceptible > 0)
        if at_risk.any():
            u = _uniform(_hash(key, t, compounds[at_risk]), _U_NEW)
            new[at_risk] = stats.binom.ppf(u, susceptible[at_risk], risk[at_risk]).astype(
                np.int64)

        # Super-spreading events: negative-binomial numbers of infections among visitors.
        extra = np.zeros(nc, np.int64)
        visit_s = venues_t @ (susceptible * shopping)
        for v in mix.super_venues:
            mean = b_super * visit_i[v] * visit_s[v] / max(visit_n[v] / p.venue_visit, 1.0)
            if mean <= 0:
                continue
            size = int(stats.nbinom.ppf(_uniform(_hash(key, t, v), _U_SUPER), p.super_k,
                                        p.super_k / (p.super_k + mean)))
            weight = venues_c[:, v].toarray().ravel() * (susceptible - new - extra) * shopping
            if size == 0 or weight.sum() <= 0:
                continue
            cum = np.cumsum(weight)
            who = np.searchsorted(cum, _uniform(_hash(key, t, v, np.arange(size)), _U_SUPER_WHO)
                                  * cum[-1], side="right")
            extra += np.minimum(np.bincount(np.minimum(who, nc - 1), minlength=nc),
                                susceptible - new - extra)
        today = mix.import_day == t
        imports = np.minimum(np.bincount(mix.import_compound[today], minlength=nc),
                             susceptible - new - extra)
        total = new + extra + imports
        if not total.any():
            continue
        susceptible -= total

        # The new infections, one row each, keyed by (day, compound, kind, rank).
        parts = [(*_rank(c), kind) for kind, c in enumerate((new, extra, imports))]
        compound = np.concatenate([c for c, _, _ in parts])
        rank = np.concatenate([r for _, r, _ in parts])
        kind = np.concatenate([np.full(len(c), k) for c, _, k in parts])
        ident = _hash(key, t, compound, (kind << 32) | rank)
        route = np.where(kind == 2, 5, 4)
        ordinary = kind == 0
        route[ordinary] = _categorical(_uniform(ident, _U_ROUTE)[ordinary],
                                       hazards[compound[ordinary]])
        worker = (route == 2) | (_uniform(ident, _U_WORKER) < p.workers)
        work_w = mix.work[compound]
        infected_at_work = route == 2
        work_w[infected_at_work] *= lam_work[None, :]
        workplace = _categorical(_uniform(ident, _U_WORKPLACE), work_w)
        latent = _gamma_days(_uniform(ident, _U_LATENT), p.latent_mean, p.latent_shape,
                             max_latent)
        duration = _gamma_days(_uniform(ident, _U_INFECTIOUS), p.infectious_mean,
                               p.infectious_shape, max_inf)
        ascertained = _uniform(ident, _U_ASCERTAINED) < p.ascertainment
        symptomatic = _uniform(ident, _U_SYMPTOMATIC) < p.symptomatic
        onset = t + latent
        report = onset + 1 + np.searchsorted(delay_cum, _uniform(ident, _U_DELAY))
        # A reported case is isolated on its report day.
        end = np.where(ascertained, np.minimum(onset + duration, report), onset + duration)
        np.add.at(d_inf, (onset, compound), 1)
        np.add.at(d_inf, (end, compound), -1)
        slot = compound[worker] * nd + workplace[worker]
        np.add.at(d_work, (onset[worker], slot), 1)
        np.add.at(d_work, (end[worker], slot), -1)
        np.add.at(reports, (report[ascertained], compound[ascertained]), 1)
        out.append((np.full(len(compound), t), compound, onset, report, ascertained,
                    symptomatic, route))

    if not out:
        empty = np.empty(0, np.int64)
        return _Infections(empty, empty, empty, empty, empty.astype(bool), empty.astype(bool),
                           empty)
    return _Infections(*(np.concatenate(c) for c in zip(*out, strict=True)))


def _reported(inf: _Infections, p: OutbreakParams, days: int) -> np.ndarray:
    """Which infections are reported within the report window."""
    return inf.ascertained & (inf.report >= p.lead_days) & (inf.report < p.lead_days + days)


def _calibrate(city: City, mix: _Mixing, p: OutbreakParams, days: int, target: int,
               seed_seq: np.random.SeedSequence) -> tuple[float, _Infections, int]:
    """The transmission scale whose outbreak reports about ``target`` infections.

    Every run uses the same random numbers (see :func:`_uniform`), so the number of reported
    infections grows with the scale, if steeply (an epidemic near its threshold: about +10 %
    of cases per +1 % of transmission).  Secant steps in log-log space, kept inside the
    bracket found so far, reach the target within :data:`_TOLERANCE` in a handful of runs.
    Where the total jumps over the target (the first chains die out below some scale and take
    off above it, or one super-spreading event more), the bracket collapses; the search then
    goes on with the next realisation of the random numbers.  After :data:`_MAX_RUNS` the
    closest run is kept.
    """
    wanted = target * (1.0 - p.suspected_share - p.close_contact_share)
    key = int(seed_seq.generate_state(1, np.uint64)[0])
    log_scale, best, previous, lo, hi = math.log(_FIRST_SCALE), None, None, None, None
    for _ in range(_MAX_RUNS):
        inf = _epidemic(city, mix, p, days, math.exp(log_scale), key)
        got = int(_reported(inf, p, days).sum())
        error = math.log(max(got, 1) / wanted)
        if best is None or abs(error) < best[0]:
            best = (abs(error), math.exp(log_scale), inf, got)
        if abs(error) < math.log1p(_TOLERANCE):
            break
        if error < 0:
            lo = log_scale
        else:
            hi = log_scale
        if lo is not None and hi is not None and hi - lo < 0.01:
            key = _mix_int(key + int(_GOLDEN))  # the next realisation
            previous, lo, hi = None, None, None
            continue
        slope = _SLOPE
        if previous is not None and abs(log_scale - previous[0]) > 1e-9:
            slope = float(np.clip((error - previous[1]) / (log_scale - previous[0]), 2.0, 30.0))
        previous = (log_scale, error)
        log_scale -= float(np.clip(error / slope, -0.4, 0.4))
        if lo is not None and hi is not None and not lo < log_scale < hi:
            log_scale = (lo + hi) / 2.0
    assert best is not None
    return best[1], best[2], best[3]


# -- observation -----------------------------------------------------------------------------------
def _case_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    ids = np.unique(rng.integers(0, 1 << 48, n + 16, dtype=np.int64))
    while len(ids) < n:
        ids = np.unique(np.concatenate([ids, rng.integers(0, 1 << 48, n, dtype=np.int64)]))
    ids = rng.permutation(ids)[:n]
    return np.array([f"P{v:012x}" for v in ids.tolist()], dtype=object)


def _observe(city: City, inf: _Infections, p: OutbreakParams, days: int,
             rng: np.random.Generator) -> pd.DataFrame:
    """The rows of the cases file: reported infections plus suspected cases and contacts."""
    import pyproj

    keep = _reported(inf, p, days)
    compound = inf.compound[keep]
    report = inf.report[keep]
    onset = inf.onset[keep]
    status = np.where(inf.symptomatic[keep], 0, 1)  # confirmed, asymptomatic
    n_inf = len(compound)
    others = p.suspected_share + p.close_contact_share
    n_other = round(n_inf * others / (1.0 - others)) if n_inf else 0
    if n_other:
        # Suspected cases and close contacts live near reported cases and are reported with
        # them; they are not infections.
        index = rng.integers(0, n_inf, n_other)
        other_status = np.where(rng.random(n_other) < p.suspected_share / others, 2, 3)
        other_report = np.minimum(report[index] + rng.integers(0, 2, n_other),
                                  p.lead_days + days - 1)
        other_onset = other_report - 1 - rng.integers(0, 3, n_other)
        compound = np.concatenate([compound, compound[index]])
        report = np.concatenate([report, other_report])
        onset = np.concatenate([onset, other_onset])
        status = np.concatenate([status, other_status])
    last = p.lead_days + days - 1
    if n_inf and not (report == last).any():
        # The twin takes the latest report date for "today": keep it on the window's last day
        # with a close contact of the latest case, traced that day.
        index = int(np.argmax(report[:n_inf]))
        compound = np.append(compound, compound[index])
        report = np.append(report, last)
        onset = np.append(onset, last)
        status = np.append(status, 3)
    n_rows = len(compound)

    # Age band from the compound's age structure; severity for the symptomatic.
    old, child = city.old_share[compound], city.child_share[compound]
    adult = 1.0 - old - child
    age_p = np.column_stack([child, adult * _YOUNG_ADULT_SHARE,
                             adult * (1 - _YOUNG_ADULT_SHARE), old])
    age = _categorical(rng.random(n_rows), age_p)
    severity = _categorical(rng.random(n_rows), _SEVERITY_P[(age == 3).astype(int)])
    symptomatic = np.isin(status, (0, 2))

    # Home building (in proportion to its residents), then a jittered reported location.
    order = np.argsort(city.home_compound, kind="stable")
    cum = np.cumsum(city.home_weight[order])
    start = np.concatenate([[0.0], np.cumsum(city.residents.astype(float))])[:-1]
    r = start[compound] + rng.random(n_rows) * city.residents[compound]
    home = order[np.minimum(np.searchsorted(cum, r, side="right"), len(cum) - 1)]
    sigma = p.jitter_m / math.sqrt(2.0)
    x = city.home_x[home] + rng.normal(0.0, sigma, n_rows)
    y = city.home_y[home] + rng.normal(0.0, sigma, n_rows)
    lon, lat = pyproj.Transformer.from_crs(city.crs, "EPSG:4326",
                                           always_xy=True).transform(x, y)

    first = LAST_DATE - dt.timedelta(days=days - 1 + p.lead_days)
    dates = np.array([(first + dt.timedelta(days=i)).isoformat()
                      for i in range(p.lead_days + days)], dtype=object)
    frame = pd.DataFrame({
        "id": _case_ids(rng, n_rows),
        "report_date": dates[report],
        "onset_date": np.where(symptomatic, dates[onset], None),
        "status": np.asarray(CASE_STATUSES, dtype=object)[status],
        "age_band": np.asarray(AGE_BANDS, dtype=object)[age],
        "severity": np.where(symptomatic, np.asarray(SEVERITIES, dtype=object)[severity],
                             None),
        "lon": lon, "lat": lat,
    })
    # In date order with pseudonymous ids, so that row order reveals no transmission chain.
    return frame.sort_values(["report_date", "id"], kind="stable").reset_index(drop=True)


def run_outbreak(city: City, *, seed: int = 0, days: int = 60, target_cases: int | None = None,
                 params: OutbreakParams | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Simulate an outbreak on ``city``; the workspace is not touched.

    Returns
    -------
    cases : pandas.DataFrame
        The rows of a cases file: id, report_date, onset_date (ISO dates), status, age_band,
        severity, lon, lat (WGS84), in report-date order.
    info : dict
        ``scale`` (the calibrated transmission factor), ``infections`` (how many, reported or
        not, from the first simulated day), ``routes`` (infections by route, see
        :data:`ROUTES`), ``response_days`` (per district code, the first day of lockdowns)
        and ``super_venues`` (facility ids).

    Raises
    ------
    ValueError
        When ``days`` is under 14 or ``target_cases`` is not positive.
    """
    p = params or OutbreakParams()
    if days < 14:
        raise ValueError(f"days must be at least 14 to see an outbreak rise and fall, got {days}")
    target = int(target_cases) if target_cases is not None else city.default_target()
    if target < 1:
        raise ValueError(f"target_cases must be positive, got {target_cases}")
    root = np.random.SeedSequence([int(seed), 0x5EED0B5E])
    mix_seq, epi_seq, obs_seq = root.spawn(3)
    mix = _mixing(city, p, days, np.random.default_rng(mix_seq))
    scale, inf, _ = _calibrate(city, mix, p, days, target, epi_seq)
    cases = _observe(city, inf, p, days, np.random.default_rng(obs_seq))
    first = LAST_DATE - dt.timedelta(days=days - 1 + p.lead_days)
    info = {
        "scale": round(scale, 4),
        "infections": len(inf.day),
        "routes": {name: int((inf.route == i).sum()) for i, name in enumerate(ROUTES)},
        "response_days": {str(code): (first + dt.timedelta(days=int(d))).isoformat()
                          for code, d in zip(city.district_codes, mix.response_day,
                                             strict=True)},
        "super_venues": [str(v) for v in city.venue_ids[mix.super_venues]],
    }
    return cases, info


# -- publishing ------------------------------------------------------------------------------------
def _write_geojson(cases: pd.DataFrame, path: Path) -> None:
    import geopandas as gpd

    from twin.demo.write import write_geojson

    columns = ["id", "report_date", "onset_date", "status", "age_band", "severity"]
    frame = gpd.GeoDataFrame({c: cases[c].to_numpy(dtype=object) for c in columns},
                             geometry=gpd.points_from_xy(cases["lon"], cases["lat"]),
                             crs="EPSG:4326")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    write_geojson(path, frame)


def simulate_outbreak(workspace: Path | str, *, seed: int = 0, days: int = 60,
                      target_cases: int | None = None, progress: bool = False,
                      out: Path | str | None = None,
                      params: OutbreakParams | None = None) -> dict[str, Any]:
    """Replace the cases of a fused workspace with a simulated outbreak, and re-fuse.

    Parameters
    ----------
    workspace
        A fused workspace (e.g. ``DIR/workspace`` of ``twin demo DIR --no-serve``).
    seed
        The same workspace and seed give the same cases.
    days
        Length of the report window; it ends on the demo's last date
        (:data:`twin.demo.cases.LAST_DATE`).
    target_cases
        About this many case rows (all statuses); transmission is scaled to reach it.  By
        default about the demo's own number for a city of this size (600 for ``small``,
        30,000 for ``city``).
    progress
        Print the steps to standard error.
    out
        Directory of the cases file (default: ``outbreak`` next to the workspace).
    params
        Epidemic and observation parameters (default :class:`OutbreakParams`).

    Returns
    -------
    dict
        ``seed``, ``total_cases``, ``infection_cases`` (confirmed and asymptomatic),
        ``cases_by_status``, ``cases_per_day`` and ``infection_cases_per_day`` (ISO date ->
        rows, every date of the window), ``first_date``, ``last_date``,
        ``cases_by_district``, ``target_cases``, the simulation's ``scale``,
        ``infections``, ``routes``, ``response_days`` and ``super_venues``, the cases file
        ``source``, the ``ingest`` report (as a dict), the new ``cases_version``, the
        ``fuse`` status and ``seconds`` per step.

    Raises
    ------
    RuntimeError
        When ingest refuses the simulated file (its report is in the message).
    """
    from ingest import ingest_file
    from twin.fuse import fuse

    def say(message: str) -> None:
        if progress:
            print(f"outbreak: {message}", file=sys.stderr, flush=True)

    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    ws = Workspace.open(workspace)
    say(f"reading the city of {ws.root}")
    city = load_city(ws)
    seconds["load"] = round(time.perf_counter() - clock, 2)

    clock = time.perf_counter()
    say(f"simulating {days} days on {city.n_compounds:,} compounds "
        f"({int(city.residents.sum()):,} residents), seed {seed}")
    cases, info = run_outbreak(city, seed=seed, days=days, target_cases=target_cases,
                               params=params)
    seconds["simulate"] = round(time.perf_counter() - clock, 2)

    clock = time.perf_counter()
    folder = Path(out) if out is not None else ws.root.parent / "outbreak"
    path = folder / f"cases-outbreak-seed{seed}.geojson"
    say(f"writing {len(cases):,} cases to {path}")
    _write_geojson(cases, path)
    layer = _layer_of(ws, "cases") or "cases"
    say(f"ingesting {path.name} as a new version of layer {layer!r}")
    report = ingest_file(ws, path, kind="cases", name=layer, author=_AUTHOR,
                         note=f"simulated outbreak, seed {seed}, {days} days "
                              f"(tests/outbreak.py)")
    if report.status not in ("published", "unchanged"):
        raise RuntimeError(f"ingest refused the simulated cases {path}:\n{report.to_text()}")
    seconds["ingest"] = round(time.perf_counter() - clock, 2)
    clock = time.perf_counter()
    say("fusing")
    fused = fuse(ws, author=_AUTHOR)
    seconds["fuse"] = round(time.perf_counter() - clock, 2)

    window = pd.date_range(end=pd.Timestamp(LAST_DATE), periods=days, freq="D")
    iso = [d.date().isoformat() for d in window]
    per_day = cases.groupby("report_date").size().reindex(iso, fill_value=0)
    infection = cases["status"].isin(INFECTION_STATUSES)
    per_day_inf = cases[infection].groupby("report_date").size().reindex(iso, fill_value=0)
    from twin.facts import Facts

    facts = Facts(ws)
    by_district = {}
    if "district" in facts.levels:
        units = facts.read("district", columns=[])
        by_district = {str(c): int(v) for c, v in zip(units["code"], units["cases"],
                                                      strict=True) if v}
    summary = {
        "seed": int(seed),
        "days": int(days),
        "target_cases": int(target_cases) if target_cases is not None
        else city.default_target(),
        "total_cases": len(cases),
        "infection_cases": int(infection.sum()),
        "cases_by_status": {s: int((cases["status"] == s).sum()) for s in CASE_STATUSES},
        "cases_per_day": {d: int(v) for d, v in per_day.items()},
        "infection_cases_per_day": {d: int(v) for d, v in per_day_inf.items()},
        "first_date": str(cases["report_date"].min()) if len(cases) else None,
        "last_date": str(cases["report_date"].max()) if len(cases) else None,
        "cases_by_district": by_district,  # as the fused facts count them
        **info,
        "source": str(path),
        "ingest": report.to_dict(),
        "cases_version": report.version.get("version") if report.version else None,
        "fuse": fused.status,
        "seconds": seconds,
    }
    say(f"{summary['total_cases']:,} cases from {summary['first_date']} to "
        f"{summary['last_date']}; {seconds}")
    return summary


def _main() -> None:  # pragma: no cover - a convenience for bench scripts
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--target-cases", type=int)
    args = parser.parse_args()
    summary = simulate_outbreak(args.workspace, seed=args.seed, days=args.days,
                                target_cases=args.target_cases, progress=True)
    print(json.dumps({k: v for k, v in summary.items() if k != "ingest"}, indent=2,
                     ensure_ascii=False))


if __name__ == "__main__":  # pragma: no cover
    _main()

