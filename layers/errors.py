"""Errors raised by the layers package."""

from __future__ import annotations

__all__ = ["LayerError", "LayerInputError", "PrivacyError"]


class LayerError(Exception):
    """Base class of the layers package's errors."""


class LayerInputError(LayerError, ValueError):
    """The data given to a layer function lacks a column, has a bad value, or a bad option."""


class PrivacyError(LayerError, ValueError):
    """A request would show case data finer than viewers may see."""
