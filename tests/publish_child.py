"""A child process that publishes to a workspace, for the crash and concurrency tests.

Usage: python -m tests.publish_child WORKSPACE MODE [ARGS]

MODE ``pause-<point>`` publishes one version and stops at <point> (printing ``READY <point>``)
until the parent kills it:

- ``write``: half of the Parquet bytes are on disk under tmp/;
- ``renamed``: the complete file was renamed into layers/ and fsynced, not yet in the catalog;
- ``transaction``: inside the catalog transaction, after the version row was inserted;
- ``committed``: after the transaction committed.

MODE ``loop CHILD COUNT`` publishes COUNT versions of layer "shared" (each with CHILD*1000 + i
rows) and prints a JSON summary.
"""

from __future__ import annotations

import io
import json
import sys
import time

import twin.db
import twin.store
from tests.conftest import make_buildings
from twin import Workspace
from twin.errors import StoreBusyError


def _pause(point: str) -> None:
    print(f"READY {point}", flush=True)
    time.sleep(120)
    sys.exit(3)  # never reached when the parent kills us


def _install_pause(point: str) -> None:
    if point == "write":
        original_write = twin.store._write_parquet

        def half_write(frame, fh):
            buffer = io.BytesIO()
            original_write(frame, buffer)
            data = buffer.getvalue()
            fh.write(data[: len(data) // 2])
            fh.flush()
            _pause(point)

        twin.store._write_parquet = half_write
    elif point == "renamed":
        original_fsync_dir = twin.store._fsync_dir

        def fsync_then_pause(path):
            original_fsync_dir(path)
            if path.parent.name == "layers":
                _pause(point)

        twin.store._fsync_dir = fsync_then_pause
    elif point == "transaction":
        original_connect = twin.db.connect

        def traced_connect(path, **kwargs):
            conn = original_connect(path, **kwargs)
            conn.set_trace_callback(
                lambda sql: _pause(point) if sql.startswith("UPDATE layers") else None)
            return conn

        twin.db.connect = traced_connect
    elif point == "committed":
        def version_then_pause(self, name, version=None):
            _pause(point)

        twin.store.Workspace.version = version_then_pause
    else:
        raise SystemExit(f"unknown point {point!r}")


def main(argv: list[str]) -> None:
    path, mode, *rest = argv
    if mode.startswith("pause-"):
        ws = Workspace.open(path)
        _install_pause(mode.removeprefix("pause-"))
        ws.publish("buildings", "buildings", make_buildings(int(rest[0]) if rest else 2000,
                                                            seed=99), note="child")
        raise SystemExit("publish finished without pausing")
    if mode == "loop":
        child, count = int(rest[0]), int(rest[1])
        ws = Workspace.open(path)
        published, busy = [], 0
        for i in range(count):
            rows = child * 1000 + i
            while True:
                try:
                    entry = ws.publish("shared", "buildings", make_buildings(rows, seed=rows),
                                       author=f"child{child}", note=f"{child}/{i}")
                    break
                except StoreBusyError:  # retryable by contract
                    busy += 1
                    time.sleep(0.01)
            published.append({"version": entry.version, "rows": rows, "note": entry.note})
        print(json.dumps({"child": child, "published": published, "busy": busy}))
        return
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
