"""The hart's performance counters: Zicntr/Zihpm counters that count, and Sscofpmf.

Counters 0 (mcycle), 2 (minstret) and 3.. 3+N_HPM-1 (mhpmcounterN, QEMU 7.2's
``pmu-num`` of 16; the higher ones are illegal instructions, as there) are 64-bit.
As in QEMU 7.2 without icount, the events that count are "cycles" and "instructions
retired", and both advance with the 10 MHz ``time``: pemu does not count guest
instructions in translated code.  A counter is a value plus the time it was last
settled while it runs; writes, mcountinhibit, mhpmevent and (with mode filters) every
privilege change settle it.

mhpmeventN holds what the guest wrote (all 64 bits, as QEMU keeps them); its low 20
bits select the event by its SBI PMU number, which is what OpenSBI writes there from
the device tree's ``riscv,event-to-mhpmcounters`` (virt_fdt.py): 1 cycles, 2
instructions.  Other events never advance; the counter keeps what was written.

Sscofpmf (``-cpu ...,sscofpmf=true``): bits 63..58 of mhpmevent are OF and the mode
inhibits MINH, SINH, UINH (VSINH, VUINH are kept for a hart with H).  A counter that
wraps while OF is clear sets OF and the local counter-overflow interrupt LCOFI
(mip bit 13, delegable to S); ``scountovf`` shows the OF bits to S-mode.  The wrap
time is known in advance, so the hart's timer deadline includes it (hart.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pemu.target.riscv.mmu import PRV_M, PRV_S, PRV_U
from pemu.target.riscv.priv import MIP_LCOFIP

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
N_COUNTERS = 32
N_HPM = 16  # mhpmcounter3..18, QEMU 7.2's default pmu-num
FIRST_HPM = 3
CY, TM, IR = 0, 1, 2

EVENT_IDX_MASK = 0xFFFFF
EVENT_CYCLES, EVENT_INSTRUCTIONS = 1, 2  # SBI PMU hardware event numbers
COUNTING_EVENTS = (EVENT_CYCLES, EVENT_INSTRUCTIONS)

MHPMEVENT_OF = 1 << 63
MHPMEVENT_MINH = 1 << 62
MHPMEVENT_SINH = 1 << 61
MHPMEVENT_UINH = 1 << 60
MHPMEVENT_VSINH = 1 << 59
MHPMEVENT_VUINH = 1 << 58
_INHIBIT_BIT = {PRV_M: MHPMEVENT_MINH, PRV_S: MHPMEVENT_SINH, PRV_U: MHPMEVENT_UINH}
MODE_INHIBITS = MHPMEVENT_MINH | MHPMEVENT_SINH | MHPMEVENT_UINH

MCOUNTINHIBIT_WRITABLE = 0xFFFF_FFFD  # TM (bit 1) does not exist
NEVER_NS = 1 << 80


class Pmu:
    """One hart's counters; ``now()`` is the 10 MHz time base they advance with."""

    def __init__(self, now: Callable[[], int], sscofpmf: bool = False,
                 current_priv: Callable[[], int] = lambda: PRV_M,
                 timebase_hz: int = 10_000_000) -> None:
        self.now = now
        self.sscofpmf = sscofpmf
        self.current_priv = current_priv
        self.ns_per_tick = 1_000_000_000 // timebase_hz
        # called when LCOFI became pending (the hart sets mip and looks at interrupts)
        self.on_overflow: Callable[[], None] = lambda: None
        # called with True while some counter filters by mode (then every privilege
        # change must reach ``priv_changed``)
        self.on_mode_filter: Callable[[bool], None] = lambda on: None
        self.reset()

    def reset(self) -> None:
        now = self.now()
        self.base = [0] * N_COUNTERS  # value when last settled
        self.mark = [now] * N_COUNTERS  # time of that
        self.event = [0] * N_COUNTERS  # mhpmevent3..31 (0..2 unused)
        self.inhibit = 0  # mcountinhibit
        self.running = [self._counts(i) for i in range(N_COUNTERS)]
        self.overflow_ns = NEVER_NS
        self._mode_filters = False
        self.on_mode_filter(False)

    @staticmethod
    def exists(index: int) -> bool:
        return index in (CY, IR) or FIRST_HPM <= index < FIRST_HPM + N_HPM

    # -- what counts ---------------------------------------------------------------------
    def _counts(self, i: int) -> bool:
        if self.inhibit >> i & 1 or i == TM:
            return False
        if i in (CY, IR):
            return True
        event = self.event[i]
        if event & EVENT_IDX_MASK not in COUNTING_EVENTS or not self.exists(i):
            return False
        return not (self.sscofpmf and event & _INHIBIT_BIT.get(self.current_priv(), 0))

    def read(self, i: int) -> int:
        if not self.running[i]:
            return self.base[i]
        return (self.base[i] + self.now() - self.mark[i]) & MASK64

    def _settle(self, now: int) -> None:
        for i in range(N_COUNTERS):
            if self.running[i]:
                self.base[i] = (self.base[i] + now - self.mark[i]) & MASK64
            self.mark[i] = now
            self.running[i] = self._counts(i)
        self._rearm(now)

    # -- the CSRs ------------------------------------------------------------------------------
    def write(self, i: int, value: int) -> None:
        now = self.now()
        self._settle(now)
        self.base[i] = value & MASK64
        self._rearm(now)

    def write_inhibit(self, value: int) -> None:
        self._settle(self.now())  # what counted so far stays counted
        self.inhibit = value & MCOUNTINHIBIT_WRITABLE
        self._settle(self.now())

    def write_event(self, i: int, value: int) -> None:
        self._settle(self.now())
        self.event[i] = value & MASK64
        self._settle(self.now())
        filters = self.sscofpmf and any(e & MODE_INHIBITS for e in self.event)
        if filters != self._mode_filters:
            self._mode_filters = filters
            self.on_mode_filter(filters)

    def overflow_bits(self) -> int:
        """scountovf: the OF bit of each counter, at its counter's bit."""
        return sum(1 << i for i in range(FIRST_HPM, N_COUNTERS) if self.event[i] & MHPMEVENT_OF)

    def priv_changed(self, priv: int) -> None:
        """The hart entered ``priv`` (called only while some counter filters by mode):
        what ran until now counted in the old mode."""
        self._settle(self.now())

    # -- overflow (Sscofpmf) ----------------------------------------------------------------
    def _rearm(self, now: int) -> None:
        """When the next running counter with OF clear wraps, in host nanoseconds."""
        if not self.sscofpmf:
            return
        soonest = None
        for i in range(FIRST_HPM, N_COUNTERS):
            if self.running[i] and not self.event[i] & MHPMEVENT_OF:
                value = (self.base[i] + now - self.mark[i]) & MASK64
                ticks = (1 << 64) - value
                soonest = ticks if soonest is None else min(soonest, ticks)
        self.overflow_ns = (NEVER_NS if soonest is None
                            else time.monotonic_ns() + soonest * self.ns_per_tick)

    def latch_overflows(self) -> bool:
        """Set OF on every counter that wrapped since it was armed; True if LCOFI became
        pending (some OF went from 0 to 1)."""
        if self.overflow_ns == NEVER_NS or time.monotonic_ns() < self.overflow_ns:
            return False  # the common case, at every exit of the vCPU loop
        now = self.now()
        raised = False
        for i in range(FIRST_HPM, N_COUNTERS):
            if self.running[i] and not self.event[i] & MHPMEVENT_OF:
                # the counter's value wrapped when the ticks since its mark passed 2^64-base
                if now - self.mark[i] >= (1 << 64) - self.base[i]:
                    self.event[i] |= MHPMEVENT_OF
                    raised = True
        self._rearm(now)
        if raised:
            self.on_overflow()
        return raised


__all__ = ["MIP_LCOFIP", "N_HPM", "Pmu"]
