"""Server-side login sessions, kept in the workspace database.

A login opens a session: a random id (sent once, in the browser's signed cookie; the database
keeps only its SHA-256), its user, when it was opened and last seen, when it expires, and
the address and browser it came from. Every request and every open page checks it, so a
session ends for good when it is revoked: on logout, when its user's password changes or the
user is disabled, when an administrator revokes it (``twin users WORKSPACE sessions
revoke``), and when its user opens more than ``security.max_sessions_per_user`` sessions (the
longest idle goes). Every process of the server (``--num-procs``) reads the same table.
Opening and revoking are audited with who, when and from where.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import sqlite3
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from twin import db
from twin.errors import StoreBusyError, UserInputError
from twin.store import audit

if TYPE_CHECKING:
    from twin.store import Workspace

__all__ = ["SessionInfo", "Sessions", "revoke_user_sessions", "session_key"]

#: Characters of the id's hash shown as a session's id in listings (enough to pick one).
SHORT_ID = 12
#: ``last_seen_at`` is written at most this often per session (reads stay reads).
_TOUCH_S = 60.0
_MAX_TEXT = 200


def _stamp(when: dt.datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def session_key(session_id: str) -> str:
    """What the database keeps of a session id: its SHA-256 (a leaked copy opens nothing)."""
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    """One session as listed: ``id`` is the first characters of the id's hash."""

    id: str
    user: str
    created_at: str
    last_seen_at: str
    expires_at: str
    address: str
    user_agent: str
    revoked_at: str | None
    revoked_by: str | None
    revoke_reason: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and _parse(self.expires_at) > dt.datetime.now(dt.UTC)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "active": self.active}


def _info(row: sqlite3.Row) -> SessionInfo:
    return SessionInfo(id=row["id_sha256"][:SHORT_ID], user=row["user"],
                       created_at=row["created_at"], last_seen_at=row["last_seen_at"],
                       expires_at=row["expires_at"], address=row["address"],
                       user_agent=row["user_agent"], revoked_at=row["revoked_at"],
                       revoked_by=row["revoked_by"], revoke_reason=row["revoke_reason"])


def revoke_user_sessions(conn: sqlite3.Connection, user: str, *, actor: str, reason: str,
                         keep: str | None = None) -> int:
    """Revoke every open session of ``user`` inside the caller's transaction (audited).

    ``keep`` is the hash of one session to leave open. Returns how many were revoked.
    """
    now = _stamp(dt.datetime.now(dt.UTC))
    cursor = conn.execute(
        "UPDATE sessions SET revoked_at = ?, revoked_by = ?, revoke_reason = ? "
        "WHERE user = ? AND revoked_at IS NULL AND expires_at > ? AND id_sha256 != ?",
        (now, actor, reason, user, now, keep or ""))
    if cursor.rowcount:
        audit(conn, actor=actor, action="sessions.revoke", target=user,
              detail={"sessions": cursor.rowcount, "reason": reason})
    return cursor.rowcount


