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

from tests.system.conftest import run_check_program, stats_count


def test_fetch_edges(build_program, tcg_backend):
    stats = run_check_program(build_program("fetch_edges"), f"pemu ({tcg_backend})")
    if tcg_backend == "native":
        # the fetch walk did take part: in the fresh spaces, the pages whose blocks
        # exist and whose PTEs allow the fetch (six functions' pages, the 2 MiB leaf
        # twice, the program's own code after each satp write)
        assert stats_count(stats, "native fetch walks") >= 8, stats


def test_qemu_agrees_with_the_program(build_program):
    run_check_program(build_program("fetch_edges"), "QEMU", oracle=True)
