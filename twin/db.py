"""The workspace's SQLite database: connections, schema and write transactions.

The database runs in WAL mode with ``synchronous=FULL`` so that a committed transaction
survives a crash, and readers never wait for a writer. Writers take the write lock at the start
(``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for another process; past that they raise
the retryable :class:`~twin.errors.StoreBusyError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from twin.errors import StoreBusyError, StoreCorruptError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "check_schema", "connect", "create_schema", "migrate",
           "write_transaction"]

#: Steps that upgrade an existing database, in order: ``MIGRATIONS[i]`` takes a database of
#: layout ``i + 1`` to layout ``i + 2``. Append here (never edit) when the layout changes; new
#: databases get ``_SCHEMA`` followed by every migration.
MIGRATIONS: list[str] = [
    # 2: zones (twin.zones): the zone row holds only its current version; versions are append-only.
    """
    CREATE TABLE zones (
        id              TEXT PRIMARY KEY,
        name            TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        current_version INTEGER NOT NULL
    );
    CREATE TABLE zone_versions (
        zone_id    TEXT NOT NULL REFERENCES zones(id),
        version    INTEGER NOT NULL,
        tier       TEXT NOT NULL,
        status     TEXT NOT NULL,
        valid_from TEXT NOT NULL,
        author     TEXT NOT NULL,
        reason     TEXT NOT NULL,
        cells      BLOB NOT NULL,
        outline    BLOB,
        created_at TEXT NOT NULL,
        PRIMARY KEY (zone_id, version)
    )
    """,
    # 3: alert history (twin.alerts): one row per rule, place and data date.
    """
    CREATE TABLE alerts (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        key        TEXT NOT NULL UNIQUE,
        rule       TEXT NOT NULL,
        severity   TEXT NOT NULL,
        place      TEXT NOT NULL,
        data_date  TEXT NOT NULL,
        message_zh TEXT NOT NULL,
        message_en TEXT NOT NULL,
        data       TEXT NOT NULL,
        raised_at  TEXT NOT NULL
    )
    """,
    # 4: users and roles (twin.users): passwords only as salted scrypt hashes.
    """
    CREATE TABLE users (
        name          TEXT PRIMARY KEY,
        role          TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL,
        disabled      INTEGER NOT NULL DEFAULT 0,
        last_login_at TEXT
    )
    """,
    # 5: API tokens of other departments' systems (twin.tokens): only the secret's SHA-256.
    """
    CREATE TABLE tokens (
        name          TEXT PRIMARY KEY,
        role          TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL UNIQUE,
        created_at    TEXT NOT NULL,
        created_by    TEXT NOT NULL,
        revoked_at    TEXT,
        last_used_at  TEXT
    )
    """,
    # 6: layer metadata kept by GIS staff (twin.catalog).
    """
    CREATE TABLE layer_meta (
        layer          TEXT PRIMARY KEY REFERENCES layers(name),
        title_zh       TEXT NOT NULL DEFAULT '',
        title_en       TEXT NOT NULL DEFAULT '',
        department     TEXT NOT NULL DEFAULT '',
        contact        TEXT NOT NULL DEFAULT '',
        description_zh TEXT NOT NULL DEFAULT '',
        description_en TEXT NOT NULL DEFAULT '',
        licence        TEXT NOT NULL DEFAULT '',
        refresh_hours  REAL,
        updated_at     TEXT NOT NULL,
        updated_by     TEXT NOT NULL
    )
    """,
    # 7: failed logins per account name and per client address (twin.throttle).
    """
    CREATE TABLE login_throttle (
        key             TEXT PRIMARY KEY,
        failures        INTEGER NOT NULL,
        last_failure_at TEXT NOT NULL
    )
    """,
    # 8: server-side login sessions (twin.sessions): only the session id's SHA-256.
    """
    CREATE TABLE sessions (
        id_sha256     TEXT PRIMARY KEY,
        user          TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        last_seen_at  TEXT NOT NULL,
        expires_at    TEXT NOT NULL,
        address       TEXT NOT NULL DEFAULT '',
        user_agent    TEXT NOT NULL DEFAULT '',
        revoked_at    TEXT,
        revoked_by    TEXT,
        revoke_reason TEXT
    );
    CREATE INDEX sessions_user ON sessions (user, revoked_at);
    """,
    # 9: grid staff and residents' requests (twin.events). The event row keeps where it is and
    # a copy of its current state (for queues); the state comes from event_steps, which is
    # append-only (triggers refuse updates and deletes).
    """
    CREATE TABLE grid_staff (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        unit       TEXT NOT NULL,
        name       TEXT NOT NULL,
        phone      TEXT NOT NULL DEFAULT '',
        role       TEXT NOT NULL,
        user       TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX grid_staff_unit ON grid_staff (unit);
    CREATE INDEX grid_staff_user ON grid_staff (user);
    CREATE TABLE events (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        ref            TEXT UNIQUE,
        channel        TEXT NOT NULL,
        category       TEXT NOT NULL,
        priority       TEXT NOT NULL,
        description    TEXT NOT NULL DEFAULT '',
        address        TEXT NOT NULL DEFAULT '',
        building_id    TEXT,
        reporter       TEXT NOT NULL DEFAULT '',
        phone          TEXT NOT NULL DEFAULT '',
        lng            REAL NOT NULL,
        lat            REAL NOT NULL,
        cell           INTEGER NOT NULL,
        grid_code      TEXT,
        community_code TEXT,
        street_code    TEXT,
        district_code  TEXT,
        zone_id        TEXT,
        zone_tier      TEXT,
        reported_at    TEXT NOT NULL,
        due_at         TEXT NOT NULL,
        duplicate_of   INTEGER REFERENCES events(id),
        state          TEXT NOT NULL,
        level          TEXT NOT NULL,
        unit           TEXT,
        resolved_at    TEXT,
        closed_at      TEXT,
        updated_at     TEXT NOT NULL,
        created_by     TEXT NOT NULL
    );
    CREATE INDEX events_open ON events (state, due_at);
    CREATE INDEX events_grid ON events (grid_code, state);
    CREATE INDEX events_caller ON events (phone, category, reported_at);
    CREATE TABLE event_steps (
        event_id INTEGER NOT NULL REFERENCES events(id),
        seq      INTEGER NOT NULL,
        action   TEXT NOT NULL,
        actor    TEXT NOT NULL,
        at       TEXT NOT NULL,
        note     TEXT NOT NULL DEFAULT '',
        unit     TEXT,
        PRIMARY KEY (event_id, seq)
    );
    CREATE TRIGGER event_steps_append_only_u BEFORE UPDATE ON event_steps
    BEGIN SELECT RAISE(ABORT, 'event_steps is append-only'); END;
    CREATE TRIGGER event_steps_append_only_d BEFORE DELETE ON event_steps
    BEGIN SELECT RAISE(ABORT, 'event_steps is append-only'); END;
    """,
]

#: Version of the database layout, kept in ``PRAGMA user_version``.
SCHEMA_VERSION = 1 + len(MIGRATIONS)

_SCHEMA = """
CREATE TABLE layers (
    name            TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    current_version INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE TABLE layer_versions (
    layer         TEXT NOT NULL REFERENCES layers(name),
    version       INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    file          TEXT NOT NULL UNIQUE,
    format        TEXT NOT NULL,
    file_sha256   TEXT NOT NULL,
    file_bytes    INTEGER NOT NULL,
    source_name   TEXT,
    source_sha256 TEXT,
    source_crs    TEXT,
    row_count     INTEGER NOT NULL,
    content_key   TEXT,
    minx REAL, miny REAL, maxx REAL, maxy REAL,
    created_at    TEXT NOT NULL,
    author        TEXT NOT NULL,
    note          TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (layer, version)
);
CREATE INDEX layer_versions_content ON layer_versions (layer, content_key);
CREATE TABLE fact_sets (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    dir        TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    sources    TEXT NOT NULL,
    summary    TEXT NOT NULL,
    current    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
"""


def connect(path: Path, *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open the workspace database in autocommit mode with WAL and full sync.

    Raises
    ------
    StoreCorruptError
        When the file is not a SQLite database.
    """
    conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        conn.close()
        if _is_busy(exc):
            raise _busy(path, timeout) from None
        raise StoreCorruptError(
            f"{path} is not a readable citytwin database ({exc}); restore it from a backup "
            "or create a new workspace with `twin init`"
        ) from None
    if mode.lower() != "wal":  # pragma: no cover - only on file systems without shared memory
        conn.close()
        raise StoreCorruptError(f"{path} cannot use WAL mode (got {mode!r}); keep the "
                                "workspace on a local disk")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables of a new workspace database."""
    with write_transaction(conn, timeout=0.0):
        for script in (_SCHEMA, *MIGRATIONS):
            _execute_script(conn, script)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _execute_script(conn: sqlite3.Connection, script: str) -> None:
    # One statement at a time: executescript() would commit the open transaction. A trigger's
    # body holds semicolons, so pieces are joined until they make a complete statement.
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                conn.execute(pending)
            pending = ""
    if pending.strip(" \n;"):
        conn.execute(pending)


def migrate(conn: sqlite3.Connection, *, timeout: float) -> int:
    """Bring an older database up to :data:`SCHEMA_VERSION`; return how many steps ran.

    All steps run in one transaction: a crash leaves the old layout, never half of one.
    """
    with write_transaction(conn, timeout=timeout):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for script in MIGRATIONS[version - 1:]:
            _execute_script(conn, script)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return SCHEMA_VERSION - version


def check_schema(conn: sqlite3.Connection, path: Path) -> int:
    """Refuse a database of another layout or a newer version; return its layout version.

    Raises
    ------
    StoreCorruptError
        When the database is damaged, empty, or from a newer citytwin.
    """
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreCorruptError(f"{path} is damaged ({exc}); restore it from a backup") from None
    if version > SCHEMA_VERSION:
        raise StoreCorruptError(f"{path} was written by a newer citytwin (database layout "
                                f"{version}, this one reads {SCHEMA_VERSION}); upgrade citytwin")
    missing = {"layers", "layer_versions", "fact_sets", "audit"} - tables
    if version < 1 or missing:
        raise StoreCorruptError(f"{path} is not a citytwin database (missing tables: "
                                f"{', '.join(sorted(missing)) or 'none'}); restore it from a "
                                "backup or create a new workspace with `twin init`")
    return version


@contextmanager
def write_transaction(conn: sqlite3.Connection, *, timeout: float) -> Iterator[sqlite3.Connection]:
    """Run the block in one ``BEGIN IMMEDIATE`` transaction; roll back on any error.

    Raises
    ------
    StoreBusyError
        When another process kept the write lock for longer than ``timeout`` seconds.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if _is_busy(exc):
            raise _busy(Path(conn.execute("PRAGMA database_list").fetchone()[2]),
                        timeout) from None
        raise
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:  # pragma: no cover - rare: checkpoint contention
        conn.execute("ROLLBACK")
        if _is_busy(exc):
            raise _busy(Path("twin.db"), timeout) from None
        raise


def _is_busy(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _busy(path: Path, timeout: float) -> StoreBusyError:
    return StoreBusyError(
        f"the workspace database {path} stayed busy for {timeout:g} s because another "
        "process was writing to it; nothing was changed, run the command again (or raise "
        "store.busy_timeout_s in twin.toml)"
    )
