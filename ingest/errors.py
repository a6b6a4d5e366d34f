"""Errors of the ``ingest`` package.

Every error derives from :class:`IngestError` (itself a :class:`twin.errors.TwinError`, so the
command line reports it as one clear line) and from the builtin a caller would catch.
"""

from __future__ import annotations

from twin.errors import TwinError, TwinWarning

__all__ = [
    "IngestError",
    "IngestWarning",
    "LimitExceededError",
    "MappingError",
    "ParseError",
    "SandboxError",
    "SourceNotFoundError",
    "UnsafeFileError",
    "UnsupportedFormatError",
]


class IngestError(TwinError):
    """Root of ingest's errors: the file could not be turned into a layer."""


class IngestWarning(TwinWarning):
    """Root of ingest's warnings."""


class SourceNotFoundError(IngestError, FileNotFoundError):
    """The file (or manifest) to ingest does not exist at the path given."""


class UnsafeFileError(IngestError, ValueError):
    """The file is refused for safety: a hostile archive, a disguised format, a bad name."""


class UnsupportedFormatError(IngestError, ValueError):
    """The file's format is not one ingest reads."""


class LimitExceededError(IngestError, ValueError):
    """The file exceeds a limit of ``[ingest]`` in ``twin.toml`` (size, features, pixels…)."""


class MappingError(IngestError, ValueError):
    """A mapping file (``--mapping``) is unreadable or names fields that do not exist."""


class ParseError(IngestError, ValueError):
    """The file is damaged or not what its name says, and cannot be read."""


class SandboxError(IngestError, RuntimeError):
    """Parsing was stopped: it ran out of memory or time, or the parser crashed."""
