"""CSV and TSV tables: encoding detection, coordinate columns, WKT.

Encodings: UTF-8, UTF-8 with BOM, UTF-16 with BOM and GBK/GB18030 are detected (or given with
``--encoding``); a file mixing UTF-8 and GBK lines is refused with the line numbers. Points come
from two coordinate columns recognised by English or Chinese names (lon/lng/longitude/x/经度,
lat/latitude/y/纬度), from one "lng,lat" column (as web-map exports write ``location``), or from
a WKT column. Columns named as degrees (经度/纬度, lon/lat) imply geographic coordinates
(EPSG:4326); x/y columns say nothing about their CRS, which must then be given.
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from ingest._vector import RawLayer
from ingest.errors import LimitExceededError, ParseError
from ingest.report import Report
from twin.schema import Kind

__all__ = ["COORDINATE_NAMES", "decode_text", "read_csv"]

#: Normalised column names that hold coordinates, by role.
COORDINATE_NAMES: dict[str, tuple[str, ...]] = {
    "lon": ("lon", "lng", "long", "longitude", "经度", "东经", "wgs84lng", "wgs84lon",
            "gcj02lng", "bd09lng", "lonwgs84", "lnggcj02"),
    "lat": ("lat", "latitude", "纬度", "北纬", "wgs84lat", "gcj02lat", "bd09lat", "latwgs84",
            "latgcj02"),
    "x": ("x", "xcoord", "x坐标", "easting", "横坐标"),
    "y": ("y", "ycoord", "y坐标", "northing", "纵坐标"),
    "pair": ("location", "lnglat", "lonlat", "经纬度", "坐标"),
    "wkt": ("wkt", "geometry", "geom", "thegeom", "shape", "几何", "空间信息"),
}

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def _normalise(name: str) -> str:
    text = unicodedata.normalize("NFKC", str(name)).strip().lower()
    text = re.sub(r"[\(（\[【].*?[\)）\]】]", "", text)  # drop "(度)" / "(wgs84)" suffixes
    return re.sub(r"[\s_\-.:/]+", "", text)


def decode_text(data: bytes, *, encoding: str | None, source_name: str) -> tuple[str, str]:
    """Decode a text file, detecting its encoding; return ``(text, encoding_name)``.

    Raises
    ------
    ParseError
        When the bytes are not valid in the given or any detected encoding, or mix UTF-8 and
        GBK lines; the message names the first offending lines.
    """
    if encoding is not None:
        try:
            return data.decode(encoding), encoding
        except LookupError:
            raise ParseError(f"unknown encoding {encoding!r}; use e.g. UTF-8, GBK or GB18030"
                             ) from None
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise ParseError(f"{source_name} is not valid {encoding}: line {line} has bytes "
                             f"that are not ({exc.reason}); check --encoding") from None
    for bom, name in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(name), name.upper().replace("-SIG", " with BOM")
            except UnicodeDecodeError as exc:
                line = data.count(b"\n", 0, exc.start) + 1
                raise ParseError(f"{source_name} starts with a {name} byte-order mark but line "
                                 f"{line} is not {name}; re-save the whole file in one "
                                 "encoding") from None
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    lines = data.split(b"\n")
    utf8_lines, other_lines = [], []
    for number, line in enumerate(lines, start=1):
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
            utf8_lines.append(number)
        except UnicodeDecodeError:
            other_lines.append(number)
    if utf8_lines and other_lines:
        raise ParseError(
            f"{source_name} mixes encodings: lines {_sample(utf8_lines)} are UTF-8 but lines "
            f"{_sample(other_lines)} are not; re-save the whole file in one encoding (UTF-8)")
    try:
        return data.decode("gb18030"), "GB18030"
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ParseError(f"{source_name} is neither UTF-8 nor GBK/GB18030 (line {line}); give "
                         "its encoding with --encoding") from None


def _sample(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:5]))
    return shown + (", …" if len(numbers) > 5 else "")


def read_csv(path: Path, fmt: str, *, source_name: str, encoding: str | None, kind: Kind,
             coordinate_columns: dict[str, str], limits: dict[str, float],
             report: Report) -> RawLayer:
    """Read a staged CSV/TSV file into a :class:`RawLayer` (points, WKT geometries or a table).

    Parameters
    ----------
    coordinate_columns
        Columns chosen by a mapping file for the roles ``lon``, ``lat`` or ``wkt`` (may be empty).

    Raises
    ------
    ParseError
        When the file cannot be decoded or parsed, or the kind needs geometry and the file has
        no coordinate columns.
    LimitExceededError
        When the file has more rows than ``ingest.max_features``.
    """
    text, encoding_name = decode_text(path.read_bytes(), encoding=encoding,
                                      source_name=source_name)
    report.info["encoding"] = encoding_name
    if not text.strip():
        raise ParseError(f"{source_name} is empty")
    sep = "\t" if fmt == "tsv" else _sniff_delimiter(text)
    max_rows = int(limits["max_features"])
    if text.count("\n") > max_rows + 1:
        raise LimitExceededError(f"{source_name} has more than {max_rows:,} rows, the limit "
                                 "ingest.max_features in twin.toml")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                                on_bad_lines="warn", skipinitialspace=True)
        except pd.errors.EmptyDataError:
            raise ParseError(f"{source_name} has no header row") from None
        except pd.errors.ParserError as exc:
            raise ParseError(f"{source_name} is not a readable table ({exc})") from None
    bad_lines = sorted(int(m) for w in caught
                       for m in re.findall(r"Skipping line (\d+)", str(w.message)))
    data_rows = len(frame) + len(bad_lines)
    frame.index = pd.Index(np.setdiff1d(np.arange(1, data_rows + 1),
                                        np.array(bad_lines, dtype=np.int64) - 1))
    if bad_lines:
        report.warning("bad_line", "rows with a different number of fields than the header were "
                       "skipped; check for unquoted separators in those rows",
                       rows=[n - 1 for n in bad_lines])
    frame.columns = [str(c).strip() for c in frame.columns]
    report.info.update({"driver": "CSV (pandas)", "delimiter": repr(sep),
                        "rows_read": len(frame)})
    return _geometry(frame, kind, coordinate_columns, source_name, report)


def _sniff_delimiter(text: str) -> str:
    header = text.lstrip("\ufeff").split("\n", 1)[0]
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def _find(columns: list[str], role: str, chosen: dict[str, str]) -> str | None:
    if role in chosen:
        if chosen[role] not in columns:
            raise ParseError(f"the mapping names column {chosen[role]!r} for {role}, but the "
                             f"file's columns are {', '.join(columns)}")
        return chosen[role]
    names = COORDINATE_NAMES[role]
    for column in columns:
        if _normalise(column) in names:
            return column
    return None


def _geometry(frame: pd.DataFrame, kind: Kind, chosen: dict[str, str], source_name: str,
              report: Report) -> RawLayer:
    columns = list(frame.columns)
    wants_geometry = kind.geometry != frozenset({"none"})
    lon, lat = _find(columns, "lon", chosen), _find(columns, "lat", chosen)
    crs: CRS | None = CRS.from_epsg(4326) if lon and lat else None
    if not (lon and lat):
        lon, lat = _find(columns, "x", chosen), _find(columns, "y", chosen)
    pair = None if (lon and lat) else _find(columns, "pair", chosen)
    wkt = _find(columns, "wkt", chosen)
    if not wants_geometry or not ((lon and lat) or pair or wkt):
        if wants_geometry and "none" not in kind.geometry:
            raise ParseError(
                f"{source_name} has no coordinate columns: looked for longitude/latitude "
                "(经度/纬度, lon/lat, lng/lat), x/y, a 'lng,lat' column (location, 经纬度) or a "
                f"WKT column; its columns are {', '.join(columns)}. Name them in a mapping "
                "file ([fields] lon = \"…\", lat = \"…\")")
        return RawLayer(frame=frame, crs=None, info={})

    if wkt and not (lon and lat):
        geometry = shapely.from_wkt(frame[wkt].to_numpy(dtype=object), on_invalid="ignore")
        # Blank cells are left to the geometry stage ("empty_geometry"); bad WKT is dropped here.
        unusable = (pd.isna(geometry) & (frame[wkt].str.strip() != "")).to_numpy()
        if unusable.any():
            report.warning("bad_wkt", f"rows whose {wkt!r} is not valid WKT have no geometry "
                           "and are dropped", rows=frame.index[unusable], field=wkt)
        used = [wkt]
        report.info["geometry_from"] = wkt
    else:
        if pair and not (lon and lat):
            parts = frame[pair].str.replace("，", ",").str.split(",", n=1, expand=True)
            x_text, y_text = parts[0], parts[1] if parts.shape[1] > 1 else parts[0] * np.nan
            used = [pair]
            crs = CRS.from_epsg(4326)
        else:
            x_text, y_text = frame[lon], frame[lat]
            used = [lon, lat]
        x, y = _number(x_text), _number(y_text)
        unusable = ~(np.isfinite(x) & np.isfinite(y))
        if unusable.any():
            report.warning("bad_coordinates", f"rows without usable numbers in "
                           f"{' / '.join(used)} have no geometry and are dropped",
                           rows=frame.index[unusable])
        geometry = shapely.points(np.where(unusable, 0, x), np.where(unusable, 0, y))
        report.info["geometry_from"] = " / ".join(used)
    frame, geometry = frame[~unusable], geometry[~unusable]
    attributes = frame.drop(columns=used)
    info = {}
    if crs is not None:
        # A CSV has no CRS of its own: degrees only imply one, and --crs may still name it.
        info["implied_crs"] = "EPSG:4326"
        report.info["crs_from"] = f"column names {' / '.join(used)} (degrees)"
    result = gpd.GeoDataFrame(attributes, geometry=gpd.GeoSeries(geometry, index=frame.index))
    return RawLayer(frame=result, crs=None, info=info)


def _number(values: pd.Series) -> np.ndarray:
    text = values.astype(str).map(lambda v: unicodedata.normalize("NFKC", v).strip())
    return pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
