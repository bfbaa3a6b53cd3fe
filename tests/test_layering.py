"""Imports go one way: the command line imports the library, nothing in the library imports the command
line (imports inside functions included), and process ranks are read in one module only."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import system2

ROOT = Path(system2.__file__).parent


def _library_files() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if "cli" not in p.relative_to(ROOT).parts[:1]]


def test_no_library_file_imports_the_cli() -> None:
    offenders = []
    for path in _library_files():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(n == "system2.cli" or n.startswith("system2.cli.") for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_importing_the_library_loads_no_cli_module() -> None:
    modules = [
        m.name
        for m in pkgutil.walk_packages([str(ROOT)], prefix="system2.")
        if not (m.name == "system2.cli" or m.name.startswith("system2.cli."))
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'system2.cli' or m.startswith('system2.cli.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_ranks_are_read_in_one_module() -> None:
    readers = [
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*.py")
        if '"RANK"' in p.read_text() or "'RANK'" in p.read_text() or "__import__(" in p.read_text()
    ]
    assert readers == ["dist.py"]


def test_the_checkpoint_layout_has_one_owner() -> None:
    owners = [
        str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if '"step-' in p.read_text() or '"latest"' in p.read_text()
    ]
    assert owners == ["checkpoint.py"]
