"""futex: wait queues keyed by guest address, woken through each thread's event."""

from __future__ import annotations

import errno
import struct
import threading
import time

from .registry import syscall

FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE = 0, 1, 3, 4
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10
FUTEX_PRIVATE_FLAG = 128
FUTEX_CLOCK_REALTIME = 256
BITSET_MATCH_ANY = 0xFFFFFFFF


class _Waiter:
    __slots__ = ("thread", "bitset", "woken")

    def __init__(self, thread, bitset: int) -> None:
        self.thread = thread
        self.bitset = bitset
        self.woken = False


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
            waiter = _Waiter(thread, bitset)
            self.queues.setdefault(addr, []).append(waiter)
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
                    queue = self.queues.get(addr, [])
                    if waiter in queue:
                        queue.remove(waiter)
                    if not queue:
                        self.queues.pop(addr, None)
                return -errno.EINTR if interrupted else -errno.ETIMEDOUT
            thread.wake.wait(timeout)

    def wake(self, addr: int, count: int, bitset: int = BITSET_MATCH_ANY) -> int:
        woken = 0
        with self.lock:
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
            if moved:
                self.queues.setdefault(addr2, []).extend(moved)
        return woken + len(moved)


def _timeout(t, op: int, cmd: int, timeout_ptr: int) -> float | None:
    if not timeout_ptr:
        return None
    sec, nsec = struct.unpack("<qq", t.process.mem.read(timeout_ptr, 16))
    if nsec < 0 or nsec >= 1_000_000_000 or sec < 0:
        raise ValueError("bad timespec")
    value = sec + nsec / 1e9
    if cmd == FUTEX_WAIT:
        return time.monotonic() + value
    if op & FUTEX_CLOCK_REALTIME:
        return time.monotonic() + (value - time.time())
    return value  # absolute CLOCK_MONOTONIC, the same clock as time.monotonic()


@syscall("futex")
def sys_futex(t, uaddr, op, val, timeout, uaddr2, val3):
    table: FutexTable = t.process.futexes
    cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    val &= 0xFFFFFFFF
    if uaddr & 3:
        return -errno.EINVAL
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        bitset = BITSET_MATCH_ANY if cmd == FUTEX_WAIT else val3 & 0xFFFFFFFF
        if not bitset:
            return -errno.EINVAL
        return table.wait(t, uaddr, val, _timeout(t, op, cmd, timeout), bitset)
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        bitset = BITSET_MATCH_ANY if cmd == FUTEX_WAKE else val3 & 0xFFFFFFFF
        return table.wake(uaddr, min(val, 1 << 31), bitset)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if cmd == FUTEX_CMP_REQUEUE:
            (current,) = struct.unpack("<I", t.process.mem.read(uaddr, 4))
            if current != val3 & 0xFFFFFFFF:
                return -errno.EAGAIN
        return table.requeue(uaddr, val, uaddr2, timeout & 0x7FFFFFFF)
    return -errno.ENOSYS
