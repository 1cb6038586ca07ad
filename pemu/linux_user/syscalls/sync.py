"""futex: wait queues keyed by guest address, woken through each thread's event.

The PI operations are in futex_pi.py, the robust-list walk at thread exit in
robust_list.py; both use this table's queues and its lock."""

from __future__ import annotations

import errno
import struct
import threading
import time

from . import futex_host, futex_pi, futex_word
from .registry import RESTART_NOINTR, syscall

FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI = 6, 7, 8
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET, FUTEX_LOCK_PI2 = 9, 10, 13
FUTEX_WAIT_REQUEUE_PI, FUTEX_CMP_REQUEUE_PI = 11, 12
FUTEX_PRIVATE_FLAG = 128
FUTEX_CLOCK_REALTIME = 256
BITSET_MATCH_ANY = 0xFFFFFFFF


class _Waiter:
    __slots__ = ("thread", "addr", "bitset", "woken", "pi", "requeue_pi_to")

    def __init__(self, thread, addr: int, bitset: int, pi: bool = False) -> None:
        self.thread = thread
        self.addr = addr  # the queue it is on now (FUTEX_CMP_REQUEUE moves it)
        self.bitset = bitset
        self.woken = False
        self.pi = pi  # blocked in FUTEX_LOCK_PI: woken to retry taking the lock
        self.requeue_pi_to = 0  # FUTEX_WAIT_REQUEUE_PI: the PI lock it is to move to


class FutexTable:
    """All futex wait queues of one process (private and shared alike: one mm)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queues: dict[int, list[_Waiter]] = {}

    def wait(self, thread, addr: int, expected: int, deadline: float | None,
             bitset: int) -> int:
        mem = thread.process.mem
        with self.lock:
            # Checked under the lock: a waker stores the new value before calling
            # FUTEX_WAKE, which takes the same lock, so no wake-up is lost.
            (value,) = struct.unpack("<I", mem.read(addr, 4))
            if value != expected:
                return -errno.EAGAIN
            waiter = self.enqueue(thread, addr, bitset)
        return self.block(waiter, deadline)

    def enqueue(self, thread, addr: int, bitset: int = BITSET_MATCH_ANY,
                pi: bool = False) -> _Waiter:
        """Queue ``thread`` on ``addr`` (the caller holds ``lock``)."""
        waiter = _Waiter(thread, addr, bitset, pi)
        self.queues.setdefault(addr, []).append(waiter)
        return waiter

    def block(self, waiter: _Waiter, deadline: float | None) -> int:
        """Sleep until woken (0), a signal is deliverable (-EINTR) or the deadline
        passed (-ETIMEDOUT); a waiter that did not get woken leaves the queue."""
        thread = waiter.thread
        while True:
            thread.wake.clear()
            if waiter.woken:
                return 0
            timeout = None
            if deadline is not None:
                timeout = deadline - time.monotonic()
            interrupted = thread.signals.first_deliverable() is not None
            if interrupted or (timeout is not None and timeout <= 0):
                with self.lock:
                    if waiter.woken:
                        return 0
                    self.dequeue(waiter)
                return -errno.EINTR if interrupted else -errno.ETIMEDOUT
            thread.wake.wait(timeout)

    def dequeue(self, waiter: _Waiter) -> None:
        """Take a waiter off its queue (the caller holds ``lock``)."""
        queue = self.queues.get(waiter.addr, [])
        if waiter in queue:
            queue.remove(waiter)
        if not queue:
            self.queues.pop(waiter.addr, None)

    def move(self, waiter: _Waiter, addr2: int) -> None:
        """Requeue one waiter at the end of addr2's queue (the caller holds ``lock``)."""
        self.dequeue(waiter)
        waiter.addr = addr2
        self.queues.setdefault(addr2, []).append(waiter)

    def has_waiters(self, addr: int) -> bool:
        return bool(self.queues.get(addr))

    def wake_first(self, addr: int) -> _Waiter | None:
        """Wake the longest waiter on ``addr`` (the caller holds ``lock``)."""
        queue = self.queues.get(addr)
        if not queue:
            return None
        waiter = queue.pop(0)
        if not queue:
            self.queues.pop(addr, None)
        waiter.woken = True
        waiter.thread.wake.set()
        return waiter

    def wake(self, addr: int, count: int, bitset: int = BITSET_MATCH_ANY) -> int:
        with self.lock:
            return self.wake_locked(addr, count, bitset)

    def wake_locked(self, addr: int, count: int, bitset: int = BITSET_MATCH_ANY) -> int:
        """FUTEX_WAKE with ``lock`` held by the caller."""
        woken = 0
        queue = self.queues.get(addr)
        if not queue:
            return 0
        for waiter in list(queue):
            if woken >= count:
                break
            if waiter.bitset & bitset:
                queue.remove(waiter)
                waiter.woken = True
                waiter.thread.wake.set()
                woken += 1
        if not queue:
            self.queues.pop(addr, None)
        return woken

    def requeue(self, addr: int, count: int, addr2: int, limit: int) -> int:
        woken = self.wake(addr, count)
        with self.lock:
            queue = self.queues.get(addr, [])
            moved, rest = queue[:limit], queue[limit:]
            if rest:
                self.queues[addr] = rest
            else:
                self.queues.pop(addr, None)
            for waiter in moved:
                waiter.addr = addr2
            if moved:
                self.queues.setdefault(addr2, []).extend(moved)
        return woken + len(moved)


