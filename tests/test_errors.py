"""One error vocabulary: every error is a ``TwinError``, and no user mistake exits 70.

The first half walks the packages and checks the class hierarchy; the second runs the real
``twin`` console script on the mistakes people make (a missing file, a directory, a bad date,
an unknown name...) and checks the answer is exit 1 (2 for click's usage errors) with one
``error:`` line, never a traceback or an "internal error".
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import json
import os
import pkgutil
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import fused_demo, run_twin
from twin import Workspace
from twin.errors import TwinError, TwinWarning

ROOT = Path(__file__).resolve().parents[1]
_IMPORTS_PANEL = re.compile(r"^\s*(?:import|from)\s+panel\b", re.MULTILINE)


def _modules() -> list[str]:
    """Every module of twin, ingest and layers, except the CLI and what imports Panel."""
    names = []
    for package in ("twin", "ingest", "layers"):
        pkg = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(pkg.__path__, f"{package}."):
            if info.name == "twin.cli" or info.name.startswith("twin.cli."):
                continue
            spec = importlib.util.find_spec(info.name)
            origin = spec.origin if spec is not None else None
            if origin and origin.endswith(".py") and _IMPORTS_PANEL.search(
                    Path(origin).read_text(encoding="utf-8")):
                continue
            names.append(info.name)
    return names


MODULES = _modules()
_ROOTS = {"twin.errors.TwinError", "ingest.errors.IngestError", "layers.errors.LayerError"}
_BUILTIN_ERRORS = tuple(obj for obj in vars(builtins).values()
                        if isinstance(obj, type) and issubclass(obj, Exception)
                        and obj is not Exception)


def _exceptions_defined_in(name: str) -> list[type[Exception]]:
    module = importlib.import_module(name)
    return [obj for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, Exception) and obj.__module__ == name]


def test_the_walk_finds_the_error_modules() -> None:
    assert {"twin.errors", "ingest.errors", "layers.errors", "twin.zones"} <= set(MODULES)
    assert not any(m.startswith("twin.cli") for m in MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_every_error_derives_from_twin_error(name: str) -> None:
    for cls in _exceptions_defined_in(name):
        if issubclass(cls, Warning):
            assert issubclass(cls, TwinWarning), f"{name}.{cls.__name__} is no TwinWarning"
        else:
            assert issubclass(cls, TwinError), f"{name}.{cls.__name__} is no TwinError"


def test_errors_live_in_errors_modules() -> None:
    homes = {n: _exceptions_defined_in(n) for n in MODULES}
    elsewhere = {n: [c.__name__ for c in found] for n, found in homes.items()
                 if found and not n.endswith(".errors")}
    assert elsewhere == {}


def test_every_domain_error_is_also_a_builtin() -> None:
    """``except ValueError`` (or KeyError, FileNotFoundError...) keeps catching our errors."""
    for name in ("twin.errors", "ingest.errors", "layers.errors"):
        for cls in _exceptions_defined_in(name):
            if issubclass(cls, Warning) or f"{name}.{cls.__name__}" in _ROOTS:
                continue
            assert issubclass(cls, _BUILTIN_ERRORS), f"{cls.__name__} has no builtin base"


@pytest.mark.parametrize(("module", "names"), [
    ("twin.users", ["AuthError", "UserInputError", "WeakPasswordError", "UserExistsError",
                    "UnknownUserError", "LastAdminError"]),
    ("twin.fuse", ["FuseError"]),
    ("twin.facts", ["FactsNotFoundError"]),
    ("twin.zones", ["ZoneError", "ZoneNotFoundError", "ZoneConflictError"]),
    ("twin.risk", ["RiskError"]),
])
def test_moved_errors_are_still_importable_where_they_were(module: str,
                                                           names: list[str]) -> None:
    errors = importlib.import_module("twin.errors")
    mod = importlib.import_module(module)
    for name in names:
        assert getattr(mod, name) is getattr(errors, name)
        assert name in mod.__all__ and name in errors.__all__


def test_key_errors_read_as_their_message() -> None:
    from twin.errors import UnknownUserError, ZoneNotFoundError

    assert str(UnknownUserError("no user named 'x'")) == "no user named 'x'"
    assert str(ZoneNotFoundError("no zone 'Z9'")) == "no zone 'Z9'"


def test_domain_lists_are_defined_once() -> None:
    from layers import labels, scales
    from twin import config, risk, schema, supply, zones
    from twin.demo import cases

    assert schema.INFECTION_STATUSES == ("confirmed", "asymptomatic")
    assert set(schema.INFECTION_STATUSES) < set(schema.CASE_STATUSES)
    for alias in (zones.INFECTIONS, risk.COUNTED_STATUSES, supply.ACTIVE_STATUSES):
        assert alias is schema.INFECTION_STATUSES
    for alias in (zones.TIERS, supply.TIERS, config.ZONE_TIERS):
        assert alias is schema.ZONE_TIERS
    assert zones.STATUSES is schema.ZONE_STATUSES
    assert cases.STATUSES is schema.CASE_STATUSES
    assert set(schema.OPEN_ZONE_STATUSES) < set(schema.ZONE_STATUSES)
    # Tables keyed by the lists cover exactly their values.
    for table in (zones.TIER_ZH, labels.TIERS, scales.TIER_COLORS):
        assert set(table) == set(schema.ZONE_TIERS)
    for table in (zones.STATUS_ZH, labels.STATUSES):
        assert set(table) == set(schema.ZONE_STATUSES)


def test_dates_are_parsed_in_one_place() -> None:
    import datetime as dt

    import numpy as np

    from twin.dates import parse_day
    from twin.errors import DateError, ZoneError

    day = dt.date(2026, 4, 30)
    for value in ("2026-04-30", " 2026-04-30 ", "20260430", "2026-04-30T10:00:00+08:00",
                  day, dt.datetime(2026, 4, 30, 23, 59), np.datetime64("2026-04-30")):
        assert parse_day(value) == day
    for value in ("yesterday", "2026-02-30", "30/04/2026", "", None, 20260430):
        with pytest.raises(DateError, match=r"not a date.*YYYY-MM-DD"):
            parse_day(value)
    with pytest.raises(ZoneError, match=r"'x' \(valid_from\)"):
        parse_day("x", "valid_from", error=ZoneError)


# == the command line ===========================================================================
def _refused(result: subprocess.CompletedProcess[str], *words: str, code: int = 1) -> str:
    """Assert a clean refusal; return its ``error:`` line."""
    everything = result.stdout + result.stderr
    assert result.returncode == code, everything
    assert "Traceback" not in everything and "internal error" not in everything, everything
    if code == 2:  # click's usage errors: "Usage: …" and "Error: …"
        assert "Error: " in result.stderr, result.stderr
        line = result.stderr
    else:
        lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
        assert len(lines) == 1, result.stderr
        line = lines[0]
    for word in words:
        assert word in line, line
    return line


def test_ingest_of_a_missing_file(tmp_path: Path, workspace: Workspace) -> None:
    missing = tmp_path / "CON.geojson"
    line = _refused(run_twin("ingest", str(workspace.root), str(missing), "--kind", "cases"),
                    str(missing), "does not exist", "check the spelling")
    assert "folder" in line
    relative = _refused(run_twin("ingest", str(workspace.root), "CON.geojson", "--kind",
                                 "cases", cwd=tmp_path), "CON.geojson")
    assert f"relative to {tmp_path}" in relative
    _refused(run_twin("ingest", str(workspace.root), "--manifest",
                      str(tmp_path / "nowhere" / "manifest.json")),
             "no manifest at", "does not exist")


def test_ingest_of_a_directory(tmp_path: Path, workspace: Workspace) -> None:
    folder = tmp_path / "somedir"
    folder.mkdir()
    _refused(run_twin("ingest", str(workspace.root), f"{folder}/", "--kind", "cases"),
             str(folder), "is a directory", "--manifest")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_ingest_of_an_unreadable_file(tmp_path: Path, workspace: Workspace) -> None:
    locked = tmp_path / "cases.geojson"
    locked.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    locked.chmod(0)
    _refused(run_twin("ingest", str(workspace.root), str(locked), "--kind", "cases"),
             "cannot read", str(locked))


def test_a_refused_file_ends_with_one_error_line(tmp_path: Path,
                                                 workspace: Workspace) -> None:
    bad = tmp_path / "cases.geojson"
    bad.write_text("{}", encoding="utf-8")
    result = run_twin("ingest", str(workspace.root), str(bad), "--kind", "cases")
    _refused(result, "cases.geojson refused", "fix the errors")
    assert "unreadable_file" in result.stdout and "<DRIVER>" not in result.stdout


def test_refusals_on_a_fresh_workspace(tmp_path: Path, workspace: Workspace) -> None:
    ws = str(workspace.root)
    _refused(run_twin("facts", ws, "--level", "99"), "no fused facts yet", "twin fuse")
    _refused(run_twin("risk", ws, "--date", "1900-01-01"), "no fused facts yet")
    _refused(run_twin("zones", ws, "show", "NOPE"), "no zone 'NOPE'")
    _refused(run_twin("layers", "rollback", ws, "buildings", "999"),
             "no layer named 'buildings'")
    _refused(run_twin("users", ws, "add", "x", "--role", "nope"), "'--role'", code=2)
    _refused(run_twin("serve", str(tmp_path / "nonexistent")), "no workspace at",
             "twin init")


def test_paths_under_a_file(tmp_path: Path) -> None:
    a_file = tmp_path / "afile"
    a_file.write_text("x", encoding="utf-8")
    _refused(run_twin("init", str(a_file / "ws"), "--name", "x"), f"{a_file} is a file")
    _refused(run_twin("demo-data", str(a_file / "city")), f"{a_file} is a file")
    _refused(run_twin("layers", "list", str(a_file)), "is a file, not a workspace")


def test_a_layer_error_reaching_the_cli() -> None:
    """layers' errors are TwinErrors: the command line shows their message, exit 1."""
    code = textwrap.dedent("""
        import sys

        from layers.labels import check_lang
        from twin.cli import cli, main

        @cli.command("draw")
        def draw() -> None:
            check_lang("de")

        sys.argv = ["twin", "draw"]
        main()
    """)
    env = {k: v for k, v in os.environ.items() if k != "TWIN_DEBUG"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=120, check=False)
    _refused(result, "'de'")


