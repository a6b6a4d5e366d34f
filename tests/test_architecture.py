"""The package layout and the one-way import contract (ingest -> twin -> layers -> dashboards)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def _lint(cwd: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT_IMPORTS, "--config", str(config), "--no-cache"], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"})


def test_import_contracts_hold() -> None:
    result = _lint(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "imports", "broken"), [
    ("twin/fuse.py", "import layers", True),
    ("twin/store.py", "from dashboards import app", True),
    ("ingest/read.py", "import dashboards.app", True),
    ("layers/hexes.py", "import ingest", True),
    ("twin/cli/serve.py", "import dashboards.app", False),  # the CLI composes the packages
    ("dashboards/app.py", "import twin, layers, ingest", False),
], ids=["twin->layers", "twin->dashboards", "ingest->dashboards", "layers->ingest",
        "twin.cli->dashboards", "dashboards->all"])
def test_contract_catches_violations(tmp_path: Path, module: str, imports: str,
                                     broken: bool) -> None:
    """The same contracts, applied to a copy of the layout with one import added."""
    for package in ("twin", "twin/cli", "ingest", "layers", "dashboards"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    for name in ("twin/fuse.py", "twin/store.py", "ingest/read.py", "layers/hexes.py",
                 "twin/cli/serve.py", "dashboards/app.py"):
        (tmp_path / name).write_text("")
    (tmp_path / module).write_text(textwrap.dedent(imports) + "\n")
    config = tmp_path / "pyproject.toml"
    config.write_text((ROOT / "pyproject.toml").read_text(encoding="utf-8"), encoding="utf-8")
    result = _lint(tmp_path, config)
    assert (result.returncode != 0) is broken, result.stdout + result.stderr


@pytest.mark.parametrize("package", ["twin", "ingest", "layers", "dashboards"])
def test_packages_declare_public_api(package: str) -> None:
    module = importlib.import_module(package)
    assert isinstance(module.__all__, list)
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.__all__ names missing {name!r}"
