"""CNTVCT_EL0/CNTPCT_EL0 read inline by translated code (insn_el1.mrs from the
counter-start slot, accel/tcg/guest_clock.py): the same output as QEMU (monotonic at
EL1 and EL0, consistent with the virtual timer's CVAL comparison, 62.5 MHz against
the PL031 RTC), on both backends; with the native backend the reads take no MRS
helper (PEMU_COUNTERS)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from tests.aarch64.system.bare_metal import assemble, need

BACKENDS = ["python"] + (["native"] if host_supported() else [])
QEMU = "qemu-system-aarch64"
EXPECTED = b"0000000000000000 \n0000000000000001 \n0000000000000001 \n0000000000000000 \n"
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def elf(tmp_path_factory) -> Path:
    return assemble(tmp_path_factory.mktemp("a64counter"), "cntvct.S")


def _pemu(elf: Path, backend: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pemu.cli.system_aarch64", "-M", "virt",
                           "-cpu", "cortex-a57", "-nographic", "-no-reboot", "-kernel",
                           str(elf), "-accel", f"tcg,backend={backend}"],
                          capture_output=True, timeout=TIMEOUT_S, env=env)


@pytest.mark.parametrize("backend", BACKENDS)
def test_counter_reads(elf, backend: str) -> None:
    result = _pemu(elf, backend, os.environ | {"PEMU_COUNTERS": "1"})
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(EXPECTED), result.stdout
    if backend == "native":  # the loops read the counters 80000+ times, none by helper
        out = result.stderr.decode()
        helper_reads = sum(int(n) for n in re.findall(r"sysreg:mrs CNT[PV]CT_EL0\s+(\d+)",
                                                      out))
        assert helper_reads == 0, out[-3000:]


def test_qemu_prints_the_same(elf) -> None:
    need(QEMU)
    result = subprocess.run([QEMU, "-M", "virt", "-cpu", "cortex-a57", "-nographic",
                             "-no-reboot", "-kernel", str(elf)], capture_output=True,
                            timeout=TIMEOUT_S, check=True)
    assert result.stdout.startswith(EXPECTED), result.stdout
