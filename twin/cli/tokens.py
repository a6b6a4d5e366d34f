"""``twin tokens``: API tokens for other departments' systems (OGC API Features, Open311)."""

from __future__ import annotations

from pathlib import Path

import click

from twin.cli._common import WorkspaceFirstGroup, emit, json_option, table
from twin.store import Workspace, default_author
from twin.tokens import TOKEN_ROLES, Token, Tokens
from twin.users import ROLE_LABELS

__all__ = ["register"]

_actor_option = click.option(
    "--actor", default=default_author, show_default="your login name",
    help="Who makes the change, for the audit log.")


def _state(token: Token) -> str:
    return "active 有效" if token.active else f"revoked 已吊销 {token.revoked_at}"


@click.group("tokens", cls=WorkspaceFirstGroup)
def tokens_cmd() -> None:
    """API tokens 接口令牌 for other departments' GIS and systems, sent as
    `Authorization: Bearer TOKEN`. Roles: viewer, planner, gis. Every use is audited.
    """


@tokens_cmd.command("add")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(TOKEN_ROLES),
              help="What the token may read (viewer: aggregated counts only).")
@_actor_option
@json_option
def add_cmd(workspace: Path, name: str, role: str, actor: str, as_json: bool) -> None:
    """Make a token for NAME (a department or system) and print it, once."""
    token, secret = Tokens(Workspace.open(workspace)).add(name, role, actor=actor)
    emit({"token": secret, **token.to_dict()}, as_json,
         f"token for {token.name} ({ROLE_LABELS[role][0]} {role}); it is shown only now, "
         f"give it to the department 令牌仅显示一次:\n{secret}")


@tokens_cmd.command("list")
@click.argument("workspace", type=click.Path(path_type=Path))
@json_option
def list_cmd(workspace: Path, as_json: bool) -> None:
    """Every token, its role, state and last use (never the secrets)."""
    tokens = Tokens(Workspace.open(workspace)).list()

    def text() -> str:
        if not tokens:
            return "no tokens; add one with `twin tokens WORKSPACE add NAME --role viewer`"
        return table([[t.name, f"{ROLE_LABELS[t.role][0]} {t.role}", _state(t),
                       t.last_used_at or "-", t.created_at, t.created_by] for t in tokens],
                     ["令牌 token", "角色 role", "state", "最近使用 last used", "created_at",
                      "by"])

    emit([t.to_dict() for t in tokens], as_json, text)


@tokens_cmd.command("revoke")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.argument("name")
@_actor_option
@json_option
def revoke_cmd(workspace: Path, name: str, actor: str, as_json: bool) -> None:
    """Revoke NAME's token: refused from its next request on."""
    token = Tokens(Workspace.open(workspace)).revoke(name, actor=actor)
    emit(token.to_dict(), as_json, f"{token.name}: {_state(token)}")


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``twin`` group."""
    cli.add_command(tokens_cmd)
