"""H3 hexagon layers: risk, residents density and case counts (H3HexagonLayer).

Cells arrive as ``uint64`` (twin's convention); they become hexadecimal strings only here, at
the edge, through :func:`twin.grid.cells_to_strings`. The resolution to draw follows the zoom
(:func:`resolution_for_zoom`) or a control; callers read facts or risk at that resolution.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from layers.errors import LayerInputError
from layers.labels import UNITS, check_lang, pair, pick
from layers.maplayer import COLOR_ACCESSOR, MapLayer, make_layer, require_columns, with_colors
from layers.privacy import SMALL_COUNT, aggregate_cases_for_viewers
from layers.scales import (
    CASE_RAMP,
    GRADE_COLORS,
    INFERNO,
    VIRIDIS,
    CategoricalScale,
    SequentialScale,
)
from twin import grid

__all__ = ["CASE_BINS", "RESIDENTS_DOMAIN", "RISK_DOMAIN", "case_hexes", "hex_ids",
           "residents_hexes", "resolution_for_zoom", "risk_hexes"]

#: Risk score domain (scores are in [0, 1]).
RISK_DOMAIN = (0.0, 1.0)
#: Residents per km²: 0 to 30,000 (dense Chinese urban blocks reach this; higher is clamped).
RESIDENTS_DOMAIN = (0.0, 30_000.0)
#: Case-count classes: lower bounds (the first class is the suppressed "<10").
CASE_BINS = (1, SMALL_COUNT, 50, 200)

_GRADES = {"high": ("高风险", "high risk"), "medium": ("中风险", "medium risk"),
           "low": ("低风险", "low risk")}
_FACTORS = {"incidence": ("发病率", "incidence"), "growth": ("增长", "growth"),
            "vulnerable": ("脆弱人群", "vulnerable residents"),
            "exposure": ("人员密集场所暴露", "exposure to crowded places")}
_EARTH_CIRCUMFERENCE_M = 40_075_016.686


def hex_ids(cells: Any) -> np.ndarray:
    """H3 hexadecimal strings of ``uint64`` cells (the edge conversion)."""
    return np.asarray(grid.cells_to_strings(np.asarray(cells, dtype=np.uint64)), dtype=object)


def _edge_m(resolution: int) -> float:
    # A regular hexagon of area A has edge sqrt(2A / (3*sqrt(3))).
    return math.sqrt(2.0 * grid.average_cell_area_m2(resolution) / (3.0 * math.sqrt(3.0)))


def resolution_for_zoom(zoom: float, *, levels: Sequence[int] = (7, 8, 9, 10),
                        latitude: float = 30.0, min_pixels: float = 8.0) -> int:
    """The finest resolution of ``levels`` whose hexagon edge spans ``min_pixels`` at ``zoom``.

    Web-Mercator metres per pixel at ``latitude`` decide; below the coarsest level's threshold
    the coarsest level is used. Non-decreasing in ``zoom``.
    """
    if not levels:
        raise LayerInputError("no resolutions to choose from")
    if not math.isfinite(zoom):
        raise LayerInputError(f"zoom must be finite, got {zoom}")
    metres_per_pixel = (_EARTH_CIRCUMFERENCE_M * math.cos(math.radians(latitude))
                        / (256.0 * 2.0 ** zoom))
    fine_enough = [r for r in sorted(levels) if _edge_m(r) / metres_per_pixel >= min_pixels]
    return max(fine_enough) if fine_enough else min(levels)


def _grade_text(grades: pd.Series, lang: str) -> np.ndarray:
    return grades.astype(str).map(lambda g: pick(_GRADES, g, lang)).to_numpy(dtype=object)


def risk_hexes(table: Any, lang: str = "zh", *, color_by: str = "score",
               layer_id: str = "risk", opacity: float = 0.8) -> MapLayer:
    """Risk per H3 cell, coloured by score (inferno ramp over [0, 1]) or by grade.

    ``table`` is a :class:`twin.risk.RiskTable` at a resolution or its ``frame`` (``cell``,
    ``score``, ``grade``; optional ``residents``, ``main_reason``). The tooltip gives the grade,
    score, residents and the main factor — never case counts (viewers' privacy rule; show
    :meth:`RiskTable.explain` to authorised roles on click).
    """
    check_lang(lang)
    frame = getattr(table, "frame", table)
    require_columns(frame, ["cell", "score", "grade"], "risk_hexes")
    out = pd.DataFrame({"hex": hex_ids(frame["cell"]),
                        "score": frame["score"].astype(float).round(2).to_numpy()})
    out["grade"] = _grade_text(frame["grade"], lang)
    out["residents"] = (frame["residents"].fillna(0).round().astype(np.int32).to_numpy()
                        if "residents" in frame else 0)
    factor_label = "主要因素" if lang == "zh" else "main factor"
    if "main_reason" in frame:
        factor = frame["main_reason"].astype(str).map(lambda c: pick(_FACTORS, c, lang))
        out["factor"] = np.where(frame["grade"].astype(str).to_numpy() == "low", "",
                                 factor.to_numpy(dtype=object))
    else:
        out["factor"] = ""
    if color_by == "score":
        scale = SequentialScale(INFERNO, RISK_DOMAIN, alpha=(70, 220))
        colors = scale.rgba(out["score"])
        legend = scale.legend("risk", ("风险得分", "risk score"), pair(UNITS, "score"),
                              open_high=False,
                              note=("等级阈值见城市配置",
                                    "grade thresholds: the city's configuration"))
    elif color_by == "grade":
        cat = CategoricalScale(GRADE_COLORS, _GRADES, alpha=170,
                               order=("high", "medium", "low"))
        colors = cat.rgba(frame["grade"].astype(str))
        legend = cat.legend("risk_grade", ("风险等级", "risk grade"))
    else:
        raise LayerInputError(f"color_by must be 'score' or 'grade', not {color_by!r}")
    out = with_colors(out, colors)
    if lang == "zh":
        html = ("<b>{grade}</b> 得分 {score}<br/>常住人口 {residents} 人<br/>"
                f"{factor_label}：{{factor}}")
    else:
        html = ("<b>{grade}</b>, score {score}<br/>{residents} residents<br/>"
                f"{factor_label}: {{factor}}")
    return make_layer("H3HexagonLayer", layer_id, out, legend=legend, tooltip_html=html,
                      lang=lang, get_hexagon="hex", get_fill_color=COLOR_ACCESSOR,
                      filled=True, stroked=False, extruded=False, pickable=True,
                      auto_highlight=True, opacity=opacity)


def residents_hexes(frame: pd.DataFrame, lang: str = "zh", *,
                    domain: tuple[float, float] = RESIDENTS_DOMAIN, layer_id: str = "residents",
                    opacity: float = 0.75, drop_empty: bool = True) -> MapLayer:
    """Residents density (persons/km², viridis) per H3 cell.

    ``frame`` has ``cell`` (uint64, one resolution) and ``residents`` (e.g.
    ``Facts(ws).read(9, columns=["residents"])``). Density rather than counts keeps the colours
    comparable across resolutions.
    """
    check_lang(lang)
    require_columns(frame, ["cell", "residents"], "residents_hexes")
    residents = frame["residents"].astype(float).fillna(0.0)
    frame = frame[residents > 0] if drop_empty else frame
    residents = residents.loc[frame.index]
    cells = frame["cell"].to_numpy(dtype=np.uint64)
    resolutions = np.unique(grid.cell_resolution(cells))
    if len(resolutions) > 1:
        raise LayerInputError(f"residents_hexes needs cells of one resolution, got "
                              f"{resolutions.tolist()}")
    area_km2 = grid.average_cell_area_m2(int(resolutions[0])) / 1e6 if len(cells) else 1.0
    density = (residents.to_numpy() / area_km2).round(0)
    out = pd.DataFrame({"hex": hex_ids(cells),
                        "residents": residents.round().astype(np.int32).to_numpy(),
                        "density": density.astype(np.int32)})
    scale = SequentialScale(VIRIDIS, domain, alpha=(90, 210))
    out = with_colors(out, scale.rgba(out["density"]))
    legend = scale.legend("residents", ("常住人口密度", "residents density"),
                          pair(UNITS, "per_km2"))
    if lang == "zh":
        html = "常住人口 {residents} 人<br/>密度 {density} 人/平方公里"
    else:
        html = "{residents} residents<br/>{density} persons/km²"
    return make_layer("H3HexagonLayer", layer_id, out, legend=legend, tooltip_html=html,
                      lang=lang, get_hexagon="hex", get_fill_color=COLOR_ACCESSOR,
                      filled=True, stroked=False, pickable=True, auto_highlight=True,
                      opacity=opacity)


def case_hexes(frame: pd.DataFrame, lang: str = "zh", *, viewer: bool = True,
               resolution: int = 8, value: str = "cases", layer_id: str = "cases",
               opacity: float = 0.85, below: int = SMALL_COUNT) -> MapLayer:
    """Case counts per H3 cell in classes (``<10``, 10-49, 50-199, ≥200).

    With ``viewer=True`` (the default, the leaders' cockpit) counts are aggregated to
    ``resolution`` (8 or coarser, see :func:`layers.privacy.aggregate_cases_for_viewers`) and
    1-9 show as ``"<10"`` in the tooltip and share one colour. ``viewer=False`` (authorised
    roles) draws the cells given, with exact counts. Cells with no case are left out.
    """
    check_lang(lang)
    require_columns(frame, ["cell", value], "case_hexes")
    if viewer:
        agg = aggregate_cases_for_viewers(frame[["cell", value]], value=value,
                                          resolution=resolution, below=below)
        counts, display = agg[value].to_numpy(), agg["display"].to_numpy(dtype=object)
        cells = agg["cell"].to_numpy(dtype=np.uint64)
    else:
        cells = frame["cell"].to_numpy(dtype=np.uint64)
        counts = np.rint(frame[value].fillna(0).to_numpy(dtype=float)).astype(np.int64)
        display = np.array([str(c) for c in counts], dtype=object)
    keep = counts > 0
    out = pd.DataFrame({"hex": hex_ids(cells[keep]), "cases": display[keep]})
    bins = (1, below, *(b for b in CASE_BINS[2:] if b > below))
    classes = np.searchsorted(np.asarray(bins), counts[keep], side="right") - 1
    names = (f"<{below}", *(f"{lo}–{hi - 1}" for lo, hi in itertools.pairwise(bins[1:])),
             f"≥{bins[-1]}")
    # A ramp of its own (not risk's inferno), so cases and risk never read as one scale.
    ramp = SequentialScale(CASE_RAMP, (0.0, len(names) - 1.0), alpha=(190, 240))
    colors = {n: ramp.color(float(i))[:3] for i, n in enumerate(names)}
    cat = CategoricalScale(colors, {n: (f"{n} 例", f"{n} cases") for n in names}, alpha=200,
                           order=names)
    out = with_colors(out, cat.rgba(np.asarray(names, dtype=object)[classes]))
    note = ((f"1–{below - 1} 例显示为 <{below}；按 {resolution} 级网格汇总",
             f"1–{below - 1} shown as <{below}; aggregated to H3 resolution {resolution}")
            if viewer else ("", ""))
    legend = cat.legend("cases", ("近7天病例", "cases, last 7 days"), ("", ""), note=note)
    html = "病例 {cases} 例" if lang == "zh" else "{cases} cases"
    return make_layer("H3HexagonLayer", layer_id, out, legend=legend, tooltip_html=html,
                      lang=lang, get_hexagon="hex", get_fill_color=COLOR_ACCESSOR,
                      filled=True, stroked=False, pickable=True, auto_highlight=True,
                      opacity=opacity)
