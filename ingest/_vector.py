"""Vector files read through GDAL (pyogrio) or pyarrow: GeoJSON, Shapefile, GeoPackage,
GeoParquet.

Only paths inside the private staging directory reach these functions (see ``_staging``).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
from pyproj import CRS

from ingest._progress import Progress
from ingest.errors import LimitExceededError, ParseError
from ingest.report import Report

__all__ = ["RawLayer", "read_vector"]

# Encodings tried, in order, for a shapefile without a .cpg and without --encoding.
_SHAPEFILE_ENCODINGS = ("UTF-8", "GB18030")


@dataclass
class RawLayer:
    """A layer as read from its source: raw column names, source CRS, 1-based record index."""

    frame: pd.DataFrame
    crs: CRS | None
    info: dict[str, Any] = field(default_factory=dict)


def read_vector(path: Path, fmt: str, *, source_name: str, layer: str | None,
                encoding: str | None, limits: dict[str, float], report: Report,
                progress: Progress | None = None) -> RawLayer:
    """Read a staged vector file into a :class:`RawLayer`.

    Parameters
    ----------
    path
        The staged file (inside the private directory).
    fmt
        ``"geojson"``, ``"shapefile"``, ``"gpkg"`` or ``"geoparquet"``.
    source_name
        The user's file name, for messages.
    layer
        The layer to read from a multi-layer file (GeoPackage).
    encoding
        Text encoding of the attributes, when the file does not declare it.
    limits
        The ``[ingest]`` limits; ``max_features`` is enforced while reading.
    report
        Receives facts and problems.
    progress
        Told how many records have been read, batch by batch.

    Raises
    ------
    ParseError
        When the file cannot be read, or a GeoPackage holds several layers and none was named.
    LimitExceededError
        When the layer has more features than ``ingest.max_features``.
    """
    max_features = int(limits["max_features"])
    if fmt == "geoparquet":
        frame = _read_geoparquet(path, source_name, max_features=max_features, report=report,
                                 progress=progress or Progress(None))
        info: dict[str, Any] = {"driver": "GeoParquet (pyarrow)"}
    else:
        layer_name = _choose_layer(path, fmt, source_name, layer) if fmt == "gpkg" else None
        frame, info = _read_ogr(path, fmt, source_name=source_name, layer=layer_name,
                                encoding=encoding, max_rows=max_features + 1, report=report,
                                progress=progress or Progress(None))
    if len(frame) > max_features:
        raise LimitExceededError(
            f"{source_name} has more than {max_features:,} features, the limit "
            "ingest.max_features in twin.toml; split the file or raise the limit")
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    crs = frame.crs if isinstance(frame, gpd.GeoDataFrame) else None
    info["rows_read"] = len(frame)
    report.info.update(info)
    return RawLayer(frame=frame, crs=CRS.from_user_input(crs) if crs is not None else None,
                    info=info)


def _choose_layer(path: Path, fmt: str, source_name: str, layer: str | None) -> str:
    try:
        layers = [str(name) for name, _geom in pyogrio.list_layers(path)]
    except pyogrio.errors.DataSourceError as exc:
        detail = _gdal_message(exc, path, source_name)
        raise ParseError(f"{source_name} is not a readable {fmt} file ({detail})") from None
    if not layers:
        raise ParseError(f"{source_name} holds no layers")
    if layer is None:
        if len(layers) == 1:
            return layers[0]
        raise ParseError(f"{source_name} holds {len(layers)} layers ({', '.join(layers)}); "
                         "choose one with --layer NAME")
    if layer not in layers:
        raise ParseError(f"{source_name} has no layer {layer!r}; its layers are "
                         f"{', '.join(layers)}")
    return layer


def _read_ogr(path: Path, fmt: str, *, source_name: str, layer: str | None,
              encoding: str | None, max_rows: int, report: Report,
              progress: Progress) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    info: dict[str, Any] = {"driver": _DRIVERS[fmt]}
    if layer is not None:
        info["layer"] = layer
    candidates: tuple[str | None, ...] = (encoding,)
    if encoding is None and fmt == "shapefile" and not path.with_suffix(".cpg").exists():
        candidates = _SHAPEFILE_ENCODINGS
    last_error: Exception | None = None
    for candidate in candidates:
        try:
            frame = _read_arrow(path, layer=layer, encoding=candidate, max_rows=max_rows,
                                report=report, progress=progress,
                                count_first=fmt in ("gpkg", "shapefile"))
        except UnicodeDecodeError as exc:
            last_error = exc
            continue
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError,
                ValueError) as exc:  # DataLayerError: also its Field/Feature/Geometry/CRS kin
            detail = _gdal_message(exc, path, source_name)
            raise ParseError(f"{source_name} is not a readable {_NAMES[fmt]} ({detail}); check "
                             "that the file is complete and really of that format") from None
        if candidate is not None:
            info["encoding"] = candidate
            if len(candidates) > 1:
                info["encoding_guessed"] = True
        elif fmt == "shapefile":
            info["encoding"] = "from .cpg"
        return frame, info
    tried = ", ".join(c for c in candidates if c)
    raise ParseError(f"the text of {source_name} is in none of the encodings tried ({tried}): "
                     f"{last_error}; give the right one with --encoding, e.g. --encoding GBK")


def _read_arrow(path: Path, *, layer: str | None, encoding: str | None, max_rows: int,
                report: Report, progress: Progress,
                count_first: bool = False) -> gpd.GeoDataFrame:
    """Stream GDAL's Arrow batches, decoding geometries per record, batch by batch.

    ``pyogrio.read_dataframe`` builds every geometry at once, so one ring GEOS refuses (not
    closed, or of two points) fails the whole file; :func:`ingest.geometry.decode_wkb`
    repairs or drops such records one by one and reports them. Batches keep only one batch's
    WKB in memory beside the decoded geometries, and let the progress bar move.
    ``count_first``: the format knows its feature count cheaply (GeoPackage, Shapefile).
    """
    import pyarrow as pa

    from ingest.geometry import decode_wkb

    total = 0
    if count_first:
        with contextlib.suppress(Exception):  # a count is a courtesy; reading says what fails
            total = max(0, int(pyogrio.read_info(path, layer=layer,
                                                 encoding=encoding)["features"]))
    tables, geometries, unreadable = [], [], []
    done = 0
    with pyogrio.open_arrow(path, layer=layer, encoding=encoding, batch_size=_BATCH_ROWS,
                            use_pyarrow=True) as (meta, reader):
        name = meta.get("geometry_name") or "wkb_geometry"
        crs = meta.get("crs")
        for batch in reader:
            index = pd.RangeIndex(done + 1, done + batch.num_rows + 1)
            if name in batch.schema.names:
                column = batch.schema.get_field_index(name)
                wkb = batch.column(column).to_numpy(zero_copy_only=False)
                batch = batch.drop_columns([name])
                geoms, bad = decode_wkb(wkb, index, report)
                geometries.append(geoms)
                unreadable.append(bad)
            tables.append(batch)
            done += batch.num_rows
            progress.rows(done, total)
            if done >= max_rows:  # over ingest.max_features: the caller says so
                break
        schema = reader.schema
    if not tables:
        empty = schema.remove(schema.get_field_index(name)) if name in schema.names else schema
        tables = [pa.RecordBatch.from_pylist([], schema=empty)]
    frame = pa.Table.from_batches(tables).to_pandas()
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    if name not in schema.names:
        return gpd.GeoDataFrame(frame, crs=crs)
    geometry = np.concatenate(geometries) if geometries else np.empty(0, dtype=object)
    frame = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometry, index=frame.index),
                             crs=crs)
    drop = np.concatenate(unreadable) if unreadable else np.zeros(0, dtype=bool)
    return frame[~drop] if drop.any() else frame


#: Records per Arrow batch: large enough that per-batch overhead is nothing, small enough that
#: one batch's WKB is a few tens of MB.
_BATCH_ROWS = 131_072


def _read_geoparquet(path: Path, source_name: str, *, max_features: int, report: Report,
                     progress: Progress) -> gpd.GeoDataFrame:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        metadata = parquet.schema_arrow.metadata or {}
    except (OSError, ValueError) as exc:
        raise ParseError(f"{source_name} is not a readable Parquet file ({exc})") from None
    if b"geo" not in metadata:
        raise ParseError(f"{source_name} is Parquet without GeoParquet metadata (no 'geo' key), "
                         "so its geometry column and CRS are unknown; export it as GeoParquet "
                         "or as CSV with coordinate columns")
    total = parquet.metadata.num_rows
    if total > max_features:
        raise LimitExceededError(
            f"{source_name} has {total:,} features, more than the limit "
            f"ingest.max_features ({max_features:,}) in twin.toml; split the file or raise "
            "the limit")
    progress.rows(0, total)
    try:
        geo = json.loads(metadata[b"geo"])
        primary = geo["primary_column"]
        column = geo["columns"][primary]
    except (ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"{source_name} has malformed GeoParquet metadata ({exc})") from None
    try:
        if str(column.get("encoding", "")).upper() != "WKB":
            # GeoArrow-encoded geometries are built by geopandas (no WKB to decode).
            frame = gpd.read_parquet(path)
        else:
            frame = _wkb_parquet(parquet, primary, column, report)
    except (OSError, ValueError, TypeError) as exc:
        raise ParseError(f"{source_name} is not a readable GeoParquet file ({exc})") from None
    progress.rows(total, total)
    return frame


def _wkb_parquet(parquet: Any, primary: str, column: dict[str, Any],
                 report: Report) -> gpd.GeoDataFrame:
    """A WKB GeoParquet file with its geometries decoded per record, as GDAL's are."""
    from ingest.geometry import decode_wkb

    table = parquet.read()
    wkb = table.column(primary).to_numpy(zero_copy_only=False)
    frame = table.drop_columns([primary]).to_pandas()
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    geometry, unreadable = decode_wkb(wkb, frame.index, report)
    # GeoParquet: a missing "crs" means OGC:CRS84; an explicit null, an unknown CRS.
    crs = column.get("crs", "OGC:CRS84")
    frame = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometry, index=frame.index,
                                                           crs=crs, name="geometry"))
    return frame[~unreadable] if unreadable.any() else frame


def _gdal_message(exc: Exception, path: Path, source_name: str) -> str:
    # GDAL messages name our private staging path; the user knows the file by its own name.
    text = str(exc).strip().replace(str(path), source_name)
    # GDAL's advice to prefix a driver ("CSV:path") is refused by ingest for safety.
    return _DRIVER_HINT.sub("", text).rstrip(" ;.") or text


_DRIVER_HINT = re.compile(r"[;.]?\s*It might help to specify the correct driver explicitly.*$",
                          re.DOTALL)


_DRIVERS = {"geojson": "GeoJSON", "shapefile": "ESRI Shapefile", "gpkg": "GPKG"}
_NAMES = {"geojson": "GeoJSON file", "shapefile": "Shapefile", "gpkg": "GeoPackage"}
