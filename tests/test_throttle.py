"""Login throttling: back-off and lockout per name and per address, shared in the database."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin import Workspace
from twin.throttle import LoginThrottle, ThrottlePolicy, wait_after

T0 = dt.datetime(2026, 3, 15, 8, 0, tzinfo=dt.UTC)
POLICY = ThrottlePolicy(free_failures=3, base_delay_s=2.0, max_delay_s=60.0,
                        lockout_failures=6, lockout_minutes=10.0, forget_minutes=30.0)


def test_the_wait_grows_by_doubling_then_locks() -> None:
    assert [wait_after(n, POLICY) for n in range(8)] == [0, 0, 0, 2, 4, 8, 600, 600]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 40))
def test_the_wait_never_shrinks_with_more_failures(n: int) -> None:
    policy = ThrottlePolicy()
    assert wait_after(n + 1, policy) >= wait_after(n, policy) >= 0


def test_failures_count_per_name_and_per_address(workspace: Workspace) -> None:
    throttle = LoginThrottle(workspace, POLICY)
    for _ in range(3):
        assert throttle.wait_s("plan", "10.0.0.1", now=T0) == 0
        throttle.failed("plan", "10.0.0.1", now=T0)
    assert throttle.wait_s("plan", "10.0.0.1", now=T0) == pytest.approx(2.0)
    assert throttle.wait_s("plan", "10.0.0.9", now=T0) == pytest.approx(2.0)  # the name
    assert throttle.wait_s("someone", "10.0.0.1", now=T0) == pytest.approx(2.0)  # the address
    assert throttle.wait_s("someone", "10.0.0.9", now=T0) == 0
    assert throttle.wait_s("plan", "10.0.0.1", now=T0 + dt.timedelta(seconds=2)) == 0


def test_a_lockout_is_audited_and_ends(workspace: Workspace) -> None:
    throttle = LoginThrottle(workspace, POLICY)
    for _ in range(6):
        throttle.failed("nosuchuser", "10.0.0.2", now=T0)
    assert throttle.wait_s("nosuchuser", "10.0.0.3", now=T0) == pytest.approx(600)
    assert throttle.wait_s("nosuchuser", "10.0.0.3", now=T0 + dt.timedelta(minutes=10)) == 0
    with workspace.connect() as conn:
        actions = [r[0] for r in conn.execute(
            "SELECT action FROM audit WHERE target = 'nosuchuser' ORDER BY id")]
    assert actions.count("users.login_failed") == 6 and actions.count("users.locked") == 1


def test_success_clears_the_name_but_not_the_address(workspace: Workspace) -> None:
    throttle = LoginThrottle(workspace, POLICY)
    for _ in range(4):
        throttle.failed("plan", "10.0.0.4", now=T0)
    throttle.succeeded("plan")
    assert throttle.wait_s("plan", "10.0.0.5", now=T0) == 0
    assert throttle.wait_s("other", "10.0.0.4", now=T0) > 0


def test_old_failures_are_forgotten_and_pruned(workspace: Workspace) -> None:
    throttle = LoginThrottle(workspace, POLICY)
    for i in range(5):
        throttle.failed(f"guess{i}", "10.0.0.6", now=T0)
    later = T0 + dt.timedelta(minutes=31)
    assert throttle.wait_s("guess0", "10.0.0.6", now=later) == 0
    throttle.failed("plan", "10.0.0.7", now=later)
    with workspace.connect() as conn:
        keys = {r[0] for r in conn.execute("SELECT key FROM login_throttle")}
    assert keys == {"user:plan", "addr:10.0.0.7"}


def test_the_policy_comes_from_twin_toml(workspace: Workspace) -> None:
    policy = ThrottlePolicy.from_config(workspace.config)
    assert policy == ThrottlePolicy()


def test_a_lockout_below_the_free_failures_is_refused_in_twin_toml() -> None:
    from twin.config import load_config_text, render_config
    from twin.errors import ConfigError

    text = (render_config("示范市").replace("login_lockout_failures = 10",
                                             "login_lockout_failures = 3")
            .replace("login_base_delay_s = 1.0", "login_base_delay_s = -1.0"))
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    message = str(info.value)
    assert "'security.login_base_delay_s' must be positive" in message
    assert "'security.login_lockout_failures' must be above" in message
