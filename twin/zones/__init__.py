"""Epidemic control zones: lockdown 封控区, control 管控区, prevention 防范区.

One module per job; this package re-exports their public API, so ``from twin.zones import X``
is the way to use them:

- :mod:`twin.zones.store`: the repository of versioned zones (:class:`Zones`,
  :class:`ZoneVersion`) and the vocabulary of tiers and statuses;
- :mod:`twin.zones.infections`: which cases count as infections for the zone rules;
- :mod:`twin.zones.propose`: zones proposed from the cases (:func:`propose`);
- :mod:`twin.zones.downgrades`: the downgrade rules of the national protocol
  (:func:`downgrades`);
- :mod:`twin.zones.impact`: what a set of cells holds and, for a tier, needs (:func:`impact`);
- :mod:`twin.zones.export`: the diff between versions and GeoJSON / GeoPackage export;
- :mod:`twin.zones.merge`: merge-aware saves of edits made on older versions
  (:class:`ZoneEdit`, :func:`merge`, :func:`save_edit`);
- :mod:`twin.zones.decide`: people's decisions on proposals (:func:`accept`, :func:`reject`).

The system proposes zones (:func:`propose`) and downgrades (:func:`downgrades`); people decide:
a proposal is stored with status ``proposed`` and never applied silently.
"""

from __future__ import annotations

from twin.errors import ZoneConflictError, ZoneError, ZoneMergeConflict, ZoneNotFoundError
from twin.zones.decide import ACCEPT_REASON, REJECT_PREFIX, accept, reject, rejected_proposals
from twin.zones.downgrades import downgrades
from twin.zones.export import diff, export, outline_of
from twin.zones.impact import Impact, active_areas, facts_or_none, impact
from twin.zones.infections import INFECTIONS
from twin.zones.merge import (
    CONFLICT_KINDS,
    SIDES,
    Conflicts,
    SaveResult,
    ZoneEdit,
    merge,
    save_edit,
)
from twin.zones.propose import propose
from twin.zones.store import (
    STATUS_ZH,
    STATUSES,
    TIER_ZH,
    TIERS,
    Zones,
    ZoneVersion,
    as_cells,
)

__all__ = [
    "ACCEPT_REASON", "CONFLICT_KINDS", "INFECTIONS", "REJECT_PREFIX", "SIDES", "STATUSES",
    "STATUS_ZH", "TIERS", "TIER_ZH", "Conflicts", "Impact", "SaveResult", "ZoneConflictError",
    "ZoneEdit", "ZoneError", "ZoneMergeConflict", "ZoneNotFoundError", "ZoneVersion", "Zones",
    "accept", "active_areas", "as_cells", "diff", "downgrades", "export", "facts_or_none",
    "impact", "merge", "outline_of", "propose", "reject", "rejected_proposals", "save_edit",
]
