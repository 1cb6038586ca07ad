"""accel/kvm is below the targets, boards and front ends: it imports none of them (what
it needs from a target, such as how to enter 64-bit mode, is passed in)."""

from __future__ import annotations

import ast
from pathlib import Path

import pemu.accel.kvm

ABOVE = ("pemu.target", "pemu.hw", "pemu.gdbstub", "pemu.monitor", "pemu.cli")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_accel_kvm_imports_no_upper_layer():
    package = Path(pemu.accel.kvm.__file__).parent
    files = sorted(package.glob("*.py"))
    assert any(f.name == "guest_debug_probe.py" for f in files)
    offenders = {f"{f.name}: {name}" for f in files for name in imported_modules(f)
                 if name.startswith(ABOVE)}
    assert offenders == set()
