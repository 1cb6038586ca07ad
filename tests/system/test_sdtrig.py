"""Sdtrig debug triggers (tselect/tdata1-3/tinfo, mcontrol and mcontrol6) in a
bare-metal program that checks itself (programs/sdtrig.S): execute triggers fire
before their instruction, also mid-block and on code translated before they were
armed; load and store triggers fire before the access.  The same ELF runs on Debian's
qemu-system-riscv64 (7.2, debug=true by default) as the oracle; only pemu's run also
checks mtval (the address: QEMU 7.2 writes 0, which the spec allows too)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"


def _args(program: str, *extra: str) -> list[str]:
    return ["-M", "virt", "-bios", "none", "-kernel", program, "-nographic", *extra]


def test_triggers_fire_as_programmed(build_program, tcg_backend):
    r = run_pemu(*_args(str(build_program("sdtrig", STRICT_TVAL=1))), timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


def test_debug_off_makes_the_trigger_csrs_illegal(build_program):
    """-cpu rv64,debug=false: the first trigger CSR access (tinfo) traps, and the
    program's trap handler reports the illegal instruction as check 99."""
    r = run_pemu(*_args(str(build_program("sdtrig")), "-cpu", "rv64,debug=false"),
                 timeout=120)
    assert r.returncode == 99, r.stderr.decode()


def test_qemu_agrees_with_the_program(build_program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    r = subprocess.run([QEMU, *_args(str(build_program("sdtrig")))],
                       capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode} failed"
