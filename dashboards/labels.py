"""Bilingual labels of the dashboards (zh-CN first, English second). No Panel here.

The labels live in the one catalogue, :mod:`twin.i18n` (``DASHBOARD``).
"""

from __future__ import annotations

from twin.i18n import DASHBOARD, KPI_NAMES, pick

__all__ = ["KPI_NAMES", "LABELS", "label"]

#: key -> (zh, en), from the catalogue.
LABELS = DASHBOARD


def label(key: str, lang: str) -> str:
    """The label ``key`` in ``lang`` (``"zh"`` or ``"en"``); the key itself when unknown."""
    return pick(LABELS, key, lang)
