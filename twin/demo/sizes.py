"""Parameters of the demo city sizes (``small``, ``city``, ``megacity``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SIZES", "DemoSize"]


@dataclass(frozen=True)
class DemoSize:
    """Everything that differs between demo city sizes.

    Attributes
    ----------
    name
        Size name as passed to :func:`twin.demo.generate_demo_city`.
    residents
        Exact number of residents in the population raster and table.
    n_districts, n_streets, n_communities
        Number of administrative units per level.
    area_km2
        Area of the irregular city outline.
    block_core_m, block_edge_m
        Street-grid spacing at the centre and at the edge of the city.
    n_subcentres
        Secondary centres (dense cores) besides the main one.
    n_clusters
        Seeded outbreak clusters.
    cases_target
        Expected number of cases over the 60 days (the drawn total varies around it).
    green_extra
        Share of non-core blocks turned into parks or farmland (no buildings).
    village_share
        Share of edge blocks turned into villages of small low-rise houses.
    buildings_format
        ``"shapefile-zip"`` or ``"geoparquet"`` (a shapefile is limited to 2 GB per .dbf/.shp).
    cases_format
        ``"geojson"`` or ``"geoparquet"``.
    """

    name: str
    residents: int
    n_districts: int
    n_streets: int
    n_communities: int
    area_km2: float
    block_core_m: float
    block_edge_m: float
    n_subcentres: int
    n_clusters: int
    cases_target: int
    green_extra: float = 0.0
    village_share: float = 0.0
    buildings_format: str = "shapefile-zip"
    cases_format: str = "geojson"


SIZES: dict[str, DemoSize] = {
    "small": DemoSize(
        name="small",
        residents=60_000,
        n_districts=2,
        n_streets=8,
        n_communities=30,
        area_km2=36.0,
        block_core_m=170.0,
        block_edge_m=340.0,
        n_subcentres=0,
        n_clusters=2,
        cases_target=600,
        green_extra=0.45,
    ),
    "city": DemoSize(
        name="city",
        residents=1_000_000,
        n_districts=8,
        n_streets=60,
        n_communities=400,
        area_km2=400.0,
        block_core_m=160.0,
        block_edge_m=420.0,
        n_subcentres=2,
        n_clusters=5,
        cases_target=30_000,
        green_extra=0.15,
    ),
    "megacity": DemoSize(
        name="megacity",
        residents=25_000_000,
        n_districts=16,
        n_streets=250,
        n_communities=4000,
        area_km2=6000.0,
        block_core_m=160.0,
        block_edge_m=280.0,
        n_subcentres=8,
        n_clusters=40,
        cases_target=1_000_000,
        village_share=0.3,
        buildings_format="geoparquet",
        cases_format="geojson",
    ),
}