class Sessions:
    """The login sessions of one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        section = workspace.config["security"]
        self.days = float(section["session_days"])
        self.max_per_user = int(section["max_sessions_per_user"])

    def _transaction(self, conn: sqlite3.Connection) -> Any:
        return db.write_transaction(conn, timeout=self.workspace.config.busy_timeout_s)

    def open(self, user: str, *, address: str = "", user_agent: str = "") -> str:
        """Open a session for ``user`` (already authenticated); returns its id, once.

        When ``user`` already holds ``max_sessions_per_user`` sessions, the longest idle
        ones are revoked to make room (audited).
        """
        session_id = secrets.token_urlsafe(32)
        now = dt.datetime.now(dt.UTC)
        expires = now + dt.timedelta(days=self.days)
        with self.workspace.connect() as conn, self._transaction(conn):
            open_ids = [r[0] for r in conn.execute(
                "SELECT id_sha256 FROM sessions WHERE user = ? AND revoked_at IS NULL "
                "AND expires_at > ? ORDER BY last_seen_at DESC, created_at DESC",
                (user, _stamp(now)))]
            surplus = open_ids[self.max_per_user - 1:]
            for key in surplus:
                conn.execute("UPDATE sessions SET revoked_at = ?, revoked_by = ?, "
                             "revoke_reason = 'limit' WHERE id_sha256 = ?",
                             (_stamp(now), user, key))
            if surplus:
                audit(conn, actor=user, action="sessions.revoke", target=user,
                      detail={"sessions": len(surplus), "reason": "limit",
                              "max_sessions_per_user": self.max_per_user})
            conn.execute(
                "INSERT INTO sessions (id_sha256, user, created_at, last_seen_at, expires_at, "
                "address, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session_key(session_id), user, _stamp(now), _stamp(now), _stamp(expires),
                 address[:_MAX_TEXT], user_agent[:_MAX_TEXT]))
            # Sessions long gone are not kept for ever (the audit keeps the history).
            conn.execute("DELETE FROM sessions WHERE expires_at < ?",
                         (_stamp(now - dt.timedelta(days=self.days)),))
            audit(conn, actor=user, action="sessions.open", target=user,
                  detail={"session": session_key(session_id)[:SHORT_ID],
                          "address": address[:_MAX_TEXT]})
        return session_id

    def check(self, session_id: str | None, *, touch: bool = True) -> str | None:
        """The user of an open session, else None (unknown, revoked, expired, user disabled).

        ``touch`` records it as seen (written at most once a minute per session).
        """
        if not session_id:
            return None
        key = session_key(session_id)
        now = dt.datetime.now(dt.UTC)
        with self.workspace.connect() as conn:
            row = conn.execute(
                "SELECT s.user, s.last_seen_at FROM sessions s JOIN users u ON u.name = s.user "
                "WHERE s.id_sha256 = ? AND s.revoked_at IS NULL AND s.expires_at > ? "
                "AND u.disabled = 0", (key, _stamp(now))).fetchone()
            if row is None:
                return None
            if touch and (now - _parse(row["last_seen_at"])).total_seconds() >= _TOUCH_S:
                try:
                    with self._transaction(conn):
                        conn.execute("UPDATE sessions SET last_seen_at = ? WHERE id_sha256 = ?",
                                     (_stamp(now), key))
                except StoreBusyError:
                    pass  # "last seen" is a courtesy; never fail a request over it
        return str(row["user"])

    def end(self, session_id: str | None, *, address: str = "") -> str | None:
        """Log out: revoke this session (audited); returns its user, or None if not open."""
        if not session_id:
            return None
        key = session_key(session_id)
        now = _stamp(dt.datetime.now(dt.UTC))
        with self.workspace.connect() as conn, self._transaction(conn):
            row = conn.execute("SELECT user FROM sessions WHERE id_sha256 = ? AND "
                               "revoked_at IS NULL", (key,)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE sessions SET revoked_at = ?, revoked_by = ?, "
                         "revoke_reason = 'logout' WHERE id_sha256 = ?", (now, row["user"], key))
            audit(conn, actor=row["user"], action="users.logout", target=row["user"],
                  detail={"session": key[:SHORT_ID], "address": address[:_MAX_TEXT]})
        return str(row["user"])

    def list(self, user: str | None = None, *, include_ended: bool = False
             ) -> list[SessionInfo]:
        """Sessions, newest first: open ones only unless ``include_ended``."""
        sql, args = "SELECT * FROM sessions WHERE 1 = 1", []
        if user:
            sql += " AND user = ?"
            args.append(user)
        if not include_ended:
            sql += " AND revoked_at IS NULL AND expires_at > ?"
            args.append(_stamp(dt.datetime.now(dt.UTC)))
        with self.workspace.connect() as conn:
            rows = conn.execute(sql + " ORDER BY created_at DESC, rowid DESC", args).fetchall()
        return [_info(r) for r in rows]

    def revoke(self, *, session: str | None = None, user: str | None = None,
               actor: str, reason: str = "revoked") -> int:
        """Revoke one session (by the id ``list`` shows) or every session of ``user``.

        Raises
        ------
        UserInputError
            When neither or both are given, or the id matches no open session or several.
        """
        if (session is None) == (user is None):
            raise UserInputError("name one session id (see `twin users WORKSPACE sessions "
                                 "list`) or --user NAME for all of a user's sessions")
        with self.workspace.connect() as conn, self._transaction(conn):
            if user is not None:
                return revoke_user_sessions(conn, user, actor=actor, reason=reason)
            prefix = (session or "").strip().lower()
            if len(prefix) < 6 or any(c not in "0123456789abcdef" for c in prefix):
                raise UserInputError(f"session id {session!r} is not one that `sessions list` "
                                     "shows (at least 6 hexadecimal digits)")
            now = _stamp(dt.datetime.now(dt.UTC))
            rows = conn.execute("SELECT id_sha256, user FROM sessions WHERE id_sha256 LIKE ? "
                                "AND revoked_at IS NULL AND expires_at > ?",
                                (prefix + "%", now)).fetchall()
            if len(rows) != 1:
                raise UserInputError(
                    f"session id {session!r} matches {len(rows)} open sessions; give the id "
                    "exactly as `twin users WORKSPACE sessions list` shows it")
            conn.execute("UPDATE sessions SET revoked_at = ?, revoked_by = ?, revoke_reason = ? "
                         "WHERE id_sha256 = ?", (now, actor, reason, rows[0]["id_sha256"]))
            audit(conn, actor=actor, action="sessions.revoke", target=rows[0]["user"],
                  detail={"session": prefix[:SHORT_ID], "reason": reason, "sessions": 1})
            return 1
