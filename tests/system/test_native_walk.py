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

import pytest

from tests.system.conftest import run_check_program, stats_count

LEVELS = [(3, "sv39"), (4, "sv48")]


@pytest.mark.parametrize("levels,name", LEVELS)
def test_walk_edges(build_program, tcg_backend, levels, name):
    stats = run_check_program(build_program("walk_edges", LEVELS=levels),
                              f"pemu {name} ({tcg_backend})")
    if tcg_backend == "native":
        # the walker did take part: the pages it may fill (the 1 GiB, 2 MiB and
        # ordinary leaves read after the faults and fences) are more than ten
        assert stats_count(stats, "native page walks") >= 10, stats


@pytest.mark.parametrize("levels,name", LEVELS)
def test_qemu_agrees_with_the_program(build_program, levels, name):
    run_check_program(build_program("walk_edges", LEVELS=levels), f"QEMU {name}",
                      oracle=True)
