"""Clocks, sleeps and interval timers (timespec/timeval/itimerval match the host's)."""

from __future__ import annotations

import errno
import struct
import time

from .hostcall import host, opt_in_ptr, opt_out_ptr, out_ptr, signed
from .registry import syscall

CLOCK_REALTIME = 0
TIMER_ABSTIME = 1


@syscall("clock_gettime")
def sys_clock_gettime(t, clock, tp):
    return host("clock_gettime", signed(clock, 32), out_ptr(t, tp, 16))


@syscall("clock_getres")
def sys_clock_getres(t, clock, tp):
    return host("clock_getres", signed(clock, 32), opt_out_ptr(t, tp, 16))


@syscall("gettimeofday")
def sys_gettimeofday(t, tv, tz):
    return host("gettimeofday", opt_out_ptr(t, tv, 16), opt_out_ptr(t, tz, 8))


@syscall("settimeofday")
def sys_settimeofday(t, tv, tz):
    return host("settimeofday", opt_in_ptr(t, tv, 16), opt_in_ptr(t, tz, 8))


@syscall("setitimer")
def sys_setitimer(t, which, new, old):
    # SIGALRM/SIGVTALRM/SIGPROF then arrive as host signals and are forwarded
    return host("setitimer", which, opt_in_ptr(t, new, 32), opt_out_ptr(t, old, 32))


@syscall("getitimer")
def sys_getitimer(t, which, cur):
    return host("getitimer", which, out_ptr(t, cur, 32))


def _read_timespec(t, addr: int) -> float:
    sec, nsec = struct.unpack("<qq", t.process.mem.read(addr, 16))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise ValueError("bad timespec")
    return sec + nsec / 1e9


def interruptible_sleep(t, duration: float) -> float:
    """Sleep unless a deliverable signal arrives; returns the time left (0 if complete)."""
    deadline = time.monotonic() + duration
    while True:
        t.wake.clear()
        left = deadline - time.monotonic()
        if left <= 0:
            return 0.0
        if t.signals.first_deliverable() is not None:
            return left
        t.wake.wait(left)


def _sleep(t, duration: float, rem: int) -> int:
    left = interruptible_sleep(t, duration)
    if left > 0:
        if rem:
            t.process.mem.write(rem, struct.pack("<qq", int(left), int((left % 1) * 1e9)))
        return -errno.EINTR
    return 0


@syscall("nanosleep")
def sys_nanosleep(t, req, rem):
    return _sleep(t, _read_timespec(t, req), rem)


@syscall("clock_nanosleep")
def sys_clock_nanosleep(t, clock, flags, req, rem):
    value = _read_timespec(t, req)
    if flags & TIMER_ABSTIME:
        now = time.time() if clock == CLOCK_REALTIME else time.clock_gettime(clock)
        left = interruptible_sleep(t, max(0.0, value - now))
        return -errno.EINTR if left > 0 else 0
    return _sleep(t, value, rem)


@syscall("timerfd_create")
def sys_timerfd_create(t, clock, flags):
    return host("timerfd_create", clock, flags)


@syscall("timerfd_settime")
def sys_timerfd_settime(t, fd, flags, new, old):
    return host("timerfd_settime", signed(fd, 32), flags, opt_in_ptr(t, new, 32),
                opt_out_ptr(t, old, 32))


@syscall("timerfd_gettime")
def sys_timerfd_gettime(t, fd, cur):
    return host("timerfd_gettime", signed(fd, 32), out_ptr(t, cur, 32))


@syscall("times")
def sys_times(t, buf):
    return host("times", opt_out_ptr(t, buf, 32))
