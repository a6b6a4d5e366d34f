"""The ingest pipeline for one file, as it runs inside the sandboxed child process.

``run(request)`` stages the file, reads it, maps and cleans it, and writes the clean result
(``result.parquet`` or ``result.tif``) and the report into the work directory that the parent
created; the parent publishes the result when the report has no errors. See CONVENTIONS.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from ingest._progress import Progress
from ingest._staging import Staging
from ingest.report import Report
from twin.schema import Kind, get_kind
from twin.store import write_layer_parquet

__all__ = ["run"]

#: Mapping-file keys that name coordinate columns rather than schema fields.
COORDINATE_ROLES = ("lon", "lat", "wkt")


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Run the pipeline for one file; see the module docstring.

    ``request`` keys: input, source_name, kind, name, crs, coords, layer, mapping (a
    ``MappingSpec`` as a dict, or None), encoding, limits, bbox, base_resolution, workdir.
    Returns ``{"report": …, "result": path or None, "result_type": "table" | "raster"}``.
    """
    started = time.perf_counter()
    kind = get_kind(request["kind"])
    report = Report(source=request["source_name"], kind=kind.name, layer=request["name"])
    workdir = Path(request["workdir"])
    limits = request["limits"]
    progress = Progress(workdir)
    request = {**request, "progress": progress}
    progress.stage("staging")
    with Staging(limits, root=workdir) as staging:
        staged = staging.stage(Path(request["input"]), layer=request.get("layer"))
        report.info.update({"format": staged.format, "sha256": staged.sha256,
                            "bytes": staged.size})
        if staged.format == "geotiff":
            result, result_type = _raster(staged.path, kind, request, report, workdir), "raster"
        else:
            result, result_type = _table(staged.path, staged.format, kind, request, report,
                                         workdir), "table"
    report.info["seconds"] = round(time.perf_counter() - started, 3)
    return {"report": report.to_dict(), "result": str(result) if result else None,
            "result_type": result_type, "source_sha256": staged.sha256}


