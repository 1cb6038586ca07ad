"""The APLIC (AIA 1.0 chapter 4) as OpenSBI and Linux program it: an M root domain that
delegates to an S child, in direct mode (IDCs) and in MSI mode (writes to IMSIC pages)."""

from __future__ import annotations

import pytest

from pemu.hw.intc import aplic as a
from pemu.hw.intc.imsic import ImsicFile, ImsicPages
from pemu.memory.address_space import AddressSpace

M_BASE, S_BASE = 0x0C000000, 0x0D000000
IMSIC_M, IMSIC_S = 0x24000000, 0x28000000


class Bus:
    """Two domains on an address space, with helpers named after the registers."""

    def __init__(self, msi: bool, harts: int = 2) -> None:
        self.space = space = AddressSpace()
        cfg = (*a.msi_addr_config(IMSIC_M, 12, harts), *a.msi_addr_config(IMSIC_S, 12, harts))
        self.m = a.AplicDomain(harts, True, msi, msi_config=cfg)
        self.s = a.AplicDomain(harts, False, msi, parent=self.m)
        space.add_mmio("aplic_m", M_BASE, a.DOMAIN_SIZE, self.m)
        space.add_mmio("aplic_s", S_BASE, a.DOMAIN_SIZE, self.s)
        if msi:
            self.files = {lv: [ImsicFile() for _ in range(harts)] for lv in "ms"}
            space.add_mmio("imsic_m", IMSIC_M, 0x1000 * harts, ImsicPages(self.files["m"]))
            space.add_mmio("imsic_s", IMSIC_S, 0x1000 * harts, ImsicPages(self.files["s"]))
            self.m.msi_write = lambda addr, data: space.store(addr, 4, data)

    def rd(self, base: int, off: int) -> int:
        return self.space.load(base + off, 4)

    def wr(self, base: int, off: int, v: int) -> None:
        self.space.store(base + off, 4, v)

    def delegate_all(self) -> None:
        for n in range(1, a.NUM_SOURCES + 1):
            self.wr(M_BASE, a.SOURCECFG + 4 * (n - 1), a.SOURCECFG_D | 0)

    def source(self, base: int, n: int, mode: int, target: int) -> None:
        self.wr(base, a.SOURCECFG + 4 * (n - 1), mode)
        self.wr(base, a.TARGET + 4 * (n - 1), target)
        self.wr(base, a.SETIENUM, n)


def idc(hart: int, reg: int) -> int:
    return a.IDC_BASE + a.IDC_SIZE * hart + reg


def test_domaincfg_reads_0x80_in_the_top_byte_and_dm_follows_the_mode():
    for msi in (False, True):
        bus = Bus(msi)
        bus.wr(S_BASE, a.DOMAINCFG, 0xFFFF_FFFF)
        value = a.DOMAINCFG_RO | a.DOMAINCFG_IE | (a.DOMAINCFG_DM if msi else 0)
        assert bus.rd(S_BASE, a.DOMAINCFG) == value


def test_child_sources_are_read_only_zero_until_the_root_delegates_them():
    bus = Bus(msi=False)
    bus.wr(S_BASE, a.SOURCECFG + 4 * 9, a.SM_LEVEL1)
    assert bus.rd(S_BASE, a.SOURCECFG + 4 * 9) == 0
    bus.wr(M_BASE, a.SOURCECFG + 4 * 9, a.SOURCECFG_D)
    assert bus.rd(M_BASE, a.SOURCECFG + 4 * 9) == a.SOURCECFG_D
    bus.wr(S_BASE, a.SOURCECFG + 4 * 9, a.SM_LEVEL1)
    assert bus.rd(S_BASE, a.SOURCECFG + 4 * 9) == a.SM_LEVEL1
    # the leaf cannot delegate further, and reserved modes read back inactive
    bus.wr(S_BASE, a.SOURCECFG + 4 * 9, a.SOURCECFG_D | 0)
    assert not bus.rd(S_BASE, a.SOURCECFG + 4 * 9) & a.SOURCECFG_D
    bus.wr(S_BASE, a.SOURCECFG + 4 * 9, 2)
    assert bus.rd(S_BASE, a.SOURCECFG + 4 * 9) == 0
    # taking the delegation back resets the child's view of the source
    bus.wr(S_BASE, a.SOURCECFG + 4 * 9, a.SM_EDGE1)
    bus.wr(M_BASE, a.SOURCECFG + 4 * 9, a.SM_DETACHED)
    assert bus.rd(S_BASE, a.SOURCECFG + 4 * 9) == 0


