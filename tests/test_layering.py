"""The layering contracts (`[tool.importlinter]` in pyproject.toml) hold for the tree, and they catch a sideways
import: a copy of the tree in which the router imports the worker's settings breaks "services are independent"."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tools.paths import REPO_ROOT

PACKAGES = ("core", "services", "tools", "clients", "benchmarks", "tests", "quantmesh")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=root, check=False,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=120)


def test_the_tree_keeps_every_contract() -> None:
    result = _lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_sideways_import_between_services_breaks_the_lint(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.npz", "*.json",
                                                                                              "*.png", "__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    router_init = tmp_path / "services" / "router" / "__init__.py"
    router_init.write_text(router_init.read_text() + "\nimport services.worker.settings  # noqa: F401\n")

    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "Services are independent of one another BROKEN" in result.stdout
    assert "services.router -> services.worker.settings" in result.stdout
