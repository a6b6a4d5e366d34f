"""Users, roles and passwords: hashing, permissions, login, audit and the ``twin users`` CLI."""

from __future__ import annotations

import json
import sqlite3

import click
import pytest
from click.testing import CliRunner

from twin import Workspace, db
from twin.cli import users as users_cli
from twin.cli._common import TwinGroup
from twin.users import (
    PERMISSIONS,
    ROLES,
    AuthError,
    LastAdminError,
    UnknownUserError,
    User,
    UserExistsError,
    UserInputError,
    Users,
    WeakPasswordError,
    can,
    hash_password,
    needs_rehash,
    require,
    verify_password,
)

SECRET = "correct-horse-battery-staple-7f3a"
OTHER = "tr0ub4dor&3-zebra-9c1e"


def _db_bytes(ws: Workspace) -> bytes:
    """The database file and its WAL, as they lie on disk."""
    return b"".join(p.read_bytes() for p in sorted(ws.db_path.parent.glob(ws.db_path.name + "*"))
                    if p.is_file())


def _audit_rows(ws: Workspace) -> list[sqlite3.Row]:
    with ws.connect() as conn:
        return conn.execute("SELECT * FROM audit WHERE action LIKE 'users.%' ORDER BY id")\
            .fetchall()


def _user(role: str, *, disabled: bool = False) -> User:
    return User(name="u", role=role, created_at="", updated_at="", disabled=disabled,
                last_login_at=None)


# -- hashing ------------------------------------------------------------------------------
def test_hash_format_is_salted_and_self_describing() -> None:
    a, b = hash_password(SECRET), hash_password(SECRET)
    assert a != b  # a fresh salt each time
    for stored in (a, b):
        scheme, n, r, p, _salt, _key = stored.split("$")
        assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
        assert SECRET not in stored
    assert verify_password(SECRET, a) and verify_password(SECRET, b)
    assert not verify_password(OTHER, a)
    assert not verify_password(SECRET[:-1], a)
    assert not needs_rehash(a)


def test_parameters_are_read_back_from_the_stored_string() -> None:
    weak = hash_password(SECRET, n=2**10, r=4, p=1)
    assert weak.startswith("scrypt$1024$4$1$")
    assert verify_password(SECRET, weak)
    assert needs_rehash(weak)
    # The same salt and key under other parameters no longer match.
    assert not verify_password(SECRET, weak.replace("$1024$", "$2048$", 1))


@pytest.mark.parametrize("tamper", [
    lambda h: h[:-4] + ("AAAA" if h[-4:] != "AAAA" else "BBBB"),   # key changed
    lambda h: h.replace("scrypt$", "bcrypt$", 1),                   # unknown scheme
    lambda h: h.rsplit("$", 1)[0],                                  # field missing
    lambda h: h.replace("$16384$", "$1000$", 1),                    # n not a power of two
    lambda h: h.replace("$16384$", "$1073741824$", 1),              # absurd cost
    lambda h: h.replace("$8$", "$-8$", 1),                          # negative r
    lambda h: h[:-2] + "!!",                                        # not base64
    lambda h: "",
], ids=["key", "scheme", "fields", "n-pow2", "n-huge", "r-neg", "b64", "empty"])
def test_tampered_hash_is_refused(tamper) -> None:
    stored = hash_password(SECRET)
    assert not verify_password(SECRET, tamper(stored))


def test_short_password_is_refused_with_a_clear_message() -> None:
    with pytest.raises(WeakPasswordError, match=r"too short.*at least 8"):
        hash_password("short")


# -- permissions --------------------------------------------------------------------------
EXPECTED = {
    "viewer": {"view_cockpit", "view_zones", "view_alerts"},
    "grid_worker": {"view_cockpit", "view_zones", "view_alerts", "handle_events"},
    "dispatcher": {"view_cockpit", "view_zones", "view_alerts", "dispatch_events",
                   "handle_events"},
    "planner": {"view_cockpit", "view_zones", "view_alerts", "view_fine_cases", "edit_zones",
                "dispatch_events"},
    "gis": {"view_cockpit", "view_zones", "view_alerts", "view_fine_cases", "ingest_layers",
            "rollback_layers", "run_fuse"},
    "admin": set(PERMISSIONS),
}


@pytest.mark.parametrize("role", ROLES)
def test_permission_table(role: str) -> None:
    allowed = {a for a in PERMISSIONS if can(role, a)}
    assert allowed == EXPECTED[role]
    for action in PERMISSIONS:
        if action in allowed:
            assert require(_user(role), action).role == role
        else:
            with pytest.raises(AuthError, match=f"role {role} may not .*ask an administrator"):
                require(_user(role), action)


def test_refusal_message_names_role_and_action() -> None:
    with pytest.raises(AuthError, match=r"role viewer may not edit zones .*ask an administrator"):
        require(_user("viewer"), "edit_zones")
    with pytest.raises(AuthError, match="log in"):
        require(None, "view_cockpit")
    with pytest.raises(AuthError, match="disabled"):
        require(_user("admin", disabled=True), "view_cockpit")


