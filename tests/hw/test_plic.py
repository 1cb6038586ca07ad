"""The SiFive PLIC as a Linux/OpenSBI driver programs it."""

from __future__ import annotations

import pytest

from pemu.hw.intc import plic as p
from pemu.memory.address_space import AddressSpace
from pemu.migration import load_device, save_device

BASE = 0x0C000000


@pytest.fixture
def plic():
    ctl = p.PLIC(num_harts=2)
    space = AddressSpace()
    space.add_mmio("plic", BASE, ctl.region_size, ctl)

    def rd(off):
        return space.load(BASE + off, 4)

    def wr(off, v):
        space.store(BASE + off, 4, v)

    return ctl, rd, wr


def ctx(c, reg=0):
    return p.CONTEXT_BASE + p.CONTEXT_STRIDE * c + reg


def enable(wr, c, *sources):
    words = {}
    for s in sources:
        words[s // 32] = words.get(s // 32, 0) | 1 << (s % 32)
    for w, bits in words.items():
        wr(p.ENABLE_BASE + p.ENABLE_STRIDE * c + 4 * w, bits)


def test_region_size_matches_qemu_virt_layout(plic):
    ctl, _, _ = plic
    assert ctl.region_size == 0x200000 + 4 * 0x1000
    assert len(ctl.outputs) == 4


def test_priority_is_3_bits_and_source0_reserved(plic):
    _, rd, wr = plic
    wr(4 * 10, 0xFF)
    assert rd(4 * 10) == 7
    wr(0, 5)
    assert rd(0) == 0


def test_claim_complete_cycle_s_mode(plic):
    ctl, rd, wr = plic
    s_ext = ctl.s_external(0)
    wr(4 * 10, 1)
    enable(wr, 1, 10)
    line = ctl.input(10)
    line.raise_()
    assert rd(p.PENDING_BASE) == 1 << 10
    assert s_ext.level and not ctl.m_external(0).level
    assert rd(ctx(1, 4)) == 10  # claim
    assert not s_ext.level and rd(p.PENDING_BASE) == 0
    line.lower()
    wr(ctx(1, 4), 10)  # complete
    assert not s_ext.level
    assert rd(ctx(1, 4)) == 0  # nothing left


def test_level_still_high_after_complete_pends_again(plic):
    ctl, rd, wr = plic
    wr(4 * 33, 2)
    enable(wr, 0, 33)
    ctl.input(33).raise_()
    assert rd(ctx(0, 4)) == 33
    assert not ctl.m_external(0).level  # claimed: not offered again
    wr(ctx(0, 4), 33)
    assert ctl.m_external(0).level  # line still high -> pending again
    assert rd(p.PENDING_BASE + 4) == 1 << 1


def test_threshold_and_priority_order(plic):
    ctl, rd, wr = plic
    for src, prio in ((5, 3), (6, 5), (7, 5)):
        wr(4 * src, prio)
        ctl.input(src).raise_()
    enable(wr, 1, 5, 6, 7)
    wr(ctx(1), 5)  # threshold: only priority > 5 interrupts
    assert not ctl.s_external(0).level and rd(ctx(1, 4)) == 0
    wr(ctx(1), 2)
    assert ctl.s_external(0).level
    assert rd(ctx(1), ) == 2
    assert rd(ctx(1, 4)) == 6  # highest priority, lowest id on a tie
    assert rd(ctx(1, 4)) == 7
    assert rd(ctx(1, 4)) == 5
    assert rd(ctx(1, 4)) == 0


def test_enable_is_per_context_and_complete_requires_enable(plic):
    ctl, rd, wr = plic
    wr(4 * 1, 1)
    enable(wr, 3, 1)  # hart 1, S-mode
    ctl.input(1).raise_()
    assert ctl.s_external(1).level
    assert not ctl.s_external(0).level and not ctl.m_external(1).level
    assert rd(ctx(3, 4)) == 1
    wr(ctx(2, 4), 1)  # completion from a context without the enable: ignored
    assert ctl.claimed & 2
    wr(ctx(3, 4), 1)
    assert not ctl.claimed & 2


def test_out_of_range_accesses_are_harmless(plic):
    ctl, rd, wr = plic
    ctl.mmio_write(ctx(9), 4, 1)  # a context that does not exist
    assert ctl.mmio_read(ctx(9, 4), 4) == 0
    assert ctl.mmio_read(4 * 10, 2) == 0  # only 32-bit accesses
    wr(p.ENABLE_BASE + 0x7C, 0xFFFFFFFF)
    wr(p.PENDING_BASE, 0xFFFFFFFF)  # read-only
    assert rd(p.PENDING_BASE) == 0
    with pytest.raises(ValueError):
        ctl.input(96)


def test_reset_and_state(plic):
    ctl, rd, wr = plic
    wr(4 * 2, 4)
    enable(wr, 0, 2)
    ctl.input(2).raise_()
    ctl.input(70).raise_()
    wr(4 * 70, 1)
    enable(wr, 1, 70)
    state = save_device(ctl)
    ctl.reset()
    assert rd(4 * 2) == 0 and not ctl.m_external(0).level
    load_device(ctl, state)
    assert ctl.m_external(0).level and ctl.s_external(0).level
    assert rd(4 * 2) == 4 and rd(ctx(0, 4)) == 2
    assert rd(ctx(1, 4)) == 70
