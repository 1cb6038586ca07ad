"""Atomic read-modify-write of a guest word: the one mechanism every atomic uses.

RISC-V's SC and AMOs, AArch64's STXR/STXP and LSE atomics (LDADD & co, SWP, CAS,
CASP), and the kernel's own updates of a futex word (PI futexes, robust lists,
FUTEX_WAKE_OP) are all "read the word, compute the new value, store it if the word
still holds what was read".  The store is the memory's ``cmpxchg``: a host ``lock
cmpxchg`` on the guest's bytes where the host has one, which is atomic against the
generated code's plain stores in other threads (MTTCG, user-mode threads) and
against *other processes* sharing the page (MAP_SHARED, a shared anonymous mapping
across fork: a process-shared mutex, a futex word, a counter).  A Python lock only
orders the threads of one process, so a read under it followed by a write can lose
another process's update.

A value of 16 bytes (a register pair: CASP, STXP, amocas.q) is one int, its low 8
bytes at the lower address.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class AtomicGuestMemory(Protocol):
    """What a guest memory offers for atomics (user mode's GuestVirtualMemory, system
    mode's VirtualMemory)."""

    def load_for_store(self, addr: int, size: int) -> int:
        """The read half: needs write permission and faults as a store."""
        ...

    def cmpxchg(self, addr: int, size: int, expected: int, new: int) -> int:
        """Store ``new`` if the ``size`` aligned bytes at ``addr`` hold ``expected``,
        atomically against every other writer; returns what they held."""
        ...


def atomic_update(mem: AtomicGuestMemory, addr: int, size: int,
                  change: Callable[[int], int | None]) -> int:
    """Replace the ``size`` bytes at ``addr`` (value ``old``) by ``change(old)``
    atomically, or leave them if it returns None; returns ``old``.  ``change`` may run
    more than once: a store that came in between fails the swap and it runs again on
    the new value (it must have no side effects)."""
    mask = (1 << (8 * size)) - 1
    while True:
        old = mem.load_for_store(addr, size)
        new = change(old)
        if new is None or mem.cmpxchg(addr, size, old, new & mask) == old:
            return old


def compare_and_swap(mem: AtomicGuestMemory, addr: int, size: int, expected: int,
                     new: int) -> int:
    """Store ``new`` if the word holds ``expected``; returns the value found (equal to
    ``expected`` exactly when it stored).  It faults as a store even where the
    comparison fails, as CAS and SC do."""
    mask = (1 << (8 * size)) - 1
    expected &= mask
    return atomic_update(mem, addr, size, lambda old: new if old == expected else None)


__all__ = ["AtomicGuestMemory", "atomic_update", "compare_and_swap"]
