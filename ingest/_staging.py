"""Staging: copy an uploaded file into a private directory, under a name we choose.

GDAL only ever sees paths inside that directory, named by us (``input.geojson``, ``p0.shp``), so a
hostile name cannot reach GDAL, the user's file cannot change under the reader, and the sandboxed
reader can be given the directory as its whole world. Sizes are checked before any byte is read;
content is checked against the name (:mod:`ingest._sniff`); archives are inspected before they are
unpacked (:mod:`ingest._archive`).

Each call to :meth:`Staging.stage` gets its own sub-directory (``s0``, ``s1`` …) of the private
directory, so ``staged.path.parent`` holds that input alone and is the natural ``workdir`` for
:func:`ingest._sandbox.run_sandboxed`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType

from ingest._archive import extract_zip
from ingest._sniff import check_magic, format_from_name
from ingest.errors import LimitExceededError, ParseError, UnsafeFileError, UnsupportedFormatError

__all__ = ["SHAPEFILE_SIDECARS", "StagedInput", "Staging"]

MB = 1024 * 1024
_CHUNK = 1024 * 1024
#: Files of a shapefile besides the .shp, in hashing order, and whether each is required.
SHAPEFILE_SIDECARS: tuple[tuple[str, bool], ...] = (
    (".shx", True), (".dbf", True), (".prj", False), (".cpg", False))
_STAGED_NAMES = {"geojson": "input.geojson", "gpkg": "input.gpkg",
                 "geoparquet": "input.parquet", "csv": "input.csv", "tsv": "input.tsv",
                 "geotiff": "input.tif", "osm-pbf": "input.osm.pbf"}


@dataclass
class StagedInput:
    """An uploaded file, copied into the private staging directory.

    Attributes
    ----------
    path : Path
        What GDAL may open: inside the private directory, named by us (``input.geojson``,
        ``p0.shp``).
    format : str
        A key of :data:`ingest._sniff.FORMATS`; ``"shapefile"`` for a zipped shapefile too.
    source_name : str
        The user's file name, for messages.
    sha256 : str
        Of the user's bytes: the archive for a zip; ``.shp``, ``.shx``, ``.dbf``, ``.prj`` and
        ``.cpg`` in that order (those present) for a loose shapefile.
    size : int
        Bytes read from the user's file(s) (the archive's size for a zip).
    members : list[str]
        Original member names of an archive (junk skipped), else ``[]``.
    layers : list[str]
        Shapefile names found in an archive (member path without extension), else ``[]``.
    container : str or None
        ``"shapefile-zip"`` when ``path`` was unpacked from an archive, else None.
    """

    path: Path
    format: str
    source_name: str
    sha256: str
    size: int
    members: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    container: str | None = None


class Staging:
    """A private temporary directory (mode 0700) that uploaded files are staged into.

    Use as a context manager; the directory and everything in it is removed on exit.

    Parameters
    ----------
    limits : Mapping[str, float]
        The ``[ingest]`` limits (``max_file_mb`` and the archive limits are used here).
    root : Path, optional
        Where to create the directory (default: the system temporary directory).
    """

    def __init__(self, limits: Mapping[str, float], *, root: Path | None = None) -> None:
        self.limits = limits
        # mkdtemp creates the directory with mode 0700: other users cannot read or swap files.
        self.dir = Path(tempfile.mkdtemp(prefix="citytwin-ingest-", dir=root))
        self._count = 0

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Remove the private directory and everything staged in it."""
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- staging -----------------------------------------------------------------------------

    def stage(self, user_path: Path, *, layer: str | None = None) -> StagedInput:
        """Copy one uploaded file (with its sidecars, or unpacked) into the private directory.

        Parameters
        ----------
        user_path : Path
            The uploaded file.
        layer : str, optional
            For an archive holding several shapefiles: which one (its name without ``.shp``).

        Returns
        -------
        StagedInput

        Raises
        ------
        UnsafeFileError
            A hostile name, a device, FIFO or socket, a link leading out of its folder, content
            that is not what the name says, a hostile archive.
        UnsupportedFormatError
            An unsupported extension, or a directory.
        LimitExceededError
            The file is larger than ``ingest.max_file_mb``.
        ParseError
            The file is missing or empty, a shapefile lacks its .shx or .dbf, an archive holds no
            shapefile or several without ``layer``.
        """
        user_path = Path(user_path)
        source_name = user_path.name or str(user_path)
        fmt = format_from_name(str(user_path))
        workdir = self.dir / f"s{self._count}"
        self._count += 1
        workdir.mkdir(mode=0o700)
        if fmt == "shapefile":
            return self._stage_shapefile(user_path, workdir)
        if fmt == "shapefile-zip":
            return self._stage_zip(user_path, workdir, layer)
        dest = workdir / _STAGED_NAMES[fmt]
        digest = hashlib.sha256()
        size = self._copy(user_path, dest, digest)
        check_magic(dest, fmt, source_name=source_name)
        return StagedInput(path=dest, format=fmt, source_name=source_name,
                           sha256=digest.hexdigest(), size=size)

    def _stage_shapefile(self, user_path: Path, workdir: Path) -> StagedInput:
        source_name = user_path.name
        digest = hashlib.sha256()
        dest = workdir / "p0.shp"
        size = self._copy(user_path, dest, digest)
        check_magic(dest, "shapefile", source_name=source_name)
        sidecars = _find_sidecars(user_path)
        missing = [ext for ext, required in SHAPEFILE_SIDECARS if required and ext not in sidecars]
        if missing:
            stem = user_path.name[:-len(".shp")]
            names = " and ".join(f"{stem}{ext}" for ext in missing)
            raise ParseError(
                f"{source_name!r} has no {names} beside it; a shapefile needs its .shp, .shx and "
                ".dbf files (and .prj for its coordinate system) — put them all in the same "
                "folder, or upload them together in one .zip")
        for ext, _required in SHAPEFILE_SIDECARS:
            if ext in sidecars:
                size += self._copy(sidecars[ext], workdir / f"p0{ext}", digest)
        check_magic(workdir / "p0.shx", "shapefile", source_name=sidecars[".shx"].name)
        return StagedInput(path=dest, format="shapefile", source_name=source_name,
                           sha256=digest.hexdigest(), size=size)

    def _stage_zip(self, user_path: Path, workdir: Path, layer: str | None) -> StagedInput:
        source_name = user_path.name
        digest = hashlib.sha256()
        archive = workdir / "source.zip"
        size = self._copy(user_path, archive, digest)
        check_magic(archive, "shapefile-zip", source_name=source_name)
        extracted = extract_zip(archive, workdir, self.limits, source_name=source_name)
        archive.unlink()  # hashed and unpacked; only the members are read from here on
        members = [member for _path, member in extracted]
        shapefiles = {str(PurePosixPath(member).with_suffix("")): path
                      for path, member in extracted if path.suffix == ".shp"}
        layers = list(shapefiles)
        # Name layers by their basename when those are unique ("roads", not "data/roads").
        basenames = [PurePosixPath(name).name for name in layers]
        if len(set(basenames)) == len(basenames):
            shapefiles = {PurePosixPath(name).name: path for name, path in shapefiles.items()}
            layers = list(shapefiles)
        if not shapefiles:
            held = ", ".join(members[:10]) + (" …" if len(members) > 10 else "")
            raise ParseError(
                f"the archive {source_name!r} holds no shapefile (.shp); it holds "
                f"{held or 'nothing'} — zip the .shp with its .shx, .dbf and .prj, or upload "
                "the file itself")
        if layer is None:
            if len(shapefiles) > 1:
                raise ParseError(
                    f"the archive {source_name!r} holds {len(shapefiles)} shapefiles "
                    f"({', '.join(layers)}); choose one with --layer NAME")
            chosen = layers[0]
        else:
            wanted = layer.removesuffix(".shp")
            matches = [name for name in layers if name == wanted] or [
                name for name in layers if name.lower() == wanted.lower()]
            if len(matches) != 1:
                raise ParseError(
                    f"the archive {source_name!r} holds no shapefile named {layer!r}; it holds "
                    f"{', '.join(layers)} — choose one of them with --layer NAME")
            chosen = matches[0]
        shp = shapefiles[chosen]
        missing = [ext for ext, required in SHAPEFILE_SIDECARS
                   if required and not shp.with_suffix(ext).exists()]
        if missing:
            raise ParseError(
                f"the shapefile {chosen!r} in {source_name!r} has no "
                f"{' and '.join(chosen + ext for ext in missing)}; a shapefile needs its .shp, "
                ".shx and .dbf files — add them to the archive")
        check_magic(shp, "shapefile", source_name=f"{chosen}.shp")
        check_magic(shp.with_suffix(".shx"), "shapefile", source_name=f"{chosen}.shx")
        return StagedInput(path=shp, format="shapefile", source_name=source_name,
                           sha256=digest.hexdigest(), size=size, members=members, layers=layers,
                           container="shapefile-zip")

    def _copy(self, user_path: Path, dest: Path, digest: hashlib._Hash) -> int:
        """Copy a regular file into ``dest`` while hashing it; return its size.

        Checks, in order: what ``lstat`` says it is, links leading out of its folder, its size
        against ``max_file_mb`` (before reading), then opens it without following links and
        checks that it is still the same regular file.
        """
        name = user_path.name or str(user_path)
        limit = self.limits["max_file_mb"] * MB
        try:
            info = os.lstat(user_path)
        except FileNotFoundError:
            raise ParseError(f"there is no file {str(user_path)!r}; check the path") from None
        source = user_path
        if stat.S_ISLNK(info.st_mode):
            folder = user_path.absolute().parent.resolve()
            target = user_path.resolve()
            if not target.is_relative_to(folder):
                raise UnsafeFileError(
                    f"{name!r} is a symbolic link to {str(target)!r}, outside its folder; it is "
                    "refused — upload the file itself, not a link")
            source = target
            info = os.lstat(source)
        if stat.S_ISDIR(info.st_mode):
            raise UnsupportedFormatError(
                f"{name!r} is a directory, not a file — give the file itself (for a shapefile, "
                "its .shp; for a folder of files, zip them)")
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFileError(
                f"{name!r} is not a regular file (a device, FIFO or socket); it is refused — "
                "upload an ordinary file")
        if info.st_size > limit:
            raise LimitExceededError(
                f"{name!r} is {info.st_size / MB:,.1f} MB, over the "
                f"{self.limits['max_file_mb']:g} MB limit (ingest.max_file_mb in twin.toml) — "
                "split the file, or raise the limit if the file is genuine")
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(source, flags)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeFileError(f"{name!r} was replaced by a link while being staged; it "
                                      "is refused — upload it again") from None
            raise
        with os.fdopen(fd, "rb") as src:
            opened = os.fstat(src.fileno())
            if (not stat.S_ISREG(opened.st_mode)
                    or (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino)):
                raise UnsafeFileError(f"{name!r} was replaced while being staged; it is refused "
                                      "— upload it again")
            out_fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                             | getattr(os, "O_NOFOLLOW", 0), 0o600)
            size = 0
            with os.fdopen(out_fd, "wb") as out:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    if size > limit:  # the file grew after lstat
                        raise LimitExceededError(
                            f"{name!r} is over the {self.limits['max_file_mb']:g} MB limit "
                            "(ingest.max_file_mb in twin.toml) — split the file, or raise the "
                            "limit if the file is genuine")
                    digest.update(chunk)
                    out.write(chunk)
        return size


def source_files(user_path: Path) -> list[Path]:
    """The user's files that make up one input, in the order they are hashed.

    A loose shapefile is its .shp followed by the sidecars found beside it; anything else is
    the one file.
    """
    if user_path.name.lower().endswith(".shp"):
        sidecars = _find_sidecars(user_path)
        return [user_path] + [sidecars[ext] for ext, _ in SHAPEFILE_SIDECARS if ext in sidecars]
    return [user_path]


def _find_sidecars(shp: Path) -> dict[str, Path]:
    """The sidecar files beside ``shp``: same basename, extension matched case-insensitively."""
    stem = shp.name[:-len(".shp")]
    wanted = {ext for ext, _required in SHAPEFILE_SIDECARS}
    found: dict[str, list[Path]] = {}
    folder = shp.parent
    with os.scandir(folder) as entries:
        for entry in entries:
            base, dot, ext = entry.name.rpartition(".")
            if dot and base == stem and f".{ext.lower()}" in wanted:
                found.setdefault(f".{ext.lower()}", []).append(folder / entry.name)
    # Prefer the lowercase spelling when both roads.dbf and roads.DBF exist.
    return {ext: sorted(paths, key=lambda p: (p.suffix != ext, p.name))[0]
            for ext, paths in found.items()}
