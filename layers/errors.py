"""Errors of the ``layers`` package.

Every error derives from :class:`LayerError` (itself a :class:`twin.errors.TwinError`, so the
command line and the dashboards report it as one clear message) and from the builtin a caller
would catch.
"""

from __future__ import annotations

from twin.errors import TwinError

__all__ = ["LayerError", "LayerInputError", "PrivacyError"]


class LayerError(TwinError):
    """Root of the layers package's errors."""


class LayerInputError(LayerError, ValueError):
    """The data given to a layer function lacks a column, has a bad value, or a bad option."""


class PrivacyError(LayerError, ValueError):
    """A request would show case data finer than viewers may see."""
