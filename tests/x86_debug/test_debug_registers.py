"""DR0-DR7 from (use, address, length) slots, and the probe's constants agree with it."""

from __future__ import annotations

import pytest

from pemu.accel.kvm import guest_debug_probe
from pemu.target.x86 import debug_registers as dr


def test_execute_and_watch_slots():
    regs = dr.debug_registers([(dr.EXECUTE, 0x1000, 1), (dr.WRITE, 0x2000, 4),
                               (dr.ACCESS, 0x3000, 8), (dr.WRITE, 0x4001, 1)])
    assert regs[:4] == [0x1000, 0x2000, 0x3000, 0x4001]
    dr7 = regs[7]
    assert dr7 & 0xFF == 0b01010101  # L0-L3
    assert dr7 >> 10 & 1  # reads as 1
    fields = [(dr7 >> (16 + 4 * n)) & 0xF for n in range(4)]
    # (LEN << 2) | RW per slot: execute has LEN 0; 4 bytes = 0b11, 8 bytes = 0b10
    assert fields == [0b0000, 0b1101, 0b1011, 0b0001]
    assert dr.debug_registers([]) == [0] * 8


def test_limits():
    with pytest.raises(ValueError):
        dr.debug_registers([(dr.EXECUTE, n, 1) for n in range(5)])
    assert dr.can_watch(0x1000, 8) and not dr.can_watch(0x1004, 8)
    assert not dr.can_watch(0x1000, 3)


def test_probe_constants_mean_what_the_target_says():
    # accel/kvm cannot import the target, so its probe spells DR7 itself
    assert dr.debug_registers([(dr.EXECUTE, 0, 1)])[7] == guest_debug_probe.DR7_EXEC_DR0
    assert dr.debug_registers([(dr.WRITE, 0, 8)])[7] == guest_debug_probe.DR7_WRITE8_DR0
