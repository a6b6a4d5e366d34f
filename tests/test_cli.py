"""The `twin` command line: help, JSON output, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tests.conftest import make_buildings, run_twin
from twin import Workspace
from twin.cli import cli
from twin.cli._common import EXIT_INTERNAL, TwinGroup, json_option


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*prefix, name))


@pytest.mark.parametrize("command", list(_all_commands(cli)), ids=" ".join)
def test_every_command_explains_itself(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: " in result.output
    doc = result.output.split("\n\n", 2)[1].strip()
    assert len(doc) > 20, f"`twin {' '.join(command)} --help` explains too little: {doc!r}"


def test_workspace_commands_end_to_end(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    result = run_twin("init", str(ws), "--name", "示范市", "--bbox", "121.3,31.1,121.65,31.4")
    assert result.returncode == 0, result.stderr
    assert "created workspace" in result.stdout

    listing = run_twin("layers", "list", str(ws), "--json")
    assert listing.returncode == 0 and json.loads(listing.stdout) == []

    store = Workspace.open(ws)
    store.publish("buildings", "buildings", make_buildings(30), source_name="楼栋.zip",
                  note="first")
    store.publish("buildings", "buildings", make_buildings(40), note="second")

    text = run_twin("layers", "list", str(ws))
    assert text.returncode == 0
    assert "图层 layer" in text.stdout and "buildings" in text.stdout
    layers = json.loads(run_twin("layers", "list", str(ws), "--json").stdout)
    assert [(i["name"], i["current_version"], i["versions"]) for i in layers] == [
        ("buildings", 2, 2)]

    versions = json.loads(run_twin("layers", "versions", str(ws), "buildings", "--json").stdout)
    assert [(v["version"], v["row_count"], v["current"]) for v in versions] == [
        (1, 30, False), (2, 40, True)]
    assert "楼栋.zip" in run_twin("layers", "versions", str(ws), "buildings").stdout

    back = run_twin("layers", "rollback", str(ws), "buildings", "1", "--note", "bad import")
    assert back.returncode == 0 and "now at version 1" in back.stdout
    assert Workspace.open(ws).version("buildings").version == 1

    check = run_twin("check", str(ws), "--json")
    assert check.returncode == 0 and json.loads(check.stdout)["problems"] == []


@pytest.mark.parametrize(("args", "message"), [
    (["layers", "list", "{tmp}/missing"], "no workspace at"),
    (["layers", "versions", "{ws}", "roads"], "no layer named 'roads'"),
    (["layers", "rollback", "{ws}", "roads", "3"], "no layer named 'roads'"),
    (["init", "{ws}", "--name", "x"], "is already a workspace"),
], ids=["missing-workspace", "unknown-layer", "rollback-unknown", "init-existing"])
def test_failures_are_one_clear_line(tmp_path: Path, workspace: Workspace, args: list[str],
                                     message: str) -> None:
    argv = [a.format(tmp=tmp_path, ws=workspace.root) for a in args]
    result = run_twin(*argv)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr

    as_json = run_twin(*argv, "--json")
    assert as_json.returncode == 1
    error = json.loads(as_json.stdout)["error"]
    assert message in error["message"] and error["retryable"] is False


def test_bad_config_is_one_message(workspace: Workspace) -> None:
    toml = workspace.config_path
    toml.write_text(toml.read_text(encoding="utf-8").replace("language = \"zh\"",
                                                             "language = \"de\""),
                    encoding="utf-8")
    result = run_twin("layers", "list", str(workspace.root))
    assert result.returncode == 1
    assert "twin.toml has 1 problem" in result.stderr and "'city.language' is 'de'" in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_database_is_one_message(workspace: Workspace) -> None:
    workspace.db_path.write_bytes(b"\0garbage" * 512)
    result = run_twin("check", str(workspace.root))
    assert result.returncode == 1
    assert "is not a readable citytwin database" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_reports_problems_with_exit_1(workspace: Workspace) -> None:
    entry = workspace.publish("buildings", "buildings", make_buildings(5))
    (workspace.root / entry.file).unlink()
    result = run_twin("check", str(workspace.root))
    assert result.returncode == 1
    assert "is missing" in result.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = run_twin("init", str(tmp_path / "ws"), "--name", "x", "--bbox", "1,2,3")
    assert result.returncode == 2
    assert "it has 3 numbers" in result.stderr
    assert run_twin("layers", "rollback", str(tmp_path), "x", "zero").returncode == 2


def test_internal_errors_are_reported_without_traceback() -> None:
    @click.group(cls=TwinGroup)
    def group() -> None:
        """Test group."""

    @group.command()
    @json_option
    def boom(as_json: bool) -> None:
        """Fail like a bug would."""
        raise RuntimeError("unexpected")

    result = CliRunner().invoke(group, ["boom", "--json"])
    assert result.exit_code == EXIT_INTERNAL
    assert json.loads(result.stdout)["error"]["type"] == "InternalError"
    assert "TWIN_DEBUG=1" in result.stderr and "Traceback" not in result.output
