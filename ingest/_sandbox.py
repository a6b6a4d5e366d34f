"""Run a parser in a sandboxed child process.

All parsing of uploaded files runs here, in a fresh interpreter (``python -P -m ingest._sandbox``,
never a fork of the parent), which before importing anything heavy:

- sets resource limits: address space (``memory_mb``), processor time (a backstop to the parent's
  wall-clock timeout), no core dumps, a generous cap on written file sizes;
- dies with its parent (``PR_SET_PDEATHSIG``) so that no parser outlives a killed server;
- applies :func:`hardening_env`: GDAL and PROJ never use the network, dangerous GDAL drivers are
  not registered, no plugins or configuration files are loaded;
- installs a seccomp filter that makes ``socket()`` fail with EPERM for every address family but
  ``AF_UNIX`` (and refuses ``io_uring``, which could create sockets without the ``socket``
  system call). On an architecture other than x86-64 and AArch64 the filter is skipped and only
  the environment hardening applies.

Request, result and errors travel as JSON files in ``workdir`` (stdout is not used: GDAL may
write to it); the child's stdout and stderr go to a log whose last 2 KB explain crashes.

This module imports only the standard library at top level: the child runs it as ``__main__``,
and everything it imports before :func:`_child_main` sets the limits escapes them.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import math
import os
import platform
import resource
import secrets
import signal
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["GDAL_SKIP_DRIVERS", "hardening_env", "install_socket_filter", "run_sandboxed"]

MB = 1024 * 1024
#: Largest file the child may write (RLIMIT_FSIZE): generous, for temporary files and results.
FSIZE_LIMIT_BYTES = 64 * 1024 * MB
#: Processor-time limit (RLIMIT_CPU) = CPU_FACTOR x timeout_s + CPU_MARGIN_S: a backstop only
#: (the parent enforces the wall-clock timeout); the factor leaves room for a few GDAL threads.
CPU_FACTOR = 2
CPU_MARGIN_S = 30
_STDERR_TAIL = 2048

#: GDAL drivers the child does not register (GDAL_SKIP). Names are GDAL short names; GDAL
#: ignores names it does not know, so drivers absent from today's wheels are listed too, to stay
#: closed if a later build includes them. Checked against the drivers that the pyogrio and
#: rasterio wheels register (tests/test_ingest_safety.py::test_gdal_skip_*).
GDAL_SKIP_DRIVERS: tuple[str, ...] = (
    # Fetch data from the network by design: a file could make us send requests.
    "HTTP", "WMS", "WMTS", "WCS", "WFS", "OAPIF", "OGCAPI", "CSW", "PLSCENES", "PLMOSAIC",
    "EEDA", "EEDAI", "DAAS", "NGW", "Elasticsearch", "CouchDB", "Carto", "AmigoCloud",
    "STACIT", "STACTA", "MongoDBv3", "GNMDatabase",
    # Open other files or datasets named inside the file (any path, /vsicurl/ URLs): a small
    # upload could read /etc/passwd or a remote server's data into the twin.
    "VRT", "OGR_VRT", "GTI", "GDALG", "DERIVED", "MRF", "KMLSUPEROVERLAY", "RPFTOC", "ECRGTOC",
    "GNMFile", "PDS", "PDS4", "ISIS2", "ISIS3",
    # Run external programs or load shared libraries named by the input.
    "GPSBabel", "ADBC",
    # Database connection strings (never a path we chose).
    "PostgreSQL", "PostGISRaster", "MySQL", "OCI", "MSSQLSpatial", "ODBC", "HANA",
    # Added in GDAL 3.11; not a format we read, and it tries to read any file.
    "AIVector",
)


def hardening_env() -> dict[str, str]:
    """Environment variables that close GDAL's and PROJ's doors to the network and other files.

    Returns
    -------
    dict[str, str]
        To be applied to ``os.environ`` before GDAL, PROJ or numpy are imported.
    """
    return {
        # PROJ never downloads grids (pyproj and the PROJ bundled in GDAL both read this).
        "PROJ_NETWORK": "OFF",
        # /vsicurl/ and its kin (/vsis3/ …) only fetch URLs ending with an allowed extension:
        # allow one no URL ends with. (A proxy on a closed port would still make traffic.)
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".citytwin-no-network",
        # If a request slips through anyway, give up fast and do not retry.
        "GDAL_HTTP_TIMEOUT": "1",
        "GDAL_HTTP_CONNECTTIMEOUT": "1",
        "GDAL_HTTP_MAX_RETRY": "0",
        # Do not list the file's folder to look for sidecars (.aux.xml, .ovr, .tfw …): only the
        # files we staged are read. Shapefile parts are opened by name and still found.
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        # Neither read nor write .aux.xml side files next to the input.
        "GDAL_PAM_ENABLED": "NO",
        # Drivers that reach the network, open other files, or run programs (see above).
        "GDAL_SKIP": ",".join(GDAL_SKIP_DRIVERS),
        # Defence in depth should the VRT driver be registered after all: no Python pixel
        # functions, no raw access to arbitrary files.
        "GDAL_VRT_ENABLE_PYTHON": "NO",
        "GDAL_VRT_ENABLE_RAWRASTERBAND": "NO",
        # No driver plugins from GDAL_DRIVER_PATH, no gdalrc configuration file from $HOME.
        "GDAL_DRIVER_PATH": "disable",
        "GDAL_CONFIG_FILE": os.devnull,
        # SQLite/GeoPackage: SQL functions and virtual tables in a hostile database may not
        # reach files outside it (the default, made explicit).
        "OGR_SQLITE_ALLOW_EXTERNAL_ACCESS": "NO",
        # A bounded raster block cache: the default (5 % of RAM) can exceed memory_mb.
        "GDAL_CACHEMAX": "256",
        # One thread each for the numeric libraries and few malloc arenas: every thread and arena
        # reserves address space, which counts against RLIMIT_AS.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
        # pyarrow's default allocator reserves large regions up front.
        "ARROW_DEFAULT_MEMORY_POOL": "system",
        # No .pyc files written into the shared source tree by the child.
        "PYTHONDONTWRITEBYTECODE": "1",
    }


# Variables passed on from the parent's environment; everything else (credentials, GDAL_* or
# PYTHON* settings of the caller) is dropped.
_ENV_PASSED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PROJ_DATA", "PROJ_LIB", "GDAL_DATA",
               "SYSTEMROOT")


def _child_env(workdir: Path) -> dict[str, str]:
    env = {key: os.environ[key] for key in _ENV_PASSED if key in os.environ}
    # The project root, so that "package.module:function" targets outside site-packages import;
    # python -P keeps the working directory (the staged upload) off sys.path.
    root = str(Path(__file__).resolve().parents[1])
    env.update({"PYTHONPATH": root, "HOME": str(workdir), "TMPDIR": str(workdir),
                "CPL_TMPDIR": str(workdir)})
    env.update(hardening_env())
    return env


# -- seccomp -----------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_PR_SET_SECCOMP = 22
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_MODE_FILTER = 2
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_EPERM = 1
_AF_UNIX = 1
# Classic BPF opcodes.
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6].
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16  # args[0] low word (little-endian on both arches)

# machine -> (AUDIT_ARCH, socket, io_uring_setup, x32 syscall bit or 0)
_ARCHES = {
    "x86_64": (0xC000003E, 41, 425, 0x40000000),
    "aarch64": (0xC00000B7, 198, 425, 0),
}


class _SockFilter(ctypes.Structure):
    _fields_ = (("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32))


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter)))


def _socket_filter_program(machine: str) -> list[tuple[int, int, int, int]]:
    """The BPF program: EPERM for socket() other than AF_UNIX, for io_uring, for other ABIs.

    Returns ``(code, jt, jf, k)`` tuples; jumps are resolved from labels (None: next one).
    """
    audit_arch, nr_socket, nr_io_uring, x32_bit = _ARCHES[machine]
    source: list[tuple[str, int, str | None, str | None] | str] = [
        ("ld", _OFF_ARCH, None, None),
        ("jeq", audit_arch, None, "deny"),  # a call through another ABI (e.g. i386): deny
        ("ld", _OFF_NR, None, None),
    ]
    if x32_bit:
        source.append(("jge", x32_bit, "deny", None))  # x32 ABI calls carry this bit
    source += [
        ("jeq", nr_socket, "family", None),
        ("jeq", nr_io_uring, "deny", "allow"),
        "family",
        ("ld", _OFF_ARG0, None, None),  # the address family
        ("jeq", _AF_UNIX, "allow", "deny"),
        "allow",
        ("ret", _SECCOMP_RET_ALLOW, None, None),
        "deny",
        ("ret", _SECCOMP_RET_ERRNO | _EPERM, None, None),
    ]
    labels: dict[str, int] = {}
    for item in source:
        if isinstance(item, str):
            labels[item] = sum(not isinstance(x, str) for x in source[:source.index(item)])
    opcodes = {"ld": _LD_W_ABS, "jeq": _JEQ_K, "jge": _JGE_K, "ret": _RET_K}
    program: list[tuple[int, int, int, int]] = []
    for item in source:
        if isinstance(item, str):
            continue
        op, k, jt, jf = item
        here = len(program)
        # A jump offset counts the instructions skipped after this one.
        program.append((opcodes[op], 0 if jt is None else labels[jt] - here - 1,
                        0 if jf is None else labels[jf] - here - 1, k))
    return program


def install_socket_filter() -> bool:
    """Make ``socket()`` fail with EPERM for every family but AF_UNIX, in this process.

    Irreversible; inherited by threads and children created afterwards.

    Returns
    -------
    bool
        False when the architecture is not supported (the filter is then not installed).

    Raises
    ------
    OSError
        The kernel refused the filter.
    """
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if machine not in _ARCHES or struct.calcsize("P") != 8 or not sys.platform.startswith("linux"):
        return False
    instructions = _socket_filter_program(machine)
    array = (_SockFilter * len(instructions))(*(_SockFilter(*ins) for ins in instructions))
    prog = _SockFprog(len(instructions), array)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                           ctypes.c_ulong]
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER,
                  ctypes.cast(ctypes.pointer(prog), ctypes.c_void_p).value or 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_SECCOMP): {os.strerror(err)}")
    return True


# -- parent side ---------------------------------------------------------------------------------

def _fmt_number(value: float) -> str:
    return f"{value:g}"


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _STDERR_TAIL))
            return handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's process group (the child and anything it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


def run_sandboxed(target: str, request: dict[str, Any], *, workdir: Path, memory_mb: float,
                  timeout_s: float,
                  on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run ``target(request)`` in a sandboxed child process and return its result.

    Parameters
    ----------
    target : str
        ``"package.module:function"``; the function takes the request dict and returns a
        JSON-serialisable dict.
    request : dict
        JSON-serialisable; ``request["source_name"]`` (optional) names the file in messages.
    workdir : Path
        The child's working directory (the staged input's folder); request, result and log
        files are written there and removed afterwards.
    memory_mb : float
        Address-space limit of the child (``ingest.memory_mb``).
    timeout_s : float
        Wall-clock limit (``ingest.timeout_s``); the child's process group is killed after it.
    on_progress : callable, optional
        Called with the child's progress (see :mod:`ingest._progress`) whenever it changes,
        polled a few times a second while the child runs.

    Returns
    -------
    dict
        What ``target`` returned.

    Raises
    ------
    SandboxError
        Out of memory or time, or the parser crashed (with the end of its stderr).
    IngestError
        The same :class:`twin.errors.TwinError` subclass, with the same message, that ``target``
        raised.
    ParseError
        ``target`` raised any other exception.
    """
    from ingest.errors import SandboxError

    workdir = Path(workdir).resolve()
    source = str(request.get("source_name") or "the file")
    token = secrets.token_hex(6)
    envelope = workdir / f".sandbox-{token}.json"
    result_path = workdir / f".sandbox-{token}.result.json"
    error_path = workdir / f".sandbox-{token}.error.json"
    log_path = workdir / f".sandbox-{token}.log"
    paths = (envelope, result_path, error_path, log_path)
    envelope.write_text(json.dumps({
        "target": target, "request": request, "memory_mb": memory_mb, "timeout_s": timeout_s,
        "result": result_path.name, "error": error_path.name, "parent_pid": os.getpid(),
    }), encoding="utf-8")
    cmd = [sys.executable, "-P", "-m", "ingest._sandbox", envelope.name]
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=workdir, env=_child_env(workdir),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    close_fds=True, start_new_session=True)
            try:
                returncode = _wait(proc, workdir, timeout_s, on_progress)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise SandboxError(
                    f"reading {source} took longer than the {_fmt_number(timeout_s)} s limit "
                    "(ingest.timeout_s in twin.toml) and was stopped — check that the file is "
                    "not damaged, split it, or raise the limit if it is genuinely this large"
                ) from None
            except BaseException:
                _kill_group(proc)  # e.g. KeyboardInterrupt: never leave a parser running
                raise
            # Anything the parser started in its group goes with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        return _outcome(returncode, result_path, error_path, log_path, source, memory_mb,
                        timeout_s)
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def _wait(proc: subprocess.Popen[bytes], workdir: Path, timeout_s: float,
          on_progress: Callable[[dict[str, Any]], None] | None) -> int:
    """Wait for the child, passing its progress on; TimeoutExpired after ``timeout_s``."""
    if on_progress is None:
        return proc.wait(timeout=timeout_s)
    from ingest._progress import read_progress

    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            return proc.wait(timeout=min(_POLL_S, max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise
        state = read_progress(workdir)
        if state is not None and state != last:
            last = state
            on_progress(state)


_POLL_S = 0.25


def _outcome(returncode: int, result_path: Path, error_path: Path, log_path: Path, source: str,
             memory_mb: float, timeout_s: float) -> dict[str, Any]:
    from ingest.errors import ParseError, SandboxError

    memory_message = (
        f"reading {source} ran out of the {_fmt_number(memory_mb)} MB memory limit "
        "(ingest.memory_mb in twin.toml) and was stopped — split the file, or raise the limit if "
        "it is genuinely this large")
    if returncode == 0 and result_path.exists():
        result = json.loads(result_path.read_text(encoding="utf-8"))
        if not isinstance(result, dict):
            raise SandboxError(f"reading {source}: the parser returned "
                               f"{type(result).__name__}, not a dict (a bug in ingest)")
        return result
    if error_path.exists():
        error = json.loads(error_path.read_text(encoding="utf-8"))
        kind, message = error.get("kind"), str(error.get("message", ""))
        if kind == "memory":
            raise SandboxError(memory_message)
        if kind == "setup":
            raise SandboxError(f"the sandbox for reading {source} could not be set up: {message}")
        if kind == "twin":
            cls = _twin_error_class(str(error.get("module", "")), str(error.get("name", "")))
            if cls is not None:
                try:
                    exc = cls(message)
                except Exception:  # an unusual constructor: fall back to ParseError below
                    exc = None
                if exc is not None:
                    raise exc from None
        raise ParseError(f"could not read {source}: {error.get('name', 'Error')}: {message}")
    tail = _tail(log_path)
    detail = f"; its last output:\n{tail}" if tail else ""
    if returncode < 0:
        signum = -returncode
        try:
            signame = signal.Signals(signum).name
        except ValueError:
            signame = f"signal {signum}"
        if signum == signal.SIGXCPU:
            raise SandboxError(
                f"reading {source} used more processor time than the limit derived from "
                f"ingest.timeout_s ({_fmt_number(timeout_s)} s) and was stopped — check that the "
                "file is not damaged, or raise ingest.timeout_s in twin.toml")
        if signum == signal.SIGXFSZ:
            raise SandboxError(
                f"reading {source} wrote a file larger than {FSIZE_LIMIT_BYTES // (1024 * MB)} GB "
                f"and was stopped — the file is probably hostile or damaged{detail}")
        if signum == signal.SIGKILL:
            raise SandboxError(
                f"the parser reading {source} was killed (SIGKILL), most likely by the system "
                "for using too much memory — lower ingest.memory_mb in twin.toml to stay within "
                f"the machine's memory, or split the file{detail}")
        lowered = tail.lower()
        if signum == signal.SIGABRT and ("bad_alloc" in lowered or "out of memory" in lowered
                                         or "cannot allocate memory" in lowered):
            raise SandboxError(memory_message)
        raise SandboxError(
            f"the parser crashed ({signame}) while reading {source}; the file is probably "
            f"damaged or hostile — export it again from its source{detail}")
    raise SandboxError(f"the parser reading {source} exited unexpectedly (status {returncode}) "
                       f"without a result{detail}")


def _twin_error_class(module: str, name: str) -> type[BaseException] | None:
    """The TwinError subclass ``module.name``, imported only from citytwin's own packages."""
    from twin.errors import TwinError

    if module.split(".")[0] not in ("twin", "ingest", "layers") or not name.isidentifier():
        return None
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None
    if isinstance(cls, type) and issubclass(cls, TwinError):
        return cls
    return None


# -- child side ----------------------------------------------------------------------------------

def _set_limits(memory_mb: float, timeout_s: float) -> None:
    memory = int(memory_mb * MB)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = math.ceil(timeout_s * CPU_FACTOR + CPU_MARGIN_S)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT_BYTES, FSIZE_LIMIT_BYTES))


