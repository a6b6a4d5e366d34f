"""Users, roles and permissions of a workspace: who may do what, checked on the server.

Roles are ``viewer`` (a leader looking at the cockpit), ``planner``, ``gis`` and ``admin``.
:data:`PERMISSIONS` maps every action a page or command may take to the roles allowed to take
it; :func:`require` is the one check every server-side action calls. An action missing from the
table raises :class:`ValueError`: a typo never grants access.

Passwords are kept only as salted ``scrypt`` hashes (standard library), stored as the
self-describing string ``scrypt$n$r$p$salt_b64$hash_b64`` so that the cost can be raised later:
old hashes keep verifying with their own parameters and are re-hashed at the next login. Plain
passwords are never stored, logged or put in an audit row.

Every change is one write transaction with an audit row (``users.add``, ``users.passwd``,
``users.role``, ``users.disable``, ``users.enable``, ``users.login``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import asdict, dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from twin import db
from twin.errors import (
    AuthError,
    LastAdminError,
    UnknownUserError,
    UserExistsError,
    UserInputError,
    WeakPasswordError,
)
from twin.sessions import revoke_user_sessions
from twin.store import audit, utc_now

if TYPE_CHECKING:
    from twin.store import Workspace

__all__ = [
    "ACTIONS",
    "MIN_PASSWORD_LENGTH",
    "PERMISSIONS",
    "ROLES",
    "ROLE_LABELS",
    "AuthError",
    "LastAdminError",
    "UnknownUserError",
    "User",
    "UserExistsError",
    "UserInputError",
    "Users",
    "WeakPasswordError",
    "can",
    "check_name",
    "check_password",
    "check_role",
    "hash_password",
    "needs_rehash",
    "require",
    "verify_password",
]

# -- roles and permissions ----------------------------------------------------------------

#: The roles, from least to most privileged.
ROLES: tuple[str, ...] = ("viewer", "grid_worker", "dispatcher", "planner", "gis", "admin")

#: role -> (Chinese, English) label.
ROLE_LABELS: dict[str, tuple[str, str]] = {
    "viewer": ("领导查看", "viewer (leader)"),
    "grid_worker": ("网格员", "grid worker"),
    "dispatcher": ("调度员", "dispatcher"),
    "planner": ("防控规划", "planner"),
    "gis": ("GIS 数据", "GIS"),
    "admin": ("管理员", "administrator"),
}

_ALL = frozenset(ROLES)

#: action -> roles allowed to take it. Add an action here before a page or command uses it.
PERMISSIONS: dict[str, frozenset[str]] = {
    # Seeing: the cockpit, zones and alerts show aggregated counts (resolution 8 or admin
    # units, 1-9 suppressed) and are open to every role.
    "view_cockpit": _ALL,
    "view_zones": _ALL,
    "view_alerts": _ALL,
    # Case data finer than the aggregates is personal: not for viewers.
    "view_fine_cases": frozenset({"planner", "gis", "admin"}),
    # Deciding: propose, edit, activate, lift or downgrade control zones.
    "edit_zones": frozenset({"planner", "admin"}),
    # Data: upload layers, roll a layer back to an earlier version, fuse the fact set.
    "ingest_layers": frozenset({"gis", "admin"}),
    "rollback_layers": frozenset({"gis", "admin"}),
    "run_fuse": frozenset({"gis", "admin"}),
    # Residents' requests (events hold names, phones and addresses): dispatchers and planners
    # see and route every event (/events); grid staff handle their own unit's (/tasks).
    "dispatch_events": frozenset({"dispatcher", "planner", "admin"}),
    "handle_events": frozenset({"grid_worker", "dispatcher", "admin"}),
    # Administration.
    "view_audit": frozenset({"admin"}),
    "manage_users": frozenset({"admin"}),
}

#: action -> (Chinese, English) description, used in refusal messages.
ACTIONS: dict[str, tuple[str, str]] = {
    "view_cockpit": ("查看驾驶舱", "view the cockpit"),
    "view_zones": ("查看管控区域", "view zones"),
    "view_alerts": ("查看预警", "view alerts"),
    "view_fine_cases": ("查看病例明细", "view fine-grained case data"),
    "edit_zones": ("编辑管控区域", "edit zones"),
    "ingest_layers": ("导入图层", "ingest layers"),
    "rollback_layers": ("回滚图层", "roll back layers"),
    "run_fuse": ("融合数据", "fuse the data"),
    "dispatch_events": ("调度网格事件", "dispatch grid events"),
    "handle_events": ("处理本网格事件", "handle their grid unit's events"),
    "view_audit": ("查看审计日志", "view the audit log"),
    "manage_users": ("管理用户", "manage users"),
}
assert set(ACTIONS) == set(PERMISSIONS)


def _check_action(action: str) -> frozenset[str]:
    try:
        return PERMISSIONS[action]
    except (KeyError, TypeError):
        raise ValueError(f"unknown action {action!r}; known actions: "
                         f"{', '.join(sorted(PERMISSIONS))} (add new ones to "
                         "twin.users.PERMISSIONS)") from None


def check_role(role: str) -> str:
    """Return ``role`` if it is one of :data:`ROLES`, else raise :class:`UserInputError`."""
    if role not in ROLES:
        raise UserInputError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    return role


def can(role: str, action: str) -> bool:
    """Whether ``role`` may take ``action``.

    Raises
    ------
    ValueError
        For an unknown action or role (a typo must not grant access).
    """
    allowed = _check_action(action)
    check_role(role)
    return role in allowed


def require(user: User | None, action: str) -> User:
    """Return ``user`` if it may take ``action``; otherwise raise :class:`AuthError`.

    ``user`` is the one loaded for this request (:meth:`Users.get`); ``None`` means nobody is
    logged in.

    Raises
    ------
    AuthError
        When nobody is logged in, the user is disabled, or the role may not take the action.
    ValueError
        For an unknown action.
    """
    allowed = _check_action(action)
    what = ACTIONS[action][1]
    if user is None:
        raise AuthError(f"log in to {what}")
    if user.disabled:
        raise AuthError(f"user {user.name} is disabled and may not {what}; ask an administrator")
    if user.role not in allowed:
        roles = ", ".join(r for r in ROLES if r in allowed)
        raise AuthError(f"role {user.role} may not {what} (allowed: {roles}); ask an "
                        "administrator")
    return user


# -- names and passwords ------------------------------------------------------------------

#: Passwords shorter than this are refused.
MIN_PASSWORD_LENGTH = 8
_MAX_PASSWORD_LENGTH = 1024

# Letters, digits, '_', '.', '-' and CJK ideographs; not starting with '-' or '.' (a name must
# never look like a command-line option or a hidden file).
_NAME = re.compile(r"[A-Za-z0-9_\u3400-\u4dbf\u4e00-\u9fff][A-Za-z0-9_.\-\u3400-\u4dbf"
                   r"\u4e00-\u9fff]{0,63}")


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid user name, else raise :class:`UserInputError`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UserInputError(
            f"invalid user name {name!r}: use 1-64 letters, digits, Chinese characters, '_', "
            "'.' or '-', not starting with '.' or '-' (e.g. zhang.wei or 张伟)")
    return name


def check_password(password: str) -> str:
    """Return ``password`` if it is acceptable, else raise :class:`WeakPasswordError`."""
    if not isinstance(password, str):
        raise WeakPasswordError("the password must be text")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(f"the password is too short ({len(password)} characters); use "
                                f"at least {MIN_PASSWORD_LENGTH}, a passphrase of several "
                                "words is best")
    if len(password) > _MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(f"the password is too long ({len(password)} characters); use "
                                f"at most {_MAX_PASSWORD_LENGTH}")
    return password


#: Cost parameters of new hashes: raise them here; old hashes are upgraded at the next login.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
# Bounds on parameters read back from the database, so a tampered row cannot make a login
# allocate gigabytes or run for minutes.
_MAX_MEM = 256 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + 1024 * 1024
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen,
                          maxmem=maxmem)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R,
                  p: int = SCRYPT_P) -> str:
    """Hash ``password`` with a fresh random salt: ``scrypt$n$r$p$salt_b64$hash_b64``."""
    check_password(password)
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, n, r, p, _KEY_BYTES)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    """The parameters, salt and key of a stored hash, or ``None`` if it is malformed."""
    parts = stored.split("$") if isinstance(stored, str) else []
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return None
    if (n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16
            or 128 * r * (n + p) > _MAX_MEM or len(salt) < 8 or not 16 <= len(key) <= 64):
        return None
    return n, r, p, salt, key


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored hash; a malformed or tampered hash never does."""
    parsed = _parse(stored)
    if parsed is None or not isinstance(password, str) or len(password) > _MAX_PASSWORD_LENGTH:
        return False
    n, r, p, salt, key = parsed
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(key)), key)


