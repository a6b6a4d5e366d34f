"""The safety layer of ingest: names, content sniffing, archives, staging and the sandbox.

Every hostile file is generated here, in the test; none is committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine

from ingest._archive import extract_zip, inspect_zip
from ingest._sandbox import GDAL_SKIP_DRIVERS, hardening_env, run_sandboxed
from ingest._sniff import FORMATS, check_magic, format_from_name
from ingest._staging import Staging
from ingest.errors import (
    IngestError,
    LimitExceededError,
    ParseError,
    SandboxError,
    UnsafeFileError,
    UnsupportedFormatError,
)
from twin.config import default_config

LIMITS: dict[str, float] = dict(default_config()["ingest"])
MB = 1024 * 1024
TARGETS = "tests.sandbox_targets"


def limits(**override: float) -> dict[str, float]:
    return {**LIMITS, **override}


# -- builders ------------------------------------------------------------------------------------

def _shapefile_parts(tmp: Path, stem: str = "roads", crs: int = 4326) -> dict[str, bytes]:
    """The bytes of a real small shapefile (.shp, .shx, .dbf, .prj, .cpg) written by GDAL."""
    folder = tmp / f"shp-{stem}-{crs}"
    folder.mkdir(exist_ok=True)
    frame = gpd.GeoDataFrame({"name": ["a", "b"]},
                             geometry=[shapely.Point(121.4, 31.2), shapely.Point(121.5, 31.3)],
                             crs=4326).to_crs(crs)
    frame.to_file(folder / f"{stem}.shp", engine="pyogrio")
    return {path.suffix.lower(): path.read_bytes() for path in folder.iterdir()}


def _zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are on purpose
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in members:
                archive.writestr(name, data)
    return path


def _zip_with_shapefile(tmp: Path, extra: list[tuple[str | zipfile.ZipInfo, bytes]],
                        name: str = "x.zip") -> Path:
    parts = _shapefile_parts(tmp)
    return _zip(tmp / name, [(f"roads{ext}", data) for ext, data in parts.items()] + extra)


def _patch_flag(path: Path, member_index: int, bit: int) -> None:
    """Set a general-purpose flag bit of one member, in its local and central headers."""
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).infolist()[member_index]
    local = info.header_offset
    data[local + 6] |= bit
    central = _central_offsets(data)[member_index]
    data[central + 8] |= bit
    path.write_bytes(bytes(data))


def _patch_declared_size(path: Path, member_index: int, size: int) -> None:
    """Make one member's headers declare ``size`` uncompressed bytes (a lie)."""
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).infolist()[member_index]
    struct.pack_into("<I", data, info.header_offset + 22, size)
    struct.pack_into("<I", data, _central_offsets(data)[member_index] + 24, size)
    path.write_bytes(bytes(data))


def _central_offsets(data: bytes | bytearray) -> list[int]:
    offsets, start = [], 0
    while (found := bytes(data).find(b"PK\x01\x02", start)) != -1:
        offsets.append(found)
        start = found + 4
    return offsets


def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _tiff_bytes(tmp: Path) -> bytes:
    path = tmp / "t.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8",
                       crs="EPSG:4326", transform=Affine(0.01, 0, 121.4, 0, -0.01, 31.3)) as dst:
        dst.write(np.full((1, 4, 4), 7, dtype="uint8"))
    return path.read_bytes()


ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(56)
VRT_XML = (b'<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>/etc/passwd</SrcDataSource>'
           b"</OGRVRTLayer></OGRVRTDataSource>")
HTML = b"<!DOCTYPE html>\n<html><body>Login</body></html>\n"
GEOJSON = json.dumps({"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"a": 1},
     "geometry": {"type": "Point", "coordinates": [121.4, 31.2]}}]}).encode()
PBF_HEAD = struct.pack(">I", 13) + b"\x0a\x09OSMHeader\x18\x40"


# -- the bad-input corpus, staged end to end ------------------------------------------------------

Builder = Callable[[Path], Path]


