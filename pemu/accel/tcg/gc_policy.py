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

The middle generation's threshold is raised too: with CPython's 10, every ten young
collections a middle one walked everything promoted since (a first boot keeps its
blocks: 12 middle collections of the lean boot, 21 of Debian's, and the full ones
they lead to, over the whole heap: 0.2 s and 1.0 s of CPU).  Next to nothing a
translation leaves is cyclic garbage (``gc.DEBUG_SAVEALL`` over a lean boot: a few
hundred objects), so a middle collection every hundred young ones loses nothing but
that work: at most one middle collection in either cold boot, no full one.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
MIDDLE_THRESHOLD = 100  # young collections between two middle ones


def pace_collector_for_translation() -> None:
    """Raise the young and middle generations' thresholds (never lower one a program
    set; a program's own young threshold, or a collector turned off, stays as is)."""
    young, middle, old = gc.get_threshold()
    if 0 < young < YOUNG_THRESHOLD:
        gc.set_threshold(YOUNG_THRESHOLD, max(middle, MIDDLE_THRESHOLD), old)


__all__ = ["MIDDLE_THRESHOLD", "YOUNG_THRESHOLD", "pace_collector_for_translation"]
