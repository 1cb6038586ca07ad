"""The native page walker's edge cases, against the python backend and QEMU.

programs/walk_edges.S makes S-mode loads and stores touch pages whose PTEs are each
an edge of the walk (its header lists them): superpages, A or D clear, U pages with
and without SUM, MXR, invalid and reserved PTEs, a misaligned superpage, PMP-denied
pages and page tables, PTEs changed and fenced with and without an address.  Every
first access to a page misses the TLB, so on the native backend the walker in
backend/x86_64/page_walk.py fills it or hands it to the Python walk; a fill it should
have declined (D clear, a user page without SUM, ...) or a fill Python does not know
about at the next ``sfence.vma addr`` (a stale page or superpage piece) fails a check.
The program checks its own results; QEMU running the same ELF shows the expected
values are the architecture's.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"
LEVELS = [(3, "sv39"), (4, "sv48")]


def _explain(who: str, r: subprocess.CompletedProcess) -> str:
    return (f"{who}: check {r.returncode} failed (numbers in programs/walk_edges.S)\n"
            f"{r.stdout.decode(errors='replace')}{r.stderr.decode(errors='replace')}")


@pytest.mark.parametrize("levels,name", LEVELS)
def test_walk_edges(build_program, tcg_backend, levels, name):
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel",
                 str(build_program("walk_edges", LEVELS=levels)), "-nographic",
                 "-d", "stats", timeout=120)
    assert r.returncode == 0, _explain(f"pemu {name} ({tcg_backend})", r)
    assert b"DONE" in r.stdout
    if tcg_backend == "native":
        # the walker did take part: the pages it may fill (the 1 GiB, 2 MiB and
        # ordinary leaves read after the faults and fences) are more than ten
        found = re.search(r"native page walks (\d+)", r.stderr.decode())
        assert found, r.stderr.decode()
        assert int(found.group(1)) >= 10


@pytest.mark.parametrize("levels,name", LEVELS)
def test_qemu_agrees_with_the_program(build_program, levels, name):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    elf = build_program("walk_edges", LEVELS=levels)
    r = subprocess.run([QEMU, "-M", "virt", "-bios", "none", "-kernel", str(elf),
                        "-nographic"], capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, _explain(f"QEMU {name}", r)
    assert b"DONE" in r.stdout
