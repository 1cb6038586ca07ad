"""Shared futexes on the host kernel's own queues.

pemu's wait queues (sync.FutexTable) live in one pemu process, but a futex without
FUTEX_PRIVATE_FLAG may be waited on and woken from several processes through shared
memory (process-shared semaphores, mutexes and barriers; Python's multiprocessing
locks).  Guest memory is host memory, so such a futex is the host's futex at
``mem.base + addr``: the kernel finds the same word from every process mapping it
(and, for a private mapping, from every thread of this one).  Waits go to the host in
short slices so that a signal pemu queues for the thread (which never interrupts a
host call) is noticed between them; wakes go to both the host and pemu's queues,
since the kernel's own wake-ups (CLEARTID at thread exit, robust lists) do not know
which kind of waiter they have.
"""

from __future__ import annotations

import ctypes
import errno
import time

from ..vmem import GuestFault
from .hostcall import host

FUTEX_WAKE_BITSET = 10
FUTEX_WAIT_BITSET = 9
FUTEX_REQUEUE, FUTEX_CMP_REQUEUE = 3, 4
BITSET_MATCH_ANY = 0xFFFFFFFF
SIGNAL_CHECK_INTERVAL = 0.05  # how late a pemu-queued signal may interrupt a shared wait


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_int64), ("tv_nsec", ctypes.c_int64)]


def _host_addr(mem, addr: int, write: bool = False) -> int:
    addr = mem.untagged(addr)
    mem.check(addr, 4, write=write)  # GuestFault -> EFAULT
    return mem.base + addr


def wait(t, addr: int, expected: int, deadline: float | None, bitset: int) -> int:
    """FUTEX_WAIT(_BITSET) on the host's queue of the word; 0, -EAGAIN, -ETIMEDOUT or
    -EINTR (a guest signal is deliverable)."""
    target = _host_addr(t.process.mem, addr)
    first = True
    while True:
        if t.signals.first_deliverable() is not None:
            return -errno.EINTR
        now = time.monotonic()
        end = now + SIGNAL_CHECK_INTERVAL
        if deadline is not None:
            if deadline <= now:
                return -errno.ETIMEDOUT
            end = min(end, deadline)
        # absolute CLOCK_MONOTONIC, time.monotonic()'s clock
        stamp = _Timespec(int(end), int((end % 1) * 1e9))
        ret = host("futex", target, FUTEX_WAIT_BITSET, expected, ctypes.addressof(stamp),
                   0, bitset)
        if ret == 0:
            return 0
        if ret == -errno.EAGAIN:
            # the word changed: at once, the caller's value is stale; after a slice,
            # a wake-up came between two slices (the waker changes the word first)
            return -errno.EAGAIN if first else 0
        if ret not in (-errno.ETIMEDOUT, -512, -errno.EINTR):  # (-512: RESTART)
            return ret
        first = False


def wake(mem, addr: int, count: int, bitset: int = BITSET_MATCH_ANY) -> int:
    """FUTEX_WAKE_BITSET on the host's queue of the word."""
    if count <= 0:
        return 0
    try:
        target = _host_addr(mem, addr)
    except GuestFault:  # a bad pointer: nothing can wait there
        return 0
    ret = host("futex", target, FUTEX_WAKE_BITSET, min(count, 0x7FFFFFFF), 0, 0, bitset)
    return max(ret, 0)


def requeue(mem, addr: int, count: int, addr2: int, limit: int, expected: int | None) -> int:
    """FUTEX_REQUEUE (``expected`` None) or FUTEX_CMP_REQUEUE of the host's waiters."""
    target, target2 = _host_addr(mem, addr), _host_addr(mem, addr2)
    if expected is None:
        return host("futex", target, FUTEX_REQUEUE, count, limit, target2, 0)
    return host("futex", target, FUTEX_CMP_REQUEUE, count, limit, target2, expected)
