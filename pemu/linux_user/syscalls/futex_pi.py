"""Priority-inheritance futexes: FUTEX_LOCK_PI(2), FUTEX_TRYLOCK_PI, FUTEX_UNLOCK_PI.

The lock word holds the owner's TID, FUTEX_WAITERS while someone sleeps in the kernel
and FUTEX_OWNER_DIED after its owner died holding it (robust_list.py).  User space
takes a free lock with ``cas(0 -> tid)`` and releases an uncontended one with
``cas(tid -> 0)``; only the contended cases come here.  As the kernel, an unlock
hands the lock straight to the longest waiter (its TID goes into the word before it
wakes), so a waiter never returns without owning the lock.

pemu runs every guest thread at the host's one priority, so there is nothing to
boost: the inheritance itself is moot, the ownership protocol is what guests rely on.
"""

from __future__ import annotations

import errno
import os

from . import futex_word as word
from .futex_word import FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS


def lock(table, t, addr: int, deadline: float | None, try_only: bool,
         woken: bool = False) -> int:
    """Take the PI lock at ``addr`` for thread ``t``; 0 or a negative errno (-EINTR:
    a signal came first, the caller restarts the call).  ``woken``: the thread was
    queued on the lock already and has been woken (perhaps handed the lock)."""
    mem = t.process.mem
    tid = t.tid
    while True:
        with table.lock:
            value = word.load(mem, addr)
            owner = value & FUTEX_TID_MASK
            if owner == tid and woken:
                return 0  # handed over by the owner's unlock
            if owner == 0:
                # free (perhaps with OWNER_DIED, which the new owner must see)
                new = tid | (value & FUTEX_OWNER_DIED)
                if table.has_waiters(addr):
                    new |= FUTEX_WAITERS
                if word.compare_and_swap(mem, addr, value, new) == value:
                    return 0
                continue
            if owner == tid:
                return -errno.EDEADLK
            if not _alive(t.process, owner):
                return -errno.ESRCH  # an owner that exited without a robust list entry
            if try_only:
                return -errno.EWOULDBLOCK
            if not value & FUTEX_WAITERS and \
                    word.compare_and_swap(mem, addr, value, value | FUTEX_WAITERS) != value:
                continue  # the owner's user-space unlock came first: look again
            waiter = table.enqueue(t, addr, pi=True)
        ret = table.block(waiter, deadline)
        if ret:
            return ret
        woken = True


def wait_requeue(table, t, addr: int, expected: int, deadline: float | None,
                 addr2: int) -> int:
    """FUTEX_WAIT_REQUEUE_PI: wait on the plain futex ``addr`` (a condition) until a
    FUTEX_CMP_REQUEUE_PI moves this thread onto the PI lock ``addr2``, and return
    owning that lock."""
    if addr == addr2:
        return -errno.EINVAL
    with table.lock:
        if word.load(t.process.mem, addr) != expected:
            return -errno.EAGAIN
        waiter = table.enqueue(t, addr)
        waiter.requeue_pi_to = addr2
    ret = table.block(waiter, deadline)
    if waiter.addr != addr2:
        # still the condition's waiter: a timeout, a signal, or a plain FUTEX_WAKE
        return ret or -errno.EAGAIN
    if ret == 0:
        return lock(table, t, addr2, deadline, try_only=False, woken=True)
    return ret


def cmp_requeue(table, t, addr: int, wake: int, count: int, addr2: int,
                expected: int) -> int:
    """FUTEX_CMP_REQUEUE_PI: take the lock at ``addr2`` for the first waiter of
    ``addr`` if it is free (that waiter wakes owning it), and move up to ``count``
    more waiters onto the lock's queue; returns how many were woken or moved."""
    if addr == addr2 or wake != 1:
        return -errno.EINVAL
    mem = t.process.mem
    with table.lock:
        if word.load(mem, addr) != expected:
            return -errno.EAGAIN
        queue = list(table.queues.get(addr, ()))
        if any(w.requeue_pi_to != addr2 for w in queue):
            return -errno.EINVAL  # a waiter that did not ask for this lock
        done = 0
        if queue:
            top = queue[0]
            value = word.load(mem, addr2)
            if value & FUTEX_TID_MASK == 0:
                new = top.thread.tid | (value & FUTEX_OWNER_DIED)
                if len(queue) > 1 or table.has_waiters(addr2):
                    new |= FUTEX_WAITERS
                if word.compare_and_swap(mem, addr2, value, new) == value:
                    _hand_over(table, top, addr2)
                    queue.pop(0)
                    done = 1
        moving = queue[:count]
        if moving:
            word.update(mem, addr2, lambda v: None if v & FUTEX_WAITERS else v | FUTEX_WAITERS)
        for waiter in moving:
            waiter.pi = True
            table.move(waiter, addr2)
        return done + len(moving)


def _hand_over(table, waiter, addr2: int) -> None:
    """Wake a requeue-PI waiter that now owns the lock at addr2 (the caller holds
    the table's lock and has put the waiter's TID into the lock word)."""
    table.dequeue(waiter)
    waiter.addr = addr2
    waiter.woken = True
    waiter.thread.wake.set()


def unlock(table, t, addr: int) -> int:
    """Release the PI lock at ``addr``, handing it to the longest waiter."""
    mem = t.process.mem
    with table.lock:
        while True:
            value = word.load(mem, addr)
            if value & FUTEX_TID_MASK != t.tid:
                return -errno.EPERM
            queue = table.queues.get(addr)
            # the kernel keeps FUTEX_WAITERS on a handed-over lock: its new owner's
            # unlock comes here, which finds out whether anyone is still waiting
            new = queue[0].thread.tid | FUTEX_WAITERS if queue else 0
            if word.compare_and_swap(mem, addr, value, new) == value:
                break
        if queue:
            table.wake_first(addr)
    return 0


def wake_after_owner_died(table, addr: int) -> None:
    """A robust PI lock's owner died (its word now has OWNER_DIED and no TID): the
    longest waiter wakes and takes it, keeping OWNER_DIED (EOWNERDEAD in glibc)."""
    with table.lock:
        table.wake_first(addr)


def _alive(process, tid: int) -> bool:
    with process.threads_lock:
        if tid in process.threads:
            return True
    # another process's thread (a lock in shared memory): guest TIDs are host TIDs
    return tid != process.pid and os.path.exists(f"/proc/{tid}")
