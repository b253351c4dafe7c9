"""The package map of docs/architecture.md holds: the import-linter contracts in pyproject.toml
are kept, and they speak of every package the project has."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _config() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["tool"]["importlinter"]


LINT = "import sys; from importlinter import cli; sys.exit(cli.lint_imports(no_cache=True))"


def test_every_import_contract_is_kept():
    # In a process of its own: import-linter sets up logging as a command line tool does.
    run = subprocess.run(
        [sys.executable, "-c", LINT], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_contracts_cover_every_package():
    packages = {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if not path.parent.name.startswith(".")
    }
    assert packages == set(_config()["root_packages"])
    layered = {
        name.strip()
        for contract in _config()["contracts"]
        if contract["type"] == "layers"
        for layer in contract["layers"]
        for name in layer.split("|")
    }
    assert layered == packages


def test_domain_imports_nothing_of_ours():
    # The layers contract says so too; this one names the rule as the guide states it.
    ours = set(_config()["root_packages"]) - {"domain"}
    for path in (ROOT / "domain").glob("*.py"):
        lines = path.read_text(encoding="utf-8").splitlines()
        imports = [line.split()[1] for line in lines if line.startswith(("import ", "from "))]
        assert not [name for name in imports if name.split(".")[0] in ours], path
