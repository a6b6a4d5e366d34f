"""ZIP archives: inspection before extraction, and extraction under our own names.

An uploaded archive is hostile. :func:`inspect_zip` reads only the central directory and refuses
the archive, listing every problem at once, for path traversal, links, nested archives, too many
members, too many bytes once unpacked, compression ratios of a zip bomb, encryption and duplicate
names. :func:`extract_zip` then writes each member under a name we choose (``p0.shp``,
``m003.csv``): a member's own name never becomes a path. It decompresses itself, with a hard cap
at the size the header declares, because a forged header can declare less than the member holds.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ingest.errors import ParseError, UnsafeFileError, UnsupportedFormatError

__all__ = ["JUNK_DIRS", "NESTED_ARCHIVE_EXTENSIONS", "SHAPEFILE_PARTS", "extract_zip",
           "inspect_zip"]

MB = 1024 * 1024

#: Extensions of members refused as nested archives (they would escape the checks below).
NESTED_ARCHIVE_EXTENSIONS = frozenset({
    ".zip", ".gz", ".tgz", ".7z", ".rar", ".tar", ".bz2", ".tbz2", ".xz", ".txz", ".zst",
    ".lz", ".lzma", ".z", ".cab", ".kmz", ".jar", ".arj", ".lzh", ".iso",
})
#: Files of one shapefile; members sharing a basename are extracted as ``p<N>.<ext>``.
SHAPEFILE_PARTS = frozenset({".shp", ".shx", ".dbf", ".prj", ".cpg", ".sbn", ".sbx", ".qix"})
#: Folders that macOS adds to archives; skipped, never extracted.
JUNK_DIRS = ("__MACOSX/",)
_JUNK_FILES = frozenset({".ds_store", "thumbs.db"})

# Member-level problems listed in one message; beyond this many, the rest are counted.
_MAX_LISTED = 20
# Members declaring less than this are too small to be a bomb whatever their ratio: a 20 KB .dbf
# of blank fields legitimately compresses 300:1.
_RATIO_MIN_BYTES = 1 * MB
_CHUNK = 256 * 1024
_SAFE_EXT_RE = re.compile(r"^\.[a-z0-9]{1,10}$")
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


def _is_junk(name: str) -> bool:
    return name.startswith(JUNK_DIRS) or PurePosixPath(name).name.lower() in _JUNK_FILES


def _name_problem(name: str) -> str | None:
    """Why a member name could escape the extraction directory, or None."""
    if "\\" in name:
        return "uses backslashes in its path"
    if name.startswith("/"):
        return "has an absolute path"
    if re.match(r"^[A-Za-z]:", name):
        return "starts with a drive letter"
    if ".." in name.split("/"):
        return "escapes the archive (path traversal)"
    return None


def _fmt_mb(n_bytes: float) -> str:
    return f"{n_bytes / MB:,.1f} MB"


def inspect_zip(path: Path, limits: Mapping[str, float], *,
                source_name: str | None = None) -> list[zipfile.ZipInfo]:
    """Check a ZIP archive before anything is extracted.

    Parameters
    ----------
    path : Path
        The archive.
    limits : Mapping[str, float]
        The ``[ingest]`` limits; uses ``max_archive_members``, ``max_unpacked_mb`` and
        ``max_compression_ratio``.
    source_name : str, optional
        The user's name for the archive, used in messages (default: ``path.name``).

    Returns
    -------
    list[zipfile.ZipInfo]
        The members to extract: files, without folders and ``__MACOSX/`` or ``.DS_Store`` junk.

    Raises
    ------
    UnsafeFileError
        Listing every problem found (each with its fix).
    UnsupportedFormatError
        A member uses a compression method other than stored or deflate.
    ParseError
        The archive is damaged or truncated.
    """
    name = source_name or path.name
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, struct.error) as exc:
        raise ParseError(
            f"{name!r} is damaged or not a ZIP archive ({exc}); it cannot be opened — re-create "
            "the archive and upload it again") from None

    problems: list[str] = []
    methods: list[str] = []
    members: list[zipfile.ZipInfo] = []
    seen: dict[str, str] = {}
    for info in infos:
        member = info.filename
        reason = _name_problem(member)
        if reason is not None:
            problems.append(f"member {member!r} {reason} — re-create the archive with relative "
                            "paths only")
            continue
        if _is_junk(member):
            continue
        file_type = stat.S_IFMT(info.external_attr >> 16)
        if file_type == stat.S_IFLNK:
            problems.append(f"member {member!r} is a symbolic link — put the file itself in the "
                            "archive, not a link to it")
            continue
        if info.is_dir():
            continue
        if file_type not in (0, stat.S_IFREG):
            problems.append(f"member {member!r} is a special file (not a regular file) — put "
                            "only ordinary files in the archive")
            continue
        if PurePosixPath(member).suffix.lower() in NESTED_ARCHIVE_EXTENSIONS:
            problems.append(f"member {member!r} is itself an archive (nested archives are not "
                            "read) — put its files directly in one archive")
        if info.flag_bits & 0x1:
            problems.append(f"member {member!r} is encrypted — upload the archive without a "
                            "password")
        key = member.lower()
        if key in seen:
            problems.append(f"member {member!r} appears twice (also as {seen[key]!r}) — keep one "
                            "copy of each file")
        seen.setdefault(key, member)
        if (info.file_size > _RATIO_MIN_BYTES
                and info.file_size > limits["max_compression_ratio"] * max(info.compress_size, 1)):
            ratio = info.file_size / max(info.compress_size, 1)
            problems.append(
                f"member {member!r} unpacks from {_fmt_mb(info.compress_size)} to "
                f"{_fmt_mb(info.file_size)}, a compression ratio of {ratio:,.0f}:1 over the "
                f"{limits['max_compression_ratio']:g}:1 limit (ingest.max_compression_ratio; a "
                "zip bomb?) — if genuine, raise the limit in twin.toml")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            methods.append(f"{member!r} (method {info.compress_type})")
        members.append(info)

    if len(problems) > _MAX_LISTED:
        problems = [*problems[:_MAX_LISTED], f"… and {len(problems) - _MAX_LISTED} more"]
    if len(members) > limits["max_archive_members"]:
        problems.append(
            f"it holds {len(members)} files, over the {limits['max_archive_members']:g} limit "
            "(ingest.max_archive_members) — split the archive or raise the limit in twin.toml")
    total = sum(info.file_size for info in members)
    if total > limits["max_unpacked_mb"] * MB:
        problems.append(
            f"it unpacks to {_fmt_mb(total)}, over the {limits['max_unpacked_mb']:g} MB limit "
            "(ingest.max_unpacked_mb) — split the archive or raise the limit in twin.toml")
    archive_size = max(path.stat().st_size, 1)
    if total > _RATIO_MIN_BYTES and total > limits["max_compression_ratio"] * archive_size:
        problems.append(
            f"it unpacks from {_fmt_mb(archive_size)} to {_fmt_mb(total)}, a compression ratio "
            f"of {total / archive_size:,.0f}:1 over the {limits['max_compression_ratio']:g}:1 "
            "limit (ingest.max_compression_ratio; a zip bomb?) — if genuine, raise the limit")
    if problems:
        count = f"{len(problems)} problems" if len(problems) > 1 else "1 problem"
        raise UnsafeFileError(f"the archive {name!r} is refused ({count}): " + "; ".join(problems))
    if methods:
        raise UnsupportedFormatError(
            f"the archive {name!r} uses a compression method ingest does not read for "
            f"{', '.join(methods[:5])}; re-create it with standard (deflate) compression")
    return members


def _our_names(members: list[zipfile.ZipInfo]) -> list[str]:
    """Our file name for each member: ``p<N>.<ext>`` for shapefile parts, else ``m<NNN>.<ext>``.

    Parts are grouped by folder and basename (case-insensitively), so that ``roads.shp``,
    ``roads.SHX`` and ``roads.dbf`` become ``p0.shp``, ``p0.shx`` and ``p0.dbf``; only groups that
    hold a ``.shp`` get a ``p`` name.
    """
    def split(member: str) -> tuple[str, str]:
        pure = PurePosixPath(member)
        ext = pure.suffix.lower()
        return str(pure.with_suffix("")).lower() if ext else member.lower(), ext

    groups_with_shp = sorted({split(m.filename)[0] for m in members
                              if split(m.filename)[1] == ".shp"})
    group_index = {stem: i for i, stem in enumerate(groups_with_shp)}
    names: list[str] = []
    taken: set[str] = set()
    for i, info in enumerate(members):
        stem, ext = split(info.filename)
        if not _SAFE_EXT_RE.match(ext):
            ext = ""
        ours = f"p{group_index[stem]}{ext}" if (ext in SHAPEFILE_PARTS
                                                and stem in group_index) else f"m{i:03d}{ext}"
        if ours in taken:  # same part twice in different case: inspect_zip refuses; be safe
            ours = f"m{i:03d}{ext}"
        taken.add(ours)
        names.append(ours)
    return names


def extract_zip(path: Path, dest: Path, limits: Mapping[str, float], *,
                source_name: str | None = None) -> list[tuple[Path, str]]:
    """Inspect, then extract every member of a ZIP archive under our own names.

    Parameters
    ----------
    path : Path
        The archive.
    dest : Path
        An existing private directory to extract into.
    limits : Mapping[str, float]
        The ``[ingest]`` limits (see :func:`inspect_zip`).
    source_name : str, optional
        The user's name for the archive, used in messages.

    Returns
    -------
    list[tuple[Path, str]]
        For each extracted member, in archive order: the path we wrote (``dest/p0.shp``,
        ``dest/m002.csv``) and the member's original name.

    Raises
    ------
    UnsafeFileError
        From :func:`inspect_zip`, or a member holds more bytes than its header declares.
    ParseError
        The archive is damaged (truncated member, CRC mismatch).
    """
    name = source_name or path.name
    members = inspect_zip(path, limits, source_name=source_name)
    extracted: list[tuple[Path, str]] = []
    with open(path, "rb") as archive:
        for info, ours in zip(members, _our_names(members), strict=True):
            target = dest / ours
            _extract_member(archive, info, target, name)
            extracted.append((target, info.filename))
    return extracted


def _extract_member(archive: BinaryIO, info: zipfile.ZipInfo, target: Path, name: str) -> None:
    """Decompress one member into ``target``, never writing more than its declared size."""
    member = info.filename

    def damaged(why: str) -> ParseError:
        return ParseError(f"the archive {name!r} is damaged: member {member!r} {why} — re-create "
                          "the archive and upload it again")

    archive.seek(info.header_offset)
    header = archive.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size:
        raise damaged("is cut short")
    (signature, _version, flags, _method, _time, _date, _crc, _csize, _usize,
     name_len, extra_len) = _LOCAL_HEADER.unpack(header)
    if signature != b"PK\x03\x04":
        raise damaged("has no valid local header")
    if flags & 0x1:
        raise UnsafeFileError(f"the archive {name!r} is refused: member {member!r} is encrypted "
                              "— upload the archive without a password")
    archive.seek(name_len + extra_len, os.SEEK_CUR)

    declared = info.file_size
    remaining_in = info.compress_size
    written = 0
    crc = 0
    decompressor = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                 0o600)
    with os.fdopen(fd, "wb") as out:

        def emit(data: bytes) -> None:
            nonlocal written, crc
            written += len(data)
            if written > declared:
                raise UnsafeFileError(
                    f"the archive {name!r} is refused: member {member!r} holds more bytes than "
                    f"the {declared:,} its header declares (a forged header, as in a zip bomb) — "
                    "re-create the archive with a standard tool")
            crc = zlib.crc32(data, crc)
            out.write(data)

        while remaining_in > 0:
            chunk = archive.read(min(_CHUNK, remaining_in))
            if not chunk:
                raise damaged("is cut short")
            remaining_in -= len(chunk)
            if decompressor is None:
                emit(chunk)
                continue
            data = chunk
            while data and not decompressor.eof:
                # max_length bounds memory; the remainder waits in unconsumed_tail.
                try:
                    emit(decompressor.decompress(data, _CHUNK))
                except zlib.error as exc:
                    raise damaged(f"cannot be decompressed ({exc})") from None
                data = decompressor.unconsumed_tail
            if decompressor.eof:
                break
        if decompressor is not None and not decompressor.eof:
            raise damaged("is cut short (its compressed data ends early)")
    if written != declared:
        raise damaged(f"holds {written:,} bytes where its header declares {declared:,}")
    if crc != info.CRC:
        raise damaged("does not match its checksum (CRC)")
