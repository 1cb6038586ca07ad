"""fence.i compares only the code pages written since their last compare
(memory/code_writes.py): programs/code_writes.S rewrites a routine through each kind
of guest write (a plain store, one through the victim TLB entry, an AMO, LR/SC, a
page-crossing store, another hart's store, a store through a second mapping, filled
by the native walker and through its TLB entry, cbo.zero, a vector store) and needs
the new code to run after fence.i, on both backends; Debian's qemu-system-riscv64
runs the same program (without cbo.zero, which QEMU 7.2 lacks, and the vector
store).  A writer that does not mark its page fails the check of that path."""

from __future__ import annotations

import pytest

from tests.system.conftest import run_check_program


def test_code_written_every_way_runs_after_fence_i(build_program, tcg_backend):
    # two harts taking turns on one thread
    run_check_program(
        build_program("code_writes", CBO=1, VEC=1), "pemu",
        extra=("-smp", "2", "-cpu", "rv64,zicboz=true,v=true",
               "-accel", f"tcg,backend={tcg_backend},thread=single"))


@pytest.mark.backends("native")
def test_code_written_every_way_under_mttcg(build_program, tcg_backend):
    # each hart on its own host thread: hart 1's stores (check 6) race hart 0's fences
    run_check_program(
        build_program("code_writes", CBO=1, VEC=1), "pemu",
        extra=("-smp", "2", "-cpu", "rv64,zicboz=true,v=true",
               "-accel", f"tcg,backend={tcg_backend},thread=multi"))


def test_qemu_agrees_with_the_program(build_program):
    run_check_program(build_program("code_writes"), "QEMU", oracle=True,
                      extra=("-smp", "2"))
