"""Interrupts are not lost when two harts share the host thread.

``mip_seip.S``: csrs/csrc on mip must not latch the PLIC's SEIP line into the
software SEIP bit.  It did, whenever OpenSBI posted an IPI (csrs mip, SSIP) while a
device interrupt was pending: Linux with ``-smp 2`` then took supervisor external
interrupts forever, never its timer or IPIs (RCU stalls, hard lockups, the console
dead at the idle shell).  ``smp_sstc_wfi.S``: a hart sleeping in WFI is woken by its
own Sstc timer while the other hart has the host thread.

``smp_timer.S``: hart 1 spins while hart 0 takes 400 machine timer interrupts, each
handler arming the next.  A lost interrupt is never re-armed, so hart 0 would spin
until the timeout.  pemu used to lose the interrupt whose exit request coincided with
the end of the hart's quantum (it cleared the request, then stopped the hart without
looking at interrupts): the Debian guest with ``-smp 2`` then reported hard lockups
and crawled.  The same program passes on QEMU."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"


def test_every_timer_interrupt_arrives_with_two_harts(build_program, tcg_backend):
    r = run_pemu("-M", "virt", "-smp", "2", "-bios", "none", "-nographic",
                 "-kernel", str(build_program("smp_timer")), timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


def test_setting_mip_bits_does_not_latch_the_external_line(build_program):
    r = run_pemu("-M", "virt", "-bios", "none", "-nographic",
                 "-kernel", str(build_program("mip_seip")), timeout=60)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


def test_sstc_timer_wakes_the_hart_in_wfi(build_program, tcg_backend):
    r = run_pemu("-M", "virt", "-smp", "2", "-bios", "none", "-nographic",
                 "-kernel", str(build_program("smp_sstc_wfi")), timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


@pytest.mark.parametrize("program", ["smp_timer", "mip_seip", "smp_sstc_wfi"])
def test_qemu_agrees_with_the_program(build_program, program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    r = subprocess.run([QEMU, "-M", "virt", "-smp", "2", "-bios", "none", "-nographic",
                        "-kernel", str(build_program(program))],
                       capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode} failed"
