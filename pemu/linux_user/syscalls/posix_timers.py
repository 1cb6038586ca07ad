"""POSIX per-process timers (timer_create and friends), emulated inside pemu.

The host's timers would signal pemu with a siginfo that Python's signal handlers never
show (SI_TIMER, the timer's value and overrun count), so each guest timer is a pemu
thread that sleeps until the next expiry and queues the guest signal itself, counting
an overrun instead when the previous signal is still pending, as the kernel does.
CPU-time clocks run on the monotonic clock (an approximation, documented).
"""

from __future__ import annotations

import errno
import struct
import threading
import time

from pemu import threads

from ..signals import NSIG, SI_TIMER, SigInfo, queue_process_signal, queue_signal
from .registry import syscall

SIGEVENT = struct.Struct("<Qii")  # sigev_value, sigev_signo, sigev_notify
SIGEVENT_TID = struct.Struct("<i")  # _sigev_un._tid, at offset 16
ITIMERSPEC = struct.Struct("<qqqq")  # it_interval (sec, nsec), it_value (sec, nsec)
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID = 0, 1, 4
TIMER_ABSTIME = 1
MAX_TIMERS = 4096
DELAYTIMER_MAX = 0x7FFFFFFF
# clock ids: realtime, monotonic, process/thread CPU time, raw, coarse, boottime, alarms
CLOCKS = {0: time.CLOCK_REALTIME, 1: time.CLOCK_MONOTONIC, 2: time.CLOCK_MONOTONIC,
          3: time.CLOCK_MONOTONIC, 4: time.CLOCK_MONOTONIC_RAW, 5: time.CLOCK_REALTIME,
          6: time.CLOCK_MONOTONIC, 7: time.CLOCK_BOOTTIME, 8: time.CLOCK_REALTIME,
          9: time.CLOCK_BOOTTIME}


def _ns(sec: int, nsec: int) -> int:
    return sec * 1_000_000_000 + nsec


class GuestTimer:
    def __init__(self, process, timer_id: int, clock: int, signo: int, notify: int,
                 value: int, target_tid: int | None) -> None:
        self.process = process
        self.id = timer_id
        self.clock = clock
        self.signo = signo
        self.notify = notify
        self.value = value
        self.target_tid = target_tid
        self.deadline_ns: int | None = None  # on the timer's clock
        self.interval_ns = 0
        self.overrun = 0
        self.last: SigInfo | None = None
        self.changed = threading.Condition()
        self.deleted = False
        threads.start_daemon(self._run, name=f"guest-timer-{timer_id}")

    def now_ns(self) -> int:
        return time.clock_gettime_ns(self.clock)

    def arm(self, value_ns: int, interval_ns: int, absolute: bool) -> tuple[int, int]:
        """Set the timer; returns the previous (remaining, interval)."""
        with self.changed:
            old = self.remaining()
            if value_ns == 0:
                self.deadline_ns = None
            else:
                self.deadline_ns = value_ns if absolute else self.now_ns() + value_ns
            self.interval_ns = interval_ns
            self.changed.notify()
        return old

    def remaining(self) -> tuple[int, int]:
        if self.deadline_ns is None:
            return 0, self.interval_ns
        return max(1, self.deadline_ns - self.now_ns()), self.interval_ns

    def delete(self) -> None:
        with self.changed:
            self.deleted = True
            self.changed.notify()

    def _run(self) -> None:
        with self.changed:
            while not self.deleted:
                if self.deadline_ns is None:
                    self.changed.wait()
                    continue
                left = self.deadline_ns - self.now_ns()
                if left > 0:
                    self.changed.wait(left / 1e9)
                    continue
                missed = 0
                if self.interval_ns:
                    # expiries that passed while nobody looked count as overruns
                    missed = (self.now_ns() - self.deadline_ns) // self.interval_ns
                    self.deadline_ns += (missed + 1) * self.interval_ns
                else:
                    self.deadline_ns = None
                self._fire(missed)

    def _fire(self, missed: int) -> None:
        if self.notify == SIGEV_NONE:
            return
        last = self.last
        if last is not None and self._still_pending(last):
            last.overrun = min(DELAYTIMER_MAX, last.overrun + 1 + missed)
            return
        info = SigInfo(self.signo, SI_TIMER, timer_id=self.id, overrun=missed,
                       value=self.value)
        self.last = info
        target = self.process.threads.get(self.target_tid) if self.target_tid else None
        if target is not None:
            queue_signal(target, info)
        else:
            queue_process_signal(self.process, info)

    def _still_pending(self, info: SigInfo) -> bool:
        return any(any(p is info for p in t.signals.pending)
                   for t in list(self.process.threads.values()))


