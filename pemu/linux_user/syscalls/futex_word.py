"""Atomic updates of a guest futex word from the syscall layer.

PI futexes and robust lists have the kernel change a lock word that guest threads
change concurrently with their own atomics (an unlock is ``cas(tid -> 0)`` in user
space), and other processes too where the word is in shared memory.  A Python read
followed by a write would lose such a store, so the update is accel/tcg's
guest_atomics on the 4-byte word: the same host ``lock cmpxchg`` the frontends'
atomic helpers end in.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg import guest_atomics

FUTEX_WAITERS = 0x80000000
FUTEX_OWNER_DIED = 0x40000000
FUTEX_TID_MASK = 0x3FFFFFFF


def load(mem: object, addr: int) -> int:
    return mem.load_slow(addr, 4)


def compare_and_swap(mem: guest_atomics.AtomicGuestMemory, addr: int, expected: int,
                     new: int) -> int:
    """Store ``new`` if the word holds ``expected``; returns the value found
    (GuestFault where the guest may not write it: EFAULT, as the kernel's fault)."""
    return guest_atomics.compare_and_swap(mem, addr, 4, expected, new)


def update(mem: guest_atomics.AtomicGuestMemory, addr: int,
           change: Callable[[int], int | None]) -> int:
    """Replace the word by ``change(old)`` atomically (unchanged when that is None);
    returns the old value."""
    return guest_atomics.atomic_update(mem, addr, 4, change)