# -- on a fused demo city -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    ws, _ = fused_demo(tmp_path_factory.mktemp("errors"))
    return str(ws.root)


DEMO_CASES = [
    (["facts", "WS", "--level", "99"], ["no level 99", "levels are"]),
    (["facts", "WS", "--date", "garbage"], ["not a date: 'garbage'", "--date", "YYYY-MM-DD"]),
    (["facts", "WS", "--end", "2026-13-01"], ["'2026-13-01'", "--end"]),
    (["facts", "WS", "--start", "2026-04-30", "--end", "2026-04-01"], ["is after --end"]),
    (["risk", "WS", "--date", "garbage"], ["not a date: 'garbage'"]),
    (["zones", "WS", "show", "NOPE"], ["no zone 'NOPE'", "twin zones list"]),
    (["zones", "WS", "propose", "--date", "garbage"], ["not a date: 'garbage'"]),
    (["zones", "WS", "downgrades", "--date", "garbage"], ["not a date: 'garbage'"]),
    (["layers", "rollback", "WS", "buildings", "999"], ["has no version 999",
                                                        "layers versions"]),
    (["alerts", "WS", "--no-evaluate", "--since", "garbage"], ["not a date: 'garbage'"]),
    (["alerts", "WS", "--date", "2026-02-30"], ["not a date: '2026-02-30'"]),
    (["dispatch", "WS", "--resource", "nope"], ["unknown resource 'nope'", "water"]),
]


