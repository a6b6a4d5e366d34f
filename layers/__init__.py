"""citytwin layers: pure functions from twin data to pydeck layers, with legends.

Every layer function takes twin data (DataFrames / GeoDataFrames) and a language (``"zh"`` or
``"en"``) and returns a :class:`MapLayer`: the ``pdk.Layer``, its lean payload, a
:class:`Legend` and a tooltip template. :func:`deck` / :func:`deck_spec` assemble them with no
map provider, no map style and no URL: the base map is drawn from the city's own boundaries,
roads and buildings (:mod:`layers.basemap`).
"""

from layers.basemap import boundaries, boundary_lines, boundary_names, buildings, land, roads
from layers.deck import deck, deck_spec, legends, tooltips, view_for_bounds
from layers.editing import conflict_cells, diff_cells, draft_cells
from layers.errors import LayerError, LayerInputError, PrivacyError
from layers.events import event_counts, event_points
from layers.facilities import facilities
from layers.hexes import case_hexes, hex_ids, residents_hexes, resolution_for_zoom, risk_hexes
from layers.maplayer import MapLayer
from layers.preview import preview
from layers.privacy import aggregate_cases_for_viewers, suppress_small_counts
from layers.scales import (
    CategoricalScale,
    Legend,
    LegendStop,
    SequentialScale,
    color_difference,
    simulate_cvd,
)
from layers.supply import cover_areas, dispatch_arcs, dispatch_routes
from layers.zones import zone_areas, zone_layers

__all__ = [
    "CategoricalScale",
    "LayerError",
    "LayerInputError",
    "Legend",
    "LegendStop",
    "MapLayer",
    "PrivacyError",
    "SequentialScale",
    "aggregate_cases_for_viewers",
    "boundaries",
    "boundary_lines",
    "boundary_names",
    "buildings",
    "case_hexes",
    "color_difference",
    "conflict_cells",
    "cover_areas",
    "deck",
    "deck_spec",
    "diff_cells",
    "dispatch_arcs",
    "dispatch_routes",
    "draft_cells",
    "event_counts",
    "event_points",
    "facilities",
    "hex_ids",
    "land",
    "legends",
    "preview",
    "residents_hexes",
    "resolution_for_zoom",
    "risk_hexes",
    "roads",
    "simulate_cvd",
    "suppress_small_counts",
    "tooltips",
    "view_for_bounds",
    "zone_areas",
    "zone_layers",
]
