"""Errors and warnings of the ``twin`` package.

Every error derives from :class:`TwinError` and also from the builtin exception a caller would
naturally catch, so that ``except ValueError`` keeps working.  Messages name the problem, the
offending value and the fix; the command line prints them as they are, without a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from twin.zones.merge import Conflicts

__all__ = [
    "AuthError",
    "CellError",
    "ConfigError",
    "DateError",
    "DemoDataError",
    "EventInputError",
    "EventNotFoundError",
    "EventTransitionError",
    "FactsNotFoundError",
    "FeaturesError",
    "ForecastError",
    "FuseError",
    "InvalidTokenError",
    "KindMismatchError",
    "LastAdminError",
    "LayerNotFoundError",
    "NoZonesError",
    "OutputError",
    "RiskError",
    "SchemaError",
    "StoreBusyError",
    "StoreCorruptError",
    "SupplyError",
    "TwinError",
    "TwinWarning",
    "UnknownTokenError",
    "UnknownUserError",
    "UserExistsError",
    "UserInputError",
    "VersionNotFoundError",
    "WeakPasswordError",
    "WorkspaceExistsError",
    "WorkspaceNotFoundError",
    "ZoneConflictError",
    "ZoneError",
    "ZoneMergeConflict",
    "ZoneNotFoundError",
    "os_reason",
]


class TwinError(Exception):
    """Root of every error raised on purpose by citytwin."""

    #: Whether repeating the same action later may succeed (e.g. the database was busy).
    retryable: bool = False
    #: The message in Chinese, for errors people meet on the pages (None: English only).
    zh: str | None = None

    def __init__(self, *args: object, zh: str | None = None) -> None:
        super().__init__(*args)
        if zh is not None:
            self.zh = zh

    def text(self, lang: str) -> str:
        """The message in ``lang`` ("zh" or "en"; English where no Chinese one was given)."""
        return self.zh if lang == "zh" and self.zh else str(self)


class TwinWarning(UserWarning):
    """Root of citytwin's warnings; the test suite turns them into errors."""


# -- workspace and store ---------------------------------------------------------------------
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

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class KindMismatchError(TwinError, ValueError):
    """A new version was published under a layer name that holds another kind."""


class DemoDataError(TwinError, ValueError):
    """The demo city cannot be generated with the given arguments."""


# -- values given on the command line or to the API ------------------------------------------
class DateError(TwinError, ValueError):
    """A date given by a person (an option, an argument) is not a calendar date."""


class CellError(TwinError, ValueError):
    """A value given as an H3 cell is not one (not hexadecimal, or not a valid index)."""


class OutputError(TwinError, OSError):
    """A result (CSV, GeoJSON, export, a new workspace) cannot be written where it was asked
    to go: its folder is missing or is a file, or may not be written to."""


def os_reason(exc: OSError) -> str:
    """Why an ``OSError`` happened, in words a user can act on (for a message's middle)."""
    where = exc.filename if exc.filename is not None else "the path"
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return f"{where} is a file, not a folder"
    if isinstance(exc, PermissionError):
        return f"you may not write to {where}"
    if isinstance(exc, FileNotFoundError):
        return f"{where} does not exist"
    return f"{exc.strerror or exc}"


# -- users and roles (twin.users) -------------------------------------------------------------
class AuthError(TwinError, PermissionError):
    """Login failed, or the user's role may not take the action."""


class UserInputError(TwinError, ValueError):
    """A user name, role or password is not acceptable."""


class WeakPasswordError(UserInputError):
    """The password is too short (or too long)."""


class UserExistsError(TwinError, ValueError):
    """A user of that name already exists."""


class UnknownUserError(TwinError, KeyError):
    """No user of that name exists (never raised by a login: see ``Users.authenticate``)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class LastAdminError(TwinError, ValueError):
    """The change would leave the workspace without an active administrator."""


# -- API tokens and OGC API Features (twin.tokens, twin.features) -----------------------------
class InvalidTokenError(AuthError):
    """A request's token is unknown, malformed or revoked (HTTP 401)."""


class UnknownTokenError(UserInputError, KeyError):
    """No token has that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class FeaturesError(UserInputError):
    """A request the collections cannot answer (unknown collection, bad parameter): HTTP 400
    or 404 (``not_found``)."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


# -- facts, fusion and risk ------------------------------------------------------------------
class FuseError(TwinError, ValueError):
    """The workspace's layers cannot be fused as they are."""


class FactsNotFoundError(TwinError, LookupError):
    """The workspace has no fused facts yet, or not for the level asked."""


class RiskError(TwinError, ValueError):
    """A risk request that cannot be answered (unknown level, bad date, bad parameters)."""


class ForecastError(RiskError):
    """A forecast or backtest request that cannot be answered (level, dates, horizon)."""


# -- zones and supply ------------------------------------------------------------------------
class ZoneError(TwinError, ValueError):
    """A zone edit with an invalid value (tier, status, cells, reason...)."""


class ZoneNotFoundError(TwinError, KeyError):
    """No zone (or no version of it) with that id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ZoneConflictError(TwinError, ValueError):
    """The zone was saved by someone else since the version an edit was based on.

    ``changes`` lists the versions saved in between as ``(version, author, created_at,
    reason)``; ``current`` is the version to reload.
    """

    def __init__(self, message: str, *, zone_id: str, expected: int, current: int,
                 changes: list[tuple[int, str, str, str]]) -> None:
        super().__init__(message)
        self.zone_id = zone_id
        self.expected = expected
        self.current = current
        self.changes = changes


class ZoneMergeConflict(ZoneConflictError):  # noqa: N818 - the name the editor API uses
    """A merge-aware save met changes that clash with the edit (:func:`twin.zones.save_edit`).

    Both sides changed the same thing differently: a cell one side adds and the other removed,
    or tier, status or ``valid_from`` set to different values. ``conflicts`` is the
    :class:`twin.zones.Conflicts` found, ``current_version`` (also ``current``) the version
    the edit met, ``changes`` the versions saved since its base as ``(version, author,
    created_at, reason)``. Nothing was written; choose mine or theirs per kind to save.
    """

    def __init__(self, message: str, *, zone_id: str, expected: int, current: int,
                 changes: list[tuple[int, str, str, str]], conflicts: Conflicts) -> None:
        super().__init__(message, zone_id=zone_id, expected=expected, current=current,
                         changes=changes)
        self.current_version = current
        self.conflicts = conflicts


class NoZonesError(TwinError, LookupError):
    """Zone-level planning was asked for but the workspace has no zones yet."""


class EventTransitionError(TwinError, ValueError):
    """An event was asked to move in a way its state machine does not allow."""


class EventInputError(TwinError, ValueError):
    """A request or an import file with a value intake cannot use (category, place, time)."""


class EventNotFoundError(TwinError, KeyError):
    """No event with that id or reference."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SupplyError(TwinError, ValueError):
    """A supply or gap request with an invalid value (level, tier, horizon)."""
