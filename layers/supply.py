"""Supply: days of cover by area for one resource (choropleth) and dispatch routes and arcs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from layers.errors import LayerInputError
from layers.labels import RESOURCES, TIERS, UNITS, check_lang, pair, pick
from layers.maplayer import (
    COLOR_ACCESSOR,
    MapLayer,
    feature_collection,
    make_layer,
    require_columns,
    with_colors,
)
from layers.scales import CIVIDIS, OKABE_ITO, Legend, LegendStop, SequentialScale

__all__ = ["COVER_DOMAIN_DAYS", "cover_areas", "dispatch_arcs", "dispatch_routes"]

#: Days of cover: 0 (nothing left, bright yellow) to 7 days or more (calm dark blue).
COVER_DOMAIN_DAYS = (0.0, 7.0)
ROUTE_COLOR = OKABE_ITO["sky_blue"]


def cover_areas(gaps: pd.DataFrame, areas: Any, resource: str, lang: str = "zh", *,
                key: str = "code", domain: tuple[float, float] = COVER_DOMAIN_DAYS,
                layer_id: str | None = None) -> MapLayer:
    """Days of cover of ``resource`` per area (reversed cividis: fewer days, brighter).

    ``gaps`` is :func:`twin.supply.workspace_gaps` (area, tier, resource, unit, demand, supply,
    gap, days_of_cover); ``areas`` a GeoDataFrame of the same areas with ``key`` matching
    ``gaps.area`` (communities' ``code``, or zone ids) and optionally ``name``.
    """
    check_lang(lang)
    require_columns(gaps, ["area", "resource", "gap", "days_of_cover"], "cover_areas")
    require_columns(areas, [key, "geometry"], "cover_areas")
    rows = gaps[gaps["resource"] == resource]
    if rows.empty:
        raise LayerInputError(f"no gaps for resource {resource!r}; resources are "
                              f"{', '.join(sorted(gaps['resource'].astype(str).unique()))}")
    rows = rows.drop_duplicates("area").set_index(rows["area"].astype(str))
    geo = areas[areas[key].astype(str).isin(rows.index)]
    ids = geo[key].astype(str)
    cover = ids.map(rows["days_of_cover"]).astype(float)
    gap = ids.map(rows["gap"]).astype(float).fillna(0.0)
    unit = str(rows["unit"].iloc[0]) if "unit" in rows else ""
    unit_text = pick(UNITS, unit, lang)
    scale = SequentialScale(CIVIDIS, domain, alpha=(110, 200), reverse=True)
    colors = scale.rgba(cover)
    tier = (ids.map(rows["tier"]).astype(str).map(lambda t: pick(TIERS, t, lang))
            if "tier" in rows else pd.Series("", index=ids.index))
    names = geo["name"].astype(str) if "name" in geo else ids
    cover_text = ["∞" if not np.isfinite(c) else f"{c:.1f}" for c in cover.to_numpy()]
    props = pd.DataFrame({
        "name": names.to_numpy(), "tier": tier.to_numpy(dtype=object),
        "cover": cover_text, "gap": [f"{g:,.0f}" for g in gap.to_numpy()],
        "fill": [list(map(int, c)) for c in colors]})
    data = feature_collection(geo.geometry.to_numpy(), props)
    res_zh, res_en = pair(RESOURCES, resource)
    legend = scale.legend(f"cover_{resource}", (f"{res_zh} 保障天数", f"{res_en}: days of cover"),
                          pair(UNITS, "days"),
                          note=(f"缺口单位：{pick(UNITS, unit, 'zh')}",
                                f"gaps in {pick(UNITS, unit, 'en')}"))
    if lang == "zh":
        html = ("<b>{properties.name}</b> {properties.tier}<br/>"
                f"{res_zh} 可保障 {{properties.cover}} 天<br/>缺口 {{properties.gap}} {unit_text}")
    else:
        html = ("<b>{properties.name}</b> {properties.tier}<br/>"
                f"{res_en}: {{properties.cover}} days of cover<br/>gap {{properties.gap}} "
                f"{unit_text}")
    return make_layer("GeoJsonLayer", layer_id or f"cover_{resource}", data, legend=legend,
                      tooltip_html=html, lang=lang, filled=True, stroked=True,
                      get_fill_color="properties.fill", get_line_color=[230, 230, 230, 120],
                      line_width_min_pixels=0.5, pickable=True, auto_highlight=True)


def _route_legend(kind: str) -> Legend:
    return Legend(kind, "物资调拨", "dispatch", "", "", "categorical",
                  (LegendStop("route", (*ROUTE_COLOR, 220), "调拨线路（线宽表示数量）",
                              "route (width shows quantity)"),))


def _route_rows(routes: Any, lang: str) -> pd.DataFrame:
    require_columns(routes, ["from", "to", "resource", "quantity", "geometry"], "dispatch")
    qty = pd.to_numeric(routes["quantity"], errors="coerce").fillna(0.0)
    top = float(qty.max()) if len(qty) and qty.max() > 0 else 1.0
    dist = (pd.to_numeric(routes["distance_m"], errors="coerce").fillna(0.0)
            if "distance_m" in routes else pd.Series(0.0, index=routes.index))
    return pd.DataFrame({
        "from": routes["from"].astype(str).to_numpy(), "to": routes["to"].astype(str).to_numpy(),
        "resource": routes["resource"].astype(str).map(
            lambda r: pick(RESOURCES, r, lang)).to_numpy(dtype=object),
        "quantity": qty.round(0).astype(np.int64).to_numpy(),
        "km": (dist / 1000.0).round(1).to_numpy(),
        "w": (2.0 + 6.0 * np.sqrt(qty / top)).round(1).to_numpy()})


def _route_html(lang: str, prefix: str) -> str:
    if lang == "zh":
        return (f"{{{prefix}from}} → {{{prefix}to}}<br/>{{{prefix}resource}} "
                f"{{{prefix}quantity}}<br/>路程 {{{prefix}km}} 公里")
    return (f"{{{prefix}from}} → {{{prefix}to}}<br/>{{{prefix}resource}}: "
            f"{{{prefix}quantity}}<br/>{{{prefix}km}} km by road")


def dispatch_routes(routes: Any, lang: str = "zh", *, layer_id: str = "dispatch_routes"
                    ) -> MapLayer:
    """Dispatch routes (``DispatchPlan.routes``) along their road paths (GeoJsonLayer lines)."""
    check_lang(lang)
    props = _route_rows(routes, lang)
    data = feature_collection(routes.geometry.to_numpy(), props)
    return make_layer("GeoJsonLayer", layer_id, data, legend=_route_legend("dispatch_routes"),
                      tooltip_html=_route_html(lang, "properties."), lang=lang, filled=False,
                      stroked=True, get_line_color=[*ROUTE_COLOR, 220],
                      get_line_width="properties.w", line_width_units="pixels",
                      line_cap_rounded=True, pickable=True, auto_highlight=True)


def dispatch_arcs(routes: Any, lang: str = "zh", *, layer_id: str = "dispatch_arcs"
                  ) -> MapLayer:
    """Dispatch as arcs from each route's start (the warehouse) to its end (the area)."""
    import shapely

    check_lang(lang)
    out = _route_rows(routes, lang)
    geoms = routes.geometry.to_numpy()
    start = shapely.get_point(geoms, 0)
    end = shapely.get_point(geoms, -1)
    out["sx"], out["sy"] = shapely.get_x(start).round(6), shapely.get_y(start).round(6)
    out["tx"], out["ty"] = shapely.get_x(end).round(6), shapely.get_y(end).round(6)
    out = out.dropna(subset=["sx", "sy", "tx", "ty"]).reset_index(drop=True)
    out = with_colors(out, np.tile([*ROUTE_COLOR, 220], (len(out), 1)))
    return make_layer("ArcLayer", layer_id, out, legend=_route_legend("dispatch_arcs"),
                      tooltip_html=_route_html(lang, ""), lang=lang,
                      get_source_position="[sx, sy]", get_target_position="[tx, ty]",
                      get_source_color=COLOR_ACCESSOR, get_target_color=COLOR_ACCESSOR,
                      get_width="w", width_units="pixels", pickable=True, auto_highlight=True)
