"""Blocks found again after their jump-cache entry went, and what must hide them.

programs/jc_conflict.S calls pairs of functions 256 KiB apart, whose pcs share an entry
of the native dispatcher's direct-mapped jump cache, 20 000 times each: every call
evicts the other's entry.  Before the dispatcher's second level (runtime.py: code TLB
and code table) each of those calls went back to Python to find the block again
(~80 k jump-cache misses, `-d stats`); now only first runs and the blocks of new
mappings do.  The program then remaps a virtual code page (sfence.vma) and patches a
function (fence.i) after the second level has found their old blocks many times: the
new code must run, on both backends, with one host thread per hart too, and Debian's
qemu-system-riscv64 agrees with the program.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.system.conftest import run_pemu

QEMU = "qemu-system-riscv64"
ROUNDS = 20_000  # the program's: calls of each conflicting pair


def _run(program, *extra: str) -> tuple[int, str]:
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel", str(program), "-nographic",
                 "-d", "stats", *extra, timeout=180)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, f"check {r.returncode} failed\n{r.stdout!r}\n{err}"
    assert b"DONE" in r.stdout
    return r.returncode, err


def test_changed_code_runs_after_the_second_level_found_the_old(build_program,
                                                                tcg_backend):
    _run(build_program("jc_conflict"))


@pytest.mark.backends("native")
def test_evicted_blocks_are_found_without_python(build_program, tcg_backend):
    _, err = _run(build_program("jc_conflict"))
    found = re.search(r"exits to python: (\d+) misses", err)
    assert found, err
    misses = int(found.group(1))
    # first runs of some 60 blocks and the code of the changed pages, against four
    # evictions per round (80 k) without the second level
    assert misses < 500, f"{misses} jump-cache misses for {ROUNDS} rounds"


@pytest.mark.backends("native")
def test_two_harts_on_their_own_threads(build_program, tcg_backend):
    _run(build_program("jc_conflict", HARTS=2), "-smp", "2", "-accel", "tcg,thread=multi")


def test_qemu_agrees_with_the_program(build_program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    r = subprocess.run([QEMU, "-M", "virt", "-bios", "none", "-kernel",
                        str(build_program("jc_conflict", HARTS=2)), "-smp", "2",
                        "-nographic"], capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode >> 16} failed"
