"""IMSIC interrupt files (AIA 1.0 chapter 3): the MMIO page that MSIs land on and the
indirect registers the hart reaches through [ms]iselect/[ms]ireg and [ms]topei."""

from __future__ import annotations

from pemu.hw.intc import imsic as i
from pemu.memory.address_space import AddressSpace

BASE = 0x28000000


def setup(harts: int = 2):
    files = [i.ImsicFile() for _ in range(harts)]
    space = AddressSpace()
    space.add_mmio("imsic", BASE, i.PAGE_SIZE * harts, i.ImsicPages(files))
    return space, files


def test_seteipnum_le_and_be_set_pending_on_the_pages_hart():
    space, files = setup()
    space.store(BASE + 0x1000, 4, 7)
    space.store(BASE + 0x1004, 4, 0x2A << 24)  # big-endian 42
    assert files[1].eip == 1 << 7 | 1 << 42 and files[0].eip == 0
    assert space.load(BASE + 0x1000, 4) == 0  # write-only
    # identity 0 and identities past num-ids do not exist; other offsets are reserved
    for offset, value in ((0, 0), (0, 256), (0, 0xFFFF_FFFF), (8, 3)):
        space.store(BASE + offset, 4, value)
    space.store(BASE, 1, 5)  # not a 32-bit write
    assert files[0].eip == 0


def test_topei_follows_eie_threshold_and_claim():
    f = i.ImsicFile()
    for n in (3, 40, 200):
        f.set_pending(n)
    assert f.topei() == 0  # nothing enabled
    assert f.write_indirect(i.ISELECT_EIE0, 1 << 40 | 1 << 3)
    assert f.write_indirect(i.ISELECT_EIE0 + 6, 1 << (200 - 192))
    assert f.read_indirect(i.ISELECT_EIE0 + 6) == 1 << 8
    assert f.topei() == 3 << 16 | 3
    f.claim()
    assert f.topei() == 40 << 16 | 40
    assert f.write_indirect(i.ISELECT_EITHRESHOLD, 40)  # only identities below 40
    assert f.topei() == 0
    assert f.write_indirect(i.ISELECT_EITHRESHOLD, 0)
    f.claim()
    assert f.topei() == 200 << 16 | 200
    assert f.read_indirect(i.ISELECT_EIP0) == 0 and f.read_indirect(i.ISELECT_EIP0 + 6) == 1 << 8


def test_the_output_needs_eidelivery_and_a_top_identity():
    f = i.ImsicFile()
    f.write_indirect(i.ISELECT_EIE0, 1 << 9)
    f.set_pending(9)
    assert not f.output.level
    f.write_indirect(i.ISELECT_EIDELIVERY, 0xFFFF_FFFF)  # only bit 0 is implemented
    assert f.read_indirect(i.ISELECT_EIDELIVERY) == 1 and f.output.level
    f.claim()
    assert not f.output.level
    f.write_indirect(i.ISELECT_EIP0, 1 << 9 | 1)  # eip is writable; identity 0 is not
    assert f.read_indirect(i.ISELECT_EIP0) == 1 << 9 and f.output.level
    f.write_indirect(i.ISELECT_EIDELIVERY, 0)
    assert not f.output.level


def test_rv64_has_only_the_even_array_registers():
    f = i.ImsicFile()
    assert f.read_indirect(i.ISELECT_EIP0 + 1) is None
    assert not f.write_indirect(i.ISELECT_EIE0 + 3, 1)
    assert f.read_indirect(0x71) is None and f.read_indirect(0x40) is None
    assert f.read_indirect(i.ISELECT_EIE63 - 1) == 0  # beyond num-ids: zeros