def _mapping(request: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    from ingest.mapping import MappingSpec

    if not request.get("mapping"):
        return None, {}
    data = dict(request["mapping"])
    fields = dict(data.get("fields", {}))
    coordinates = {role: fields.pop(role) for role in COORDINATE_ROLES if role in fields}
    data["fields"] = fields
    return MappingSpec(**data), coordinates


def _read(path: Path, fmt: str, kind: Kind, request: dict[str, Any], coordinates: dict[str, str],
          report: Report):
    common = {"source_name": request["source_name"], "limits": request["limits"],
              "report": report}
    if fmt in ("csv", "tsv"):
        from ingest._csv import read_csv

        return read_csv(path, fmt, encoding=request.get("encoding"), kind=kind,
                        coordinate_columns=coordinates, **common)
    if fmt == "osm-pbf":
        from ingest._osm import read_osm

        return read_osm(path, kind=kind, **common)
    from ingest._vector import read_vector

    return read_vector(path, fmt, layer=request.get("layer"), encoding=request.get("encoding"),
                       progress=request["progress"], **common)


def _table(path: Path, fmt: str, kind: Kind, request: dict[str, Any], report: Report,
           workdir: Path) -> Path | None:
    from ingest.crs import check_location, resolve_crs, to_wgs84
    from ingest.geometry import clean_geometries
    from ingest.mapping import map_fields
    from ingest.validate import validate_records

    progress = request["progress"]
    spec, coordinates = _mapping(request)
    progress.stage("reading")
    raw = _read(path, fmt, kind, request, coordinates, report)
    frame = raw.frame
    coords = request.get("coords") or "wgs84"
    is_geo = isinstance(frame, gpd.GeoDataFrame)
    if is_geo and kind.geometry == frozenset({"none"}):
        report.warning("geometry_ignored", f"kind {kind.name!r} is a plain table; the file's "
                       "geometries were ignored", count=len(frame))
        frame, is_geo = pd.DataFrame(frame.drop(columns=frame.geometry.name)), False
    if not is_geo and coords != "wgs84":
        report.error("offset_without_coordinates", f"--coords {coords} was given, but the "
                     "file has no coordinates to convert; drop --coords")
    source = None
    if is_geo:
        declared = request.get("crs") or raw.info.get("implied_crs")
        source = resolve_crs(raw.crs, declared, report)
        if source is not None:
            if frame.crs is None:
                frame = frame.set_crs(source)
            progress.stage("geometries", total=len(frame))
            frame = clean_geometries(frame, kind, report, limits=request["limits"],
                                     base_resolution=request["base_resolution"],
                                     id_column=raw.info.get("id_column"))
    progress.stage("mapping", total=len(frame))
    frame = map_fields(frame, kind, spec, report)
    if is_geo and source is not None and report.ok:
        progress.stage("reprojecting", total=len(frame))
        raw_bounds = tuple(float(v) for v in frame.total_bounds) if len(frame) else None
        frame = to_wgs84(frame, source, coords, report)
        check_location(frame, tuple(request["bbox"]) if request.get("bbox") else None, report,
                       source=source, min_inside_share=request["limits"]["min_inside_share"],
                       raw_bounds=raw_bounds)
        frame = _drop_untransformable(frame, report)
    progress.stage("validating", total=len(frame))
    frame = validate_records(frame, kind, report)
    report.info["rows_kept"] = len(frame)
    if not report.ok:
        return None
    if is_geo and len(frame):
        from ingest.offset_hint import sample_points

        # A sample for the parent's check against the workspace's layers (offset_hint).
        report.info["offset_sample"] = sample_points(
            np.asarray(frame.geometry.values, dtype=object)).round(7).tolist()
    progress.stage("writing", total=len(frame))
    out = workdir / "result.parquet"
    # In the store's own encoding, so that the parent publishes the file as it is.
    write_layer_parquet(frame.reset_index(drop=True), out)
    return out


def _drop_untransformable(frame: gpd.GeoDataFrame, report: Report) -> gpd.GeoDataFrame:
    """Drop features PROJ could not transform (their coordinates came out infinite)."""
    import shapely

    bounds = shapely.bounds(frame.geometry.array)
    bad = ~np.isfinite(bounds).all(axis=1)
    if bad.any():
        report.warning("row_dropped", "rows whose coordinates could not be transformed to "
                       "WGS84 were dropped", rows=frame.index[bad], field="geometry")
        frame = frame[~bad]
    return frame


def _raster(path: Path, kind: Kind, request: dict[str, Any], report: Report,
            workdir: Path) -> Path | None:
    from ingest._raster import band_names, raster_bounds_wgs84, read_header, write_clean_raster
    from ingest.crs import check_raster_location, resolve_crs

    source_name = request["source_name"]
    if not kind.raster:
        report.error("raster_not_allowed", f"{source_name} is a raster, but kind "
                     f"{kind.name!r} takes vector data; rasters are for population")
        return None
    header = read_header(path, source_name=source_name, limits=request["limits"], report=report)
    source = resolve_crs(header.crs, request.get("crs"), report)
    if (request.get("coords") or "wgs84") != "wgs84":
        report.error("offset_on_raster", "GCJ-02/BD-09 offsets cannot be undone on a raster "
                     "grid; export the raster in WGS84 or a projected CRS and drop --coords")
    names = band_names(header, kind, report)
    if source is not None:
        bounds = raster_bounds_wgs84(header, source)
        check_raster_location(bounds, tuple(request["bbox"]) if request.get("bbox") else None,
                              report)
    if not report.ok:
        return None
    out = workdir / "result.tif"
    write_clean_raster(path, out, header, names, crs=source, report=report)
    report.info["rows_kept"] = header.width * header.height
    return out if report.ok else None
