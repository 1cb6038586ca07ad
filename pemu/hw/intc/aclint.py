"""The CLINT of QEMU's RISC-V virt: ACLINT MSWI + MTIMER in one 64 KiB region.

  0x0000 + 4*hart   msip      bit 0 drives the hart's MSIP (software interrupt)
  0x4000 + 8*hart   mtimecmp  MTIP is high while mtime >= mtimecmp
  0xbff8            mtime     10 MHz, counted from the host's monotonic clock

mtime is computed on demand (no ticking), so a timer interrupt becomes due at a
known host time: ``next_deadline()`` tells the CPU loop how long WFI may sleep, and
``poll()`` re-evaluates MTIP.  With ``use_timers`` the I/O thread also arms a timer
for the earliest deadline, so a sleeping hart is woken through its MTIP sink even if
no one polls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pemu.accel.tcg.guest_clock import ns_per_tick
from pemu.hw.core import Device, IRQLine, VMState, VMStateField
from pemu.main_loop import get_main_loop

MSIP_BASE = 0x0000
MTIMECMP_BASE = 0x4000
MTIME = 0xBFF8
REGION_SIZE = 0x10000
TIMEBASE_HZ = 10_000_000
U64 = (1 << 64) - 1


def _merge(old: int, offset: int, size: int, value: int) -> int:
    """Write ``size`` bytes of ``value`` at byte ``offset`` inside a 64-bit register."""
    shift = 8 * offset
    mask = ((1 << (8 * size)) - 1) << shift
    return (old & ~mask) | ((value << shift) & mask)


class ACLINT(Device):
    """``ACLINT(num_harts, timebase_hz=10_000_000, use_timers=True)``.

    Outputs: ``msip[h]`` and ``mtip[h]`` IRQLines; connect them to hart h's MSIP and
    MTIP bits.  ``mtime()`` is also what the CPU returns for the ``time`` CSR.
    """

    type_name = "riscv.aclint"
    # mtime travels as its value, not as the host-clock offset: the receiving host's
    # clock has another epoch, and setting mtime_value re-bases the offset on it.
    vmstate = VMState("aclint", 1, (
        VMStateField("msip_bits", "u32[]", max=1), VMStateField("mtimecmp", "u64[]"),
        VMStateField("mtime_value", "u64")))

    def __init__(self, num_harts: int, timebase_hz: int = TIMEBASE_HZ,
                 use_timers: bool = True, clock_ns: Callable[[], int] = time.monotonic_ns,
                 id: str | None = None) -> None:
        super().__init__(id)
        self.num_harts = num_harts
        self.timebase_hz = timebase_hz
        self.use_timers = use_timers
        self._clock_ns = clock_ns
        self.lock = threading.RLock()
        self.msip = [IRQLine(name=f"msip{h}") for h in range(num_harts)]
        self.mtip = [IRQLine(name=f"mtip{h}") for h in range(num_harts)]
        self._timer = None
        # called with (epoch_ns, ns_per_tick, offset) whenever mtime's formula changes:
        # harts keep them in state slots, and translated code reads time from them
        self._clock_listeners: list[Callable[[int, int, int], None]] = []
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self._epoch_ns = self._clock_ns()
            self._offset = 0
            self._clock_changed()
            self.msip_bits = [0] * self.num_harts
            self.mtimecmp = [U64] * self.num_harts
            for line in self.msip:
                line.lower()
            self.poll()

    # -- time ------------------------------------------------------------------------
    def mtime(self) -> int:
        ticks = (self._clock_ns() - self._epoch_ns) * self.timebase_hz // 1_000_000_000
        return (ticks + self._offset) & U64

    def _set_mtime(self, value: int) -> None:
        now = (self._clock_ns() - self._epoch_ns) * self.timebase_hz // 1_000_000_000
        self._offset = (value - now) & U64
        self._clock_changed()

    def add_clock_listener(self, listener: Callable[[int, int, int], None]) -> None:
        """Call ``listener(epoch_ns, ns_per_tick, offset)`` now and after each change:
        mtime() == (time.monotonic_ns() - epoch_ns) // ns_per_tick + offset (mod 2**64)
        while ns_per_tick is nonzero; 0 says mtime has no such form (another clock)."""
        self._clock_listeners.append(listener)
        self._notify(listener)

    def _clock_changed(self) -> None:
        for listener in self._clock_listeners:
            self._notify(listener)

    def _notify(self, listener: Callable[[int, int, int], None]) -> None:
        host_clock = self._clock_ns is time.monotonic_ns
        listener(self._epoch_ns, ns_per_tick(self.timebase_hz) if host_clock else 0,
                 self._offset)

    @property
    def mtime_value(self) -> int:
        return self.mtime()

    @mtime_value.setter
    def mtime_value(self, value: int) -> None:
        self._set_mtime(value)

    def next_deadline(self) -> float | None:
        """Host ``time.monotonic()`` at which the next MTIP rises, None if never.

        Returns a time in the past if an interrupt is already due.
        """
        with self.lock:
            now_ticks = self.mtime()
            pending = [cmp for h, cmp in enumerate(self.mtimecmp)
                       if cmp != U64 and not self.mtip[h].level]
            if not pending:
                return None
            delta_ticks = min(pending) - now_ticks
            return time.monotonic() + max(0, delta_ticks) / self.timebase_hz

    def poll(self) -> None:
        """Re-evaluate every hart's MTIP against the current mtime."""
        with self.lock:
            now = self.mtime()
            for h, line in enumerate(self.mtip):
                line.set_level(now >= self.mtimecmp[h])
            self._arm_timer()

    def _arm_timer(self) -> None:
        if not self.use_timers:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.next_deadline()
        if deadline is not None:
            # A tick late rather than early: rounding must not leave MTIP low at expiry.
            delay = deadline - time.monotonic() + 1.0 / self.timebase_hz
            self._timer = get_main_loop().add_timer(delay, self.poll)

    # -- registers -------------------------------------------------------------------
    def mmio_read(self, offset: int, size: int) -> int:
        with self.lock:
            if offset < MTIMECMP_BASE:
                h = offset >> 2
                return self.msip_bits[h] if h < self.num_harts and offset & 3 == 0 else 0
            if MTIME <= offset < MTIME + 8:
                return (self.mtime() >> (8 * (offset - MTIME))) & ((1 << (8 * size)) - 1)
            h, byte = divmod(offset - MTIMECMP_BASE, 8)
            if h < self.num_harts:
                return (self.mtimecmp[h] >> (8 * byte)) & ((1 << (8 * size)) - 1)
            return 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        with self.lock:
            if offset < MTIMECMP_BASE:
                h = offset >> 2
                if h < self.num_harts and offset & 3 == 0:
                    self.msip_bits[h] = value & 1
                    self.msip[h].set_level(bool(value & 1))
                return
            if MTIME <= offset < MTIME + 8:
                self._set_mtime(_merge(self.mtime(), offset - MTIME, size, value))
            else:
                h, byte = divmod(offset - MTIMECMP_BASE, 8)
                if h >= self.num_harts:
                    return
                self.mtimecmp[h] = _merge(self.mtimecmp[h], byte, size, value)
            self.poll()

    def vmstate_post_load(self) -> None:
        # The IRQ lines follow the loaded registers; poll() also re-arms the timer.
        for h, line in enumerate(self.msip):
            line.set_level(bool(self.msip_bits[h]))
        self.poll()