def test_unknown_action_or_role_never_grants() -> None:
    with pytest.raises(ValueError, match="unknown action 'edit_zone'"):
        can("admin", "edit_zone")
    with pytest.raises(ValueError, match="unknown action"):
        require(_user("admin"), "edit_zone")
    with pytest.raises(ValueError, match="unknown role"):
        can("administrator", "view_cockpit")
    assert not _user("admin", disabled=True).can("view_cockpit")


# -- users in the workspace ----------------------------------------------------------------
def test_users_table_is_migration_four() -> None:
    assert db.SCHEMA_VERSION >= 4
    assert "CREATE TABLE users" in db.MIGRATIONS[2]


def test_add_authenticate_and_audit_without_secrets(workspace: Workspace) -> None:
    users = Users(workspace)
    users.add("alice", "admin", SECRET, actor="root")
    users.add("张伟", "viewer", SECRET, actor="root")
    with workspace.connect() as conn:
        hashes = [r[0] for r in conn.execute("SELECT password_hash FROM users")]
    assert len(set(hashes)) == 2  # same password, different salts

    user = users.authenticate("alice", SECRET)
    assert (user.name, user.role, user.disabled) == ("alice", "admin", False)
    assert user.last_login_at is not None
    assert users.get("张伟").role_zh == "领导查看"
    assert [u.name for u in users.list()] == ["alice", "张伟"]

    users.set_password("张伟", OTHER, actor="root")
    users.set_role("张伟", "planner", actor="alice")
    users.disable("张伟", actor="alice")
    rows = _audit_rows(workspace)
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        ("root", "users.add", "alice"), ("root", "users.add", "张伟"),
        ("alice", "users.login", "alice"), ("root", "users.passwd", "张伟"),
        ("alice", "users.role", "张伟"), ("alice", "users.disable", "张伟")]
    assert json.loads(rows[4]["detail"]) == {"from": "viewer", "to": "planner"}
    assert all(r["at"] for r in rows)

    data = _db_bytes(workspace)
    for secret in (SECRET, OTHER):
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert secret.encode(encoding) not in data


def test_failed_logins_all_look_the_same(workspace: Workspace) -> None:
    users = Users(workspace)
    users.add("bob", "planner", SECRET, actor="root")
    users.add("carol", "gis", SECRET, actor="root")
    users.disable("carol", actor="root")
    messages = set()
    for name, password in [("bob", OTHER), ("nobody", SECRET), ("carol", SECRET),
                           ("bad name!", SECRET), ("bob", "")]:
        with pytest.raises(AuthError) as info:
            users.authenticate(name, password)
        messages.add(str(info.value))
    assert messages == {"wrong user name or password"}
    assert users.get("bob").last_login_at is None
    assert not [r for r in _audit_rows(workspace) if r["action"] == "users.login"]


def test_weak_hash_is_upgraded_at_login(workspace: Workspace) -> None:
    users = Users(workspace)
    users.add("dora", "viewer", SECRET, actor="root")
    with workspace.connect() as conn:
        conn.execute("UPDATE users SET password_hash = ? WHERE name = 'dora'",
                     (hash_password(SECRET, n=2**10),))
    users.authenticate("dora", SECRET)
    with workspace.connect() as conn:
        stored = conn.execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("scrypt$16384$8$1$") and verify_password(SECRET, stored)


def test_refused_changes_have_clear_messages(workspace: Workspace) -> None:
    users = Users(workspace)
    users.add("erin", "admin", SECRET, actor="root")
    with pytest.raises(UserExistsError, match="'erin' already exists"):
        users.add("erin", "viewer", SECRET, actor="root")
    with pytest.raises(UserInputError, match="unknown role 'boss'; choose one of viewer"):
        users.add("frank", "boss", SECRET, actor="root")
    for bad in ("", "a b", "-rf", "x" * 65, "robert'); DROP TABLE users;--", "naïve"):
        with pytest.raises(UserInputError, match="invalid user name"):
            users.add(bad, "viewer", SECRET, actor="root")
    with pytest.raises(WeakPasswordError, match="at least 8"):
        users.add("frank", "viewer", "1234567", actor="root")
    with pytest.raises(UnknownUserError, match="no user named 'ghost'"):
        users.set_role("ghost", "viewer", actor="root")
    with pytest.raises(LastAdminError, match="last active administrator"):
        users.disable("erin", actor="root")
    with pytest.raises(LastAdminError):
        users.set_role("erin", "viewer", actor="root")
    assert [u.name for u in users.list()] == ["erin"]
    assert [r["action"] for r in _audit_rows(workspace)] == ["users.add"]


