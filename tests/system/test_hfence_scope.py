"""hfence.vvma by address and by ASID drops exactly what it must (``hfence_scope.S``,
on both backends and on QEMU 7.2), and fences only the guests: the host's TLB
survives (before, every hfence flushed every address space, host included, which cost
a nested KVM host a TLB refill for every page after each guest entry)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.system.conftest import pemu_cmd, pemu_env, run_pemu

QEMU = "qemu-system-riscv64"
ROUNDS = 2000
PAGES = 16  # the host pages each round touches


def test_targeted_fences_drop_the_guest_translation(build_program, tcg_backend):
    r = run_pemu("-M", "virt", "-cpu", "rv64,h=true", "-bios", "none", "-nographic",
                 "-kernel", str(build_program("hfence_scope")), timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"


def test_qemu_agrees_with_the_program(build_program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    r = subprocess.run([QEMU, "-M", "virt", "-cpu", "rv64,h=true", "-bios", "none",
                        "-nographic", "-kernel", str(build_program("hfence_scope", QEMU72=1))],
                       capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode} failed"


@pytest.mark.backends("native")
def test_the_hosts_tlb_survives_hfence_vvma(build_program, tcg_backend):
    env = pemu_env() | {"PEMU_COUNTERS": "1"}
    r = subprocess.run(pemu_cmd("-M", "virt", "-cpu", "rv64,h=true", "-bios", "none",
                                "-nographic", "-kernel",
                                str(build_program("hfence_scope", HOST_LOOP=ROUNDS))),
                       env=env, capture_output=True, input=b"", timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    out = r.stdout.decode() + r.stderr.decode()
    assert re.search(rf"helper:hfence\s+{ROUNDS}\b", out), out[-3000:]
    # the host's loads and stores miss the TLB once per page, not once per round
    misses = sum(int(n) for n in re.findall(r"helper:softmmu_(?:load|store)_mmu1\s+(\d+)",
                                            out))
    assert misses < 4 * PAGES, out[-3000:]
