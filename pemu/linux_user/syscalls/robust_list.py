"""Robust futex lists: set_robust_list, get_robust_list, and the walk at thread exit.

A thread registers the head of a list of the robust locks it holds (glibc does so for
every thread).  When the thread ends, every lock on the list that still names it as
owner gets FUTEX_OWNER_DIED and one waiter is woken, so a later locker learns of the
death (EOWNERDEAD) instead of waiting forever.  The layout, the limit and the order
of the checks follow the kernel's exit_robust_list (kernel/futex/core.c):

    struct robust_list_head { struct robust_list *list; long futex_offset;
                              struct robust_list *list_op_pending; };

Bit 0 of each pointer marks a PI lock.
"""

from __future__ import annotations

import errno
import struct

from ..vmem import GuestFault
from . import futex_pi
from . import futex_word as word
from .futex_word import FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS
from .registry import syscall
from .sync import wake_everywhere

ROBUST_LIST_HEAD_SIZE = 24
ROBUST_LIST_LIMIT = 2048  # the kernel stops after this many entries (a looped list)


@syscall("set_robust_list")
def sys_set_robust_list(t, head, length):
    if length != ROBUST_LIST_HEAD_SIZE:
        return -errno.EINVAL
    t.robust_list = head
    return 0


@syscall("get_robust_list")
def sys_get_robust_list(t, pid, head_ptr, len_ptr):
    target = t
    if pid:
        with t.process.threads_lock:
            target = t.process.threads.get(pid & 0xFFFFFFFF)
        if target is None:
            return -errno.ESRCH  # (threads of other processes are not pemu's to read)
    t.process.mem.write(len_ptr, struct.pack("<Q", ROBUST_LIST_HEAD_SIZE))
    t.process.mem.write(head_ptr, struct.pack("<Q", target.robust_list))
    return 0


def exit_robust_list(t) -> None:
    """The kernel's walk when thread ``t`` ends; a bad pointer ends the walk quietly."""
    head = t.robust_list
    if not head:
        return
    mem = t.process.mem
    try:
        entry, offset, pending = struct.unpack("<QqQ", mem.read(head, ROBUST_LIST_HEAD_SIZE))
        for _ in range(ROBUST_LIST_LIMIT):
            if entry & ~1 == head:
                break
            (next_entry,) = struct.unpack("<Q", mem.read(entry & ~1, 8))
            # the lock being taken or released right now is handled last, on its own
            if entry & ~1 != pending & ~1:
                _owner_died(t, (entry & ~1) + offset, bool(entry & 1), pending_op=False)
            entry = next_entry
        if pending & ~1:
            _owner_died(t, (pending & ~1) + offset, bool(pending & 1), pending_op=True)
    except GuestFault:
        pass


def _owner_died(t, addr: int, pi: bool, pending_op: bool) -> None:
    """The kernel's handle_futex_death for one lock word."""
    addr &= (1 << 64) - 1
    if addr & 3:
        return
    mem = t.process.mem
    table = t.process.futexes
    value = word.load(mem, addr)
    if pending_op and not pi and value == 0:
        # died between announcing the lock and taking it: a waiter may have been
        # chosen to be woken by this thread's unlock, which never comes
        wake_everywhere(t.process, addr, 1)
        return
    if value & FUTEX_TID_MASK != t.tid:
        return
    old = word.update(mem, addr, lambda v: (v & FUTEX_WAITERS) | FUTEX_OWNER_DIED
                      if v & FUTEX_TID_MASK == t.tid else None)
    if old & FUTEX_TID_MASK != t.tid:
        return
    if pi:
        futex_pi.wake_after_owner_died(table, addr)
    elif old & FUTEX_WAITERS:
        wake_everywhere(t.process, addr, 1)
