"""Byte-reproducible writers for the demo files.

Every format here can embed the time of writing somewhere (GeoPackage contents table,
Shapefile .dbf header, zip member headers); each writer pins it to a fixed date so that the
same size and seed give byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
from rasterio.transform import Affine

__all__ = [
    "fixed_gdal_date",
    "write_csv",
    "write_geojson",
    "write_geoparquet",
    "write_geotiff",
    "write_gpkg",
    "write_json",
    "write_shapefile_zip",
]


@contextmanager
def fixed_gdal_date(date: dt.date) -> Iterator[None]:
    """Make GDAL stamp ``date`` instead of now (GeoPackage ``last_change`` and friends).

    The previous value of ``OGR_CURRENT_DATE`` is restored afterwards.
    """
    key = "OGR_CURRENT_DATE"
    old = pyogrio.get_gdal_config_option(key)
    pyogrio.set_gdal_config_options({key: f"{date.isoformat()}T00:00:00Z"})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({key: old})


def write_gpkg(path: Path, layers: Sequence[tuple[str, gpd.GeoDataFrame]], date: dt.date) -> None:
    """Write ``layers`` (name, frame) into one GeoPackage."""
    with fixed_gdal_date(date):
        for name, gdf in layers:
            pyogrio.write_dataframe(
                gdf, path, layer=name, driver="GPKG", append=False, promote_to_multi=False
            )


def _zip_members(zpath: Path, files: Sequence[Path], date: dt.date) -> None:
    """Zip ``files`` (flat, sorted, fixed timestamps and permissions)."""
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted(files, key=lambda p: p.name):
            info = zipfile.ZipInfo(f.name, date_time=(date.year, date.month, date.day, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # Unix, whatever the platform, for identical bytes
            zf.writestr(info, f.read_bytes(), compresslevel=6)


def write_shapefile_zip(
    path: Path, gdf: gpd.GeoDataFrame, layer: str, encoding: str, date: dt.date
) -> None:
    """Write ``gdf`` as ``layer``.shp/.shx/.dbf/.prj/.cpg with ``encoding`` and zip it."""
    work = path.parent / f".{path.stem}-shp"
    work.mkdir()
    shp = work / f"{layer}.shp"
    pyogrio.write_dataframe(
        gdf,
        shp,
        driver="ESRI Shapefile",
        encoding=encoding,
        layer_options={"DBF_DATE_LAST_UPDATE": date.isoformat()},
    )
    files = sorted(work.iterdir())
    _zip_members(path, files, date)
    for f in files:
        f.unlink()
    work.rmdir()


def write_geoparquet(path: Path, gdf: gpd.GeoDataFrame) -> None:
    """GeoParquet 1.0 (WKB geometry, zstd), no index column."""
    gdf.to_parquet(path, index=False, compression="zstd", schema_version="1.0.0")


def write_geojson(path: Path, gdf: gpd.GeoDataFrame) -> None:
    """RFC 7946 GeoJSON (WGS84, 7 decimals ~ 1 cm)."""
    pyogrio.write_dataframe(
        gdf,
        path,
        driver="GeoJSON",
        layer_options={"RFC7946": "YES", "COORDINATE_PRECISION": "7", "WRITE_BBOX": "NO"},
    )


def write_geotiff(
    path: Path,
    data: np.ndarray,
    transform: Affine,
    crs: str,
    nodata: float,
    tags: dict[str, str],
) -> None:
    """Single-band tiled, deflate-compressed GeoTIFF without date tags."""
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "compress": "deflate",
        "predictor": 3 if data.dtype.kind == "f" else 2,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        dst.update_tags(**tags)
        dst.set_band_description(1, "persons")


def write_csv(path: Path, df: pd.DataFrame, encoding: str, float_format: str | None = None) -> None:
    """CSV with ``\\n`` line ends on every platform."""
    df.to_csv(path, index=False, encoding=encoding, lineterminator="\n", float_format=float_format)


def write_json(path: Path, obj: Any) -> None:
    """UTF-8 JSON, sorted keys, indent 2, non-ASCII kept readable."""
    path.write_text(
        json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=2) + "\n", encoding="utf-8"
    )
