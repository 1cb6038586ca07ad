"""Zihpm counters that count and Sscofpmf (-cpu rv64,sscofpmf=true) in a bare-metal
program that checks itself (programs/pmu.S): writable counters, 16 of them, cycles
counting, the wrap setting OF and LCOFI, scountovf, LCOFI delegated to S.  The same
ELF runs on Debian's qemu-system-riscv64 (7.2) as the oracle; pemu's run also checks
mcountinhibit and the mode inhibits (STRICT), which QEMU 7.2 does not filter by.
The device tree's PMU node (what OpenSBI's SBI PMU reads) is QEMU's, byte for byte."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.fdt.dtb_reader import read_dtb
from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"
CPU = "rv64,sscofpmf=true"


def _args(program: str, machine: str = "virt") -> list[str]:
    return ["-M", machine, "-bios", "none", "-cpu", CPU, "-kernel", program, "-nographic"]


def test_counters_and_overflow_interrupt(build_program, tcg_backend):
    r = run_pemu(*_args(str(build_program("pmu", STRICT=1))), timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


def test_qemu_agrees_with_the_program(build_program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    r = subprocess.run([QEMU, *_args(str(build_program("pmu")))],
                       capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode} failed"


def test_device_tree_pmu_node_and_isa(build_program, tmp_path):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    elf = str(build_program("pmu"))
    ours, theirs = tmp_path / "pemu.dtb", tmp_path / "qemu.dtb"
    r = run_pemu(*_args(elf, f"virt,dumpdtb={ours}"), timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    subprocess.run([QEMU, *_args(elf, f"virt,dumpdtb={theirs}")], capture_output=True,
                   input=b"", timeout=60, check=True)
    pemu_nodes, qemu_nodes = read_dtb(ours.read_bytes()), read_dtb(theirs.read_bytes())
    assert pemu_nodes["/pmu"] == qemu_nodes["/pmu"]
    isa = pemu_nodes["/cpus/cpu@0"]["riscv,isa"].rstrip(b"\0").decode()
    assert "_sscofpmf" in isa, isa
