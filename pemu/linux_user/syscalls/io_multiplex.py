"""Waiting on several descriptors: ppoll, pselect6 and epoll."""

from __future__ import annotations

import ctypes
import errno
import struct

from .hostcall import fd_arg, host, opt_out_ptr, out_ptr
from .registry import RESTART, syscall
from .time_calls import interruptible_sleep

_GUEST_EPOLL_EVENT = struct.Struct("<I4xQ")  # riscv64: naturally aligned, 16 bytes
_HOST_EPOLL_EVENT = struct.Struct("<IQ")  # x86-64: packed, 12 bytes
EPOLL_CTL_DEL = 2


def _no_restart(ret: int) -> int:
    # poll-like calls report EINTR instead of restarting (the kernel's ERESTARTNOHAND
    # restarts only when no handler ran; pemu keeps the simpler rule)
    return -errno.EINTR if ret == RESTART else ret


def _wait_for_signal(t, tsp: int) -> int:
    """ppoll/pselect6 on no descriptors (glibc's pause(), select-based sleeps): a guest
    signal that pemu queues itself (a timer, another thread) must end it too, and those
    never interrupt a host call, so pemu waits for them itself."""
    if tsp:
        sec, nsec = struct.unpack("<qq", t.process.mem.read(tsp, 16))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            return -errno.EINVAL
        left = interruptible_sleep(t, sec + nsec / 1e9)
        return -errno.EINTR if left else 0
    while t.signals.first_deliverable() is None:
        interruptible_sleep(t, 3600.0)
    return -errno.EINTR


@syscall("ppoll")
def sys_ppoll(t, fds, nfds, tsp, sigmask, sigsetsize):
    if nfds == 0:
        return _wait_for_signal(t, tsp)
    # The guest signal mask is pemu's business, not the host's: the host call gets none.
    return _no_restart(host("ppoll", opt_out_ptr(t, fds, nfds * 8), nfds,
                            opt_out_ptr(t, tsp, 16), 0, 8))


@syscall("pselect6")
def sys_pselect6(t, nfds, readfds, writefds, exceptfds, tsp, sig):
    nfds = fd_arg(nfds)
    if nfds < 0:
        return -errno.EINVAL
    if nfds == 0:
        return _wait_for_signal(t, tsp)
    size = (nfds + 63) // 64 * 8
    return _no_restart(host("pselect6", nfds, opt_out_ptr(t, readfds, size),
                            opt_out_ptr(t, writefds, size), opt_out_ptr(t, exceptfds, size),
                            opt_out_ptr(t, tsp, 16), 0))


@syscall("epoll_create1")
def sys_epoll_create1(t, flags):
    return host("epoll_create1", flags)


@syscall("epoll_ctl")
def sys_epoll_ctl(t, epfd, op, fd, event):
    host_event = ctypes.create_string_buffer(_HOST_EPOLL_EVENT.size)
    if op != EPOLL_CTL_DEL or event:
        events, data = _GUEST_EPOLL_EVENT.unpack(t.process.mem.read(event,
                                                                    _GUEST_EPOLL_EVENT.size))
        _HOST_EPOLL_EVENT.pack_into(host_event, 0, events, data)
    return host("epoll_ctl", fd_arg(epfd), op, fd_arg(fd), ctypes.addressof(host_event))


@syscall("epoll_pwait")
def sys_epoll_pwait(t, epfd, events, maxevents, timeout, sigmask, sigsetsize):
    maxevents = fd_arg(maxevents)
    if maxevents <= 0 or maxevents > 1 << 16:
        return -errno.EINVAL
    out_ptr(t, events, maxevents * _GUEST_EPOLL_EVENT.size)
    buf = ctypes.create_string_buffer(maxevents * _HOST_EPOLL_EVENT.size)
    n = _no_restart(host("epoll_pwait", fd_arg(epfd), ctypes.addressof(buf), maxevents,
                         fd_arg(timeout), 0, 8))
    if n > 0:
        raw = buf.raw
        out = b"".join(_GUEST_EPOLL_EVENT.pack(*_HOST_EPOLL_EVENT.unpack_from(raw, i * 12))
                       for i in range(n))
        t.process.mem.write(events, out)
    return n
