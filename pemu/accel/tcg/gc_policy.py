"""The cyclic garbage collector's pace in a process that translates guest code.

Translating one block allocates thousands of short-lived container objects (IR ops,
operand lists, temps, closures of the code generator), nearly all of them freed by
reference counting the moment the block is done.  CPython still starts a young
collection every 700 net allocations and, every hundred of those, an older one that
walks the emulator's whole heap: during a boot that was 1 079 collections and about
7 % of the CPU (0.6 s of 8.4 s for the lean riscv64 boot, PERFORMANCE.md "Translation
cost").  A larger first threshold keeps the collector for what it is for (reference
cycles) at a small fraction of that cost; the memory it may hold back is the cyclic
garbage of 20 000 allocations.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def pace_collector_for_translation() -> None:
    """Raise the young generation's threshold (never lower one a program set)."""
    young, middle, old = gc.get_threshold()
    if 0 < young < YOUNG_THRESHOLD:
        gc.set_threshold(YOUNG_THRESHOLD, middle, old)


__all__ = ["YOUNG_THRESHOLD", "pace_collector_for_translation"]
