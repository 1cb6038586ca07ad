"""Atomic updates of a guest futex word from the syscall layer.

PI futexes and robust lists have the kernel change a lock word that guest threads
change concurrently with their own atomics (an unlock is ``cas(tid -> 0)`` in user
space).  A Python read followed by a write would lose such a store, so on an x86-64
host the update is a host ``lock cmpxchg`` on the word's bytes, atomic against the
generated code's atomics and plain stores alike; ``mem.lock`` is held as well, which
is what the frontends' atomic helpers (the python backend's path) take.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.accel.tcg.backend.x86_64.host_atomics import host_atomics

FUTEX_WAITERS = 0x80000000
FUTEX_OWNER_DIED = 0x40000000
FUTEX_TID_MASK = 0x3FFFFFFF

_HOST_CMPXCHG = host_supported()


def load(mem: object, addr: int) -> int:
    return mem.load_slow(addr, 4)


def compare_and_swap(mem: object, addr: int, expected: int, new: int) -> int:
    """Store ``new`` if the word holds ``expected``; returns the value found."""
    with mem.lock:
        if _HOST_CMPXCHG:
            mem.check(addr, 4, write=True)  # GuestFault -> EFAULT, as the kernel's fault
            mem.note_host_write(addr, 4)
            return host_atomics().cmpxchg(mem.base + addr, 4, expected, new)
        old = mem.load_slow(addr, 4)
        if old == expected:
            mem.store_slow(addr, 4, new)
        return old


def update(mem: object, addr: int, change: Callable[[int], int | None]) -> int:
    """Replace the word by ``change(old)`` atomically (unchanged when that is None);
    returns the old value."""
    while True:
        old = load(mem, addr)
        new = change(old)
        if new is None or compare_and_swap(mem, addr, old, new & 0xFFFFFFFF) == old:
            return old
