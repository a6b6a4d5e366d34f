"""What the benchmark scripts share: the machine they ran on and a fused demo workspace."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["build_demo", "machine"]


def machine() -> str:
    """The CPU model, its count, the Python version and the system, for the figures' record."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}"


def build_demo(size: str, folder: Path) -> Path:
    """The demo city of ``size`` generated, ingested and fused under ``folder``; its root."""
    from ingest import ingest_manifest
    from twin import Workspace
    from twin.demo import generate_demo_city
    from twin.fuse import fuse

    out = folder / "demo"
    manifest = generate_demo_city(out, size=size)
    ws = Workspace.init(folder / "ws", "基准市", name_en="Bench City",
                        bbox=tuple(manifest["city"]["bbox"]))
    ingest_manifest(ws, out / "manifest.json")
    fuse(ws)
    return ws.root
