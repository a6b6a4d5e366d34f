"""The base map, drawn from the twin's own data (never map tiles, never any URL).

Admin boundaries (land fill and outlines), roads by class and, optionally, 3D buildings
extruded by ``height_m`` — all GeoJsonLayers (Panel converts them safely; ragged polygons in a
PolygonLayer do not survive its conversion).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from layers.errors import LayerInputError
from layers.labels import LEVELS, ROAD_CLASSES, check_lang, pair, pick
from layers.maplayer import (
    MapLayer,
    feature_collection,
    make_layer,
    outline_segments,
    require_columns,
)
from layers.scales import CategoricalScale, Legend, LegendStop

__all__ = ["BOUNDARY_STYLE", "LABEL_FONT", "ROAD_STYLE", "boundaries", "boundary_lines",
           "boundary_names", "buildings", "land", "roads"]

#: level -> (line RGBA, width in pixels); the land fill is drawn under districts only.
BOUNDARY_STYLE: dict[str, tuple[tuple[int, int, int, int], float]] = {
    "district": ((220, 220, 220, 230), 2.5), "street": ((190, 190, 190, 170), 1.5),
    "community": ((160, 160, 160, 120), 0.8), "grid": ((140, 140, 140, 90), 0.5),
}
LAND_FILL = (38, 42, 50, 255)
#: road class -> (RGB, width in metres); unknown classes draw like ``local``.
ROAD_STYLE: dict[str, tuple[tuple[int, int, int], float]] = {
    "expressway": ((205, 205, 205), 22.0), "arterial": ((175, 175, 175), 16.0),
    "secondary": ((145, 145, 145), 10.0), "local": ((115, 115, 115), 6.0),
}
BUILDING_COLOR = (150, 160, 175, 230)


def boundaries(frame: Any, lang: str = "zh", *, level: str | None = None,
               land: bool | None = None, layer_id: str | None = None) -> MapLayer:
    """Admin boundaries (``ws.read("districts"|"streets"|"communities")``) as outlines.

    ``land`` fills the polygons with a neutral land colour (default: for districts, so the
    map has a ground without tiles). Lines are thinner and fainter at finer levels.
    """
    check_lang(lang)
    require_columns(frame, ["code", "name", "geometry"], "boundaries")
    if level is None:
        levels = frame["level"].dropna().unique() if "level" in frame else []
        level = str(levels[0]) if len(levels) == 1 else "community"
    if level not in BOUNDARY_STYLE:
        raise LayerInputError(f"unknown boundary level {level!r}")
    land = (level == "district") if land is None else land
    color, width = BOUNDARY_STYLE[level]
    props = pd.DataFrame({"name": frame["name"].astype(str).to_numpy(),
                          "code": frame["code"].astype(str).to_numpy()})
    data = feature_collection(frame.geometry.to_numpy(), props)
    level_label = pick(LEVELS, level, lang)
    legend = Legend(f"boundaries_{level}", f"{LEVELS[level][0]}界", f"{LEVELS[level][1]} "
                    "boundaries", "", "", "categorical",
                    (LegendStop(level, color, LEVELS[level][0], LEVELS[level][1]),))
    html = f"{level_label} <b>{{properties.name}}</b><br/>{{properties.code}}"
    return make_layer("GeoJsonLayer", layer_id or f"boundaries_{level}", data, legend=legend,
                      tooltip_html=html, lang=lang, filled=land, stroked=True,
                      get_fill_color=list(LAND_FILL), get_line_color=list(color),
                      get_line_width=width, line_width_units="pixels",
                      line_width_min_pixels=0.5, pickable=land)


def boundary_lines(frame: Any, lang: str = "zh", *, level: str = "community",
                   layer_id: str | None = None) -> MapLayer:
    """Admin boundaries as line segments (a ``LineLayer``; shared borders drawn once).

    The same outlines as :func:`boundaries`, but as numeric columns: Panel sends them once as
    binary buffers and never again while they do not change.
    """
    check_lang(lang)
    require_columns(frame, ["geometry"], "boundary_lines")
    if level not in BOUNDARY_STYLE:
        raise LayerInputError(f"unknown boundary level {level!r}")
    color, width = BOUNDARY_STYLE[level]
    data = outline_segments(frame.geometry.to_numpy())
    legend = Legend(f"boundaries_{level}", f"{LEVELS[level][0]}界", f"{LEVELS[level][1]} "
                    "boundaries", "", "", "categorical",
                    (LegendStop(level, color, LEVELS[level][0], LEVELS[level][1]),))
    return make_layer("LineLayer", layer_id or f"boundaries_{level}", data, legend=legend,
                      tooltip_html=None, lang=lang, get_source_position=["x0", "y0"],
                      get_target_position=["x1", "y1"], get_color=list(color),
                      get_width=width, width_units="pixels", width_min_pixels=0.5,
                      pickable=False)


def land(frame: Any, lang: str = "zh", *, layer_id: str = "land",
         resolution: int = 8) -> MapLayer:
    """The ground of the map: the H3 cells of ``resolution`` whose centre lies in the city's
    polygons, in the land colour; the exact borders are :func:`boundary_lines`.

    Hexagons rather than polygons on purpose: the risk and case layers already use deck.gl's
    hexagon program, and in software WebGL every further program costs the first frame
    about half a second (measured); the cells are also a short column sent once.
    """
    from layers.hexes import hex_ids
    from twin import grid

    check_lang(lang)
    require_columns(frame, ["geometry"], "land")
    cells, _ = grid.fill_polygons(frame.geometry.to_numpy(), resolution)
    data = pd.DataFrame({"hex": hex_ids(np.unique(cells))})
    return make_layer("H3HexagonLayer", layer_id, data, legend=None, tooltip_html=None,
                      lang=lang, get_hexagon="hex", get_fill_color=list(LAND_FILL),
                      filled=True, stroked=False, extruded=False, pickable=False)


#: System CJK fonts only (no web fonts): the Noto CJK of Debian, then common desktop ones.
LABEL_FONT = ('"Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", '
              "sans-serif")


def boundary_names(frame: Any, lang: str = "zh", *, layer_id: str = "names",
                   size_m: float = 900.0) -> MapLayer:
    """The names of admin units at a point inside each, as map text.

    Sizes are in metres, so the text grows with the zoom that fits the city: on a 4K wall the
    names are as large, relative to the map, as on a 1080p screen. ``characterSet``
    is the names' own characters, so deck.gl's font atlas holds the Chinese ones too.
    """
    check_lang(lang)
    require_columns(frame, ["name", "geometry"], "boundary_names")
    points = frame.geometry.representative_point()
    name_en = frame.get("name_en", None)
    text = (frame["name"].astype(str) if lang == "zh" or name_en is None
            else name_en.fillna(frame["name"]).astype(str))
    data = pd.DataFrame({"text": text.to_numpy(dtype=object),
                         "lon": points.x.round(6).to_numpy(), "lat": points.y.round(6).to_numpy()})
    return make_layer("TextLayer", layer_id, data, legend=None, tooltip_html=None, lang=lang,
                      get_position=["lon", "lat"], get_text="text", get_size=size_m,
                      size_units="meters", size_min_pixels=12, size_max_pixels=64,
                      # no text background: it costs deck.gl a second shader program
                      get_color=[245, 247, 250, 255], font_family=LABEL_FONT,
                      character_set="".join(sorted(set("".join(data["text"])))),
                      pickable=False,
                      # drawn over the flat hexes without z-fighting (deck.gl 9 / luma.gl 9)
                      parameters={"depthCompare": "always", "depthWriteEnabled": False})


def roads(frame: Any, lang: str = "zh", *, layer_id: str = "roads",
          classes: tuple[str, ...] | None = None) -> MapLayer:
    """Roads (``ws.read("roads")``: class, name, lines) drawn by class: width and grey."""
    check_lang(lang)
    require_columns(frame, ["geometry"], "roads")
    if classes is not None and "class" in frame:
        frame = frame[frame["class"].isin(classes)]
    cls = (frame["class"].fillna("local").astype(str) if "class" in frame
           else pd.Series("local", index=frame.index))
    style = [ROAD_STYLE.get(c, ROAD_STYLE["local"]) for c in cls]
    props = pd.DataFrame({
        "name": (frame["name"].fillna("").astype(str).to_numpy() if "name" in frame
                 else ""),
        "class": cls.map(lambda c: pick(ROAD_CLASSES, c, lang)).to_numpy(dtype=object),
        "line": [[*rgb, 255] for rgb, _ in style], "w": [w for _, w in style]})
    # Wider roads on top: sort by width.
    order = np.argsort(props["w"].to_numpy(), kind="stable")
    data = feature_collection(frame.geometry.to_numpy()[order],
                              props.iloc[order].reset_index(drop=True))
    scale = CategoricalScale({k: v[0] for k, v in ROAD_STYLE.items()}, ROAD_CLASSES, alpha=255)
    legend = scale.legend("roads", ("道路", "roads"), note=("线宽表示等级", "width shows class"))
    html = "{properties.name}<br/>{properties.class}"
    return make_layer("GeoJsonLayer", layer_id, data, legend=legend, tooltip_html=html,
                      lang=lang, filled=False, stroked=True, get_line_color="properties.line",
                      get_line_width="properties.w", line_width_units="meters",
                      line_width_min_pixels=1, line_cap_rounded=True, pickable=True)


def buildings(frame: Any, lang: str = "zh", *, extruded: bool = True,
              layer_id: str = "buildings", min_height_m: float = 0.0) -> MapLayer:
    """Buildings (``ws.read("buildings")``: use, floors, height_m, polygons), extruded by height.

    Missing heights fall back to 3 m per floor, then 3 m. ``min_height_m`` drops low buildings
    to lighten the payload of a city-wide view.
    """
    check_lang(lang)
    require_columns(frame, ["geometry"], "buildings")
    height = (pd.to_numeric(frame["height_m"], errors="coerce") if "height_m" in frame
              else pd.Series(np.nan, index=frame.index))
    if "floors" in frame:
        height = height.fillna(3.0 * pd.to_numeric(frame["floors"], errors="coerce"))
    height = height.fillna(3.0).clip(lower=1.0)
    keep = (height >= min_height_m).to_numpy()
    use_labels = {"residential": ("住宅", "residential"), "commercial": ("商业", "commercial"),
                  "office": ("办公", "office"), "industrial": ("工业", "industrial"),
                  "public": ("公共", "public"), "mixed": ("混合", "mixed"),
                  "other": ("其他", "other")}
    use = (frame["use"].fillna("other").astype(str) if "use" in frame
           else pd.Series("other", index=frame.index))
    props = pd.DataFrame({"h": height.round(1).to_numpy(),
                          "use": [pair(use_labels, u)[0 if lang == "zh" else 1] for u in use]})
    data = feature_collection(frame.geometry.to_numpy()[keep],
                              props.loc[keep].reset_index(drop=True))
    legend = Legend("buildings", "建筑", "buildings", "米", "m", "categorical",
                    (LegendStop("building", BUILDING_COLOR, "建筑（按高度拉伸）",
                                "building (extruded by height)"),))
    html = ("{properties.use} · 高 {properties.h} 米" if lang == "zh"
            else "{properties.use} · {properties.h} m high")
    return make_layer("GeoJsonLayer", layer_id, data, legend=legend, tooltip_html=html,
                      lang=lang, filled=True, stroked=False, extruded=extruded,
                      get_elevation="properties.h", get_fill_color=list(BUILDING_COLOR),
                      pickable=True, auto_highlight=False)