def _timespec(t, timeout_ptr: int) -> float:
    sec, nsec = struct.unpack("<qq", t.process.mem.read(timeout_ptr, 16))
    if nsec < 0 or nsec >= 1_000_000_000 or sec < 0:
        raise ValueError("bad timespec")
    return sec + nsec / 1e9


def _deadline(t, timeout_ptr: int, relative: bool, realtime: bool) -> float | None:
    """The wait's end on time.monotonic()'s clock (None: no timeout)."""
    if not timeout_ptr:
        return None
    value = _timespec(t, timeout_ptr)
    if relative:
        return time.monotonic() + value
    if realtime:
        return time.monotonic() + (value - time.time())
    return value  # absolute CLOCK_MONOTONIC, the same clock as time.monotonic()


@syscall("futex")
def sys_futex(t, uaddr, op, val, timeout, uaddr2, val3):
    table: FutexTable = t.process.futexes
    cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    realtime = bool(op & FUTEX_CLOCK_REALTIME)
    val &= 0xFFFFFFFF
    if uaddr & 3:
        return -errno.EINVAL
    if realtime and cmd not in (FUTEX_WAIT_BITSET, FUTEX_LOCK_PI2, FUTEX_WAIT_REQUEUE_PI):
        return -errno.ENOSYS  # as Linux 6: only these take a CLOCK_REALTIME timeout
    # without FUTEX_PRIVATE_FLAG, other processes may share the word: futex_host.py
    shared = not op & FUTEX_PRIVATE_FLAG
    mem = t.process.mem
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        bitset = BITSET_MATCH_ANY if cmd == FUTEX_WAIT else val3 & 0xFFFFFFFF
        if not bitset:
            return -errno.EINVAL
        deadline = _deadline(t, timeout, relative=cmd == FUTEX_WAIT, realtime=realtime)
        if shared:
            return futex_host.wait(t, uaddr, val, deadline, bitset)
        return table.wait(t, uaddr, val, deadline, bitset)
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        bitset = BITSET_MATCH_ANY if cmd == FUTEX_WAKE else val3 & 0xFFFFFFFF
        if not bitset:
            return -errno.EINVAL
        count = min(val, 1 << 31)
        if shared:
            return wake_everywhere(t.process, uaddr, count, bitset)
        return table.wake(uaddr, count, bitset)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        expected = val3 & 0xFFFFFFFF if cmd == FUTEX_CMP_REQUEUE else None
        if expected is not None:
            (current,) = struct.unpack("<I", mem.read(uaddr, 4))
            if current != expected:
                return -errno.EAGAIN
        limit = timeout & 0x7FFFFFFF
        done = table.requeue(uaddr, val, uaddr2, limit)
        if shared:
            done += max(0, futex_host.requeue(mem, uaddr, max(0, val - done), uaddr2, limit,
                                              expected))
        return done
    if cmd == FUTEX_WAKE_OP:
        if uaddr2 & 3:
            return -errno.EINVAL
        count, count2 = val, timeout & 0xFFFFFFFF
        result = wake_op(table, mem, uaddr, count, count2, uaddr2, val3 & 0xFFFFFFFF)
        if isinstance(result, int):
            return result
        woken, woken2, passed = result
        if shared:
            woken += futex_host.wake(mem, uaddr, count - woken)
            if passed:
                woken2 += futex_host.wake(mem, uaddr2, count2 - woken2)
        return woken + woken2
    if cmd in (FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_TRYLOCK_PI):
        # LOCK_PI's timeout is absolute CLOCK_REALTIME; LOCK_PI2's CLOCK_MONOTONIC
        # unless FUTEX_CLOCK_REALTIME says otherwise
        deadline = _deadline(t, timeout, False, realtime or cmd == FUTEX_LOCK_PI)
        ret = futex_pi.lock(table, t, uaddr, deadline, cmd == FUTEX_TRYLOCK_PI)
        return RESTART_NOINTR if ret == -errno.EINTR else ret
    if cmd == FUTEX_UNLOCK_PI:
        return futex_pi.unlock(table, t, uaddr)
    if cmd in (FUTEX_WAIT_REQUEUE_PI, FUTEX_CMP_REQUEUE_PI) and uaddr2 & 3:
        return -errno.EINVAL
    if cmd == FUTEX_WAIT_REQUEUE_PI:
        deadline = _deadline(t, timeout, relative=False, realtime=realtime)
        ret = futex_pi.wait_requeue(table, t, uaddr, val, deadline, uaddr2)
        return RESTART_NOINTR if ret == -errno.EINTR else ret
    if cmd == FUTEX_CMP_REQUEUE_PI:
        return futex_pi.cmp_requeue(table, t, uaddr, val, timeout & 0x7FFFFFFF, uaddr2,
                                    val3 & 0xFFFFFFFF)
    return -errno.ENOSYS