def needs_rehash(stored: str) -> bool:
    """Whether the stored hash uses weaker parameters than new hashes would."""
    parsed = _parse(stored)
    if parsed is None:
        return True
    n, r, p, salt, key = parsed
    return (n < SCRYPT_N or r < SCRYPT_R or p < SCRYPT_P or len(salt) < _SALT_BYTES
            or len(key) < _KEY_BYTES)


@cache
def _dummy_hash() -> str:
    """A hash no password matches, verified when the user does not exist (same timing)."""
    return hash_password(secrets.token_urlsafe(32))


# -- users --------------------------------------------------------------------------------

_LOGIN_FAILED = "wrong user name or password"


@dataclass(frozen=True)
class User:
    """A user as stored, without the password hash."""

    name: str
    role: str
    created_at: str
    updated_at: str
    disabled: bool
    last_login_at: str | None

    @property
    def role_zh(self) -> str:
        return ROLE_LABELS[self.role][0]

    def can(self, action: str) -> bool:
        """Whether this user may take ``action`` (disabled users may take none)."""
        return can(self.role, action) and not self.disabled

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["role_zh"] = self.role_zh
        return data


def _user(row: sqlite3.Row) -> User:
    return User(name=row["name"], role=row["role"], created_at=row["created_at"],
                updated_at=row["updated_at"], disabled=bool(row["disabled"]),
                last_login_at=row["last_login_at"])


