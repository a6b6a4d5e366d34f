"""Progress of an ingest, from the sandboxed child to the parent, through a small JSON file.

The child (:class:`Progress`) replaces ``progress.json`` in its work directory at each stage
and, while reading, every few batches; the parent (:func:`read_progress`) polls it while it
waits and hands it to the caller's ``on_progress(stage, done, total)``: the command line draws
a bar, the catalog page a progress bar with the stage's label. ``total`` is 0 when unknown (a
GeoJSON file does not say how many features it holds until it has been read).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["PROGRESS_FILE", "STAGES", "Progress", "read_progress"]

PROGRESS_FILE = "progress.json"

#: Stages in order, with their labels (zh, en).
STAGES: dict[str, tuple[str, str]] = {
    "staging": ("复制与校验", "copying and checking"),
    "reading": ("读取记录", "reading records"),
    "geometries": ("检查几何", "checking geometries"),
    "mapping": ("字段映射", "mapping fields"),
    "reprojecting": ("坐标转换", "reprojecting"),
    "validating": ("数据校验", "validating"),
    "writing": ("写出结果", "writing the result"),
    "publishing": ("发布", "publishing"),
}
_INTERVAL_S = 0.2


class Progress:
    """The child's side: ``stage(name)`` when a stage starts, ``rows(done, total)`` within it."""

    def __init__(self, workdir: Path | None) -> None:
        self.path = Path(workdir) / PROGRESS_FILE if workdir is not None else None
        self.current = ""
        self._last = 0.0

    def stage(self, name: str, done: int = 0, total: int = 0) -> None:
        self.current = name
        self._write(done, total)

    def rows(self, done: int, total: int = 0) -> None:
        if time.monotonic() - self._last >= _INTERVAL_S:
            self._write(done, total)

    def _write(self, done: int, total: int) -> None:
        if self.path is None:
            return
        self._last = time.monotonic()
        tmp = self.path.with_suffix(".tmp")
        with contextlib.suppress(OSError):  # progress is a courtesy, never a failure
            tmp.write_text(json.dumps({"stage": self.current, "done": int(done),
                                       "total": int(total)}), encoding="utf-8")
            tmp.replace(self.path)


def read_progress(workdir: Path) -> dict[str, Any] | None:
    """The child's last progress, or None when it has written none (or is mid-write)."""
    try:
        data = json.loads((Path(workdir) / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("stage") in STAGES else None
