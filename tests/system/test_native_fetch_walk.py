"""The native fetch walk's edge cases (the dispatcher's code TLB refill), against the
python backend and QEMU.

programs/fetch_edges.S runs functions in one address space, so that their blocks
exist, and then at the same virtual addresses in fresh address spaces (new ASIDs)
whose PTEs are the edges (its header lists them).  On the native backend the
dispatcher finds those blocks without Python when the fetch walk in
backend/x86_64/page_walk.py fills the code TLB: a fill it should have declined (a U
page run from S, an S page from U, A clear, no X) runs a block instead of faulting, and
a fill that ``sfence.vma addr`` does not reach (its page, its superpage pieces, the
jump cache slots under its flags) runs the old code; either fails a check.  The
program checks its own results; QEMU running the same ELF shows the expected values
are the architecture's.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"


def _explain(who: str, r: subprocess.CompletedProcess) -> str:
    return (f"{who}: check {r.returncode} failed (numbers in programs/fetch_edges.S)\n"
            f"{r.stdout.decode(errors='replace')}{r.stderr.decode(errors='replace')}")


def test_fetch_edges(build_program, tcg_backend):
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel",
                 str(build_program("fetch_edges")), "-nographic", "-d", "stats",
                 timeout=120)
    assert r.returncode == 0, _explain(f"pemu ({tcg_backend})", r)
    assert b"DONE" in r.stdout
    if tcg_backend == "native":
        # the fetch walk did take part: in the fresh spaces, the pages whose blocks
        # exist and whose PTEs allow the fetch (six functions' pages, the 2 MiB leaf
        # twice, the program's own code after each satp write)
        found = re.search(r"native fetch walks (\d+)", r.stderr.decode())
        assert found, r.stderr.decode()
        assert int(found.group(1)) >= 8, r.stderr.decode()


def test_qemu_agrees_with_the_program(build_program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    elf = build_program("fetch_edges")
    r = subprocess.run([QEMU, "-M", "virt", "-bios", "none", "-kernel", str(elf),
                        "-nographic"], capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, _explain("QEMU", r)
    assert b"DONE" in r.stdout
