"""The system call's round trip that translated code does itself (ecall from U
delegated to S, sret from S: target/riscv/trap_inline.py) and the cases that must stay
with the helper or the exception (an interrupt that sret makes deliverable, TSR, ecall
not delegated, FS Off in the new mode's block flags), on both backends; the same ELF
runs on Debian's qemu-system-riscv64 as the oracle.  Inline sret without the
irq_pending test fails check 11; block flags without FS fail check 8 or 10."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"


def _args(program: str) -> list[str]:
    return ["-M", "virt", "-bios", "none", "-kernel", program, "-nographic"]


# rv64 takes the inline paths; a hart with H keeps every trap in Python (trap_inline's
# translate-time test), so the same checks cover the fallback there
@pytest.mark.parametrize("cpu", ["rv64", "rv64,h=true"])
def test_ecall_and_sret_round_trips(build_program, tcg_backend, cpu):
    r = run_pemu(*_args(str(build_program("trap_inline"))), "-cpu", cpu, timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


def test_qemu_agrees_with_the_program(build_program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    r = subprocess.run([QEMU, *_args(str(build_program("trap_inline")))],
                       capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode} failed"
