"""Bare-metal programs on ``pemu-system-aarch64 -M virt``, compared byte for byte with
``qemu-system-aarch64 -M virt -cpu cortex-a57`` (Debian's qemu-system-arm): exception
levels and vectors, SVC/BRK/ERET, DAIF and SPSel, undefined system-register accesses
from EL0, the MMU with 4 KiB and 64 KiB granules (faults' ESR/FAR, AT, TLBI), and PSCI
SYSTEM_OFF ending the run, PSCI CPU_ON/CPU_OFF/AFFINITY_INFO with -smp 2, and the
generic timer's interrupts through the GICv3.  Each
program prints through the PL011 and powers off.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from tests.aarch64.system.bare_metal import assemble, need

BACKENDS = ["python"] + (["native"] if host_supported() else [])
QEMU = "qemu-system-aarch64"
PROGRAMS = {  # name: (source, assembler options, machine options for both emulators)
    "exceptions": ("exceptions.S", [], ["-M", "virt"]),
    "mmu-4k": ("mmu.S", [], ["-M", "virt"]),
    "mmu-64k": ("mmu.S", ["--defsym", "GRANULE_64K=1"], ["-M", "virt"]),
    "timer-gicv3": ("timer.S", [], ["-M", "virt,gic-version=3"]),
    "psci-smp": ("psci_smp.S", [], ["-M", "virt", "-smp", "2"]),
    "ldp-pressure": ("ldp_pressure.S", [], ["-M", "virt"]),
}
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("a64sys")
    return {name: assemble(out, source, name, defs)
            for name, (source, defs, _) in PROGRAMS.items()}


@pytest.fixture(scope="module")
def qemu_output(built) -> dict[str, bytes]:
    need(QEMU)
    return {name: subprocess.run([QEMU, *PROGRAMS[name][2], "-cpu", "cortex-a57",
                                  "-nographic",
                                  "-no-reboot", "-kernel", str(elf)], capture_output=True,
                                 timeout=TIMEOUT_S, check=True).stdout
            for name, elf in built.items()}


def run_pemu(elf: Path, backend: str, machine: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pemu.cli.system_aarch64", *machine,
                           "-cpu", "cortex-a57", "-nographic", "-no-reboot", "-kernel",
                           str(elf), "-accel", f"tcg,backend={backend}"],
                          capture_output=True, timeout=TIMEOUT_S)


# every program on the default backend; the python backend (slower to start and run)
# on the two that exercise the most frontend paths
RUNS = [(p, BACKENDS[-1]) for p in PROGRAMS] + \
    ([("exceptions", "python"), ("mmu-64k", "python")] if len(BACKENDS) > 1 else [])


@pytest.mark.parametrize(("program", "backend"), RUNS)
def test_same_output_as_qemu(built, qemu_output, program: str, backend: str) -> None:
    result = run_pemu(built[program], backend, PROGRAMS[program][2])
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == qemu_output[program]


def test_the_programs_do_what_they_test(qemu_output) -> None:
    """The reference output itself shows the behaviour (so a broken program cannot make
    both sides agree on nothing)."""
    exc = qemu_output["exceptions"].decode()
    assert "hello EL 0000000000000004 00000000000003c0" in exc  # EL1, DAIF masked
    assert "EXC 0000000000000400 0000000056001234" in exc  # SVC from EL0
    assert "EXC 0000000000000400 0000000002000000" in exc  # undefined MRS at EL0
    mmu = qemu_output["mmu-4k"].decode()
    assert "1122334455667788 1122334455667788 1122334455667788" in mmu
    assert "0000000096000005" in mmu and "00000000c0000000" in mmu  # level 1 miss
    assert "000000009600004f" in mmu  # permission fault on write, level 3
    assert "000000009600000b" in qemu_output["mmu-64k"].decode()  # access flag, level 3
    timer = qemu_output["timer-gicv3"].decode()
    assert "IRQ 000000000000001b" in timer and "IRQ 000000000000001e" in timer
    assert qemu_output["ldp-pressure"].startswith(b"0001000040000000 000000005ff09000")
    psci = qemu_output["psci-smp"].decode()
    assert "secondary 0000000080000001 0000000000005eed" in psci
