"""The PL031 RTC: host time, the guest's load register, the alarm interrupt."""

from __future__ import annotations

import time

from hwtest_util import wait_until

from pemu.hw.rtc import pl031 as r
from pemu.memory.address_space import AddressSpace
from pemu.migration import load_device, save_device

BASE = 0x0901_0000


class FakeClock:
    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns


def make(clock=None):
    rtc = r.Pl031() if clock is None else r.Pl031(clock_ns=clock)
    space = AddressSpace()
    rtc.map(space, BASE)
    return rtc, (lambda reg: space.load(BASE + reg, 4)), \
        (lambda reg, v: space.store(BASE + reg, 4, v))


def test_counts_host_utc_seconds():
    _, rd, _ = make()
    assert abs(rd(r.DR) - int(time.time())) <= 2
    assert rd(r.CR) == 1
    ids = [rd(0xFE0 + 4 * i) for i in range(8)]
    assert ids == [0x31, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1]


def test_load_register_sets_the_counter_and_time_moves_on():
    clock = FakeClock(1_700_000_000 * r.NS + 400_000_000)
    _, rd, wr = make(clock)
    assert rd(r.DR) == 1_700_000_000
    wr(r.LR, 1000)
    assert rd(r.DR) == 1000
    clock.ns += 5 * r.NS
    assert rd(r.DR) == 1005


def test_alarm_raises_masked_interrupt():
    rtc, rd, wr = make()
    wr(r.LR, 5000)
    wr(r.IMSC, 1)
    wr(r.MR, rd(r.DR) + 1)
    assert wait_until(lambda: rtc.irq.level, timeout=5)
    assert rd(r.RIS) == 1 and rd(r.MIS) == 1
    wr(r.ICR, 1)
    assert not rtc.irq.level and rd(r.RIS) == 0
    # A match value already behind the counter does not fire.
    wr(r.MR, rd(r.DR) - 10)
    assert not rtc.irq.level


def test_migration_carries_offset_and_alarm_state():
    clock = FakeClock(10 * r.NS)
    rtc, rd, wr = make(clock)
    wr(r.LR, 42)
    wr(r.IMSC, 1)
    rtc.ris = True
    state = save_device(rtc)
    other, rd2, _ = make(FakeClock(10 * r.NS))
    load_device(other, state)
    assert rd2(r.DR) == 42
    assert other.irq.level
