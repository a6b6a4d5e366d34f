"""Targets run by ``ingest._sandbox.run_sandboxed`` in tests/test_ingest_safety.py.

Each takes the request dict and returns a JSON-serialisable dict, as the pipeline does.
"""

from __future__ import annotations

import ctypes
import os
import socket
import time
from pathlib import Path
from typing import Any

__all__ = [
    "allocate",
    "crash",
    "echo",
    "environment",
    "gdal_drivers",
    "limit_exceeded",
    "open_raster",
    "open_vector",
    "read_vector",
    "sleep",
    "sockets",
    "value_error",
]


def echo(request: dict[str, Any]) -> dict[str, Any]:
    """Return the request, with the child's pid and working directory."""
    return {"echo": request, "pid": os.getpid(), "cwd": str(Path.cwd())}


def allocate(request: dict[str, Any]) -> dict[str, Any]:
    """Allocate ``request["mb"]`` MB with numpy and touch it."""
    import numpy as np

    array = np.ones(int(request["mb"]) * 1024 * 1024 // 8, dtype=np.float64)
    return {"sum": float(array.sum())}


def sleep(request: dict[str, Any]) -> dict[str, Any]:
    """Sleep ``request["seconds"]``."""
    time.sleep(float(request["seconds"]))
    return {"slept": True}


def crash(request: dict[str, Any]) -> dict[str, Any]:
    """Read address 0: SIGSEGV."""
    ctypes.string_at(0)
    return {}


def limit_exceeded(request: dict[str, Any]) -> dict[str, Any]:
    """Raise an ingest error, as a reader does for a file over a limit."""
    from ingest.errors import LimitExceededError

    raise LimitExceededError(request["message"])


def value_error(request: dict[str, Any]) -> dict[str, Any]:
    """Raise an exception that is not one of citytwin's."""
    raise ValueError("bad byte at offset 12")


def sockets(request: dict[str, Any]) -> dict[str, Any]:
    """Try to create sockets of several families; report what happened to each."""
    outcome: dict[str, str] = {}
    for name, family in (("inet", socket.AF_INET), ("inet6", socket.AF_INET6),
                         ("unix", socket.AF_UNIX)):
        try:
            with socket.socket(family, socket.SOCK_STREAM):
                outcome[name] = "ok"
        except PermissionError:
            outcome[name] = "PermissionError"
        except OSError as exc:
            outcome[name] = f"OSError {exc.errno}"
    try:
        left, right = socket.socketpair(socket.AF_UNIX)
        left.close()
        right.close()
        outcome["socketpair"] = "ok"
    except OSError as exc:
        outcome["socketpair"] = f"OSError {exc.errno}"
    return outcome


def environment(request: dict[str, Any]) -> dict[str, Any]:
    """The child's view of the network switches: PROJ's, and selected variables."""
    import pyproj.network

    return {"proj_network": pyproj.network.is_network_enabled(),
            "env": {key: os.environ.get(key) for key in request["keys"]}}


def gdal_drivers(request: dict[str, Any]) -> dict[str, Any]:
    """Drivers registered in the GDAL of pyogrio and in the GDAL of rasterio."""
    import pyogrio
    import rasterio

    with rasterio.Env() as env:
        raster = sorted(env.drivers())
    return {"pyogrio": sorted(pyogrio.list_drivers()), "rasterio": raster}


def read_vector(request: dict[str, Any]) -> dict[str, Any]:
    """Read a vector file with pyogrio; report its CRS and feature count."""
    import pyogrio

    frame = pyogrio.read_dataframe(request["path"])
    return {"crs": None if frame.crs is None else frame.crs.to_string(), "rows": len(frame)}


def open_vector(request: dict[str, Any]) -> dict[str, Any]:
    """Open a path with pyogrio; report the driver or the error."""
    import pyogrio

    try:
        info = pyogrio.read_info(request["path"])
    except Exception as exc:  # the point is to see whether it opens
        return {"opened": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"opened": True, "driver": info.get("driver"), "features": int(info["features"])}


def open_raster(request: dict[str, Any]) -> dict[str, Any]:
    """Open a path with rasterio; report the driver or the error."""
    import rasterio

    try:
        with rasterio.open(request["path"]) as src:
            return {"opened": True, "driver": src.driver, "value": int(src.read(1)[0, 0])}
    except Exception as exc:  # the point is to see whether it opens
        return {"opened": False, "error": f"{type(exc).__name__}: {exc}"}