def _timers(process) -> dict[int, GuestTimer]:
    timers = getattr(process, "posix_timers", None)
    if timers is None:
        timers = process.posix_timers = {}
    return timers


def _timer(t, timer_id: int) -> GuestTimer | None:
    return _timers(t.process).get(timer_id & 0xFFFFFFFF)


@syscall("timer_create")
def sys_timer_create(t, clock, sevp, timer_id_ptr):
    clock &= 0xFFFFFFFF
    if clock not in CLOCKS:
        return -errno.EINVAL
    mem = t.process.mem
    if sevp:
        value, signo, notify = SIGEVENT.unpack(mem.read(sevp, SIGEVENT.size))
        tid = SIGEVENT_TID.unpack(mem.read(sevp + 16, 4))[0] if notify == SIGEV_THREAD_ID \
            else None
    else:
        value, signo, notify, tid = 0, 14, SIGEV_SIGNAL, None  # SIGALRM, value = id
    if notify not in (SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID):
        return -errno.EINVAL
    if notify != SIGEV_NONE and not 1 <= signo <= NSIG:
        return -errno.EINVAL
    if tid is not None and tid not in t.process.threads:
        return -errno.EINVAL
    timers = _timers(t.process)
    if len(timers) >= MAX_TIMERS:
        return -errno.EAGAIN
    new_id = next(i for i in range(len(timers) + 1) if i not in timers)
    mem.write(timer_id_ptr, struct.pack("<i", new_id))  # GuestFault -> EFAULT first
    timers[new_id] = GuestTimer(t.process, new_id, CLOCKS[clock], signo, notify,
                                value if sevp else new_id, tid)
    return 0


@syscall("timer_settime")
def sys_timer_settime(t, timer_id, flags, new, old):
    timer = _timer(t, timer_id)
    if timer is None:
        return -errno.EINVAL
    i_sec, i_nsec, v_sec, v_nsec = ITIMERSPEC.unpack(t.process.mem.read(new, ITIMERSPEC.size))
    if not (0 <= i_nsec < 1_000_000_000 and 0 <= v_nsec < 1_000_000_000) or \
            i_sec < 0 or v_sec < 0:
        return -errno.EINVAL
    left, interval = timer.arm(_ns(v_sec, v_nsec), _ns(i_sec, i_nsec),
                               bool(flags & TIMER_ABSTIME))
    if old:
        t.process.mem.write(old, _itimerspec(left, interval))
    return 0


def _itimerspec(left: int, interval: int) -> bytes:
    return ITIMERSPEC.pack(*divmod(interval, 1_000_000_000), *divmod(left, 1_000_000_000))


@syscall("timer_gettime")
def sys_timer_gettime(t, timer_id, cur):
    timer = _timer(t, timer_id)
    if timer is None:
        return -errno.EINVAL
    t.process.mem.write(cur, _itimerspec(*timer.remaining()))
    return 0


@syscall("timer_getoverrun")
def sys_timer_getoverrun(t, timer_id):
    timer = _timer(t, timer_id)
    if timer is None:
        return -errno.EINVAL
    return timer.last.overrun if timer.last is not None else 0


@syscall("timer_delete")
def sys_timer_delete(t, timer_id):
    timer = _timers(t.process).pop(timer_id & 0xFFFFFFFF, None)
    if timer is None:
        return -errno.EINVAL
    timer.delete()
    return 0