def test_logged_in_actor_needs_manage_users(workspace: Workspace) -> None:
    users = Users(workspace)
    users.add("gina", "admin", SECRET, actor="root")
    users.add("hank", "planner", SECRET, actor="root")
    hank = users.authenticate("hank", SECRET)
    with pytest.raises(AuthError, match="role planner may not manage users"):
        users.set_role("hank", "admin", actor=hank)
    gina = users.authenticate("gina", SECRET)
    users.add("ivan", "viewer", SECRET, actor=gina)
    # A stale User object does not keep its rights: gina is re-read from the database.
    users.add("judy", "admin", SECRET, actor="root")
    users.set_role("gina", "viewer", actor="root")
    with pytest.raises(AuthError, match="role viewer may not manage users"):
        users.add("karl", "viewer", SECRET, actor=gina)
    # Changing one's own password needs the old one.
    with pytest.raises(AuthError, match="wrong user name or password"):
        users.change_password("hank", OTHER, OTHER + "x")
    users.change_password("hank", SECRET, OTHER)
    assert users.authenticate("hank", OTHER).name == "hank"


# -- command line ---------------------------------------------------------------------------
@pytest.fixture
def cli() -> click.Group:
    group = TwinGroup("twin")
    users_cli.register(group)
    return group


def test_cli_add_from_stdin_and_list_json(cli: click.Group, workspace: Workspace) -> None:
    runner = CliRunner()
    ws = str(workspace.root)
    result = runner.invoke(cli, ["users", ws, "add", "alice", "--role", "admin",
                                 "--password-stdin", "--actor", "ops"], input=SECRET + "\n")
    assert result.exit_code == 0, result.output
    assert "added alice" in result.output and SECRET not in result.output
    result = runner.invoke(cli, ["users", "add", ws, "bob", "--role", "gis",
                                 "--password-stdin", "--json"], input=OTHER + "\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["role"] == "gis"

    result = runner.invoke(cli, ["users", ws, "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [(u["name"], u["role"], u["disabled"]) for u in listed] == [
        ("alice", "admin", False), ("bob", "gis", False)]
    assert all("password_hash" not in u for u in listed)
    text = runner.invoke(cli, ["users", ws, "list"]).output
    assert "管理员 admin" in text and "scrypt" not in text

    users = Users(Workspace.open(workspace.root))
    assert users.authenticate("alice", SECRET).role == "admin"
    assert _audit_rows(workspace)[0]["actor"] == "ops"

    assert runner.invoke(cli, ["users", ws, "role", "bob", "planner"]).exit_code == 0
    assert runner.invoke(cli, ["users", ws, "disable", "bob"]).exit_code == 0
    with pytest.raises(AuthError):
        users.authenticate("bob", OTHER)
    assert runner.invoke(cli, ["users", ws, "enable", "bob"]).exit_code == 0
    assert users.authenticate("bob", OTHER).role == "planner"


def test_cli_interactive_prompt_and_errors(cli: click.Group, workspace: Workspace) -> None:
    runner = CliRunner()
    ws = str(workspace.root)
    # Too short, then a mismatched confirmation, then the real one.
    result = runner.invoke(cli, ["users", ws, "add", "张伟", "--role", "viewer"],
                           input=f"short\n{SECRET}\n{OTHER}\n{SECRET}\n{SECRET}\n")
    assert result.exit_code == 0, result.output
    assert "at least 8" in result.output
    assert Users(workspace).authenticate("张伟", SECRET).role == "viewer"

    result = runner.invoke(cli, ["users", ws, "passwd", "张伟"], input=f"{OTHER}\n{OTHER}\n")
    assert result.exit_code == 0, result.output
    assert Users(workspace).authenticate("张伟", OTHER).name == "张伟"

    result = runner.invoke(cli, ["users", ws, "add", "张伟", "--role", "viewer",
                                 "--password-stdin"], input=SECRET + "\n")
    assert result.exit_code == 1 and "already exists" in result.output
    result = runner.invoke(cli, ["users", ws, "add", "x y", "--role", "viewer",
                                 "--password-stdin"], input=SECRET + "\n")
    assert result.exit_code == 1 and "invalid user name" in result.output
    result = runner.invoke(cli, ["users", ws, "add", "eve", "--role", "boss",
                                 "--password-stdin"], input=SECRET + "\n")
    assert result.exit_code == 2 and "boss" in result.output
    result = runner.invoke(cli, ["users", ws, "add", "eve", "--role", "viewer",
                                 "--password-stdin"], input="\n")
    assert result.exit_code == 2 and "empty line" in result.output
    result = runner.invoke(cli, ["users", ws, "passwd", "ghost", "--password-stdin"],
                           input=SECRET + "\n")
    assert result.exit_code == 1 and "no user named 'ghost'" in result.output
    # There is no way to give a password on the command line.
    result = runner.invoke(cli, ["users", ws, "add", "eve", "--role", "viewer",
                                 "--password", SECRET])
    assert result.exit_code == 2
    assert SECRET.encode() not in _db_bytes(workspace)