@pytest.mark.parametrize(("args", "words"), DEMO_CASES,
                         ids=[" ".join(args) for args, _ in DEMO_CASES])
def test_refusals_on_the_demo(demo_root: str, args: list[str], words: list[str]) -> None:
    _refused(run_twin(*(demo_root if a == "WS" else a for a in args)), *words)


def test_usage_errors_on_the_demo(demo_root: str) -> None:
    _refused(run_twin("users", demo_root, "add", "x", "--role", "nope"), "'--role'", code=2)


def test_outputs_that_cannot_be_written(tmp_path: Path, demo_root: str) -> None:
    missing = tmp_path / "nowhere" / "facts.csv"
    _refused(run_twin("facts", demo_root, "--csv", str(missing)), f"cannot write {missing}",
             "does not exist")
    a_file = tmp_path / "afile"
    a_file.write_text("x", encoding="utf-8")
    _refused(run_twin("zones", demo_root, "export", str(a_file / "zones.geojson")),
             f"{a_file} is a file")
    _refused(run_twin("risk", demo_root, "--csv", str(a_file / "risk.csv")),
             f"{a_file} is a file")


@pytest.mark.parametrize("text", ["garbage", "[1, 2]", json.dumps({"type": "Polygon"})],
                         ids=["not-json", "a-list", "no-coordinates"])
def test_a_bad_polygon_file(tmp_path: Path, demo_root: str, text: str) -> None:
    polygon = tmp_path / "area.geojson"
    polygon.write_text(text, encoding="utf-8")
    _refused(run_twin("zones", demo_root, "edit", "Z1", "--expect-version", "1", "--polygon",
                      str(polygon), "--reason", "r"), str(polygon), "GeoJSON")