class Users:
    """The users of a workspace.

    ``actor`` of a change is either a :class:`User` (a logged-in person, e.g. on a web page:
    re-read from the database and required to hold ``manage_users``) or a string naming a
    trusted local operator (the ``twin users`` command, run with access to the workspace
    files). Either way the change leaves an audit row naming the actor.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def _transaction(self, conn: sqlite3.Connection) -> Any:
        return db.write_transaction(conn, timeout=self.workspace.config.busy_timeout_s)

    @staticmethod
    def _row(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
        return conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()

    def _existing(self, conn: sqlite3.Connection, name: str) -> sqlite3.Row:
        row = self._row(conn, name)
        if row is None:
            raise UnknownUserError(f"no user named {name!r}; see `twin users WORKSPACE list` "
                                   "or add one with `twin users WORKSPACE add NAME --role R`")
        return row

    def _actor(self, conn: sqlite3.Connection, actor: User | str, action: str) -> str:
        """Check the actor inside the transaction and return the name for the audit row."""
        if isinstance(actor, User):
            row = self._row(conn, actor.name)
            require(None if row is None else _user(row), action)
            return actor.name
        if not isinstance(actor, str) or not actor.strip():
            raise UserInputError("name who makes the change: actor must be a user or a "
                                  "non-empty name")
        return actor

    @staticmethod
    def _check_admin_left(conn: sqlite3.Connection, name: str) -> None:
        left = conn.execute("SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0 "
                            "AND name != ?", (name,)).fetchone()[0]
        if not left:
            raise LastAdminError(f"{name} is the last active administrator; add or enable "
                                 "another admin first")

    # -- reading ------------------------------------------------------------------------
    def get(self, name: str) -> User:
        """The user called ``name`` (load it afresh for every request before :func:`require`).

        Raises
        ------
        UnknownUserError
            When there is no such user.
        """
        with self.workspace.connect() as conn:
            return _user(self._existing(conn, name))

    def list(self) -> list[User]:
        """Every user, by name."""
        with self.workspace.connect() as conn:
            return [_user(r) for r in conn.execute("SELECT * FROM users ORDER BY name")]

    # -- changes ------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str, *, actor: User | str) -> User:
        """Add a user.

        Raises
        ------
        UserInputError
            For an invalid name or role, or a too short password (:class:`WeakPasswordError`).
        UserExistsError
            When the name is taken.
        AuthError
            When ``actor`` is a user who may not manage users.
        """
        check_name(name)
        check_role(role)
        password_hash = hash_password(password)
        with self.workspace.connect() as conn, self._transaction(conn):
            who = self._actor(conn, actor, "manage_users")
            if self._row(conn, name) is not None:
                raise UserExistsError(f"a user named {name!r} already exists; pick another "
                                      "name, or change that user with `twin users WORKSPACE "
                                      "role|passwd NAME`")
            now = utc_now()
            conn.execute("INSERT INTO users (name, role, password_hash, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?)", (name, role, password_hash, now, now))
            audit(conn, actor=who, action="users.add", target=name, detail={"role": role})
            return _user(self._existing(conn, name))

    def set_password(self, name: str, password: str, *, actor: User | str) -> User:
        """Give ``name`` a new password (an administrator's reset)."""
        password_hash = hash_password(password)
        with self.workspace.connect() as conn, self._transaction(conn):
            who = self._actor(conn, actor, "manage_users")
            self._existing(conn, name)
            conn.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?",
                         (password_hash, utc_now(), name))
            audit(conn, actor=who, action="users.passwd", target=name, detail={})
            revoke_user_sessions(conn, name, actor=who, reason="password")
            return _user(self._existing(conn, name))

    def change_password(self, name: str, old_password: str, new_password: str, *,
                        keep_session: str | None = None) -> User:
        """A user changes their own password, proving the old one first.

        Every other session of the user is revoked; ``keep_session`` (the hash of the
        session making the change) stays open.

        Raises
        ------
        AuthError
            With the generic login message when ``old_password`` is wrong.
        """
        self.authenticate(name, old_password, record_login=False)
        password_hash = hash_password(new_password)
        with self.workspace.connect() as conn, self._transaction(conn):
            conn.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?",
                         (password_hash, utc_now(), name))
            audit(conn, actor=name, action="users.passwd", target=name,
                   detail={"self": True})
            revoke_user_sessions(conn, name, actor=name, reason="password", keep=keep_session)
            return _user(self._existing(conn, name))

    def set_role(self, name: str, role: str, *, actor: User | str) -> User:
        """Change the role of ``name``; the last active administrator cannot be demoted."""
        check_role(role)
        with self.workspace.connect() as conn, self._transaction(conn):
            who = self._actor(conn, actor, "manage_users")
            row = self._existing(conn, name)
            if row["role"] == role:
                return _user(row)
            if row["role"] == "admin" and not row["disabled"]:
                self._check_admin_left(conn, name)
            conn.execute("UPDATE users SET role = ?, updated_at = ? WHERE name = ?",
                         (role, utc_now(), name))
            audit(conn, actor=who, action="users.role", target=name,
                   detail={"from": row["role"], "to": role})
            return _user(self._existing(conn, name))

    def disable(self, name: str, *, actor: User | str) -> User:
        """Refuse every further login and action of ``name`` (kept for the audit trail)."""
        return self._set_disabled(name, True, actor)

    def enable(self, name: str, *, actor: User | str) -> User:
        """Undo :meth:`disable`."""
        return self._set_disabled(name, False, actor)

    def _set_disabled(self, name: str, disabled: bool, actor: User | str) -> User:
        with self.workspace.connect() as conn, self._transaction(conn):
            who = self._actor(conn, actor, "manage_users")
            row = self._existing(conn, name)
            if bool(row["disabled"]) == disabled:
                return _user(row)
            if disabled and row["role"] == "admin":
                self._check_admin_left(conn, name)
            conn.execute("UPDATE users SET disabled = ?, updated_at = ? WHERE name = ?",
                         (int(disabled), utc_now(), name))
            audit(conn, actor=who, action="users.disable" if disabled else "users.enable",
                   target=name, detail={})
            if disabled:
                revoke_user_sessions(conn, name, actor=who, reason="disabled")
            return _user(self._existing(conn, name))

    # -- login --------------------------------------------------------------------------
    def authenticate(self, name: str, password: str, *, record_login: bool = True,
                     address: str = "") -> User:
        """The user whose name and password these are; records the login.

        Unknown names, wrong passwords and disabled users all fail with the same message and
        about the same time, so a failed login never tells whether the name exists. A hash
        with weaker parameters than today's is replaced on success.

        Raises
        ------
        AuthError
            ``wrong user name or password``.
        """
        dummy = _dummy_hash()  # computed once per process, before the lookup either way
        row = None
        if isinstance(name, str) and _NAME.fullmatch(name):
            with self.workspace.connect() as conn:
                row = self._row(conn, name)
        ok = verify_password(password, row["password_hash"] if row else dummy)
        if row is None or not ok or row["disabled"]:
            raise AuthError(_LOGIN_FAILED)
        if not record_login:
            return _user(row)
        rehash = hash_password(password) if needs_rehash(row["password_hash"]) else None
        with self.workspace.connect() as conn, self._transaction(conn):
            current = self._row(conn, name)
            # Disabled, removed or given a new password since the check: refuse, change nothing.
            if (current is None or current["disabled"]
                    or current["password_hash"] != row["password_hash"]):
                raise AuthError(_LOGIN_FAILED)
            conn.execute("UPDATE users SET last_login_at = ? WHERE name = ?", (utc_now(), name))
            if rehash is not None:
                conn.execute("UPDATE users SET password_hash = ? WHERE name = ?",
                             (rehash, name))
            detail: dict[str, Any] = {"address": address} if address else {}
            if rehash:
                detail["rehashed"] = True
            audit(conn, actor=name, action="users.login", target=name, detail=detail)
            return _user(self._existing(conn, name))
