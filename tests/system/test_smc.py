"""Self-modifying code in system mode: fence.i makes new and patched code run, on both
backends (the native one chains the blocks of a page to each other: a patched page must
not be reached through its old blocks, by a chain or the jump cache).  The same program
passes on Debian's qemu-system-riscv64.  Breaking fence.i's check for changed pages
makes check 2 fail."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"


def test_patched_code_runs_after_fence_i(build_program, tcg_backend):
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel", str(build_program("smc")),
                 "-nographic", timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


def test_qemu_agrees_with_the_program(build_program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    r = subprocess.run([QEMU, "-M", "virt", "-bios", "none", "-kernel",
                        str(build_program("smc")), "-nographic"], capture_output=True,
                       input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode} failed"
