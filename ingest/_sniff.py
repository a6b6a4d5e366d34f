"""Format by name, and a check that the content is what the name says.

Uploaded files are hostile. Their name decides which reader runs, so it is checked for GDAL
tricks first (``/vsicurl/…``, ``GPKG:/etc/passwd:layer``, URLs, NUL bytes): GDAL interprets such
strings itself and would open something other than the uploaded bytes. Their first bytes are then
checked against the format the name claims, because GDAL picks its driver by content: a VRT
renamed ``.geojson`` would otherwise be opened by the VRT driver and read any file it names.
"""

from __future__ import annotations

import re
from pathlib import Path

from ingest.errors import ParseError, UnsafeFileError, UnsupportedFormatError

__all__ = ["FORMATS", "HEAD_BYTES", "check_magic", "detect_content", "format_from_name"]

#: Format name -> accepted extensions (lowercase, with the dot).
FORMATS: dict[str, tuple[str, ...]] = {
    "geojson": (".geojson", ".json"),
    "shapefile": (".shp",),
    "shapefile-zip": (".zip",),
    "gpkg": (".gpkg",),
    "geoparquet": (".parquet", ".geoparquet"),
    "csv": (".csv", ".txt"),
    "tsv": (".tsv", ".tab"),
    "geotiff": (".tif", ".tiff"),
    "osm-pbf": (".osm.pbf", ".pbf"),
}

#: How much of the start of a file is read to sniff it.
HEAD_BYTES = 64 * 1024

# Longest extensions first, so that ".osm.pbf" wins over ".pbf".
_BY_EXTENSION = sorted(((ext, fmt) for fmt, exts in FORMATS.items() for ext in exts),
                       key=lambda item: -len(item[0]))

_FORMAT_LABELS = {
    "geojson": "GeoJSON", "shapefile": "a Shapefile (.shp)", "shapefile-zip": "a ZIP archive",
    "gpkg": "a GeoPackage", "geoparquet": "GeoParquet", "csv": "CSV", "tsv": "TSV",
    "geotiff": "a GeoTIFF", "osm-pbf": "an OpenStreetMap PBF file",
}

# Schemes that make GDAL (or a later caller) reach the network or another file system.
_URL_SCHEMES = frozenset({
    "http", "https", "ftp", "ftps", "sftp", "file", "s3", "gs", "gcs", "az", "azure", "abfs",
    "abfss", "adl", "oss", "swift", "hdfs", "webhdfs", "smb", "data", "ws", "wss", "vrt",
    "zip", "tar", "gzip", "jar",
})
_URL_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.\-]*):")
# GDAL "connection strings": DRIVER:path[:layer], e.g. GPKG:/etc/passwd:layer, NETCDF:"x":var.
_DRIVER_PREFIX_RE = re.compile(r"^[A-Za-z0-9_ ]+:")
_DRIVE_LETTER_RE = re.compile(r"^[A-Za-z]:([\\/]|$)")

_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_SHP_MAGIC = b"\x00\x00\x27\x0a"  # 9994 big-endian: the Shapefile (.shp and .shx) file code
_BOM = b"\xef\xbb\xbf"


def format_from_name(name: str) -> str:
    """The format of a file, from its name.

    Parameters
    ----------
    name : str
        The file's name or path as the user gave it.

    Returns
    -------
    str
        A key of :data:`FORMATS`.

    Raises
    ------
    UnsafeFileError
        The name is a GDAL trick: a ``/vsi…`` path, a ``DRIVER:`` connection string, a URL, or
        it holds a NUL byte or a line break.
    UnsupportedFormatError
        The extension is not one ingest reads; the message lists those it does.
    """
    if "\x00" in name or "\n" in name or "\r" in name:
        raise UnsafeFileError(
            f"the file name {name!r} contains a NUL byte or a line break; it is refused — rename "
            "the file with ordinary characters")
    stripped = name.strip()
    if stripped.lower().startswith(("/vsi", "\\vsi")):
        raise UnsafeFileError(
            f"the file name {name!r} is a GDAL virtual file system path (/vsi…), which could make "
            "GDAL read another file or the network; it is refused — give the path of a local file")
    if not _DRIVE_LETTER_RE.match(stripped):
        url = _URL_RE.match(stripped)
        if url and url.group(1).lower() in _URL_SCHEMES:
            raise UnsafeFileError(
                f"the file name {name!r} is a URL; ingest reads local files only and never the "
                "network — download the file first and give its local path")
        prefix = _DRIVER_PREFIX_RE.match(stripped)
        if prefix:
            raise UnsafeFileError(
                f"the file name {name!r} starts with {prefix.group(0)!r}, a GDAL driver prefix "
                "that would make GDAL open something other than this file; it is refused — "
                "rename the file so that it does not start with 'WORD:'")
    lower = stripped.lower()
    for ext, fmt in _BY_EXTENSION:
        if lower.endswith(ext) and len(lower) > len(ext):
            return fmt
    supported = ", ".join(ext for exts in FORMATS.values() for ext in exts)
    suffix = Path(stripped).suffix or "(none)"
    raise UnsupportedFormatError(
        f"cannot read {Path(stripped).name!r}: its extension {suffix} is not a supported format; "
        f"supported extensions are {supported} — convert the file to one of them (e.g. GeoPackage)")


def detect_content(head: bytes, tail: bytes = b"") -> str | None:
    """Name the format the first bytes show, when they show a known one.

    Parameters
    ----------
    head : bytes
        The first bytes of the file (up to :data:`HEAD_BYTES`).
    tail : bytes
        The last 4 bytes of the file (Parquet ends with ``PAR1`` too).

    Returns
    -------
    str or None
        A phrase such as ``"a ZIP archive"``, or None when nothing known was recognised.
    """
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "a ZIP archive"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip file"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "a 7-Zip archive"
    if head.startswith(b"Rar!\x1a\x07"):
        return "a RAR archive"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "an xz file"
    if head.startswith(b"SQLite format 3\x00"):
        return "an SQLite database (GeoPackage)"
    if head.startswith(b"PAR1"):
        return "a Parquet file" if tail.endswith(b"PAR1") else "a truncated Parquet file"
    if head.startswith(_TIFF_MAGICS):
        return "a TIFF image"
    if head.startswith(b"\x7fELF"):
        return "an ELF executable"
    # "MZ" alone could start a line of text; a real PE header holds NUL bytes right after it.
    if head.startswith(b"MZ") and b"\x00" in head[:64]:
        return "a Windows (PE) executable"
    if head.startswith(b"%PDF-"):
        return "a PDF document"
    if head.startswith(_SHP_MAGIC) and len(head) >= 100:
        return "a Shapefile (.shp)"
    if _is_osm_pbf(head):
        return "an OpenStreetMap PBF file"
    text = head.removeprefix(_BOM).lstrip()[:4096].lower()
    if text.startswith(b"<"):
        if b"<vrtdataset" in head.lower() or b"<ogrvrtdatasource" in head.lower():
            return "a GDAL VRT (XML) file"
        if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text:
            return "an HTML page"
        return "an XML document"
    return None


def _is_osm_pbf(head: bytes) -> bool:
    """Whether ``head`` starts with an OSMHeader blob (4-byte length, then a BlobHeader)."""
    if len(head) < 8:
        return False
    length = int.from_bytes(head[:4], "big")
    # The PBF specification caps a BlobHeader at 64 KiB.
    return 0 < length <= 64 * 1024 and b"OSMHeader" in head[4:4 + length]


def check_magic(path: Path, fmt: str, *, source_name: str | None = None) -> None:
    """Check that the content of ``path`` is the format ``fmt`` its name says.

    Parameters
    ----------
    path : Path
        The (staged) file.
    fmt : str
        A key of :data:`FORMATS`.
    source_name : str, optional
        The user's name for the file, used in messages (default: ``path.name``).

    Raises
    ------
    ParseError
        The file is empty, or holds only blank space.
    UnsafeFileError
        The content is another format (named when recognised), or binary where text is expected.
    """
    if fmt not in FORMATS:
        raise UnsupportedFormatError(f"unknown format {fmt!r}; known formats are "
                                     f"{', '.join(FORMATS)}")
    name = source_name or path.name
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
        size = handle.seek(0, 2)
        handle.seek(max(0, size - 4))
        tail = handle.read(4)
    if not head:
        raise ParseError(f"{name!r}: the file is empty (0 bytes); nothing to read — check that the "
                         "upload or export finished and send the file again")
    detected = detect_content(head, tail)
    expected = _FORMAT_LABELS[fmt]

    def refuse(what: str) -> UnsafeFileError:
        return UnsafeFileError(
            f"{name!r}: the name says {expected} but the content is {what}; the file is refused — "
            f"export the data again as {expected}, with the matching extension")

    if fmt == "geojson":
        text = head.removeprefix(_BOM).lstrip()
        if not text:
            raise ParseError(f"{name!r}: the file holds only blank space; nothing to read — "
                             "export the data again")
        if detected is not None:
            raise refuse(detected)
        if not text.startswith(b"{"):
            raise refuse(f"text that does not start with '{{' (it starts with {text[:20]!r})")
    elif fmt in ("csv", "tsv"):
        if detected is not None:
            raise refuse(detected)
        if b"\x00" in head:
            raise refuse("binary data (NUL bytes in the first 64 KB)")
        if not head.removeprefix(_BOM).strip():
            raise ParseError(f"{name!r}: the file holds only blank space; nothing to read — "
                             "export the data again")
    else:
        ok = {
            "shapefile": head.startswith(_SHP_MAGIC),
            "shapefile-zip": head.startswith((b"PK\x03\x04", b"PK\x05\x06")),
            "gpkg": head.startswith(b"SQLite format 3\x00"),
            "geoparquet": head.startswith(b"PAR1") and tail.endswith(b"PAR1") and size >= 8,
            "geotiff": head.startswith(_TIFF_MAGICS),
            "osm-pbf": _is_osm_pbf(head),
        }[fmt]
        if not ok:
            raise refuse(detected or "not recognised (its first bytes are "
                         f"{head[:8].hex(' ')})")