def _write(name: str, data: bytes) -> Builder:
    def build(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(data)
        return path
    return build


def _zip_case(members: Callable[[Path], list[tuple[str | zipfile.ZipInfo, bytes]]],
              patch: Callable[[Path], None] | None = None) -> Builder:
    def build(tmp: Path) -> Path:
        path = _zip(tmp / "upload.zip", members(tmp))
        if patch is not None:
            patch(path)
        return path
    return build


def _with_shapefile(extra: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Callable[
        [Path], list[tuple[str | zipfile.ZipInfo, bytes]]]:
    def members(tmp: Path) -> list[tuple[str | zipfile.ZipInfo, bytes]]:
        return [(f"roads{ext}", data) for ext, data in _shapefile_parts(tmp).items()] + extra
    return members


def _truncated_zip(tmp: Path) -> Path:
    path = _zip_with_shapefile(tmp, [])
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def _lying_zip(tmp: Path) -> Path:
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 16, 300_000, dtype=np.uint8).tobytes()  # compresses ~2:1
    path = _zip_with_shapefile(tmp, [("notes.txt", noisy)])
    _patch_declared_size(path, len(zipfile.ZipFile(path).infolist()) - 1, 1000)
    return path


def _shp_without_dbf(tmp: Path) -> Path:
    parts = _shapefile_parts(tmp)
    for ext in (".shp", ".shx", ".prj"):
        (tmp / f"lonely{ext}").write_bytes(parts[ext])
    return tmp / "lonely.shp"


def _directory(tmp: Path) -> Path:
    (tmp / "folder.geojson").mkdir()
    return tmp / "folder.geojson"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "pipe.geojson")
    return tmp / "pipe.geojson"


def _link_to_passwd(tmp: Path) -> Path:
    (tmp / "users.csv").symlink_to("/etc/passwd")
    return tmp / "users.csv"


def _tiff_as_gpkg(tmp: Path) -> Path:
    return _write("image.gpkg", _tiff_bytes(tmp))(tmp)


