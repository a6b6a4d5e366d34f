"""A child process that saves one zone edit and pauses, for the SIGKILL tests.

Usage: python -m tests.zone_child WORKSPACE ZONE_ID CELL POINT

POINT ``transaction`` pauses inside the save's transaction, after the new version's rows are
written and before the commit; ``committed`` pauses after ``save_edit`` returned. Either way
it prints ``READY POINT`` and waits to be killed.
"""

from __future__ import annotations

import importlib
import sys
import time

from twin import Workspace
from twin.zones import ZoneEdit, Zones, save_edit


def _pause(point: str) -> None:
    print(f"READY {point}", flush=True)
    time.sleep(120)
    sys.exit(3)  # never reached when the parent kills us


def main() -> None:
    root, zone_id, cell, point = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    ws = Workspace.open(root)
    if point == "transaction":
        module = importlib.import_module("twin.zones.merge")  # not the merge() function
        original = module._merge_and_write

        def paused(*args, **kwargs):
            result = original(*args, **kwargs)
            _pause(point)
            return result

        module._merge_and_write = paused
    base = Zones(ws).get(zone_id)
    save_edit(ws, zone_id, ZoneEdit(base.version, [cell], []), author="child",
              reason="killed mid-save 保存中被终止")
    _pause(point)


if __name__ == "__main__":
    main()