def test_direct_mode_level_source_claim_and_topi():
    bus = Bus(msi=False)
    bus.delegate_all()
    line = bus.m.input(10)
    out = bus.s.outputs[1]
    bus.source(S_BASE, 10, a.SM_LEVEL1, 1 << 18 | 3)
    bus.wr(S_BASE, a.DOMAINCFG, a.DOMAINCFG_IE)
    bus.wr(S_BASE, idc(1, a.IDELIVERY), 1)
    line.raise_()
    assert out.level and not bus.s.outputs[0].level
    assert not bus.m.outputs[1].level  # the root sees nothing of a delegated source
    assert bus.rd(S_BASE, idc(1, a.TOPI)) == 10 << 16 | 3
    assert bus.rd(S_BASE, a.SETIP) == 1 << 10
    assert bus.rd(S_BASE, a.IN_CLRIP) == 1 << 10
    # a level source stays pending while its line is high, even after a claim
    assert bus.rd(S_BASE, idc(1, a.CLAIMI)) == 10 << 16 | 3
    assert out.level
    line.lower()
    assert not out.level and bus.rd(S_BASE, idc(1, a.CLAIMI)) == 0
    # software cannot set a level source's pending bit in direct mode
    bus.wr(S_BASE, a.SETIPNUM, 10)
    assert bus.rd(S_BASE, a.SETIP) == 0


def test_direct_mode_threshold_priority_order_and_iforce():
    bus = Bus(msi=False)
    for n, prio in ((5, 4), (6, 2), (7, 2)):
        bus.source(M_BASE, n, a.SM_DETACHED, prio)  # hart 0
    bus.wr(M_BASE, a.DOMAINCFG, a.DOMAINCFG_IE)
    bus.wr(M_BASE, idc(0, a.IDELIVERY), 1)
    bus.wr(M_BASE, a.SETIP, 1 << 5 | 1 << 6 | 1 << 7)
    assert bus.rd(M_BASE, idc(0, a.TOPI)) == 6 << 16 | 2  # lowest priority number, then id
    bus.wr(M_BASE, idc(0, a.ITHRESHOLD), 2)  # only priorities below 2 are delivered
    assert bus.rd(M_BASE, idc(0, a.TOPI)) == 0 and not bus.m.outputs[0].level
    bus.wr(M_BASE, idc(0, a.ITHRESHOLD), 5)
    assert [bus.rd(M_BASE, idc(0, a.CLAIMI)) >> 16 for _ in range(4)] == [6, 7, 5, 0]
    bus.wr(M_BASE, idc(0, a.IFORCE), 1)
    assert bus.m.outputs[0].level
    assert bus.rd(M_BASE, idc(0, a.CLAIMI)) == 0 and bus.rd(M_BASE, idc(0, a.IFORCE)) == 0
    assert not bus.m.outputs[0].level
    # priority 0 in a target register means 1
    bus.wr(M_BASE, a.TARGET + 4 * 4, 0)
    assert bus.rd(M_BASE, a.TARGET + 4 * 4) == 1


def test_edge_sources_latch_rising_and_falling_edges():
    bus = Bus(msi=False)
    rise, fall = bus.m.input(3), bus.m.input(4)
    bus.source(M_BASE, 3, a.SM_EDGE1, 1)
    bus.source(M_BASE, 4, a.SM_EDGE0, 1)
    # configured while its rectified input is high (a low wire, inverted): the spec
    # lets that set the pending bit, and pemu does as QEMU does
    assert bus.rd(M_BASE, a.SETIP) == 1 << 4
    bus.wr(M_BASE, a.CLRIPNUM, 4)
    rise.raise_()
    fall.raise_()
    assert bus.rd(M_BASE, a.SETIP) == 1 << 3
    rise.lower()
    fall.lower()
    assert bus.rd(M_BASE, a.SETIP) == 1 << 3 | 1 << 4  # stays pending: an edge was seen
    bus.wr(M_BASE, a.CLRIPNUM, 3)
    bus.wr(M_BASE, a.IN_CLRIP, 1 << 4)
    assert bus.rd(M_BASE, a.SETIP) == 0


def test_enable_registers_and_inactive_sources():
    bus = Bus(msi=False)
    bus.wr(M_BASE, a.SOURCECFG + 4 * 31, a.SM_DETACHED)  # source 32: word 1, bit 0
    bus.wr(M_BASE, a.SETIE + 4, 0xFFFF_FFFF)
    assert bus.rd(M_BASE, a.SETIE + 4) == 1  # only the active source took it
    bus.wr(M_BASE, a.CLRIE + 4, 1)
    assert bus.rd(M_BASE, a.SETIE + 4) == 0
    bus.wr(M_BASE, a.SETIENUM, 32)
    bus.wr(M_BASE, a.SETIPNUM_LE, 32)
    assert bus.rd(M_BASE, a.SETIP + 4) == 1
    bus.wr(M_BASE, a.CLRIENUM, 32)
    assert bus.rd(M_BASE, a.SETIE + 4) == 0
    bus.wr(M_BASE, a.SOURCECFG + 4 * 31, a.SM_INACTIVE)  # back to inactive: all cleared
    assert bus.rd(M_BASE, a.SETIP + 4) == 0 and bus.rd(M_BASE, a.TARGET + 4 * 31) == 0
    bus.wr(M_BASE, a.SETIPNUM_BE, 33 << 24)  # big-endian write of 33: inactive, ignored
    assert bus.rd(M_BASE, a.SETIP + 4) == 0


