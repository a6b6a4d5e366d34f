"""The layer catalog as GIS staff keep it: metadata, freshness, version differences, exports.

- **Metadata** per layer (title and description in Chinese and English, department, contact,
  licence, refresh interval), kept in the workspace database, audited, and written into every
  export (a GeoPackage's layer description, a ``.meta.json`` beside GeoJSON and CSV).
- **Freshness**: a layer is ``fresh`` while its current version is younger than its refresh
  interval (the layer's own, else ``[alerts.refresh_hours]`` of its kind), ``due`` up to twice
  that, ``overdue`` beyond; ``unknown`` without an interval.
- **Differences** between two versions: rows added, removed and changed (by the kind's key),
  bounds and the totals of numeric columns.
- **Exports** of any layer version, and of the fused facts at any level and the open zones (the
  OGC API's collections, with the same privacy for the role), as GeoPackage, GeoJSON or CSV.
  CSV cells of text that begin with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return are
  prefixed with ``'``, so that a spreadsheet shows them instead of running them as formulas
  (OWASP's CSV injection advice).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from twin import db
from twin.errors import LayerNotFoundError, UserInputError
from twin.store import audit, utc_now

if TYPE_CHECKING:
    from twin.store import Workspace

__all__ = ["EXPORT_FORMATS", "FRESHNESS", "LayerMeta", "diff_versions", "export_collection",
           "export_layer", "freshness", "get_meta", "neutralise_csv", "set_meta", "write_table"]

#: Freshness states with their labels (zh, en).
FRESHNESS: dict[str, tuple[str, str]] = {
    "fresh": ("最新", "fresh"), "due": ("待更新", "due"), "overdue": ("已逾期", "overdue"),
    "unknown": ("未设定", "no interval")}
EXPORT_FORMATS = ("gpkg", "geojson", "csv")
#: The key field of each kind, for differences between versions.
_KEYS = {"boundaries": "code", "buildings": "id", "facilities": "id", "cases": "case_id",
         "roads": "id", "stocks": "facility_id"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class LayerMeta:
    """What GIS staff record about a layer (every field optional)."""

    title_zh: str = ""
    title_en: str = ""
    department: str = ""
    contact: str = ""
    description_zh: str = ""
    description_en: str = ""
    licence: str = ""
    #: Expected refresh interval in hours; None: the kind's default from twin.toml.
    refresh_hours: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_META_FIELDS = tuple(f.name for f in fields(LayerMeta))
# Built once from the dataclass's own field names (no user text reaches the SQL).
_UPSERT = (
    f"INSERT INTO layer_meta (layer, {', '.join(_META_FIELDS)}, updated_at, updated_by) "  # noqa: S608
    f"VALUES (?, {', '.join('?' for _ in _META_FIELDS)}, ?, ?) ON CONFLICT(layer) DO UPDATE SET "
    + ", ".join(f"{k} = excluded.{k}" for k in (*_META_FIELDS, "updated_at", "updated_by")))


def get_meta(workspace: Workspace, name: str) -> LayerMeta:
    """The metadata of layer ``name`` (empty when none was recorded)."""
    workspace.version(name)  # LayerNotFoundError for an unknown layer
    with workspace.connect() as conn:
        row = conn.execute("SELECT * FROM layer_meta WHERE layer = ?", (name,)).fetchone()
    if row is None:
        return LayerMeta()
    return LayerMeta(**{k: row[k] for k in _META_FIELDS})


def set_meta(workspace: Workspace, name: str, *, actor: str, **changes: Any) -> LayerMeta:
    """Change some metadata fields of layer ``name``; the change is audited.

    Raises
    ------
    LayerNotFoundError
        For an unknown layer.
    UserInputError
        For an unknown field, text over 2,000 characters or a refresh interval that is not a
        positive number of hours.
    """
    unknown = sorted(set(changes) - set(_META_FIELDS))
    if unknown:
        raise UserInputError(f"unknown metadata field {', '.join(unknown)}; the fields are "
                             f"{', '.join(_META_FIELDS)}")
    for key, value in changes.items():
        if key == "refresh_hours":
            if value is not None and (not isinstance(value, int | float) or isinstance(
                    value, bool) or not math.isfinite(value) or value <= 0):
                raise UserInputError(f"refresh_hours must be a positive number of hours, "
                                     f"not {value!r}")
        elif not isinstance(value, str) or len(value) > 2000:
            raise UserInputError(f"{key} must be text of at most 2,000 characters")
    current = get_meta(workspace, name)
    merged = LayerMeta(**{**current.to_dict(), **changes})
    with workspace.connect() as conn, db.write_transaction(
            conn, timeout=workspace.config.busy_timeout_s):
        conn.execute(_UPSERT, (name, *(getattr(merged, k) for k in _META_FIELDS), utc_now(),
                               actor))
        audit(conn, actor=actor, action="catalog.meta", target=name, detail=changes)
    return merged


def freshness(workspace: Workspace, name: str, *, now: dt.datetime | None = None,
              meta: LayerMeta | None = None) -> dict[str, Any]:
    """The freshness of layer ``name``'s current version.

    Returns ``{"state", "label_zh", "label_en", "age_hours", "refresh_hours"}``; ``state`` is
    one of :data:`FRESHNESS`.
    """
    entry = workspace.version(name)
    meta = meta if meta is not None else get_meta(workspace, name)
    interval = meta.refresh_hours
    if interval is None:
        interval = workspace.config["alerts"]["refresh_hours"].get(entry.kind)
    now = now or dt.datetime.now(dt.UTC)
    created = dt.datetime.fromisoformat(entry.created_at.replace("Z", "+00:00"))
    age = max(0.0, (now - created).total_seconds() / 3600)
    if interval is None:
        state = "unknown"
    elif age <= interval:
        state = "fresh"
    elif age <= 2 * interval:
        state = "due"
    else:
        state = "overdue"
    return {"state": state, "label_zh": FRESHNESS[state][0], "label_en": FRESHNESS[state][1],
            "age_hours": round(age, 1),
            "refresh_hours": None if interval is None else float(interval)}


def diff_versions(workspace: Workspace, name: str, old: int, new: int | None = None
                  ) -> dict[str, Any]:
    """What changed between two versions of a layer (``new``: the current one).

    Rows are matched by the kind's key (``id``, ``code``, ``case_id`` …; by position when the
    layer has none). A row is *changed* when any attribute or its geometry differs.

    Returns
    -------
    dict
        ``old``/``new`` versions, ``rows`` (counts of each), ``added``/``removed``/``changed``
        (counts, and up to 20 sample keys each), ``bounds`` of each and ``totals`` of the
        numeric columns of each.
    """
    a_entry, b_entry = workspace.version(name, old), workspace.version(name, new)
    a, b = workspace.read(name, a_entry.version), workspace.read(name, b_entry.version)
    key = _KEYS.get(a_entry.kind)
    if key not in a or key not in b:
        key = None
    a_idx = a.set_index(key, drop=False) if key else a
    b_idx = b.set_index(key, drop=False) if key else b
    a_keys, b_keys = pd.Index(a_idx.index), pd.Index(b_idx.index)
    added = b_keys.difference(a_keys)
    removed = a_keys.difference(b_keys)
    common = a_keys.intersection(b_keys)
    changed = _changed(a_idx.loc[~a_idx.index.duplicated()], b_idx.loc[~b_idx.index.duplicated()],
                       common.unique())

    def sample(values: Any) -> list[str]:
        return [str(v) for v in list(values)[:20]]

    def totals(frame: pd.DataFrame) -> dict[str, float]:
        numeric = frame.select_dtypes("number")
        return {c: float(numeric[c].sum()) for c in numeric.columns}

    return {"layer": name, "old": a_entry.version, "new": b_entry.version, "key": key,
            "rows": {"old": len(a), "new": len(b)},
            "added": {"count": len(added), "sample": sample(added)},
            "removed": {"count": len(removed), "sample": sample(removed)},
            "changed": {"count": len(changed), "sample": sample(changed)},
            "bounds": {"old": a_entry.bounds, "new": b_entry.bounds},
            "totals": {"old": totals(a), "new": totals(b)}}


def _changed(a: pd.DataFrame, b: pd.DataFrame, keys: pd.Index) -> list[Any]:
    if not len(keys):
        return []
    a, b = a.loc[keys], b.loc[keys]
    differs = np.zeros(len(keys), dtype=bool)
    for column in a.columns.intersection(b.columns):
        left, right = a[column], b[column]
        if hasattr(left, "geom_equals_exact"):
            same = left.values.geom_equals_exact(right.values, tolerance=1e-9)
            same = np.asarray(same, dtype=bool) | (left.isna().to_numpy()
                                                   & right.isna().to_numpy())
        else:
            same = (left.astype(object).to_numpy() == right.astype(object).to_numpy()) | (
                left.isna().to_numpy() & right.isna().to_numpy())
        differs |= ~np.asarray(same, dtype=bool)
    if len(a.columns.symmetric_difference(b.columns)):
        differs[:] = True  # a column added or dropped changes every row
    return list(keys[differs])


def neutralise_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot run as spreadsheet formulas (see the module docstring)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or isinstance(out[column].dtype, pd.StringDtype):
            values = out[column].astype(object).to_numpy()
            risky = np.array([isinstance(v, str) and v.startswith(_FORMULA_START)
                              for v in values], dtype=bool)
            if risky.any():
                values = values.copy()
                values[risky] = ["'" + v for v in values[risky]]
                out[column] = pd.Series(values, index=out.index, dtype=object)
    return out


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str], fmt: str, *,
                layer: str, meta: dict[str, Any] | None = None) -> Path:
    """Write ``frame`` as ``fmt`` (gpkg, geojson or csv) to ``path``, whole or not at all.

    CSV gets the geometry as WKT and the formula neutralisation; GeoJSON and CSV get the
    metadata in ``PATH.meta.json``, a GeoPackage in its layer's description.
    """
    import geopandas as gpd

    if fmt not in EXPORT_FORMATS:
        raise UserInputError(f"unknown export format {fmt!r}; use one of "
                             f"{', '.join(EXPORT_FORMATS)}")
    target = Path(path)
    tmp = target.with_name(f".{target.stem}.part-{os.getpid()}{target.suffix}")
    is_geo = isinstance(frame, gpd.GeoDataFrame)
    meta_text = json.dumps(meta or {}, ensure_ascii=False, indent=2)
    try:
        if fmt == "csv":
            table = pd.DataFrame(frame.drop(columns=frame.geometry.name)) if is_geo else frame
            if is_geo:
                table = table.assign(wkt=frame.geometry.to_wkt())
            neutralise_csv(table).to_csv(tmp, index=False, encoding="utf-8-sig")
        elif not is_geo:
            raise UserInputError(f"layer {layer!r} is a plain table; export it as csv")
        elif fmt == "geojson":
            frame.to_file(tmp, driver="GeoJSON", engine="pyogrio")
        else:
            frame.to_file(tmp, driver="GPKG", engine="pyogrio", layer=layer,
                          layer_options={"DESCRIPTION": meta_text})
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    if fmt != "gpkg" and meta is not None:
        target.with_name(target.name + ".meta.json").write_text(meta_text, encoding="utf-8")
    return target


def export_layer(workspace: Workspace, name: str, path: str | os.PathLike[str], *,
                 fmt: str | None = None, version: int | None = None,
                 actor: str = "") -> Path:
    """Write a version of layer ``name`` (the current one by default) with its metadata.

    ``fmt`` defaults to the file's extension (``.gpkg``, ``.geojson``, ``.csv``).

    Raises
    ------
    LayerNotFoundError, VersionNotFoundError
        For an unknown layer or version.
    UserInputError
        For an unknown format, or a plain table asked for as GeoJSON or GeoPackage.
    """
    target = Path(path)
    fmt = fmt or target.suffix.lower().lstrip(".")
    fmt = {"json": "geojson"}.get(fmt, fmt)
    entry = workspace.version(name, version)
    if entry.format == "geotiff":
        raise LayerNotFoundError(f"layer {name!r} is a raster; copy its file from "
                                 "Workspace.raster_path instead")
    frame = workspace.read(name, entry.version)
    meta = {"layer": name, "kind": entry.kind, "version": entry.version,
            "created_at": entry.created_at, "author": entry.author,
            "source_name": entry.source_name, "source_sha256": entry.source_sha256,
            "source_crs": entry.source_crs, "rows": entry.row_count,
            **get_meta(workspace, name).to_dict()}
    out = write_table(frame, target, fmt, layer=name, meta=meta)
    if actor:
        with workspace.connect() as conn, db.write_transaction(
                conn, timeout=workspace.config.busy_timeout_s):
            audit(conn, actor=actor, action="catalog.export", target=f"{name}@{entry.version}",
                  detail={"format": fmt})
    return out


def export_collection(workspace: Workspace, collection_id: str, path: str | os.PathLike[str], *,
                      role: str, fmt: str | None = None, datetime: str | None = None,
                      actor: str = "") -> Path:
    """Write one of the OGC API's collections (``facts-r9``, ``facts-community``, ``zones``…)
    as ``role`` may read it, with the same privacy as the API.

    ``datetime`` (a day or ``start/end``) sets the window of the facts' case columns.

    Raises
    ------
    FeaturesError
        For an unknown collection or a bad ``datetime``.
    AuthError
        When ``role`` may not read the collection.
    UserInputError
        For an unknown format.
    """
    from twin.features import collection_frame

    target = Path(path)
    fmt = fmt or target.suffix.lower().lstrip(".")
    fmt = {"json": "geojson"}.get(fmt, fmt)
    frame = collection_frame(workspace, collection_id, role=role, datetime=datetime)
    fact_set = workspace.current_facts()
    meta = {"collection": collection_id, "datetime": datetime, "rows": len(frame),
            "facts": fact_set.id if fact_set is not None else None, "exported_at": utc_now()}
    out = write_table(frame, target, fmt, layer=collection_id.replace("-", "_"), meta=meta)
    if actor:
        with workspace.connect() as conn, db.write_transaction(
                conn, timeout=workspace.config.busy_timeout_s):
            audit(conn, actor=actor, action="catalog.export", target=collection_id,
                  detail={"format": fmt, "datetime": datetime})
    return out
