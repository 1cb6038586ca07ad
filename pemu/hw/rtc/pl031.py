"""The Arm PrimeCell PL031 real-time clock, as on QEMU's Arm virt board (0x09010000,
SPI 2); Linux's rtc-pl031 driver.

  0x000 DR    the seconds counter (read)          0x004 MR   match (alarm) value
  0x008 LR    load: writing sets the counter      0x00C CR   start; always running here
  0x010 IMSC  alarm interrupt mask                0x014 RIS  0x018 MIS  0x01C ICR
  0xFE0..0xFFC PrimeCell IDs

The counter is the host's wall clock (UTC, as ``-rtc base=utc``; the same clock source
the RISC-V goldfish RTC takes) plus the offset the guest loaded.  The alarm raises RIS
when the counter reaches MR, from a main-loop timer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pemu.hw.core import Device, IRQLine, VMState, VMStateField
from pemu.main_loop import Timer, get_main_loop

DR = 0x000
MR = 0x004
LR = 0x008
CR = 0x00C
IMSC = 0x010
RIS = 0x014
MIS = 0x018
ICR = 0x01C
ID_BASE = 0xFE0
REGION_SIZE = 0x1000
PRIMECELL_IDS = (0x31, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1)
NS = 1_000_000_000
U64 = (1 << 64) - 1


class Pl031(Device):
    """``Pl031()``: connect ``irq``, map with ``map(space, base)``."""

    type_name = "pl031"
    vmstate = VMState("pl031", 1, (
        VMStateField("tick_offset", "u64"), VMStateField("mr", "u32"),
        VMStateField("imsc", "bool"), VMStateField("ris", "bool")))

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns,
                 id: str | None = None) -> None:
        super().__init__(id)
        self.irq = IRQLine(name="pl031")
        self._clock_ns = clock_ns
        self.lock = threading.RLock()
        self._timer: Timer | None = None
        self.reset()

    def map(self, space, base: int) -> None:  # noqa: ANN001 - an AddressSpace
        space.add_mmio("pl031", base, REGION_SIZE, self)

    def reset(self) -> None:
        with self.lock:
            self.tick_offset = 0  # ns added to the host clock, modulo 2**64
            self.mr = 0
            self.imsc = False
            self.ris = False
            self._cancel()
            self._update_irq()

    def seconds(self) -> int:
        """What DR reads now."""
        return ((self._clock_ns() + self.tick_offset) & U64) // NS & 0xFFFF_FFFF

    def _update_irq(self) -> None:
        self.irq.set_level(self.ris and self.imsc)

    # -- the alarm ---------------------------------------------------------------------
    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        """Time the alarm for when the counter next equals MR.  A match value behind
        the counter comes round again only when the 32-bit counter wraps (68 years and
        more): no timer for it."""
        self._cancel()
        now_ns = (self._clock_ns() + self.tick_offset) & U64
        ahead = (self.mr - now_ns // NS) & 0xFFFF_FFFF
        if ahead == 0:
            self._fire()
            return
        if ahead >= 0x8000_0000:
            return
        delay = (ahead * NS - now_ns % NS) / NS
        self._timer = get_main_loop().add_timer(delay, self._fire)

    def _fire(self) -> None:
        with self.lock:
            self._timer = None
            ahead = (self.mr - self.seconds()) & 0xFFFF_FFFF
            if 0 < ahead < 0x8000_0000:
                # The host clock is still short of the match (timer rounding, or the
                # guest moved the counter back): time it again.
                self._arm()
                return
            self.ris = True
            self._update_irq()

    # -- registers ---------------------------------------------------------------------
    def mmio_read(self, offset: int, size: int) -> int:
        with self.lock:
            if offset == DR:
                return self.seconds()
            if offset == MR:
                return self.mr
            if offset == LR:
                return self.seconds()  # QEMU reads back the counter here too
            if offset == CR:
                return 1  # the counter always runs
            if offset == IMSC:
                return int(self.imsc)
            if offset == RIS:
                return int(self.ris)
            if offset == MIS:
                return int(self.ris and self.imsc)
            if offset >= ID_BASE:
                index = (offset - ID_BASE) >> 2
                return PRIMECELL_IDS[index] if index < len(PRIMECELL_IDS) else 0
            return 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFFFF_FFFF
        with self.lock:
            if offset == LR:
                self.tick_offset = (value * NS - self._clock_ns()) & U64
                self._arm()
            elif offset == MR:
                self.mr = value
                self._arm()
            elif offset == IMSC:
                self.imsc = bool(value & 1)
            elif offset == ICR:
                if value & 1:
                    self.ris = False
            self._update_irq()

    def vmstate_post_load(self) -> None:
        # The alarm timer is host state: timed again from the loaded match value.
        self._arm()
        self._update_irq()
