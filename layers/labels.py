"""Bilingual labels and units of the layers' legends and tooltips: the tables live in the one
catalogue, :mod:`twin.i18n`; this module adds the language check the layer functions use."""

from __future__ import annotations

from layers.errors import LayerInputError
from twin.i18n import (
    FACILITY_KINDS,
    LANGS,
    LEVELS,
    RESOURCES,
    ROAD_CLASSES,
    STATUSES,
    TIERS,
    UNITS,
    pair,
    pick,
)

__all__ = ["FACILITY_KINDS", "LANGS", "LEVELS", "RESOURCES", "ROAD_CLASSES", "STATUSES", "TIERS",
           "UNITS", "check_lang", "pair", "pick"]


def check_lang(lang: str) -> str:
    """``lang`` if it is ``"zh"`` or ``"en"``; otherwise a :class:`LayerInputError`."""
    if lang not in LANGS:
        raise LayerInputError(f"lang must be 'zh' or 'en', not {lang!r}")
    return lang
