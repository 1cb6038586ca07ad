"""sfence.vma with an address on the native backend: no stale entry after a flush the
page-flush probe did in machine code (accel/tcg/page_filter.py), against the python
backend and QEMU.

programs/sfence_page.S fills pages through the native walker (data and code), in two
address spaces, through a 2 MiB leaf, after the filter was rebuilt, then remaps and
fences each by address and checks that the next access sees the new page; and that
mstatus.TVM still makes the fence trap for a page no TLB holds.  On the native
backend most of its fences find nothing cached and are done by the probe (the stats
line counts them), so a probe that answered "nothing" for a cached page would leave
the stale entry that a check reads.  QEMU running the same ELF shows the expected
values are the architecture's.
"""

from __future__ import annotations

from tests.system.conftest import run_check_program, stats_count


def test_no_stale_entry_after_a_page_flush(build_program, tcg_backend):
    stats = run_check_program(build_program("sfence_page"), f"pemu ({tcg_backend})")
    if tcg_backend == "native":
        # the probe took part: the 200 fences of a page no TLB holds any more are
        # mostly its own (after the rebuild of its stale byte)
        assert stats_count(stats, "native page flushes") >= 100, stats


def test_qemu_agrees_with_the_program(build_program):
    run_check_program(build_program("sfence_page"), "QEMU", oracle=True)


FENCES = 100


def test_fences_after_the_holder_let_go_stay_native(build_program, tcg_backend):
    """programs/filter_release.S: once the address space that held a page is gone (its
    ASID fenced) or has dropped the page (fenced while held), the page's next fences
    are the probe's own on the native backend: the filter's Python byte was cleared
    at once (with bytes left set until a rebuild, the first 64 or so of each series
    went to Python to find nothing); the new mappings show on both backends."""
    elf = build_program("filter_release", FENCES=FENCES)
    stats = run_check_program(elf, f"pemu ({tcg_backend})")
    if tcg_backend == "native":
        assert stats_count(stats, "native page flushes") >= 2 * FENCES, stats


def test_qemu_agrees_with_filter_release(build_program):
    run_check_program(build_program("filter_release", FENCES=FENCES), "QEMU", oracle=True)
