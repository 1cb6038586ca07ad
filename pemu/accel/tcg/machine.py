"""Running the vCPUs of a system-mode machine: round-robin on one thread.

``Machine`` runs every vCPU (system_cpu.SystemCPU) in turn on the calling thread and
sleeps, without spinning, while all of them wait for an interrupt.  With several
vCPUs each gets a quantum, and an interrupt raised for another vCPU (an IPI, a
device) ends the running one's turn.  ``DeadlineKicker`` stands in for the clock
polling the python loop does, for chained native code.

What this asks of a vCPU, besides ``run``, ``should_stop`` and ``request_exit``:
``waiting`` (parked until an interrupt), ``interrupt_ready()``, ``wake()`` (leave
the wait), ``set_interrupt_listener(fn)`` (``fn(vcpu)`` when one of its interrupt
lines rises, any thread), ``armed_timer_ns()`` (host monotonic ns when its own timer
raises an interrupt, or None) and ``timer_interrupt_pending()``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable
from time import monotonic_ns

from pemu import threads
from pemu.accel.tcg.system_cpu import SystemCPU
from pemu.memory.accessing_cpu import set_current_cpu_index


class DeadlineKicker:
    """A thread that asks vCPUs to leave native code when their own timer is due.

    The python vCPU loop polls the clock every few blocks; chained native code never
    does, so this thread polls for it, without the GIL while it waits.  A deadline is
    kicked until the interrupt is really pending (the deadline is rounded to host
    nanoseconds), then left alone: a guest with interrupts masked is not kicked again,
    and unmasking them is a CSR write, which ends the block by itself.
    """

    MAX_WAIT_S = 0.01
    MIN_WAIT_S = 0.0002

    def __init__(self, harts: list[SystemCPU]) -> None:
        self.harts = harts
        self._done = threading.Event()
        self._kicked: dict[int, int] = {}  # id(vCPU) -> the deadline already delivered
        self._thread = threads.start_daemon(self._run, name="pemu-timer-kicker")

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _pending_deadlines(self) -> list[tuple[SystemCPU, int]]:
        armed = [(h, h.armed_timer_ns()) for h in self.harts]
        return [(h, d) for h, d in armed if d is not None and self._kicked.get(id(h)) != d]

    def _run(self) -> None:
        wait = self.MAX_WAIT_S
        while not self._done.wait(wait):
            now = monotonic_ns()
            wait = self.MAX_WAIT_S
            for hart, deadline in self._pending_deadlines():
                if now >= deadline:
                    if hart.timer_interrupt_pending():
                        self._kicked[id(hart)] = deadline
                    hart.request_exit()
                    wait = self.MIN_WAIT_S
                else:
                    wait = min(wait, max(self.MIN_WAIT_S, (deadline - now) / 1e9))


class QuantumTimer:
    """Ends the running vCPU's turn when its quantum is over: one thread for the
    machine's life.  (A ``threading.Timer`` per turn cost a thread start, and
    ``Thread.start`` waits until the new thread has been scheduled: on a loaded host
    that wait was a large part of a 5 ms turn.)"""

    def __init__(self, quantum_s: float, expire: Callable[[SystemCPU], None]) -> None:
        self.quantum_s = quantum_s
        self._expire = expire
        self._cond = threading.Condition()
        self._hart: SystemCPU | None = None  # the vCPU whose turn is timed, if any
        self._deadline = 0.0
        self._done = False
        self._thread = threads.start_daemon(self._run, name="pemu-quantum")

    def arm(self, hart: SystemCPU) -> None:
        """Time ``hart``'s turn from now (replacing the previous turn's timing)."""
        with self._cond:
            self._hart = hart
            self._deadline = time.monotonic() + self.quantum_s
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        with self._cond:
            while not self._done:
                if self._hart is None:
                    self._cond.wait()
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                hart, self._hart = self._hart, None
                self._expire(hart)


class Machine:
    """Runs a set of vCPUs on one thread, round-robin, until ``stop`` is called."""

    QUANTUM_S = 0.005
    one_thread = True  # one vCPU parked at the monitor's gate holds them all

    def parked(self) -> contextlib.AbstractContextManager[None]:
        """A vCPU waits at the monitor's pause gate (mttcg.ParallelMachine gives its
        big lock up there; one thread has nothing to give up)."""
        return contextlib.nullcontext()

    def __init__(self, harts: list[SystemCPU], wakeup: threading.Event,
                 next_deadline: Callable[[], float | None]) -> None:
        self.harts = harts
        self.wakeup = wakeup
        self.next_deadline = next_deadline  # host monotonic time of the next timer event
        self.stopping = False
        self._yield = False
        self._quantum: QuantumTimer | None = None  # with several vCPUs, while running
        self._current: SystemCPU | None = None  # the vCPU running now (several vCPUs)
        for hart in harts:
            hart.should_stop = self._should_stop
            if len(harts) > 1:
                hart.set_interrupt_listener(self._line_raised)
                hart.end_turn = functools.partial(self._end_turn, hart)

    def _should_stop(self) -> bool:
        if self._yield:
            self._yield = False
            return True
        return self.stopping

    def _line_raised(self, hart: SystemCPU) -> None:
        """An interrupt line of some vCPU rose (an IPI, a device): if that vCPU is not
        the one running, end the running vCPU's turn.  A hart that sends an IPI
        usually waits for the answer (remote fences, smp_call_function), so the
        target must run now, not at the end of the quantum."""
        current = self._current
        if current is not None and current is not hart:
            self._yield = True
            current.request_exit()

    def stop(self) -> None:
        self.stopping = True
        for hart in self.harts:
            hart.request_exit()
        self.wakeup.set()

    @staticmethod
    def _timer_deadline(hart: SystemCPU) -> float | None:
        deadline = hart.armed_timer_ns()
        if deadline is None:
            return None
        return time.monotonic() + (deadline - monotonic_ns()) / 1e9

    def _sleep(self) -> None:
        """All harts wait for interrupts: block until a line rises or a timer is due."""
        deadlines = [d for d in [self.next_deadline()]
                     + [self._timer_deadline(h) for h in self.harts] if d is not None]
        timeout = 1.0
        if deadlines:
            timeout = min(timeout, max(0.0, min(deadlines) - time.monotonic()))
        if timeout > 0:
            self.wakeup.wait(timeout)

    def run_harts(self) -> None:
        native = bool(self.harts) and self.harts[0].translator.native
        kicker = DeadlineKicker(self.harts) if native else None
        if len(self.harts) > 1:
            self._quantum = QuantumTimer(self.QUANTUM_S, self._end_turn)
        try:
            self._run_harts()
        finally:
            if kicker is not None:
                kicker.stop()
            if self._quantum is not None:
                self._quantum.stop()
                self._quantum = None

    def _run_harts(self) -> None:
        multi = len(self.harts) > 1
        while not self.stopping:
            ran = False
            self.wakeup.clear()
            for hart in self.harts:
                if self.stopping:
                    return
                if hart.held_by_debugger:
                    continue
                if hart.waiting:
                    if not hart.interrupt_ready():
                        continue
                    hart.wake()
                ran = True
                if multi:
                    self._quantum.arm(hart)
                    self._current = hart
                # Devices that bank registers per CPU (GICv2) ask whose access it is.
                set_current_cpu_index(self.harts.index(hart))
                hart.run()
                self._current = None
            if not ran:
                self._sleep()

    def _end_turn(self, hart: SystemCPU) -> None:
        """The quantum of ``hart`` is over (on the quantum thread)."""
        self._yield = True
        hart.slots[hart.exit_slot] = 1


__all__ = ["DeadlineKicker", "Machine", "QuantumTimer"]
