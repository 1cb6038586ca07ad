"""The Arm generic timer of one CPU: the system counter and the EL1 physical and
virtual timers (CNTP_*, CNTV_*), each an output line the board wires to a GIC PPI.

The counter runs at 62.5 MHz (QEMU virt's CNTFRQ) from the host's monotonic clock,
counted from the machine's start (``Counter``, shared by the CPUs).  A timer's line is
high while it is enabled, unmasked and the counter has reached its compare value; the
vCPU re-evaluates the lines when its deadline passes (polled by the vCPU loop, kicked
by machine.DeadlineKicker with the native backend) and after every timer register
write.  CNTVOFF is zero (no EL2), so the virtual and physical counts are equal.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic_ns

from pemu.irq import IRQLine

CNTFRQ = 62_500_000
NS_PER_TICK = 16  # 1e9 / 62.5e6
NEVER_NS = 1 << 62
CTL_ENABLE, CTL_IMASK, CTL_ISTATUS = 1, 2, 4
MASK64 = 0xFFFF_FFFF_FFFF_FFFF


class Counter:
    """The system counter all CPUs read (CNTPCT/CNTVCT)."""

    def __init__(self) -> None:
        self.start_ns = monotonic_ns()
        # called with start_ns whenever it changes: the CPUs keep it in a state slot,
        # from which translated code reads CNTVCT/CNTPCT (insn_el1.mrs)
        self._listeners: list[Callable[[int], None]] = []

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(start_ns)`` now and whenever the counter is re-based."""
        self._listeners.append(listener)
        listener(self.start_ns)

    def ticks(self) -> int:
        return (monotonic_ns() - self.start_ns) // NS_PER_TICK

    def ns_at(self, ticks: int) -> int:
        return self.start_ns + ticks * NS_PER_TICK

    def continue_from(self, ticks: int) -> None:
        """Count on from ``ticks`` (a loaded machine's counter)."""
        self.start_ns = monotonic_ns() - ticks * NS_PER_TICK
        for listener in self._listeners:
            listener(self.start_ns)


class Timer:
    """One EL1 timer: CTL (ENABLE, IMASK; ISTATUS computed) and CVAL, and its line."""

    __slots__ = ("counter", "ctl", "cval", "line")

    def __init__(self, counter: Counter, name: str) -> None:
        self.counter = counter
        self.ctl = 0
        self.cval = 0
        self.line = IRQLine(name=name)

    def firing(self, now: int) -> bool:
        return bool(self.ctl & CTL_ENABLE) and now >= self.cval

    def read_ctl(self) -> int:
        return self.ctl | (CTL_ISTATUS if self.firing(self.counter.ticks()) else 0)

    def write_ctl(self, value: int) -> None:
        self.ctl = value & (CTL_ENABLE | CTL_IMASK)

    def read_tval(self) -> int:
        return (self.cval - self.counter.ticks()) & 0xFFFF_FFFF

    def write_tval(self, value: int) -> None:
        value &= 0xFFFF_FFFF
        signed = value - (1 << 32) if value >> 31 else value
        self.cval = (self.counter.ticks() + signed) & MASK64

    def update(self, now: int) -> None:
        self.line.set_level(self.firing(now) and not self.ctl & CTL_IMASK)

    def deadline_ns(self) -> int:
        """When the line will rise, if it is armed and still low."""
        if self.ctl & (CTL_ENABLE | CTL_IMASK) != CTL_ENABLE or self.line.level:
            return NEVER_NS
        return self.counter.ns_at(self.cval) if self.cval < 1 << 58 else NEVER_NS

    def reset(self) -> None:
        self.ctl = self.cval = 0
        self.line.set_level(False)


class GenericTimer:
    """The timers of one CPU, by the names the board wires: "phys", "virt"."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.phys = Timer(counter, "phys")
        self.virt = Timer(counter, "virt")
        self.timers = (self.phys, self.virt)
        self.lines: dict[str, IRQLine] = {"phys": self.phys.line, "virt": self.virt.line}

    def update(self) -> None:
        now = self.counter.ticks()
        for t in self.timers:
            t.update(now)

    def deadline_ns(self) -> int:
        return min(t.deadline_ns() for t in self.timers)

    def armed_ns(self) -> int | None:
        d = self.deadline_ns()
        return None if d == NEVER_NS else d

    def pending(self) -> bool:
        return any(t.line.level for t in self.timers)

    def reset(self) -> None:
        for t in self.timers:
            t.reset()


__all__ = ["CNTFRQ", "Counter", "GenericTimer", "NEVER_NS", "Timer"]
