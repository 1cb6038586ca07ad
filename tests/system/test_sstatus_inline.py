"""sstatus writes that translated code does inline (clearing SIE, writes that change
nothing, SUM toggles, setting SIE with no interrupt pending), the trap CSRs kept in
state slots (sscratch, sepc, scause, stval), and the writes that must take the CSR
helper (setting SIE with an interrupt pending must trap before the next instruction),
on both backends; the same ELF runs on Debian's qemu-system-riscv64 as the oracle.
Setting SIE inline without testing the irq_pending slot fails check 8; dropping SD
from its old value fails check 4."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"


def _args(program: str) -> list[str]:
    return ["-M", "virt", "-bios", "none", "-kernel", program, "-nographic"]


def test_sstatus_fast_and_slow_writes(build_program, tcg_backend):
    r = run_pemu(*_args(str(build_program("sstatus_inline"))), timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


def test_qemu_agrees_with_the_program(build_program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    r = subprocess.run([QEMU, *_args(str(build_program("sstatus_inline")))],
                       capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode} failed"
