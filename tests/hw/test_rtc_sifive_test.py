"""Goldfish RTC and the SiFive test finisher."""

from __future__ import annotations

import pytest
from hwtest_util import wait_until

from pemu.hw.core import IRQLine
from pemu.hw.misc.sifive_test import SiFiveTest
from pemu.hw.rtc import goldfish_rtc as g
from pemu.memory.address_space import AddressSpace

RTC = 0x101000
TEST = 0x100000


class WallClock:
    def __init__(self) -> None:
        self.ns = 1_700_000_000 * 10**9

    def __call__(self) -> int:
        return self.ns


@pytest.fixture
def rtc():
    clock = WallClock()
    irq = IRQLine(name="rtc")
    dev = g.GoldfishRTC(irq, clock_ns=clock)
    space = AddressSpace()
    space.add_mmio("rtc", RTC, g.REGION_SIZE, dev)
    return dev, space, clock, irq


def read_time(space):
    low = space.load(RTC + g.TIME_LOW, 4)  # latches the high half, as Linux relies on
    return space.load(RTC + g.TIME_HIGH, 4) << 32 | low


def test_time_follows_host_wall_clock(rtc):
    _, space, clock, _ = rtc
    assert read_time(space) == clock.ns
    clock.ns += 5 * 10**9
    assert read_time(space) == clock.ns


def test_high_half_is_latched_by_low_read(rtc):
    _, space, clock, _ = rtc
    clock.ns = (7 << 32) | 0xFFFFFFF0
    low = space.load(RTC + g.TIME_LOW, 4)
    clock.ns += 0x100  # the low half wraps between the two reads
    assert space.load(RTC + g.TIME_HIGH, 4) == 7 and low == 0xFFFFFFF0


def test_guest_sets_the_clock(rtc):
    _, space, clock, _ = rtc
    target = 1_000_000_000 * 10**9
    space.store(RTC + g.TIME_HIGH, 4, target >> 32)
    space.store(RTC + g.TIME_LOW, 4, target & 0xFFFFFFFF)
    assert read_time(space) == target
    clock.ns += 10**9
    assert read_time(space) == target + 10**9


def test_alarm_in_the_past_fires_and_interrupt_gates(rtc):
    _, space, clock, irq = rtc
    when = clock.ns - 1
    space.store(RTC + g.ALARM_HIGH, 4, when >> 32)
    space.store(RTC + g.ALARM_LOW, 4, when & 0xFFFFFFFF)
    assert space.load(RTC + g.ALARM_STATUS, 4) == 0  # already fired
    assert not irq.level  # not enabled yet
    space.store(RTC + g.IRQ_ENABLED, 4, 1)
    assert irq.level
    space.store(RTC + g.CLEAR_INTERRUPT, 4, 1)
    assert not irq.level


def test_future_alarm_fires_from_io_thread_and_can_be_cleared():
    irq = IRQLine(name="rtc")
    dev = g.GoldfishRTC(irq)  # real wall clock
    dev.mmio_write(g.IRQ_ENABLED, 4, 1)
    when = dev.now_ns() + 3_000_000  # 3 ms
    dev.mmio_write(g.ALARM_HIGH, 4, when >> 32)
    dev.mmio_write(g.ALARM_LOW, 4, when & 0xFFFFFFFF)
    assert wait_until(lambda: irq.level)
    assert dev.mmio_read(g.ALARM_STATUS, 4) == 0
    dev.mmio_write(g.CLEAR_INTERRUPT, 4, 1)
    when = dev.now_ns() + 3600 * 10**9
    dev.mmio_write(g.ALARM_HIGH, 4, when >> 32)
    dev.mmio_write(g.ALARM_LOW, 4, when & 0xFFFFFFFF)
    assert dev.mmio_read(g.ALARM_STATUS, 4) == 1
    dev.mmio_write(g.CLEAR_ALARM, 4, 1)
    assert dev.mmio_read(g.ALARM_STATUS, 4) == 0 and not irq.level


@pytest.mark.parametrize("value, expected", [
    (0x5555, ("off", 0)),
    (0x3333 | (42 << 16), ("off", 42)),
    (0x7777, ("reset",)),
    (0x1234, None),
])
def test_sifive_test_finisher(value, expected):
    events = []
    dev = SiFiveTest(lambda code: events.append(("off", code)),
                     lambda: events.append(("reset",)))
    space = AddressSpace()
    space.add_mmio("test", TEST, 0x1000, dev)
    space.store(TEST, 4, value)
    assert events == ([expected] if expected else [])
    assert space.load(TEST, 4) == 0
