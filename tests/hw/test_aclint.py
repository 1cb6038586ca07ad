"""The CLINT (ACLINT MSWI + MTIMER) with a controllable clock."""

from __future__ import annotations

import pytest
from hwtest_util import wait_until

from pemu.hw.intc import aclint as a
from pemu.memory.address_space import AddressSpace
from pemu.migration import load_device, save_device

BASE = 0x02000000


class FakeClock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


@pytest.fixture
def clint():
    clock = FakeClock()
    dev = a.ACLINT(2, use_timers=False, clock_ns=clock)
    space = AddressSpace()
    space.add_mmio("clint", BASE, a.REGION_SIZE, dev)
    return dev, space, clock


def test_mtime_counts_at_10mhz(clint):
    dev, space, clock = clint
    t0 = space.load(BASE + a.MTIME, 8)
    clock.ns += 1_000_000  # 1 ms
    assert space.load(BASE + a.MTIME, 8) - t0 == 10_000
    assert dev.mtime() == t0 + 10_000


def test_mtime_write_and_32bit_halves(clint):
    dev, space, clock = clint
    space.store(BASE + a.MTIME, 8, 0x1_0000_0000)
    assert space.load(BASE + a.MTIME + 4, 4) == 1
    assert space.load(BASE + a.MTIME, 4) == 0
    space.store(BASE + a.MTIME, 4, 0x10)
    assert dev.mtime() == 0x1_0000_0010


def test_msip_per_hart(clint):
    dev, space, _ = clint
    space.store(BASE + 4, 4, 1)
    assert dev.msip[1].level and not dev.msip[0].level
    assert space.load(BASE + 4, 4) == 1
    space.store(BASE + 4, 4, 0)
    assert not dev.msip[1].level


def test_mtimecmp_drives_mtip(clint):
    dev, space, clock = clint
    assert space.load(BASE + a.MTIMECMP_BASE, 8) == a.U64  # power-on: never
    assert not dev.mtip[0].level
    now = dev.mtime()
    space.store(BASE + a.MTIMECMP_BASE, 8, now + 1000)
    assert not dev.mtip[0].level
    assert dev.next_deadline() is not None
    clock.ns += 100_000  # exactly 1000 ticks later
    dev.poll()
    assert dev.mtip[0].level and not dev.mtip[1].level
    assert dev.next_deadline() is None  # nothing else pending
    space.store(BASE + a.MTIMECMP_BASE, 8, a.U64)  # the OS moves the compare away
    assert not dev.mtip[0].level
    space.store(BASE + a.MTIMECMP_BASE + 8 + 4, 4, 0)  # hart 1 high half
    space.store(BASE + a.MTIMECMP_BASE + 8, 4, 0)  # -> mtimecmp = 0, due now
    assert dev.mtip[1].level


def test_next_deadline_tells_wfi_how_long_to_sleep(clint):
    import time

    dev, space, clock = clint
    space.store(BASE + a.MTIMECMP_BASE, 8, dev.mtime() + 5_000_000)  # 0.5 s of mtime
    before = time.monotonic()
    deadline = dev.next_deadline()
    after = time.monotonic()
    assert before + 0.5 <= deadline <= after + 0.5


def test_state_keeps_mtime_across_restore(clint):
    dev, space, clock = clint
    space.store(BASE + a.MTIME, 8, 123456)
    space.store(BASE + a.MTIMECMP_BASE, 8, 999999)
    state = save_device(dev)
    other = a.ACLINT(2, use_timers=False, clock_ns=FakeClock())
    load_device(other, state)
    assert other.mtime() == 123456 and other.mtimecmp[0] == 999999


def test_real_clock_timer_raises_mtip_without_polling():
    dev = a.ACLINT(1)  # host monotonic clock, I/O-thread timer
    dev.mmio_write(a.MTIMECMP_BASE, 8, dev.mtime() + 20_000)  # 2 ms
    assert wait_until(lambda: dev.mtip[0].level)