# FUTEX_WAKE_OP's operations on the second word and its comparisons of the old value
_WAKE_OPS = {
    0: lambda old, arg: arg,  # FUTEX_OP_SET
    1: lambda old, arg: old + arg,  # FUTEX_OP_ADD
    2: lambda old, arg: old | arg,  # FUTEX_OP_OR
    3: lambda old, arg: old & ~arg,  # FUTEX_OP_ANDN
    4: lambda old, arg: old ^ arg,  # FUTEX_OP_XOR
}
_WAKE_CMPS = {
    0: lambda a, b: a == b, 1: lambda a, b: a != b, 2: lambda a, b: a < b,
    3: lambda a, b: a <= b, 4: lambda a, b: a > b, 5: lambda a, b: a >= b,
}
FUTEX_OP_OPARG_SHIFT = 8


def _sign12(value: int) -> int:
    return value - 0x1000 if value & 0x800 else value


def wake_op(table: FutexTable, mem, uaddr: int, count: int, count2: int, uaddr2: int,
            encoded: int) -> int | tuple[int, int, bool]:
    """FUTEX_WAKE_OP: change the word at uaddr2 atomically, wake ``count`` waiters on
    uaddr and, if the old value of uaddr2 passes the comparison, ``count2`` on it.
    Returns a negative errno, or how many woke on each word and whether the
    comparison passed."""
    op, cmp = (encoded >> 28) & 0xF, (encoded >> 24) & 0xF
    oparg, cmparg = _sign12((encoded >> 12) & 0xFFF), _sign12(encoded & 0xFFF)
    if op & FUTEX_OP_OPARG_SHIFT:
        oparg = 1 << (oparg & 31)  # the kernel masks an out-of-range shift the same way
        op &= ~FUTEX_OP_OPARG_SHIFT
    apply, compare = _WAKE_OPS.get(op), _WAKE_CMPS.get(cmp)
    if apply is None or compare is None:
        return -errno.ENOSYS
    with table.lock:
        old = futex_word.update(mem, uaddr2, lambda v: apply(v, oparg) & 0xFFFFFFFF)
        woken = table.wake_locked(uaddr, count)
        old_signed = old - (1 << 32) if old & 0x80000000 else old
        passed = compare(old_signed, cmparg)
        woken2 = table.wake_locked(uaddr2, count2) if passed else 0
    return woken, woken2, passed


def wake_everywhere(process, addr: int, count: int, bitset: int = BITSET_MATCH_ANY) -> int:
    """Wake waiters of either kind: pemu's queues first, then the host's (the kernel's
    own wake-ups, CLEARTID and robust lists, are shared ones)."""
    woken = process.futexes.wake(addr, count, bitset)
    if woken < count:
        woken += futex_host.wake(process.mem, addr, count - woken, bitset)
    return woken
