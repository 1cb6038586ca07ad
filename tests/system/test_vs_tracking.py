"""mstatus.VS tracking with V: vector instructions and CSRs illegal with VS Off, VS
Initial/Clean -> Dirty on the first vector-state write, SD; misa.V.

The bare-metal program programs/vs_tracking.S checks everything itself and reports
through the SiFive test finisher (exit status N = check N failed); the same ELF runs
on Debian's qemu-system-riscv64 (``-cpu rv64,v=true``) as the oracle.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"
CPU = "rv64,v=true,vlen=128"


def test_vs_off_traps_and_clean_vs_turns_dirty(build_program, tcg_backend):
    r = run_pemu("-M", "virt", "-bios", "none", "-cpu", CPU, "-nographic",
                 "-kernel", str(build_program("vs_tracking")), timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


def test_qemu_agrees_with_the_program(build_program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    r = subprocess.run([QEMU, "-M", "virt", "-bios", "none", "-cpu", CPU, "-nographic",
                        "-kernel", str(build_program("vs_tracking"))],
                       capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout
