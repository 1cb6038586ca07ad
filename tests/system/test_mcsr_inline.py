"""The M-mode CSRs translated code reads and writes in state slots (csr_inline.py:
mscratch, mepc, mcause, mtval, and reads of mhartid and mstatus, OpenSBI's
trap-handler traffic),
on both backends and under MTTCG, with two harts; the same ELF runs on Debian's
qemu-system-riscv64 as the oracle.  A hartid slot not set per hart fails check 8; a
write of mhartid done inline fails check 9; slots that Python's trap entry or mret do
not share with translated code fail checks 10, 11 or 13; the inline path taken from
S-mode fails check 12; an mstatus read without SD fails check 14."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"


def _args(program: str) -> list[str]:
    return ["-M", "virt", "-smp", "2", "-bios", "none", "-kernel", program, "-nographic"]


def _check(r: subprocess.CompletedProcess, who: str) -> None:
    output = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    assert r.returncode == 0, (f"{who}: check {r.returncode} failed "
                               f"(programs/mcsr_inline.S)\n{output}")
    assert b"DONE" in r.stdout, output


def test_m_csrs_inline(build_program, tcg_backend):
    r = run_pemu(*_args(str(build_program("mcsr_inline"))), timeout=60)
    _check(r, f"pemu {tcg_backend}")


def test_m_csrs_inline_mttcg(build_program):
    r = run_pemu(*_args(str(build_program("mcsr_inline"))), "-accel",
                 "tcg,backend=native,thread=multi", timeout=60)
    _check(r, "pemu thread=multi")


def test_qemu_agrees_with_the_program(build_program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    r = subprocess.run([QEMU, *_args(str(build_program("mcsr_inline")))],
                       capture_output=True, input=b"", timeout=60)
    _check(r, "QEMU")
