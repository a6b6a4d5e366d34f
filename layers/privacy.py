"""The cockpit's privacy rule for case data (design.md, "Security and privacy").

Viewers see case counts aggregated to H3 resolution 8 (or coarser) or to admin units, and
counts of 1-9 are shown as ``"<10"``; only authorised roles see finer detail.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from layers.errors import LayerInputError, PrivacyError
from twin import grid
from twin.privacy import suppress_counts

__all__ = ["SMALL_COUNT", "VIEWER_RESOLUTION", "aggregate_cases_for_viewers",
           "suppress_small_counts"]

#: Counts below this (and above zero) are suppressed.
SMALL_COUNT = 10
#: The finest H3 resolution viewers may see case counts at.
VIEWER_RESOLUTION = 8


def suppress_small_counts(values: Any, below: int = SMALL_COUNT) -> list[str]:
    """Display strings of counts: ``"0"`` for zero, ``"<10"`` for 1-9, the number otherwise.

    Non-integral values are rounded first (counts); NaN shows as ``"0"``
    (:func:`twin.privacy.suppress_counts`).
    """
    return suppress_counts(values, below)


def aggregate_cases_for_viewers(frame: pd.DataFrame, *, value: str = "cases",
                                resolution: int = VIEWER_RESOLUTION,
                                below: int = SMALL_COUNT) -> pd.DataFrame:
    """Case counts a viewer may see, one row per resolution-``resolution`` cell or admin unit.

    ``frame`` has a ``cell`` column (uint64, any resolution ≥ ``resolution``) or a ``code``
    column (admin units, already coarse), and the count column ``value``. Returns
    ``cell``/``code``, ``value`` (the true count, for colouring by class only), ``display``
    (suppressed text) and ``suppressed`` (bool). ``resolution`` finer than 8 is refused.
    """
    if value not in frame.columns:
        raise LayerInputError(f"no column {value!r} to aggregate")
    if resolution > VIEWER_RESOLUTION:
        raise PrivacyError(f"viewers may see case counts at resolution {VIEWER_RESOLUTION} or "
                           f"coarser, not {resolution}")
    counts = pd.to_numeric(frame[value], errors="coerce").fillna(0)
    if "cell" in frame.columns:
        cells = frame["cell"].to_numpy(dtype=np.uint64)
        res = grid.cell_resolution(cells)
        if len(cells) and int(res.min()) < resolution:
            raise LayerInputError(f"cells of resolution {int(res.min())} are coarser than "
                                  f"{resolution}")
        parents = grid.cell_parents(cells, resolution)
        out = (pd.DataFrame({"cell": parents, value: counts.to_numpy()})
               .groupby("cell", sort=True)[value].sum().reset_index())
        out["cell"] = out["cell"].astype(np.uint64)
    elif "code" in frame.columns:
        out = (pd.DataFrame({"code": frame["code"].astype(str), value: counts.to_numpy()})
               .groupby("code", sort=True)[value].sum().reset_index())
    else:
        raise LayerInputError("case counts need a 'cell' or 'code' column")
    out[value] = np.rint(out[value]).astype(np.int64)
    out["display"] = suppress_counts(out[value], below)
    out["suppressed"] = (out[value] > 0) & (out[value] < below)
    return out
