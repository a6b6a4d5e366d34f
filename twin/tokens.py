"""API tokens for other departments' systems: one per department, with a role, revocable.

A GIS client (QGIS, ArcGIS, GDAL's OAPIF driver) sends ``Authorization: Bearer TOKEN``. The
token is 32 random bytes shown once when it is made (``twin tokens WORKSPACE add NAME --role
R``); the workspace keeps only its SHA-256, which is enough for a secret of that entropy (no
password to stretch) and lets a request be matched by one indexed lookup. A revoked token is
refused from the next request on. Every use is an audit row (``tokens.use``) with the path and
the client's address; making and revoking are audited too.

Roles are those of :mod:`twin.users` but ``admin``: a token reads, it never administers.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from twin import db
from twin.errors import InvalidTokenError, UnknownTokenError, UserExistsError, UserInputError
from twin.store import audit, utc_now

if TYPE_CHECKING:
    from twin.store import Workspace

__all__ = ["TOKEN_PREFIX", "TOKEN_ROLES", "InvalidTokenError", "Token", "Tokens",
           "UnknownTokenError"]

#: Roles a token may carry.
TOKEN_ROLES: tuple[str, ...] = ("viewer", "planner", "gis")
#: Every token starts with this, so that a leaked one is recognisable in logs and scanners.
TOKEN_PREFIX = "ctk_"  # noqa: S105 - a public prefix, not a secret
_NAME = re.compile(r"^[\w.-]{1,64}$")


@dataclass(frozen=True)
class Token:
    """A token as stored, without its secret."""

    name: str
    role: str
    created_at: str
    created_by: str
    revoked_at: str | None
    last_used_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "active": self.active}


def _token(row: sqlite3.Row) -> Token:
    return Token(name=row["name"], role=row["role"], created_at=row["created_at"],
                 created_by=row["created_by"], revoked_at=row["revoked_at"],
                 last_used_at=row["last_used_at"])


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class Tokens:
    """The API tokens of a workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def _transaction(self, conn: sqlite3.Connection) -> Any:
        return db.write_transaction(conn, timeout=self.workspace.config.busy_timeout_s)

    def add(self, name: str, role: str, *, actor: str) -> tuple[Token, str]:
        """Make a token for ``name`` (a department or system); return it and its secret.

        The secret is returned once and never stored: give it to the department now.

        Raises
        ------
        UserInputError
            For a malformed name or a role tokens may not have.
        UserExistsError
            When a token of that name exists (revoked or not: names stay unique in the audit).
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise UserInputError(f"token name {name!r} must be 1-64 letters, digits, '_', '.' "
                                 "or '-', e.g. health-bureau")
        if role not in TOKEN_ROLES:
            raise UserInputError(f"a token's role must be one of {', '.join(TOKEN_ROLES)}, "
                                 f"not {role!r}")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.workspace.connect() as conn, self._transaction(conn):
            if conn.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
                raise UserExistsError(f"a token named {name!r} already exists; revoke it and "
                                      "add one under a new name (e.g. health-bureau-2)")
            conn.execute("INSERT INTO tokens (name, role, secret_sha256, created_at, "
                         "created_by) VALUES (?, ?, ?, ?, ?)",
                         (name, role, _digest(secret), utc_now(), actor))
            audit(conn, actor=actor, action="tokens.add", target=name, detail={"role": role})
            row = conn.execute("SELECT * FROM tokens WHERE name = ?", (name,)).fetchone()
        return _token(row), secret

    def list(self) -> list[Token]:
        """Every token, by name, revoked ones included."""
        with self.workspace.connect() as conn:
            return [_token(r) for r in conn.execute("SELECT * FROM tokens ORDER BY name")]

    def revoke(self, name: str, *, actor: str) -> Token:
        """Revoke ``name``: refused from the next request on.

        Raises
        ------
        UnknownTokenError
            When there is no token of that name.
        """
        with self.workspace.connect() as conn, self._transaction(conn):
            row = conn.execute("SELECT * FROM tokens WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UnknownTokenError(f"no token named {name!r}; see `twin tokens WORKSPACE "
                                        "list`")
            if row["revoked_at"] is None:
                conn.execute("UPDATE tokens SET revoked_at = ? WHERE name = ?",
                             (utc_now(), name))
                audit(conn, actor=actor, action="tokens.revoke", target=name, detail={})
            row = conn.execute("SELECT * FROM tokens WHERE name = ?", (name,)).fetchone()
        return _token(row)

    def authenticate(self, secret: str | None, *, path: str = "", address: str = "") -> Token:
        """The active token whose secret is ``secret``; its use is audited.

        Raises
        ------
        InvalidTokenError
            When the secret is missing, malformed, unknown or revoked (one message for all, so
            that a probe learns nothing).
        """
        refused = InvalidTokenError("a valid API token is required: send `Authorization: "
                                    "Bearer TOKEN` with a token from `twin tokens WORKSPACE "
                                    "add`; a revoked token is refused")
        if not secret or not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            raise refused
        digest = _digest(secret)
        with self.workspace.connect() as conn, self._transaction(conn):
            row = conn.execute("SELECT * FROM tokens WHERE secret_sha256 = ?",
                               (digest,)).fetchone()
            if row is not None and row["revoked_at"] is not None:
                # Kept (the transaction commits): someone still uses a revoked token.
                audit(conn, actor=f"token:{row['name']}", action="tokens.refused",
                      target=path, detail={"address": address, "reason": "revoked"})
                row = None
            if row is not None:
                now = utc_now()
                conn.execute("UPDATE tokens SET last_used_at = ? WHERE name = ?",
                             (now, row["name"]))
                audit(conn, actor=f"token:{row['name']}", action="tokens.use", target=path,
                      detail={"address": address, "role": row["role"]})
                row = conn.execute("SELECT * FROM tokens WHERE name = ?",
                                   (row["name"],)).fetchone()
        if row is None:
            raise refused
        return _token(row)
