"""MTTCG: each vCPU on its own host thread (``-accel tcg,thread=multi``; the default
for a RISC-V board with several harts on the native backend, wants_parallel_vcpus).

``ParallelMachine`` stands in for machine.Machine (same interface for the board and
the monitor).  Hart 0 runs on the calling thread (the main thread: host signals
reach it, signal_wakeup.py), every other vCPU on a thread of its own.  Generated
code runs without the GIL (ctypes releases it), so the harts' guest code runs in
parallel; everything in Python runs under the machine's big lock (big_lock.py).

What keeps it correct:

* atomics: SC and the AMOs end in a host ``lock cmpxchg`` on guest RAM, inline in
  generated code (IR ``cmpxchg``), or in their helper where the TLB cannot serve it
  (softmmu.compare_exchange); fences that order stores before loads are an
  ``mfence`` (IR ``mb``, riscv insn_system.trans_FENCE); every other order RVWMO
  asks for, x86's TSO gives;
* cross-hart work at safe points: IPIs and timer interrupts set the target's exit
  request, which every block's prologue polls, and wake it if it sleeps; remote
  fences are IPIs answered by the target hart's own ``sfence.vma`` (OpenSBI);
  code invalidation (fence.i) only unlinks and poisons blocks, whose code stays in
  the buffer until a reset, which waits until no vCPU is in generated code;
* WFI: the thread sleeps on the hart's own wake-up event, without the big lock;
  a WFI that resumes, again and again at the same pc, for an interrupt the hart has
  masked (a guest polling memory with WFI in its loop) backs off on that event, so
  that the spinning thread does not take the GIL and the big lock from the harts
  doing the work (``SpinBackoff``);
* spin-waits: RISC-V ``pause`` (Linux's ``cpu_relax``) gives the host core away,
  generated code calling ``sched_yield`` itself (spin_hint.py), so that on a host
  with no core to spare a spinning vCPU lets the one it waits for run;
* stop: every thread leaves its loop and ``run_harts`` joins them all, so the board,
  savevm and migration see every vCPU at a block boundary; a pause parks each vCPU
  in the monitor's gate, which gives the big lock up (``parked``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from time import monotonic_ns

from pemu import threads
from pemu.accel.tcg import counters
from pemu.accel.tcg.big_lock import BigLock
from pemu.accel.tcg.machine import DeadlineKicker
from pemu.accel.tcg.system_cpu import SystemCPU
from pemu.memory.accessing_cpu import set_current_cpu_index

MAX_SLEEP_S = 1.0  # a sleeping vCPU looks again at least this often
MIN_SLEEP_S = 0.001  # a due device deadline not yet delivered: do not spin on it
FIRST_BACKOFF_S = 0.0001  # a WFI spinning on a masked interrupt: first pause, doubled
MAX_BACKOFF_S = 0.005  # ... up to this (any kick of the hart ends a pause at once)


THREAD_MODES = ("single", "multi")


def thread_mode_asked(accel: dict[str, str]) -> str | None:
    """``-accel tcg,thread=single|multi`` as given (None: not given); ValueError if bad."""
    mode = accel.get("thread")
    if mode is not None and mode not in THREAD_MODES:
        raise ValueError(f"-accel tcg,thread={mode}: expected single or multi")
    return mode


def wants_parallel_vcpus(accel: dict[str, str], smp: int, backend: str) -> bool:
    """Whether an MTTCG-capable board runs a thread per vCPU: ``thread=`` as given;
    without it, as QEMU decides for a guest whose memory order the host's covers
    (RISC-V on x86-64): multi, where it can run (``backend``, the resolved name, is
    native: the python backend runs every vCPU on one thread) and makes a difference
    (more than one vCPU).  ValueError for a bad ``thread=``."""
    mode = thread_mode_asked(accel)
    if mode is None:
        return smp > 1 and backend == "native"
    return mode == "multi"


class SpinBackoff:
    """How long a vCPU pauses before resuming from WFI (one per vCPU).

    WFI must resume while an interrupt is pending and enabled in mie, even one masked
    by the global enable; a guest that polls memory with WFI in the loop then runs
    its loop flat out (QEMU's MTTCG does the same, on a thread of its own).  Here
    every turn of that loop is a round trip through Python under the GIL and the
    big lock, which the harts doing the work need: 9000 a second at boot, while
    OpenSBI's secondary harts wait for Linux to start them.  So when WFI resumes
    twice in a row at the same pc for the same masked interrupts, the vCPU pauses on
    its wake-up event first, doubling the pause each time.  Nothing a guest may
    observe changes (WFI may take any time to resume); whatever the loop waits for
    that comes with a kick (an IPI, a device line, a timer) ends the pause at once."""

    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None
        self._pause = 0.0

    def pause_before_resuming(self, why: tuple[int, int] | None) -> float:
        """Seconds to wait; ``why`` is the vCPU's ``masked_wakeup()``."""
        if why is None or why != self._last:
            self._last = why
            self._pause = 0.0
            return 0.0
        self._pause = min(MAX_BACKOFF_S, max(FIRST_BACKOFF_S, self._pause * 2))
        return self._pause


class ParallelMachine:
    """Runs each vCPU on its own thread until ``stop`` is called.

    Besides Machine's protocol, a vCPU has ``wakeup_event``: the Event its interrupt
    lines and kicks set (one per vCPU here), on which its thread sleeps in WFI, and
    ``masked_wakeup()`` (SpinBackoff)."""

    one_thread = False  # the monitor waits for every vCPU to park, not one

    def __init__(self, harts: list[SystemCPU], wakeup: threading.Event,
                 next_deadline: Callable[[], float | None], bql: BigLock) -> None:
        self.harts = harts
        self.wakeup = wakeup
        self.next_deadline = next_deadline  # host monotonic time of a device timer
        self.bql = bql
        self.stopping = False
        self._failure: BaseException | None = None
        for hart in harts:
            hart.should_stop = self._should_stop

    def _should_stop(self) -> bool:
        return self.stopping

    def stop(self) -> None:
        """Any thread (a vCPU's own included): every vCPU leaves its loop soon."""
        self.stopping = True
        for hart in self.harts:
            hart.request_exit()  # also wakes it if it sleeps
        self.wakeup.set()

    @contextlib.contextmanager
    def parked(self) -> Iterator[None]:
        """A vCPU waits (the monitor's pause gate): the other vCPUs must be able to
        reach their own safe points meanwhile, so the big lock is given up."""
        if not self.bql.held():
            yield
            return
        self.bql.release()
        try:
            yield
        finally:
            self.bql.acquire()

    # -- running ----------------------------------------------------------------------------
    def run_harts(self) -> None:
        self._failure = None
        kicker = DeadlineKicker(self.harts)
        others = [threads.start(threading.Thread(
            target=self._vcpu_thread, args=(hart, i), name=f"pemu-vcpu{i}", daemon=True))
            for i, hart in enumerate(self.harts) if i]
        try:
            self._vcpu_thread(self.harts[0], 0)
        finally:
            self.stop()
            for t in others:
                t.join()
            kicker.stop()
        if self._failure is not None:
            raise self._failure

    def _vcpu_thread(self, hart: SystemCPU, index: int) -> None:
        set_current_cpu_index(index)  # devices that bank registers per CPU ask
        hart.host_thread_id = threading.get_native_id()
        bql = self.bql
        bql.acquire()
        try:
            self._run_vcpu(hart)
        except BaseException as e:  # noqa: BLE001 - the caller of run_harts re-raises it
            if self._failure is None:
                self._failure = e
            self.stop()
        finally:
            bql.release()

    def _run_vcpu(self, hart: SystemCPU) -> None:
        event = hart.wakeup_event
        backoff = SpinBackoff()
        while not self.stopping:
            if hart.waiting:
                # clear first: a line that rises after the check below sets it again
                event.clear()
                if self.stopping:
                    return
                if not hart.interrupt_ready():
                    timeout = self._sleep_timeout(hart)
                    with self.parked():
                        event.wait(timeout)
                    continue
                pause = backoff.pause_before_resuming(hart.masked_wakeup())
                if pause:
                    if counters.ENABLED:
                        counters.count("wfi:paused (spinning on a masked interrupt)")
                    with self.parked():
                        event.wait(min(pause, self._sleep_timeout(hart)))
                hart.wake()
            hart.run()

    def _sleep_timeout(self, hart: SystemCPU) -> float:
        """Until the vCPU's own timer (Sstc) or a device timer is due, at most
        MAX_SLEEP_S; interrupt lines and kicks end the sleep earlier."""
        now = time.monotonic()
        deadlines = [d for d in (self.next_deadline(),) if d is not None]
        armed = hart.armed_timer_ns()
        if armed is not None:
            deadlines.append(now + (armed - monotonic_ns()) / 1e9)
        if not deadlines:
            return MAX_SLEEP_S
        return min(MAX_SLEEP_S, max(MIN_SLEEP_S, min(deadlines) - now))


__all__ = ["THREAD_MODES", "ParallelMachine", "SpinBackoff", "thread_mode_asked",
           "wants_parallel_vcpus"]
