"""The privacy rule for case data (design.md, "Security and privacy"), read from ``twin.toml``.

Case data is personal. Viewers (leaders) see case counts aggregated to H3 resolution
``privacy.viewer_resolution`` (8 by default) or to admin units, and counts from 1 to
``privacy.suppress_below - 1`` (9 by default) as ``"<N"``; only authorised roles see finer
detail. Every place that shows a case count to a viewer goes through this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from twin import grid
from twin.errors import ConfigError

__all__ = ["PrivacyPolicy", "suppress_count", "suppress_counts"]


def suppress_count(count: int, below: int) -> str:
    """``"0"`` for zero, ``"<below"`` for 1 to ``below - 1``, the number otherwise."""
    return f"<{below}" if 0 < count < below else f"{count:d}"


def suppress_counts(values: Any, below: int) -> list[str]:
    """:func:`suppress_count` of each value (rounded; NaN counts as 0)."""
    counts = np.rint(np.nan_to_num(np.asarray(values, dtype=float), nan=0.0)).astype(np.int64)
    return [suppress_count(int(c), below) for c in np.atleast_1d(counts)]


@dataclass(frozen=True)
class PrivacyPolicy:
    """What viewers may see of case counts."""

    viewer_resolution: int = 8
    suppress_below: int = 10

    @classmethod
    def from_config(cls, config: Any) -> PrivacyPolicy:
        """The ``[privacy]`` section of a workspace configuration."""
        section = config["privacy"]
        res, below = int(section["viewer_resolution"]), int(section["suppress_below"])
        if not 0 <= res <= 15:
            raise ConfigError(f"privacy.viewer_resolution must be an H3 resolution (0-15), "
                              f"got {res}")
        if below < 1:
            raise ConfigError(f"privacy.suppress_below must be at least 1, got {below}")
        return cls(res, below)

    def aggregate(self, frame: pd.DataFrame, *, value: str = "cases") -> pd.DataFrame:
        """Case counts per cell as a viewer may see them.

        ``frame`` has ``cell`` (uint64, any resolution at least ``viewer_resolution``) and
        ``value``; the result has one row per cell of ``viewer_resolution`` with the true
        count (for colouring by class only), ``display`` (suppressed text) and
        ``suppressed``.
        """
        cells = frame["cell"].to_numpy(dtype=np.uint64)
        counts = pd.to_numeric(frame[value], errors="coerce").fillna(0).to_numpy()
        if len(cells):
            cells = grid.cell_parents(cells, self.viewer_resolution)
        out = (pd.DataFrame({"cell": cells, value: counts})
               .groupby("cell", sort=True)[value].sum().reset_index())
        out["cell"] = out["cell"].astype(np.uint64)
        out[value] = np.rint(out[value]).astype(np.int64)
        out["display"] = suppress_counts(out[value], self.suppress_below)
        out["suppressed"] = (out[value] > 0) & (out[value] < self.suppress_below)
        return out
