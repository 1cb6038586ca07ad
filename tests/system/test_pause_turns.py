"""RISC-V ``pause`` ends a vCPU's turn where vCPUs take turns on one host thread
(``-accel tcg,thread=single``; accel/tcg/spin_hint.py END_TURN): programs/
pause_pingpong.S hands a turn between two harts 2000 times, each waiting in a pause
loop.  Without the hint ending the turn every hand-over waits out a 5 ms quantum
(~20 s); with it the program takes about a second.  Under ``thread=multi`` the hint
yields the host core instead; QEMU runs the same ELF."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.system.conftest import QEMU_SYSTEM, run_pemu

ARGS = ("-M", "virt", "-smp", "2", "-bios", "none", "-nographic")


@pytest.mark.parametrize("thread", ["single", "multi"])
def test_spinning_hart_gives_its_turn_to_the_one_it_waits_for(build_program, tcg_backend,
                                                               thread):
    if thread == "multi" and tcg_backend != "native":
        pytest.skip("thread=multi is the native backend's")
    r = run_pemu(*ARGS, "-kernel", str(build_program("pause_pingpong")),
                 "-accel", f"tcg,backend={tcg_backend},thread={thread}", timeout=15)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


def test_qemu_agrees_with_the_program(build_program):
    if shutil.which(QEMU_SYSTEM) is None:
        pytest.skip(f"needs {QEMU_SYSTEM} (Debian qemu-system-misc)")
    r = subprocess.run([QEMU_SYSTEM, *ARGS, "-kernel", str(build_program("pause_pingpong"))],
                       capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode} failed"
