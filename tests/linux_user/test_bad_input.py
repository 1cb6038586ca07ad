"""Files that are not riscv64 programs: one clear line on stderr, status 1, no traceback."""

from __future__ import annotations

import shutil

import pytest
from conftest import BUSYBOX, run_pemu


def _check(result, path, words):
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"pemu-riscv64: {path}: ")
    assert any(w in lines[0] for w in words), lines[0]


def test_not_an_elf(tmp_path):
    script = tmp_path / "notes.txt"
    script.write_text("just some text\n")
    _check(run_pemu(str(script)), script, ["not an ELF"])


def test_other_machine(tmp_path):
    host_prog = shutil.which("true")
    if host_prog is None:
        pytest.skip("no host 'true' binary")
    _check(run_pemu(host_prog), host_prog, ["x86-64", "not RISC-V"])


@pytest.mark.parametrize("cut", [40, 100, 5000])
def test_truncated(tmp_path, cut):
    if not BUSYBOX.exists():
        pytest.skip("busybox guest binary missing")
    short = tmp_path / f"busybox-{cut}"
    short.write_bytes(BUSYBOX.read_bytes()[:cut])
    _check(run_pemu(str(short)), short, ["truncated"])


def test_missing_file(tmp_path):
    missing = tmp_path / "nope"
    _check(run_pemu(str(missing)), missing, ["No such file"])
