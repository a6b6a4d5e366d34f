"""``twin users``: add, list and change the people who may log in, and their roles.

Passwords are never taken from the command line (it shows in ``ps`` and shell history): they
are asked for twice on the terminal, or read as one line from standard input with
``--password-stdin`` for scripts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from twin.cli._common import WorkspaceFirstGroup, emit, json_option, table
from twin.sessions import Sessions
from twin.store import Workspace, default_author
from twin.users import ROLE_LABELS, ROLES, User, Users, check_name, check_password

__all__ = ["register"]

_actor_option = click.option(
    "--actor", default=default_author, show_default="your login name",
    help="Who makes the change, for the audit log.")
_stdin_option = click.option(
    "--password-stdin", is_flag=True,
    help="Read the password as one line from standard input instead of asking for it.")


def _check_password_param(value: str) -> str:
    try:
        return check_password(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise click.UsageError("--password-stdin read an empty line; pipe the password "
                                   "in, e.g. `printf '%s\\n' \"$PW\" | twin users WS add …`")
        return password
    return click.prompt("Password 密码", hide_input=True, confirmation_prompt=True,
                        value_proc=_check_password_param)


def _user_text(user: User) -> str:
    state = "disabled 已停用" if user.disabled else "active 有效"
    return f"{user.name}: {user.role_zh} {user.role}, {state}"


@click.group("users", cls=WorkspaceFirstGroup)
def users_cmd() -> None:
    """People who may log in, and their roles: viewer 领导查看, grid_worker 网格员,
    dispatcher 调度员, planner 防控规划, gis GIS 数据,
    admin 管理员. Every change is written to the audit log.
    """


@users_cmd.command("add")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES),
              help="What the user may do.")
@_stdin_option
@_actor_option
@json_option
def add_cmd(workspace: Path, name: str, role: str, password_stdin: bool, actor: str,
            as_json: bool) -> None:
    """Add the user NAME; asks for the password."""
    check_name(name)
    users = Users(Workspace.open(workspace))
    user = users.add(name, role, _read_password(password_stdin), actor=actor)
    emit(user.to_dict(), as_json, f"added {_user_text(user)}")


@users_cmd.command("list")
@click.argument("workspace", type=click.Path(path_type=Path))
@json_option
def list_cmd(workspace: Path, as_json: bool) -> None:
    """Every user, role and last login."""
    users = Users(Workspace.open(workspace)).list()

    def text() -> str:
        if not users:
            return "no users; add one with `twin users WORKSPACE add NAME --role admin`"
        return table([[u.name, f"{ROLE_LABELS[u.role][0]} {u.role}",
                       "disabled" if u.disabled else "active", u.last_login_at or "-",
                       u.created_at] for u in users],
                     ["用户 user", "角色 role", "status", "最近登录 last login", "created_at"])

    emit([u.to_dict() for u in users], as_json, text)


@users_cmd.command("passwd")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("name")
@_stdin_option
@_actor_option
@json_option
def passwd_cmd(workspace: Path, name: str, password_stdin: bool, actor: str,
               as_json: bool) -> None:
    """Set a new password for NAME; asks for it."""
    users = Users(Workspace.open(workspace))
    users.get(name)  # an unknown name fails before the password is asked for
    user = users.set_password(name, _read_password(password_stdin), actor=actor)
    emit(user.to_dict(), as_json, f"new password set for {user.name}")


@users_cmd.command("role")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@_actor_option
@json_option
def role_cmd(workspace: Path, name: str, role: str, actor: str, as_json: bool) -> None:
    """Give NAME the role ROLE."""
    user = Users(Workspace.open(workspace)).set_role(name, role, actor=actor)
    emit(user.to_dict(), as_json, _user_text(user))


@users_cmd.command("disable")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("name")
@_actor_option
@json_option
def disable_cmd(workspace: Path, name: str, actor: str, as_json: bool) -> None:
    """Refuse every further login of NAME (the user stays in the audit trail)."""
    user = Users(Workspace.open(workspace)).disable(name, actor=actor)
    emit(user.to_dict(), as_json, _user_text(user))


@users_cmd.command("enable")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("name")
@_actor_option
@json_option
def enable_cmd(workspace: Path, name: str, actor: str, as_json: bool) -> None:
    """Allow a disabled user to log in again."""
    user = Users(Workspace.open(workspace)).enable(name, actor=actor)
    emit(user.to_dict(), as_json, _user_text(user))


@users_cmd.group("sessions", cls=WorkspaceFirstGroup)
def sessions_cmd() -> None:
    """Login sessions: list who is logged in where, and end sessions (e.g. a lost tablet)."""


@sessions_cmd.command("list")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--user", "user", default=None, help="Only this user's sessions.")
@click.option("--all", "include_ended", is_flag=True,
              help="Also sessions that ended (logged out, revoked or expired).")
@json_option
def sessions_list_cmd(workspace: Path, user: str | None, include_ended: bool,
                      as_json: bool) -> None:
    """Open sessions, newest first: id, user, since, last seen, address, browser."""
    found = Sessions(Workspace.open(workspace)).list(user, include_ended=include_ended)

    def text() -> str:
        if not found:
            return "no open sessions 无在线会话"
        return table([[s.id, s.user, s.created_at, s.last_seen_at, s.address or "-",
                       s.user_agent[:40] or "-",
                       "open" if s.active else (s.revoke_reason or "expired")]
                      for s in found],
                     ["会话 id", "用户 user", "登录 since", "最近 last seen", "地址 address",
                      "浏览器 browser", "状态 state"])

    emit([s.to_dict() for s in found], as_json, text)


@sessions_cmd.command("revoke")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("session", required=False)
@click.option("--user", "user", default=None, help="Revoke every session of this user.")
@_actor_option
@json_option
def sessions_revoke_cmd(workspace: Path, session: str | None, user: str | None, actor: str,
                        as_json: bool) -> None:
    """End SESSION (an id from `sessions list`) or every session of --user; their open pages
    close within a minute."""
    ws = Workspace.open(workspace)
    if user is not None:
        Users(ws).get(user)  # a typo in the name says so rather than "0 revoked"
    count = Sessions(ws).revoke(session=session, user=user, actor=actor)
    emit({"revoked": count}, as_json, f"revoked {count} session(s) 已撤销 {count} 个会话")


def register(cli: click.Group) -> None:
    """Add ``twin users`` to the ``twin`` group."""
    cli.add_command(users_cmd)
