"""The Goldfish RTC (Android emulator's, used by QEMU's RISC-V virt at 0x101000).

  0x00 TIME_LOW   reading latches TIME_HIGH; writing sets the clock
  0x04 TIME_HIGH  nanoseconds since the Unix epoch, upper half
  0x08 ALARM_LOW  writing arms the alarm at (ALARM_HIGH << 32 | value)
  0x0c ALARM_HIGH
  0x10 IRQ_ENABLED
  0x14 CLEAR_ALARM
  0x18 ALARM_STATUS  1 while an alarm is armed
  0x1c CLEAR_INTERRUPT

The clock follows the host's wall clock plus whatever offset the guest set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pemu.hw.core import Device, IRQLine, VMState, VMStateField
from pemu.main_loop import Timer, get_main_loop

TIME_LOW = 0x00
TIME_HIGH = 0x04
ALARM_LOW = 0x08
ALARM_HIGH = 0x0C
IRQ_ENABLED = 0x10
CLEAR_ALARM = 0x14
ALARM_STATUS = 0x18
CLEAR_INTERRUPT = 0x1C
REGION_SIZE = 0x1000


class GoldfishRTC(Device):
    """``GoldfishRTC(irq)``; map 0x1000 bytes (virt: 0x101000, PLIC source 11)."""

    type_name = "goldfish_rtc"
    vmstate = VMState("goldfish_rtc", 1, tuple(VMStateField(n, k) for n, k in (
        ("tick_offset", "u64"), ("alarm_next", "u64"), ("alarm_running", "bool"),
        ("irq_pending", "bool"), ("irq_enabled", "bool"), ("time_high", "u32"),
        ("alarm_high", "u32"))))

    def __init__(self, irq: IRQLine, clock_ns: Callable[[], int] = time.time_ns,
                 id: str | None = None) -> None:
        super().__init__(id)
        self.irq = irq
        self._clock_ns = clock_ns
        self.lock = threading.RLock()
        self._timer: Timer | None = None
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.tick_offset = 0
            self.alarm_next = 0
            self.alarm_high = 0
            self.alarm_running = False
            self.irq_pending = False
            self.irq_enabled = False
            self.time_high = 0
            self._cancel()
            self._update_irq()

    def now_ns(self) -> int:
        return (self._clock_ns() + self.tick_offset) & ((1 << 64) - 1)

    def _update_irq(self) -> None:
        self.irq.set_level(self.irq_pending and self.irq_enabled)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self._cancel()
        delay = (self.alarm_next - self.now_ns()) / 1e9
        if delay <= 0:
            self._fire()
        else:
            self._timer = get_main_loop().add_timer(delay, self._fire)

    def _fire(self) -> None:
        with self.lock:
            self._timer = None
            if not self.alarm_running:
                return
            if self.now_ns() < self.alarm_next:
                self._arm()  # the guest moved the clock back meanwhile
                return
            self.alarm_running = False
            self.irq_pending = True
            self._update_irq()

    def mmio_read(self, offset: int, size: int) -> int:
        with self.lock:
            if offset == TIME_LOW:
                now = self.now_ns()
                self.time_high = now >> 32
                return now & 0xFFFFFFFF
            if offset == TIME_HIGH:
                return self.time_high
            if offset == ALARM_LOW:
                return self.alarm_next & 0xFFFFFFFF
            if offset == ALARM_HIGH:
                return self.alarm_next >> 32
            if offset == IRQ_ENABLED:
                return int(self.irq_enabled)
            if offset == ALARM_STATUS:
                return int(self.alarm_running)
            return 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFFFFFFFF
        with self.lock:
            if offset == TIME_LOW:
                wanted = (self.time_high << 32) | value
                self.tick_offset = (self.tick_offset + wanted - self.now_ns()) & ((1 << 64) - 1)
                if self.alarm_running:
                    self._arm()
            elif offset == TIME_HIGH:
                self.time_high = value
            elif offset == ALARM_LOW:
                self.alarm_next = (self.alarm_high << 32) | value
                self.alarm_running = True
                self._arm()
            elif offset == ALARM_HIGH:
                self.alarm_high = value
            elif offset == IRQ_ENABLED:
                self.irq_enabled = bool(value & 1)
                self._update_irq()
            elif offset == CLEAR_ALARM:
                self.alarm_running = False
                self._cancel()
            elif offset == CLEAR_INTERRUPT:
                self.irq_pending = False
                self._update_irq()

    def vmstate_post_load(self) -> None:
        # The alarm timer is host state: re-armed from the loaded deadline (or fired at
        # once if the deadline passed while the state was in transit).
        self._cancel()
        if self.alarm_running:
            self._arm()
        self._update_irq()
