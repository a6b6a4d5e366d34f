"""Server-side sessions: opened, checked, ended, revoked, limited and expired."""

from __future__ import annotations

import datetime as dt

import pytest

from twin import Workspace
from twin.errors import UserInputError
from twin.sessions import Sessions, session_key
from twin.users import Users

PASSWORD = "sessions-pass-1"


@pytest.fixture
def people(workspace: Workspace) -> Workspace:
    for name, role in (("ann", "planner"), ("bo", "viewer"), ("root", "admin")):
        Users(workspace).add(name, role, PASSWORD, actor="test")
    return workspace


def test_a_session_is_its_users_until_it_ends(people: Workspace) -> None:
    sessions = Sessions(people)
    sid = sessions.open("ann", address="10.0.0.7", user_agent="Chromium")
    assert sessions.check(sid) == "ann"
    assert sessions.check(sid + "x") is None and sessions.check(None) is None
    with people.connect() as conn:
        stored = [r[0] for r in conn.execute("SELECT id_sha256 FROM sessions")]
    assert stored == [session_key(sid)]  # the id itself is never stored
    assert sessions.end(sid, address="10.0.0.7") == "ann"
    assert sessions.check(sid) is None
    assert sessions.end(sid) is None  # a second logout changes nothing
    actions = [r["action"] for r in people.audit_log(10)]
    assert actions[:2] == ["users.logout", "sessions.open"]


def test_a_password_change_or_disable_ends_the_users_sessions(people: Workspace) -> None:
    sessions = Sessions(people)
    keep, other = sessions.open("ann"), sessions.open("ann")
    bo = sessions.open("bo")
    Users(people).change_password("ann", PASSWORD, "sessions-pass-2",
                                  keep_session=session_key(keep))
    assert sessions.check(keep) == "ann" and sessions.check(other) is None
    Users(people).set_password("ann", PASSWORD, actor="root")
    assert sessions.check(keep) is None
    assert sessions.check(bo) == "bo"
    Users(people).disable("bo", actor="root")
    assert sessions.check(bo) is None
    Users(people).enable("bo", actor="root")
    assert sessions.check(bo) is None  # enabling does not bring a revoked session back


def test_at_most_max_sessions_per_user_the_longest_idle_goes(people: Workspace) -> None:
    sessions = Sessions(people)
    sessions.max_per_user = 3
    first = sessions.open("ann")
    with people.connect() as conn:  # the first one was seen long ago
        conn.execute("UPDATE sessions SET last_seen_at = '2000-01-01T00:00:00Z'")
    later = [sessions.open("ann") for _ in range(3)]
    assert sessions.check(first) is None
    assert all(sessions.check(s) == "ann" for s in later)
    assert len(sessions.list("ann")) == 3
    limit = [r for r in people.audit_log(20) if r["action"] == "sessions.revoke"]
    assert limit and limit[0]["detail"]["reason"] == "limit"


def test_an_expired_session_opens_nothing(people: Workspace) -> None:
    sessions = Sessions(people)
    sid = sessions.open("ann")
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat(timespec="seconds")
    with people.connect() as conn:
        conn.execute("UPDATE sessions SET expires_at = ?", (past.replace("+00:00", "Z"),))
    assert sessions.check(sid) is None
    assert sessions.list("ann") == []
    assert [s.active for s in sessions.list("ann", include_ended=True)] == [False]


def test_revoking_by_id_or_user_and_clear_errors(people: Workspace) -> None:
    sessions = Sessions(people)
    a, b = sessions.open("ann"), sessions.open("bo")
    short = next(s.id for s in sessions.list("ann"))
    assert sessions.revoke(session=short, actor="root") == 1
    assert sessions.check(a) is None and sessions.check(b) == "bo"
    with pytest.raises(UserInputError, match="matches 0 open sessions"):
        sessions.revoke(session=short, actor="root")
    with pytest.raises(UserInputError, match="hexadecimal"):
        sessions.revoke(session="zz", actor="root")
    with pytest.raises(UserInputError, match="one session id"):
        sessions.revoke(actor="root")
    assert sessions.revoke(user="bo", actor="root", reason="left") == 1
    assert sessions.check(b) is None
    ended = sessions.list("bo", include_ended=True)[0]
    assert (ended.revoked_by, ended.revoke_reason) == ("root", "left")