CORPUS: list[tuple[str, Builder, dict[str, float], type[Exception], str]] = [
    # Archives.
    ("zip-traversal", _zip_case(_with_shapefile([("../x.shp", b"x")])), {},
     UnsafeFileError, "'../x.shp' escapes the archive (path traversal)"),
    ("zip-absolute-path", _zip_case(_with_shapefile([("/etc/x", b"x")])), {},
     UnsafeFileError, "'/etc/x' has an absolute path"),
    ("zip-drive-letter", _zip_case(_with_shapefile([("C:/x.dbf", b"x")])), {},
     UnsafeFileError, "starts with a drive letter"),
    ("zip-backslash", _zip_case(_with_shapefile([("..\\x.dbf", b"x")])), {},
     UnsafeFileError, "uses backslashes"),
    ("zip-symlink", _zip_case(_with_shapefile([(_symlink_info("roads.cpg"), b"/etc/passwd")])),
     {}, UnsafeFileError, "'roads.cpg' is a symbolic link"),
    ("zip-nested-zip", _zip_case(_with_shapefile([("more.zip", b"PK\x05\x06" + bytes(18))])),
     {}, UnsafeFileError, "'more.zip' is itself an archive"),
    ("zip-bomb", _zip_case(_with_shapefile([("roads.sbn", bytes(30 * MB))])),
     {"max_unpacked_mb": 10}, UnsafeFileError, "(ingest.max_compression_ratio; a zip bomb?)"),
    ("zip-too-big-unpacked", _zip_case(_with_shapefile([("big.txt", os.urandom(2 * MB))])),
     {"max_unpacked_mb": 1}, UnsafeFileError, "over the 1 MB limit (ingest.max_unpacked_mb)"),
    ("zip-too-many-members",
     _zip_case(_with_shapefile([(f"n{i}.txt", b"x") for i in range(6)])),
     {"max_archive_members": 8}, UnsafeFileError, "over the 8 limit (ingest.max_archive_members)"),
    ("zip-truncated", _truncated_zip, {}, ParseError, "is damaged or not a ZIP archive"),
    ("zip-encrypted", _zip_case(_with_shapefile([]), lambda p: _patch_flag(p, 2, 0x1)), {},
     UnsafeFileError, "is encrypted"),
    ("zip-duplicate-names", _zip_case(_with_shapefile([("roads.prj", b"x")])), {},
     UnsafeFileError, "appears twice"),
    ("zip-size-lie", _lying_zip, {}, UnsafeFileError, "holds more bytes than the 1,000"),
    ("zip-no-shapefile", _zip_case(lambda tmp: [("a.csv", b"x,y\n1,2\n"), ("b.txt", b"hi")]),
     {}, ParseError, "holds no shapefile (.shp); it holds a.csv, b.txt"),
    # Disguised content.
    ("zip-named-geojson", lambda tmp: _zip(tmp / "a.geojson", [("a.txt", b"x")]), {},
     UnsafeFileError, "the name says GeoJSON but the content is a ZIP archive"),
    ("vrt-named-geojson", _write("a.geojson", VRT_XML), {},
     UnsafeFileError, "the content is a GDAL VRT (XML) file"),
    ("html-named-csv", _write("cases.csv", HTML), {},
     UnsafeFileError, "the name says CSV but the content is an HTML page"),
    ("elf-named-tif", _write("dem.tif", ELF), {},
     UnsafeFileError, "the name says a GeoTIFF but the content is an ELF executable"),
    ("tiff-named-gpkg", _tiff_as_gpkg, {},
     UnsafeFileError, "the name says a GeoPackage but the content is a TIFF image"),
    ("binary-named-tsv", _write("a.tsv", b"id\tname\n1\x00\x00\x002\n"), {},
     UnsafeFileError, "binary data (NUL bytes"),
    ("pdf-named-shp", _write("a.shp", b"%PDF-1.7\n" + bytes(200)), {},
     UnsafeFileError, "the content is a PDF document"),
    ("json-array-named-geojson", _write("a.geojson", b"[1, 2]"), {},
     UnsafeFileError, "does not start with '{'"),
    # GDAL tricks in the name.
    ("name-vsicurl", lambda tmp: Path("/vsicurl/http://x/a.geojson"), {},
     UnsafeFileError, "GDAL virtual file system path"),
    ("name-driver-prefix", lambda tmp: Path("GPKG:/etc/passwd:layer"), {},
     UnsafeFileError, "starts with 'GPKG:', a GDAL driver prefix"),
    ("name-url", lambda tmp: Path("http://example.com/a.geojson"), {},
     UnsafeFileError, "is a URL"),
    ("name-nul-byte", lambda tmp: Path("a\x00.geojson"), {},
     UnsafeFileError, "contains a NUL byte"),
    ("name-unsupported", _write("a.kml", b"<kml/>"), {},
     UnsupportedFormatError, "its extension .kml is not a supported format"),
    # Things that are not regular files, and sizes.
    ("loose-shp-without-dbf", _shp_without_dbf, {},
     ParseError, "'lonely.shp' has no lonely.dbf beside it"),
    ("directory", _directory, {}, UnsupportedFormatError, "is a directory, not a file"),
    ("fifo", _fifo, {}, UnsafeFileError, "is not a regular file"),
    ("symlink-to-etc-passwd", _link_to_passwd, {},
     UnsafeFileError, "is a symbolic link to '/etc/passwd', outside its folder"),
    ("oversize", _write("big.csv", b"a,b\n" + b"1,2\n" * (MB // 2)), {"max_file_mb": 1},
     LimitExceededError, "over the 1 MB limit (ingest.max_file_mb in twin.toml)"),
    ("missing", lambda tmp: tmp / "nowhere.geojson", {}, ParseError, "there is no file"),
]
# Empty files of every extension.
CORPUS += [(f"empty{ext}", _write(f"empty{ext}", b""), {}, ParseError, "the file is empty")
           for exts in FORMATS.values() for ext in exts]


@pytest.mark.parametrize(("build", "override", "error", "fragment"),
                         [case[1:] for case in CORPUS], ids=[case[0] for case in CORPUS])
def test_bad_input_is_refused(tmp_path: Path, build: Builder, override: dict[str, float],
                              error: type[Exception], fragment: str) -> None:
    user_path = build(tmp_path)
    with Staging(limits(**override), root=tmp_path) as staging, \
            pytest.raises(error) as caught:
        staging.stage(user_path)
    assert fragment in str(caught.value), str(caught.value)
    assert type(caught.value) is error


def test_zip_problems_are_listed_together(tmp_path: Path) -> None:
    path = _zip_with_shapefile(tmp_path, [("../evil.txt", b"x"), (_symlink_info("l"), b"/"),
                                          ("inner.7z", b"7z")])
    with pytest.raises(UnsafeFileError) as caught:
        inspect_zip(path, LIMITS)
    message = str(caught.value)
    assert "(3 problems)" in message
    for fragment in ("'../evil.txt' escapes", "'l' is a symbolic link", "'inner.7z' is itself"):
        assert fragment in message


def test_zip_bomb_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    path = _zip(tmp_path / "bomb.zip", [("a.dbf", bytes(30 * MB))])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeFileError, match="compression ratio of"):
        extract_zip(path, dest, LIMITS)
    assert list(dest.iterdir()) == []


def test_extract_zip_uses_our_names(tmp_path: Path) -> None:
    parts = _shapefile_parts(tmp_path)
    path = _zip(tmp_path / "a.zip", [
        ("data/Roads.SHP", parts[".shp"]), ("data/Roads.shx", parts[".shx"]),
        ("data/Roads.dbf", parts[".dbf"]), ("__MACOSX/data/._Roads.shp", b"junk"),
        (".DS_Store", b"junk"), ("notes; rm -rf ~.txt", b"hello"), ("data/", b"")])
    dest = tmp_path / "out"
    dest.mkdir()
    extracted = extract_zip(path, dest, LIMITS)
    assert [(p.name, member) for p, member in extracted] == [
        ("p0.shp", "data/Roads.SHP"), ("p0.shx", "data/Roads.shx"), ("p0.dbf", "data/Roads.dbf"),
        ("m003.txt", "notes; rm -rf ~.txt")]
    assert sorted(p.name for p in dest.rglob("*")) == ["m003.txt", "p0.dbf", "p0.shp", "p0.shx"]
    assert (dest / "p0.dbf").read_bytes() == parts[".dbf"]


# -- names and magic, directly -------------------------------------------------------------------

@pytest.mark.parametrize(("name", "fmt"), [
    ("roads.geojson", "geojson"), ("ROADS.JSON", "geojson"), ("a.osm.pbf", "osm-pbf"),
    ("a.pbf", "osm-pbf"), ("a.shp.zip", "shapefile-zip"), ("C:\\data\\a.tif", "geotiff"),
    ("/home/u/报告: 道路.gpkg", "gpkg"), ("x.TAB", "tsv"), ("x.geoparquet", "geoparquet")])
def test_format_from_name(name: str, fmt: str) -> None:
    assert format_from_name(name) == fmt


@pytest.mark.parametrize("name", [
    "/VSIZIP/a.zip/b.shp", "NETCDF:a.nc:var", "MEM:::DATAPOINTER=0", "s3://bucket/a.gpkg",
    "file:///etc/passwd.csv", "a.csv\nb", "vrt://x.tif"])
def test_format_from_name_refuses_gdal_tricks(name: str) -> None:
    with pytest.raises(UnsafeFileError):
        format_from_name(name)


@pytest.mark.parametrize(("fmt", "data"), [
    ("geojson", b"\xef\xbb\xbf \n" + GEOJSON), ("csv", b"\xef\xbb\xbfid,name\n1,\xe5\x8c\xbb\n"),
    ("geoparquet", b"PAR1" + bytes(20) + b"PAR1"), ("osm-pbf", PBF_HEAD + bytes(20)),
    ("shapefile-zip", b"PK\x03\x04" + bytes(40)), ("gpkg", b"SQLite format 3\x00" + bytes(84)),
    ("geotiff", b"II+\x00" + bytes(12))])
def test_check_magic_accepts_the_real_thing(tmp_path: Path, fmt: str, data: bytes) -> None:
    path = tmp_path / "f"
    path.write_bytes(data)
    check_magic(path, fmt)


@pytest.mark.parametrize(("fmt", "data", "fragment"), [
    ("geoparquet", b"PAR1" + bytes(20), "a truncated Parquet file"),
    ("osm-pbf", GEOJSON, "not recognised"), ("gpkg", PBF_HEAD + bytes(20), "OpenStreetMap PBF"),
    ("csv", b"  <?xml version='1.0'?><a/>", "an XML document"),
    ("geojson", b"\x1f\x8b\x08\x00", "a gzip file"),
    ("geotiff", b"MZ\x90\x00\x03\x00\x00\x00", "Windows (PE) executable")])
def test_check_magic_names_what_it_found(tmp_path: Path, fmt: str, data: bytes,
                                         fragment: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(data)
    with pytest.raises(UnsafeFileError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        check_magic(path, fmt)


# -- staging that succeeds ------------------------------------------------------------------------

def test_stage_geojson(tmp_path: Path) -> None:
    user = tmp_path / "病例 cases.geojson"
    user.write_bytes(GEOJSON)
    with Staging(LIMITS, root=tmp_path) as staging:
        staged = staging.stage(user)
        assert staged.path.name == "input.geojson"
        assert staged.path.is_relative_to(staging.dir)
        assert stat.S_IMODE(staging.dir.stat().st_mode) == 0o700
        assert staged.path.read_bytes() == GEOJSON
        assert staged.sha256 == hashlib.sha256(GEOJSON).hexdigest()
        assert (staged.format, staged.source_name, staged.size) == (
            "geojson", "病例 cases.geojson", len(GEOJSON))
        private = staging.dir
    assert not private.exists()


def test_stage_loose_shapefile_with_uppercase_sidecars(tmp_path: Path) -> None:
    parts = _shapefile_parts(tmp_path)
    user = tmp_path / "upload"
    user.mkdir()
    for ext, data in parts.items():
        (user / f"roads{ext.upper() if ext != '.shp' else ext}").write_bytes(data)
    (user / "roads.qix").write_bytes(b"not copied")
    with Staging(LIMITS, root=tmp_path) as staging:
        staged = staging.stage(user / "roads.shp")
        assert staged.path.name == "p0.shp"
        assert sorted(p.name for p in staged.path.parent.iterdir()) == [
            "p0.cpg", "p0.dbf", "p0.prj", "p0.shp", "p0.shx"]
        expected = hashlib.sha256(b"".join(parts[ext] for ext in (
            ".shp", ".shx", ".dbf", ".prj", ".cpg"))).hexdigest()
        assert staged.sha256 == expected
        assert staged.size == sum(len(parts[ext]) for ext in (
            ".shp", ".shx", ".dbf", ".prj", ".cpg"))


def test_stage_zip_with_several_shapefiles_needs_a_layer(tmp_path: Path) -> None:
    a, b = _shapefile_parts(tmp_path, "a"), _shapefile_parts(tmp_path, "b", crs=3857)
    path = _zip(tmp_path / "two.zip", [(f"a{ext}", d) for ext, d in a.items()]
                + [(f"dir/b{ext}", d) for ext, d in b.items()])
    with Staging(LIMITS, root=tmp_path) as staging:
        with pytest.raises(ParseError, match=r"holds 2 shapefiles \(a, b\); choose one with "
                                             r"--layer NAME"):
            staging.stage(path)
        with pytest.raises(ParseError, match="no shapefile named 'c'"):
            staging.stage(path, layer="c")
        staged = staging.stage(path, layer="B")
        assert (staged.format, staged.container, staged.layers) == (
            "shapefile", "shapefile-zip", ["a", "b"])
        assert staged.path.name == "p1.shp"
        assert staged.path.with_suffix(".prj").read_bytes() == b[".prj"]
        assert staged.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert "dir/b.dbf" in staged.members


# -- the sandbox ----------------------------------------------------------------------------------

def sandboxed(target: str, request: dict, workdir: Path, *, memory_mb: float = 2048,
              timeout_s: float = 60) -> dict:
    return run_sandboxed(f"{TARGETS}:{target}", request, workdir=workdir, memory_mb=memory_mb,
                         timeout_s=timeout_s)


def test_sandbox_returns_the_result_from_a_fresh_process(tmp_path: Path) -> None:
    result = sandboxed("echo", {"x": [1, "二"]}, tmp_path)
    assert result["echo"] == {"x": [1, "二"]}
    assert result["pid"] != os.getpid()
    assert Path(result["cwd"]) == tmp_path.resolve()
    assert list(tmp_path.iterdir()) == []  # request, result and log files are removed


def test_sandbox_memory_limit(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match=r"ran out of the 300 MB memory limit "
                                           r"\(ingest.memory_mb"):
        sandboxed("allocate", {"mb": 2048}, tmp_path, memory_mb=300)
    # The same allocation fits under a larger limit: the limit, not the target, refused it.
    assert sandboxed("allocate", {"mb": 100}, tmp_path, memory_mb=1024)["sum"] > 0


def test_sandbox_timeout_kills_the_child(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SandboxError, match=r"cases.csv took longer than the 2 s limit "
                                           r"\(ingest.timeout_s in twin.toml\)"):
        sandboxed("sleep", {"seconds": 60, "source_name": "cases.csv"}, tmp_path, timeout_s=2)
    assert time.monotonic() - started < 2 + 5


def test_sandbox_crash(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match=r"the parser crashed \(SIGSEGV\)") as caught:
        sandboxed("crash", {}, tmp_path)
    assert "Segmentation fault" in str(caught.value)  # the end of the child's stderr


def test_sandbox_reraises_ingest_errors_as_the_same_class(tmp_path: Path) -> None:
    message = "the layer has 12 000 001 features, over the 10 000 000 limit (ingest.max_features)"
    with pytest.raises(LimitExceededError) as caught:
        sandboxed("limit_exceeded", {"message": message}, tmp_path)
    assert type(caught.value) is LimitExceededError
    assert str(caught.value) == message


def test_sandbox_wraps_other_exceptions(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"^could not read cases.csv: ValueError: bad byte at "
                                         r"offset 12$"):
        sandboxed("value_error", {"source_name": "cases.csv"}, tmp_path)


def test_sandbox_blocks_inet_sockets_but_not_unix(tmp_path: Path) -> None:
    result = sandboxed("sockets", {}, tmp_path)
    assert result == {"inet": "PermissionError", "inet6": "PermissionError", "unix": "ok",
                      "socketpair": "ok"}
    # Outside the sandbox the same target creates inet sockets: the filter made the difference.
    from tests.sandbox_targets import sockets
    assert sockets({})["inet"] == "ok"


def test_sandbox_environment_turns_network_off(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROJ_NETWORK", "ON")
    monkeypatch.setenv("GDAL_VRT_ENABLE_PYTHON", "YES")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-the-parser")
    keys = ["PROJ_NETWORK", "GDAL_VRT_ENABLE_PYTHON", "AWS_SECRET_ACCESS_KEY", "GDAL_SKIP",
            "CPL_VSIL_CURL_ALLOWED_EXTENSIONS"]
    result = sandboxed("environment", {"keys": keys}, tmp_path)
    assert result["proj_network"] is False
    env = result["env"]
    assert env["PROJ_NETWORK"] == "OFF"
    assert env["GDAL_VRT_ENABLE_PYTHON"] == "NO"
    assert env["AWS_SECRET_ACCESS_KEY"] is None
    assert env["GDAL_SKIP"] == hardening_env()["GDAL_SKIP"]


def test_gdal_skip_removes_the_dangerous_drivers(tmp_path: Path) -> None:
    inside = sandboxed("gdal_drivers", {}, tmp_path)
    from tests.sandbox_targets import gdal_drivers
    outside = gdal_drivers({})
    skipped = {name.lower() for name in GDAL_SKIP_DRIVERS}
    for library in ("pyogrio", "rasterio"):
        present_outside = {name.lower() for name in outside[library]} & skipped
        present_inside = {name.lower() for name in inside[library]} & skipped
        assert present_inside == set(), (library, present_inside)
        # The list names drivers these wheels really register, and they are gone inside.
        assert len(present_outside) >= 8, (library, present_outside)
    assert {"vrt", "wms", "http", "stacit"} <= {n.lower() for n in outside["rasterio"]}
    assert {"ogr_vrt", "wfs", "oapif", "gdalg"} <= {n.lower() for n in outside["pyogrio"]}
    # The formats ingest reads are still there.
    assert {"GeoJSON", "ESRI Shapefile", "GPKG", "CSV", "OSM"} <= set(inside["pyogrio"])
    assert "GTiff" in inside["rasterio"]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_vrt_files_do_not_open_in_the_sandbox(tmp_path: Path) -> None:
    data = tmp_path / "data.geojson"
    data.write_bytes(GEOJSON)
    vector_vrt = tmp_path / "v.vrt"
    vector_vrt.write_text(f'<OGRVRTDataSource><OGRVRTLayer name="data"><SrcDataSource>{data}'
                          "</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>")
    tif = tmp_path / "t.tif"
    tif.write_bytes(_tiff_bytes(tmp_path))
    raster_vrt = tmp_path / "r.vrt"
    raster_vrt.write_text(
        '<VRTDataset rasterXSize="4" rasterYSize="4"><VRTRasterBand dataType="Byte" band="1">'
        f'<SimpleSource><SourceFilename relativeToVRT="0">{tif}</SourceFilename>'
        "<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>")
    from tests.sandbox_targets import open_raster, open_vector
    # Outside the sandbox GDAL follows both files to the data they name...
    assert open_vector({"path": str(vector_vrt)})["opened"] is True
    assert open_raster({"path": str(raster_vrt)}) == {"opened": True, "driver": "VRT",
                                                      "value": 7}
    # ...inside, neither opens.
    assert sandboxed("open_vector", {"path": str(vector_vrt)}, tmp_path)["opened"] is False
    assert sandboxed("open_raster", {"path": str(raster_vrt)}, tmp_path)["opened"] is False


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP listener on 127.0.0.1 that records every request it receives."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    received.append(conn.recv(4096))
                except OSError:
                    received.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join(2)
    server.close()


def test_geojson_with_a_remote_crs_makes_no_connection(tmp_path: Path,
                                                       listener: tuple[int, list[bytes]]) -> None:
    port, received = listener
    doc = json.loads(GEOJSON)
    doc["crs"] = {"type": "link", "properties": {"href": f"http://127.0.0.1:{port}/crs",
                                                 "type": "proj4"}}
    user = tmp_path / "linked.geojson"
    user.write_text(json.dumps(doc))
    with Staging(LIMITS, root=tmp_path) as staging:
        staged = staging.stage(user)
        try:
            result: dict | str = sandboxed("read_vector", {"path": str(staged.path),
                                                           "source_name": staged.source_name},
                                           staged.path.parent, timeout_s=30)
        except IngestError as exc:  # failing cleanly is fine too
            result = str(exc)
        assert result == {"crs": "EPSG:4326", "rows": 1} or "linked.geojson" in result
        remote = sandboxed("open_vector", {"path": f"/vsicurl/http://127.0.0.1:{port}/a.geojson"},
                           staged.path.parent)
        assert remote["opened"] is False
        time.sleep(0.3)
        assert received == []
        # Control: the same file read outside the sandbox does fetch the CRS, so the listener
        # would have seen the sandbox's request had there been one.
        from tests.sandbox_targets import read_vector
        read_vector({"path": str(staged.path)})
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received and received[0].startswith(b"GET /crs")


def test_staged_zipped_shapefile_reads_in_the_sandbox_with_its_crs(tmp_path: Path) -> None:
    parts = _shapefile_parts(tmp_path, "roads", crs=3857)
    path = _zip(tmp_path / "roads.zip", [(f"Roads{ext.upper()}", d) for ext, d in parts.items()])
    with Staging(LIMITS, root=tmp_path) as staging:
        staged = staging.stage(path)
        result = sandboxed("read_vector", {"path": str(staged.path)}, staged.path.parent)
    # GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR does not hide the .prj beside our .shp.
    assert result == {"crs": "EPSG:3857", "rows": 2}
    assert pyogrio.__gdal_version__ >= (3, 0, 0)
