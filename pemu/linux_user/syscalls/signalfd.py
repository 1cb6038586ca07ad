"""signalfd4: the guest's pending signals read from a descriptor.

pemu keeps guest signals in its own queues (signals.py), not in the host kernel's, so a
host signalfd would never see a signal the guest sends itself.  A guest signalfd is a
host eventfd that only says "readable": signals.queue_signal writes it when a signal
of its mask is queued, and a read that finds nothing left drains it.  poll, select and
epoll on it are the host kernel's, unchanged; ``read`` comes here (files.sys_read asks
``read_hook``): it takes signals of the mask off the reader's queue (then the main
thread's, where pemu leaves a process-wide signal that every thread blocks) and writes
``struct signalfd_siginfo`` records, whose layout is the same on every architecture.

Signals from other processes (kill, a child's SIGCHLD) reach the guest only through a
host handler: a signal in a signalfd's mask gets one, so it is queued (and, blocked
by the guest, stays pending) instead of the host's default action ending or ignoring
pemu.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct

from .. import signals as sg
from .hostcall import fd_arg
from .registry import RESTART, syscall

SFD_CLOEXEC = 0o2000000
SFD_NONBLOCK = 0o4000
SIGSET_SIZE = 8
# ssi_signo, errno, code, pid, uid, fd, tid, band, overrun, trapno, status, int,
# ptr, utime, stime, addr, addr_lsb; padded to 128 bytes
SIGINFO = struct.Struct("<IiiIIiIIIIiiQQQQH")
SIGINFO_SIZE = 128


class SignalFd:
    """One signalfd (shared by the descriptors dup'd from it)."""

    def __init__(self, fd: int, mask: int) -> None:
        self.fd = fd  # an open host descriptor of the eventfd
        self.mask = mask & ~sg.UNBLOCKABLE

    def arm(self) -> None:
        """Readable.  No lock: this runs from host signal handlers too, and a second
        write only raises the eventfd's count."""
        try:
            os.eventfd_write(self.fd, 1)
        except OSError:
            pass

    def disarm(self) -> None:
        if select.select([self.fd], [], [], 0)[0]:
            try:
                os.read(self.fd, 8)
            except OSError:
                pass


def pack_siginfo(info: sg.SigInfo) -> bytes:
    timer = info.code == sg.SI_TIMER
    value32 = info.value & 0xFFFFFFFF
    return SIGINFO.pack(
        info.signo, 0, info.code, info.pid & 0xFFFFFFFF, info.uid & 0xFFFFFFFF, 0,
        info.timer_id if timer else 0, 0, info.overrun, 0, info.status,
        value32 - (1 << 32) if value32 >> 31 else value32, info.value & (1 << 64) - 1,
        0, 0, info.addr, 0).ljust(SIGINFO_SIZE, b"\0")


def _queues(t) -> list:
    queues = [t.signals.pending]
    main = t.process.threads.get(t.process.pid)
    if main is not None and main is not t:
        queues.append(main.signals.pending)
    return queues


def _take(t, mask: int, limit: int) -> list[sg.SigInfo]:
    """The kernel's order: the lowest signal number first, each number's instances
    (real-time signals queue several) first come, first served."""
    wanted = [(info.signo, queue, info) for queue in _queues(t) for info in queue
              if mask & sg.bit(info.signo)]
    wanted.sort(key=lambda item: item[0])  # stable: queue order within a number
    taken: list[sg.SigInfo] = []
    for _signo, queue, info in wanted[:limit]:
        queue.remove(info)
        taken.append(info)
    return taken


def _refresh(t, sfd: SignalFd) -> None:
    """Readable exactly while a signal of the mask is pending: drain, then look again,
    so that a signal queued in between arms it anew."""
    sfd.disarm()
    if any(sfd.mask & sg.bit(i.signo) for q in _queues(t) for i in q):
        sfd.arm()


def _catch_on_host(t, mask: int) -> None:
    for signo in range(1, 32):
        if mask & sg.bit(signo) and \
                t.process.signals.actions[signo].handler != sg.SIG_IGN:
            sg.forward_host_signal(signo)


@syscall("signalfd4")
def sys_signalfd4(t, fd, mask_ptr, sizemask, flags):
    if sizemask != SIGSET_SIZE or flags & ~(SFD_CLOEXEC | SFD_NONBLOCK):
        return -errno.EINVAL
    (mask,) = struct.unpack("<Q", t.process.mem.read(mask_ptr, 8))
    table = t.process.signals.signalfds
    fd = fd_arg(fd)
    if fd == -1:
        sfd = SignalFd(os.eventfd(0, flags), mask)
        table[sfd.fd] = sfd
    elif fd in table:
        sfd = table[fd]
        sfd.mask = mask & ~sg.UNBLOCKABLE
    else:
        try:
            os.fstat(fd)
        except OSError:
            return -errno.EBADF
        return -errno.EINVAL  # open, but no signalfd
    _catch_on_host(t, sfd.mask)
    _refresh(t, sfd)
    return fd if fd != -1 else sfd.fd


def read_hook(t, fd: int, buf: int, count: int) -> int | None:
    """read(2) on a guest signalfd (None: not one).  Whole records only; blocks unless
    O_NONBLOCK, and a handled signal interrupts it as the kernel's -ERESTARTSYS."""
    sfd = t.process.signals.signalfds.get(fd)
    if sfd is None:
        return None
    if count < SIGINFO_SIZE:
        return -errno.EINVAL
    mem = t.process.mem
    mem.check(buf, SIGINFO_SIZE, write=True)
    while True:
        t.wake.clear()  # before looking: a signal queued after the look sets it again
        taken = _take(t, sfd.mask, count // SIGINFO_SIZE)
        _refresh(t, sfd)
        if taken:
            mem.write(buf, b"".join(pack_siginfo(i) for i in taken))
            return len(taken) * SIGINFO_SIZE
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK:
            return -errno.EAGAIN
        if t.signals.first_deliverable() is not None:
            return RESTART
        # t.wake: any signal queued on this thread, wanted (and blocked) or deliverable;
        # the timeout covers one queued on the main thread for a reader elsewhere
        t.wake.wait(1.0)


def closed(process, first: int, last: int | None = None) -> None:
    """close/close_range: forget the descriptors; a signalfd still reachable through a
    dup'd descriptor keeps working through that one."""
    table = process.signals.signalfds
    last = first if last is None else last
    for fd in [fd for fd in table if first <= fd <= last]:
        sfd = table.pop(fd)
        if sfd.fd == fd:
            others = [other for other, s in table.items() if s is sfd]
            if others:
                sfd.fd = others[0]


def duplicated(process, old: int, new: int) -> None:
    """dup/dup3/F_DUPFD: the new descriptor is the same signalfd."""
    if new < 0:
        return
    table = process.signals.signalfds
    if new in table:
        closed(process, new)
    if old in table:
        table[new] = table[old]
