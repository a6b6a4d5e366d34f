"""Login throttling, per account name and per client address, kept in the workspace database.

Every failed login counts against the name tried (whether or not such a user exists, so the
answer never tells) and against the address it came from. Past ``free_failures`` a key must
wait before its next attempt is even checked: ``base_delay_s``, doubling with each further
failure up to ``max_delay_s``; at ``lockout_failures`` it is locked for ``lockout_minutes``.
Failures older than ``forget_minutes`` no longer count. A successful login clears its name's
count (not its address's: one good account must not reset an address that is guessing
others). Counts live in the database, so every server process (``--num-procs``) shares them.
Failures and lockouts are audited with the name and the address.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twin import db
from twin.store import audit

if TYPE_CHECKING:
    from twin.store import Workspace

__all__ = ["LoginThrottle", "ThrottlePolicy", "wait_after"]

#: Longest name kept as a key (longer ones are cut: a key, not an identity).
_KEY_CHARS = 80


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures are free, how the wait grows, and when a key is locked."""

    free_failures: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 300.0
    lockout_failures: int = 10
    lockout_minutes: float = 15.0
    forget_minutes: float = 60.0

    @classmethod
    def from_config(cls, config: Any) -> ThrottlePolicy:
        """The ``[security]`` table of ``twin.toml``."""
        section = config["security"]
        return cls(**{k: section[f"login_{k}"] for k in cls.__dataclass_fields__})


def wait_after(failures: int, policy: ThrottlePolicy) -> float:
    """Seconds a key must wait after its ``failures``-th consecutive failure."""
    if failures >= policy.lockout_failures:
        return policy.lockout_minutes * 60.0
    if failures < policy.free_failures:
        return 0.0
    return min(policy.max_delay_s, policy.base_delay_s * 2.0 ** (failures - policy.free_failures))


def _keys(name: str, address: str) -> tuple[str, str]:
    return f"user:{(name or '')[:_KEY_CHARS]}", f"addr:{(address or '')[:_KEY_CHARS]}"


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


class LoginThrottle:
    """The login counts of one workspace."""

    def __init__(self, workspace: Workspace, policy: ThrottlePolicy | None = None) -> None:
        self.workspace = workspace
        self.policy = policy or ThrottlePolicy.from_config(workspace.config)

    def _counts(self, conn: Any, keys: tuple[str, ...], now: dt.datetime
                ) -> dict[str, tuple[int, dt.datetime]]:
        marks = ", ".join("?" for _ in keys)
        rows = conn.execute(f"SELECT key, failures, last_failure_at FROM login_throttle "  # noqa: S608
                            f"WHERE key IN ({marks})", keys).fetchall()
        forget = dt.timedelta(minutes=self.policy.forget_minutes)
        out = {}
        for row in rows:
            last = _parse(row["last_failure_at"])
            if now - last <= forget:
                out[row["key"]] = (int(row["failures"]), last)
        return out

    def wait_s(self, name: str, address: str, *, now: dt.datetime | None = None) -> float:
        """Seconds until ``name`` from ``address`` may try again (0: now)."""
        now = now or dt.datetime.now(dt.UTC)
        with self.workspace.connect() as conn:
            counts = self._counts(conn, _keys(name, address), now)
        waits = [wait_after(n, self.policy) - (now - last).total_seconds()
                 for n, last in counts.values()]
        return max([0.0, *waits])

    def failed(self, name: str, address: str, *, now: dt.datetime | None = None) -> int:
        """Count a failed login; audited. Returns the name's consecutive failures."""
        now = now or dt.datetime.now(dt.UTC)
        stamp = now.isoformat().replace("+00:00", "Z")
        keys = _keys(name, address)
        forget = (now - dt.timedelta(minutes=self.policy.forget_minutes)).isoformat()
        with self.workspace.connect() as conn, db.write_transaction(
                conn, timeout=self.workspace.config.busy_timeout_s):
            counts = self._counts(conn, keys, now)
            for key in keys:
                n = counts.get(key, (0, now))[0] + 1
                conn.execute("INSERT INTO login_throttle (key, failures, last_failure_at) "
                             "VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                             "failures = excluded.failures, "
                             "last_failure_at = excluded.last_failure_at", (key, n, stamp))
                counts[key] = (n, now)
            # Names tried at random must not grow the table without end.
            conn.execute("DELETE FROM login_throttle WHERE last_failure_at < ?",
                         (forget.replace("+00:00", "Z"),))
            failures = counts[keys[0]][0]
            detail = {"address": address, "failures": failures,
                      "address_failures": counts[keys[1]][0]}
            audit(conn, actor=name[:_KEY_CHARS] or "-", action="users.login_failed",
                  target=name[:_KEY_CHARS], detail=detail)
            if max(failures, counts[keys[1]][0]) == self.policy.lockout_failures:
                audit(conn, actor=name[:_KEY_CHARS] or "-", action="users.locked",
                      target=name[:_KEY_CHARS],
                      detail={**detail, "minutes": self.policy.lockout_minutes})
        return failures

    def refused(self, name: str, address: str, wait_s: float) -> None:
        """Audit an attempt refused unchecked because its key must still wait."""
        with self.workspace.connect() as conn, db.write_transaction(
                conn, timeout=self.workspace.config.busy_timeout_s):
            audit(conn, actor=name[:_KEY_CHARS] or "-", action="users.login_throttled",
                  target=name[:_KEY_CHARS], detail={"address": address,
                                                    "wait_s": round(wait_s, 1)})

    def succeeded(self, name: str) -> None:
        """Clear ``name``'s count after a successful login."""
        with self.workspace.connect() as conn, db.write_transaction(
                conn, timeout=self.workspace.config.busy_timeout_s):
            conn.execute("DELETE FROM login_throttle WHERE key = ?", (_keys(name, "")[0],))
