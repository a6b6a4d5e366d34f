"""Element-wise geometry work on both cores: shapely (GEOS) and PROJ release the GIL.

A parse is one process on a 2-core machine; decoding, validating and reprojecting millions of
geometries are element-wise, so splitting the array in contiguous chunks over a few threads
takes them close to twice as fast (measured on the megacity's 2.4 M buildings: WKB decoding
4.7 s → 2.6 s, reprojection 4.8 s → 2.7 s). Small arrays stay on one thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["WORKERS", "chunked"]

#: Threads for element-wise work: the cores, at most 4 (each reserves address space, which the
#: sandbox's memory limit counts).
WORKERS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                     else os.cpu_count() or 1))
_MIN_PER_WORKER = 50_000


def chunked(func: Callable[[np.ndarray], np.ndarray], values: np.ndarray) -> np.ndarray:
    """``func(values)`` for an element-wise ``func``, computed in contiguous chunks in threads.

    ``func`` must return one element per input element, independent of the others, and be
    safe to call from several threads at once (build a PROJ transformer inside it).
    """
    workers = min(WORKERS, len(values) // _MIN_PER_WORKER)
    if workers < 2:
        return func(values)
    bounds = np.linspace(0, len(values), workers + 1).astype(int)
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda i: func(values[bounds[i]:bounds[i + 1]]), range(workers)))
    return np.concatenate(parts)
