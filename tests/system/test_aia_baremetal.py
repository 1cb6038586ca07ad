"""The hart's AIA CSRs and the IMSIC/APLIC MSI path, bare metal (``aia_imsic.S``) on
``-M virt,aia=aplic-imsic``: miselect/mireg, mtopei, mtopi, MEIP from the M file, an
APLIC MSI from a live wired source (the UART), genmsi, the threshold, and the S file
through siselect/sireg, stopei and stopi.  The same program passes on QEMU, except
for the one check QEMU 7.2 gets wrong (it does not byte-swap seteipnum_be)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"


def test_imsic_csrs_and_aplic_msis_on_pemu(build_program, tcg_backend):
    r = run_pemu("-M", "virt,aia=aplic-imsic", "-bios", "none", "-nographic",
                 "-kernel", str(build_program("aia_imsic")), timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


def test_without_aia_the_csrs_are_illegal(build_program, tcg_backend):
    # on the PLIC board the first miselect write traps: the program's trap handler
    # sees an illegal instruction where it expects none, and fails check 1
    r = run_pemu("-M", "virt", "-bios", "none", "-nographic",
                 "-kernel", str(build_program("aia_imsic")), timeout=120)
    assert r.returncode == 1, r.stderr.decode()


def test_qemu_agrees_with_the_program(build_program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    r = subprocess.run([QEMU, "-M", "virt,aia=aplic-imsic", "-bios", "none", "-nographic",
                        "-kernel", str(build_program("aia_imsic", QEMU72=1))],
                       capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode} failed"
