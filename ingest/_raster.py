"""GeoTIFF rasters (population counts and other per-pixel quantities, one or more bands).

The raster keeps its own grid and CRS: resampling would change the totals it holds. Ingest
checks the header against the limits before reading any pixel, reads block by block, names the
bands after the kind's fields, repairs what can be repaired (negative or non-finite counts become
nodata, with a warning) and writes a clean, compressed copy that the parent publishes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.warp import transform_bounds

from ingest.errors import LimitExceededError, ParseError
from ingest.report import Report
from twin.schema import Kind

__all__ = ["RasterHeader", "band_names", "raster_bounds_wgs84", "read_header",
           "write_clean_raster"]

_NODATA = -9999.0


class RasterHeader:
    """What the GeoTIFF's header says, read before any pixel."""

    def __init__(self, src: rasterio.DatasetReader) -> None:
        self.width, self.height, self.count = src.width, src.height, src.count
        self.crs = CRS.from_user_input(src.crs) if src.crs else None
        self.transform = src.transform
        self.nodata = src.nodata
        self.dtypes = src.dtypes
        self.descriptions = list(src.descriptions)
        self.bounds = tuple(src.bounds)


def read_header(path: Path, *, source_name: str, limits: dict[str, float],
                report: Report) -> RasterHeader:
    """Open the GeoTIFF and check its size, georeferencing and pixel type.

    Raises
    ------
    ParseError
        When the file is not a readable GeoTIFF.
    LimitExceededError
        When width × height × bands exceeds ``ingest.max_raster_pixels``.
    """
    try:
        # Only the GeoTIFF driver may open an upload (no VRT or other indirection).
        with rasterio.open(path, driver="GTiff") as src:
            if src.driver != "GTiff":
                raise ParseError(f"{source_name} is not a GeoTIFF (GDAL sees {src.driver})")
            header = RasterHeader(src)
    except rasterio.errors.RasterioIOError as exc:
        message = str(exc).replace(str(path), source_name)
        raise ParseError(f"{source_name} is not a readable GeoTIFF ({message})") from None
    pixels = header.width * header.height * header.count
    if pixels > limits["max_raster_pixels"]:
        raise LimitExceededError(
            f"{source_name} declares {header.width:,} × {header.height:,} pixels × "
            f"{header.count} band(s) = {pixels:,}, over the limit ingest.max_raster_pixels "
            f"({int(limits['max_raster_pixels']):,}) in twin.toml; crop the raster or raise "
            "the limit")
    t = header.transform
    if t.is_identity:
        report.error("not_georeferenced", "the raster has no geotransform (pixel coordinates "
                     "only); export it as a georeferenced GeoTIFF")
    elif t.b != 0 or t.d != 0:
        report.error("rotated_raster", "the raster grid is rotated or sheared; warp it to a "
                     "north-up grid first (e.g. gdalwarp)")
    kinds = {np.dtype(d).kind for d in header.dtypes}
    if not kinds <= {"f", "i", "u"}:
        report.error("raster_type", f"pixel types {', '.join(header.dtypes)} are not numbers")
    report.info.update({"driver": "GTiff", "size": f"{header.width}×{header.height}",
                        "bands": header.count,
                        "pixel_size": f"{abs(t.a):g}×{abs(t.e):g}"})
    return header


def band_names(header: RasterHeader, kind: Kind, report: Report) -> list[str]:
    """Name each band after a field of ``kind``: by its description, else in schema order."""
    from ingest.mapping import guess_column

    numeric = [f for f in kind.fields if f.dtype in ("float", "int")]
    names: list[str] = []
    for index, description in enumerate(header.descriptions):
        match = None
        if description:
            match = next((f.name for f in numeric
                          if guess_column([description], f) == description), None)
        if match is None and index == 0 and kind.required:
            match = kind.required[0].name  # a single-band population raster counts persons
        if match is None or match in names:
            match = f"band_{index + 1}"
            report.warning("unnamed_band", "bands whose description names no field are kept "
                           "under their number; describe them (e.g. 'age_65_plus') to use "
                           "them", count=1, field=match)
        names.append(match)
    report.info["band_fields"] = names
    return names


def write_clean_raster(path: Path, out: Path, header: RasterHeader, names: list[str], *,
                       crs: CRS, report: Report) -> dict[str, Any]:
    """Copy the raster block by block to ``out``: float32/float64, deflate, nodata set.

    Negative and non-finite values of count bands become nodata with a warning. Returns the
    total of each band over valid pixels.
    """
    totals = dict.fromkeys(names, 0.0)
    negatives = dict.fromkeys(names, 0)
    nonfinite = dict.fromkeys(names, 0)
    dtype = "float64" if any(np.dtype(d) == np.float64 for d in header.dtypes) else "float32"
    profile = {"driver": "GTiff", "width": header.width, "height": header.height,
               "count": header.count, "dtype": dtype, "crs": crs.to_wkt(),
               "transform": header.transform, "nodata": _NODATA, "compress": "deflate",
               "tiled": True, "blockxsize": 256, "blockysize": 256}
    with rasterio.open(path, driver="GTiff") as src, rasterio.open(out, "w", **profile) as dst:
        for band, name in enumerate(names, start=1):
            dst.set_band_description(band, name)
            for _, window in src.block_windows(band):
                data = src.read(band, window=window, masked=True).astype(dtype)
                values = data.filled(np.nan)
                bad_sign = np.isfinite(values) & (values < 0)
                bad_value = ~np.isfinite(values) & ~np.ma.getmaskarray(data)
                negatives[name] += int(bad_sign.sum())
                nonfinite[name] += int(bad_value.sum())
                values[bad_sign | ~np.isfinite(values)] = np.nan
                totals[name] += float(np.nansum(values, dtype=np.float64))
                dst.write(np.where(np.isnan(values), _NODATA, values).astype(dtype), band,
                          window=window)
    for name in names:
        if negatives[name]:
            report.warning("out_of_range", "negative pixel values cannot be counts; they were "
                           "set to nodata", count=negatives[name], field=name)
        if nonfinite[name]:
            report.warning("non_finite_pixels", "NaN or infinite pixels that were not marked "
                           "as nodata were set to nodata", count=nonfinite[name], field=name)
    report.info["totals"] = {k: round(v, 6) for k, v in totals.items()}
    return totals


def raster_bounds_wgs84(header: RasterHeader,
                        crs: CRS) -> tuple[float, float, float, float] | None:
    """The raster's footprint in EPSG:4326, or ``None`` when it cannot be computed."""
    try:
        bounds = transform_bounds(crs, "EPSG:4326", *header.bounds)
    except (rasterio.errors.CRSError, ValueError):
        return None
    return bounds if all(math.isfinite(b) for b in bounds) else None