def test_msi_mode_forwards_to_the_targets_imsic_and_clears_pending():
    bus = Bus(msi=True)
    bus.delegate_all()
    s_file = bus.files["s"][1]
    s_file.write_indirect(0x70, 1)  # eidelivery
    s_file.write_indirect(0xC0, 1 << 33)  # eie of identity 33
    bus.source(S_BASE, 10, a.SM_LEVEL1, 1 << 18 | 33)  # hart 1, EIID 33
    line = bus.m.input(10)
    line.raise_()
    assert s_file.eip == 0, "nothing is sent while the domain is disabled"
    bus.wr(S_BASE, a.DOMAINCFG, a.DOMAINCFG_IE | a.DOMAINCFG_DM)
    assert s_file.eip == 1 << 33 and s_file.output.level
    assert bus.rd(S_BASE, a.SETIP) == 0, "forwarded: no longer pending"
    assert bus.files["s"][0].eip == 0 and bus.files["m"][1].eip == 0
    s_file.claim()
    # still asserted: no second MSI until software retriggers (Linux's EOI does this)
    assert s_file.eip == 0
    bus.wr(S_BASE, a.SETIPNUM_LE, 10)
    assert s_file.eip == 1 << 33
    s_file.claim()
    line.lower()
    bus.wr(S_BASE, a.SETIPNUM_LE, 10)  # input low: a level source cannot be set
    assert s_file.eip == 0 and bus.rd(S_BASE, a.SETIP) == 0


def test_msi_mode_machine_level_target_and_genmsi():
    bus = Bus(msi=True)
    m_file = bus.files["m"][1]
    bus.source(M_BASE, 5, a.SM_EDGE1, 1 << 18 | 7 << 12 | 9)  # guest index is RO 0
    assert bus.rd(M_BASE, a.TARGET + 4 * 4) == 1 << 18 | 9
    bus.wr(M_BASE, a.DOMAINCFG, a.DOMAINCFG_IE)
    bus.m.input(5).raise_()
    assert m_file.eip == 1 << 9
    bus.wr(M_BASE, a.GENMSI, 1 << 18 | 44)
    assert m_file.eip == 1 << 9 | 1 << 44
    assert bus.rd(M_BASE, a.GENMSI) & a.GENMSI_BUSY == 0


def test_msi_address_registers_live_in_the_root_and_follow_the_lock():
    bus = Bus(msi=True, harts=4)
    assert bus.rd(M_BASE, a.MMSIADDRCFG) == IMSIC_M >> 12
    assert bus.rd(M_BASE, a.MMSIADDRCFGH) >> 12 & 0xF == 2  # LHXW: four harts
    assert bus.rd(S_BASE, a.MMSIADDRCFG) == 0  # not in the child
    # move the S files: the child's MSIs follow the root's smsiaddrcfg
    bus.space.add_mmio("imsic_s2", 0x3000_0000, 0x4000, ImsicPages(bus.files["s"]))
    bus.wr(M_BASE, a.SMSIADDRCFG, 0x3000_0000 >> 12)
    bus.delegate_all()
    bus.source(S_BASE, 2, a.SM_DETACHED, 3 << 18 | 5)
    bus.wr(S_BASE, a.DOMAINCFG, a.DOMAINCFG_IE)
    bus.wr(S_BASE, a.SETIPNUM, 2)
    assert bus.files["s"][3].eip == 1 << 5
    bus.wr(M_BASE, a.MMSIADDRCFGH, a.MSIADDRCFGH_L | 2 << 12)
    bus.wr(M_BASE, a.MMSIADDRCFG, 0)  # locked: ignored
    assert bus.rd(M_BASE, a.MMSIADDRCFG) == IMSIC_M >> 12


@pytest.mark.parametrize("n", [0, a.NUM_SOURCES + 1])
def test_out_of_range_sources_are_ignored(n):
    bus = Bus(msi=False)
    bus.m.set_irq(n, True)
    bus.wr(M_BASE, a.SETIPNUM, n)
    bus.wr(M_BASE, a.SETIENUM, n)
    assert bus.rd(M_BASE, a.SETIP) == 0 and bus.rd(M_BASE, a.SETIE) == 0
    with pytest.raises(ValueError):
        bus.m.input(n)