def _write_json(name: str, payload: dict[str, Any]) -> None:
    # Written whole, then renamed: the parent never reads half a file.
    tmp = Path(f"{name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle)
    tmp.replace(name)


def _error_payload(exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    twin_errors = sys.modules.get("twin.errors")
    if twin_errors is not None and isinstance(exc, twin_errors.TwinError):
        kind = "twin"
    elif isinstance(exc, MemoryError) or any(
            # GDAL reports failed allocations as errors whose message says so.
            phrase in str(exc).lower()
            for phrase in ("out of memory", "cannot allocate memory", "std::bad_alloc",
                           # the loader cannot mmap a library under the address-space limit
                           "failed to map segment")):
        kind = "memory"
    else:
        kind = "other"
    return {"kind": kind, "module": cls.__module__, "name": cls.__qualname__,
            "message": str(exc), "traceback": traceback.format_exc()[-_STDERR_TAIL:]}


def _child_main(argv: list[str]) -> int:
    """Entry point of the child: ``python -P -m ingest._sandbox ENVELOPE.json``."""
    with open(argv[0], encoding="utf-8") as handle:
        envelope = json.load(handle)
    _set_limits(float(envelope["memory_mb"]), float(envelope["timeout_s"]))
    os.environ.update(hardening_env())
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != envelope["parent_pid"]:  # the parent died before prctl
            return 3
    try:
        install_socket_filter()
    except OSError as exc:
        # Fail closed: without the filter the parser could reach the network.
        _write_json(envelope["error"], {
            "kind": "setup", "module": "builtins", "name": "SandboxSetupError",
            "message": f"could not install the network filter ({exc}); parsing refused"})
        return 2
    import faulthandler  # the Python traceback of a crash goes to the log

    faulthandler.enable()
    try:
        module_name, _, func_name = envelope["target"].partition(":")
        func = getattr(importlib.import_module(module_name), func_name)
    except BaseException as exc:
        payload = _error_payload(exc)
        if payload["kind"] == "other":  # not memory: the parser itself could not start
            payload["kind"] = "setup"
            payload["message"] = f"the parser could not start ({payload['name']}: {exc})"
        _write_json(envelope["error"], payload)
        return 1
    try:
        result = func(envelope["request"])
        _write_json(envelope["result"], result)
    except BaseException as exc:  # everything, MemoryError included, goes to the parent
        _write_json(envelope["error"], _error_payload(exc))
        return 1
    return 0


if __name__ == "__main__":
    status = _child_main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: the result is written, and destructors of native libraries
    # (GDAL, PROJ) running at exit are a source of crashes that would hide a good result.
    os._exit(status)
