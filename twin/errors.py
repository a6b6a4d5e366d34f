"""Errors and warnings of the ``twin`` package.

Every error derives from :class:`TwinError` and also from the builtin exception a caller would
naturally catch, so that ``except ValueError`` keeps working.  Messages name the problem, the
offending value and the fix; the command line prints them as they are, without a traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DemoDataError",
    "KindMismatchError",
    "LayerNotFoundError",
    "SchemaError",
    "StoreBusyError",
    "StoreCorruptError",
    "TwinError",
    "TwinWarning",
    "VersionNotFoundError",
    "WorkspaceExistsError",
    "WorkspaceNotFoundError",
]


class TwinError(Exception):
    """Root of every error raised on purpose by citytwin."""

    #: Whether repeating the same action later may succeed (e.g. the database was busy).
    retryable: bool = False


class TwinWarning(UserWarning):
    """Root of citytwin's warnings; the test suite turns them into errors."""


class WorkspaceNotFoundError(TwinError, FileNotFoundError):
    """The path is not an existing citytwin workspace."""


class WorkspaceExistsError(TwinError, FileExistsError):
    """``twin init`` was pointed at a directory that already holds something."""


class StoreCorruptError(TwinError, OSError):
    """The workspace database or a layer file is damaged or missing."""


class StoreBusyError(TwinError, TimeoutError):
    """Another process held the workspace database for too long; try again."""

    retryable = True


class ConfigError(TwinError, ValueError):
    """``twin.toml`` is unreadable or holds invalid values."""


class SchemaError(TwinError, ValueError):
    """Data does not fit the canonical schema of its layer kind."""


class LayerNotFoundError(TwinError, KeyError):
    """No layer of that name exists in the catalog."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class VersionNotFoundError(TwinError, KeyError):
    """The layer exists but has no version of that number."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class KindMismatchError(TwinError, ValueError):
    """A new version was published under a layer name that holds another kind."""


class DemoDataError(TwinError, ValueError):
    """The demo city cannot be generated with the given arguments."""
