"""Scenarios for the AIA: the APLIC in direct mode (M root delegating to an S child,
IDC lines) and the APLIC in MSI mode with the IMSIC files it writes to."""

from __future__ import annotations

from pemu.hw.intc import aplic as a
from pemu.hw.intc import imsic as i
from pemu.memory.address_space import AddressSpace
from pemu.target.riscv.aia_csrs import AiaHartState
from tests.migration.scenarios import Rig, Scenario

M_BASE, S_BASE = 0x0C000000, 0x0D000000
IMSIC_M, IMSIC_S = 0x24000000, 0x28000000
HARTS = 2
# Smaller than virt's 96 sources and 255 identities: the bad-stream tests flip every
# byte of every section, and the checks do not depend on the sizes.
SOURCES = 32
IDS = 63


def _idc(hart: int, reg: int) -> int:
    return a.IDC_BASE + a.IDC_SIZE * hart + reg


class _Aia:
    """Two domains (and in MSI mode the IMSIC pages) on an address space."""

    def __init__(self, msi: bool) -> None:
        self.space = space = AddressSpace()
        cfg = (*a.msi_addr_config(IMSIC_M, 12, HARTS), *a.msi_addr_config(IMSIC_S, 12, HARTS))
        self.m = a.AplicDomain(HARTS, True, msi, msi_config=cfg, num_sources=SOURCES)
        self.s = a.AplicDomain(HARTS, False, msi, parent=self.m, num_sources=SOURCES)
        space.add_mmio("aplic_m", M_BASE, a.DOMAIN_SIZE, self.m)
        space.add_mmio("aplic_s", S_BASE, a.DOMAIN_SIZE, self.s)
        self.pages: list[i.ImsicPages] = []
        if msi:
            harts = [AiaHartState(None, None) for _ in range(HARTS)]
            for base, level in ((IMSIC_M, "m"), (IMSIC_S, "s")):
                pages = i.ImsicPages([i.ImsicFile(IDS) for _ in range(HARTS)],
                                     machine_level=level == "m")
                pages.hart_selects = harts
                space.add_mmio(f"imsic_{level}", base, i.PAGE_SIZE * HARTS, pages)
                self.pages.append(pages)
            self.harts = harts
            self.m.msi_write = lambda addr, data: space.store(addr, 4, data)

    def rd(self, base: int, off: int) -> int:
        return self.space.load(base + off, 4)

    def wr(self, base: int, off: int, v: int) -> None:
        self.space.store(base + off, 4, v)

    def source(self, base: int, n: int, mode: int, target: int) -> None:
        self.wr(base, a.SOURCECFG + 4 * (n - 1), mode)
        self.wr(base, a.TARGET + 4 * (n - 1), target)
        self.wr(base, a.SETIENUM, n)


class AplicScenario(Scenario):
    """Direct mode: a level source delegated to S, high and claimed; an edge source
    latched in M with delivery off; thresholds and a forced interrupt."""

    device_type = a.AplicDomain

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        aia = _Aia(msi=False)
        return Rig([aia.m, aia.s], extra={"aia": aia})

    def configured(self) -> Rig:
        rig = self.fresh_like()
        aia: _Aia = rig.extra["aia"]
        for n in (10, 11):
            aia.wr(M_BASE, a.SOURCECFG + 4 * (n - 1), a.SOURCECFG_D)
        aia.source(S_BASE, 10, a.SM_LEVEL1, 1 << 18 | 3)  # hart 1, priority 3
        aia.source(S_BASE, 11, a.SM_EDGE1, 1 << 18 | 5)
        aia.wr(S_BASE, a.DOMAINCFG, a.DOMAINCFG_IE)
        aia.wr(S_BASE, _idc(1, a.IDELIVERY), 1)
        aia.m.input(10).raise_()
        assert aia.rd(S_BASE, _idc(1, a.CLAIMI)) == 10 << 16 | 3  # level: pending again
        aia.source(M_BASE, 5, a.SM_EDGE1, 4)  # hart 0, priority 4
        aia.source(M_BASE, 6, a.SM_LEVEL0, 2)
        aia.m.input(5).raise_()
        aia.m.input(5).lower()  # latched
        aia.m.input(6).raise_()  # inverted: low is asserted, so not pending
        aia.wr(M_BASE, a.DOMAINCFG, a.DOMAINCFG_IE)
        aia.wr(M_BASE, _idc(0, a.ITHRESHOLD), 6)
        aia.wr(M_BASE, _idc(1, a.IFORCE), 1)  # idelivery off: not yet seen
        return rig

    def probe(self, rig: Rig) -> list:
        # the source devices' lines are driven as their own post-load would: set_irq
        aia: _Aia = rig.extra["aia"]
        outs = aia.m.outputs + aia.s.outputs
        out: list = [line.level for line in outs]
        for base in (M_BASE, S_BASE):
            out += [aia.rd(base, a.SOURCECFG + 4 * n) for n in range(12)]
            out += [aia.rd(base, a.TARGET + 4 * n) for n in range(12)]
            out += [aia.rd(base, off) for off in (a.DOMAINCFG, a.SETIP, a.IN_CLRIP, a.SETIE)]
        # the pending sources are delivered once the harts let them through
        aia.wr(M_BASE, _idc(0, a.IDELIVERY), 1)
        aia.wr(M_BASE, _idc(1, a.IDELIVERY), 1)
        out += [line.level for line in outs]
        out += [aia.rd(M_BASE, _idc(h, a.CLAIMI)) for h in (0, 1, 0, 1)]
        aia.m.set_irq(6, False)  # asserted now
        out += [aia.rd(M_BASE, _idc(0, a.TOPI)), aia.rd(S_BASE, _idc(1, a.CLAIMI))]
        aia.m.set_irq(10, False)
        out += [aia.rd(S_BASE, _idc(1, a.CLAIMI)), aia.rd(S_BASE, _idc(1, a.CLAIMI))]
        out += [line.level for line in outs]
        return out


class ImsicScenario(Scenario):
    """MSI mode: the APLIC holds a pending source while its domain is disabled; the
    IMSIC files have identities pending, enabled, a threshold and the selects set."""

    device_type = i.ImsicPages

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        aia = _Aia(msi=True)
        return Rig([*aia.pages, aia.m, aia.s], extra={"aia": aia})

    def configured(self) -> Rig:
        rig = self.fresh_like()
        aia: _Aia = rig.extra["aia"]
        m_files, s_files = (p.files for p in aia.pages)
        aia.wr(M_BASE, a.SOURCECFG + 4 * 6, a.SOURCECFG_D)
        aia.source(S_BASE, 7, a.SM_EDGE1, 1 << 18 | 42)  # hart 1, EIID 42
        aia.m.set_irq(7, True)  # pending in the APLIC: its domain is not enabled yet
        aia.source(M_BASE, 3, a.SM_LEVEL1, 0 << 18 | 9)
        aia.wr(M_BASE, a.DOMAINCFG, a.DOMAINCFG_IE)
        aia.m.input(3).raise_()  # forwarded at once to hart 0's M file
        for f, ids in ((m_files[0], ()), (m_files[1], (20, 60)), (s_files[0], (5, 37))):
            for n in ids:
                f.set_pending(n)
        s_files[1].write_indirect(i.ISELECT_EIE0, 1 << 42 | 1 << 50)
        s_files[1].write_indirect(i.ISELECT_EIDELIVERY, 1)
        s_files[0].write_indirect(i.ISELECT_EIE0, 1 << 37)
        s_files[0].write_indirect(i.ISELECT_EIDELIVERY, 1)
        s_files[0].write_indirect(i.ISELECT_EITHRESHOLD, 40)
        m_files[0].write_indirect(i.ISELECT_EIE0, 1 << 9)
        aia.harts[0].miselect, aia.harts[1].siselect = 0x70, 0x80
        assert m_files[0].eip == 1 << 9 and not s_files[1].output.level
        return rig

    def probe(self, rig: Rig) -> list:
        # the source devices' lines are driven as their own post-load would: set_irq
        aia: _Aia = rig.extra["aia"]
        files = [f for p in aia.pages for f in p.files]
        out: list = [f.output.level for f in files] + [f.topei() for f in files]
        out += [(h.miselect, h.siselect) for h in aia.harts]
        out += [f.read_indirect(sel) for f in files
                for sel in (i.ISELECT_EIDELIVERY, i.ISELECT_EITHRESHOLD, i.ISELECT_EIP0,
                            i.ISELECT_EIE0)]
        aia.wr(S_BASE, a.DOMAINCFG, a.DOMAINCFG_IE)  # the pending source goes as an MSI
        out += [aia.rd(S_BASE, a.SETIP), files[3].topei(), files[3].output.level]
        files[3].claim()
        aia.m.set_irq(7, False)
        aia.m.set_irq(7, True)  # a new edge: a new MSI
        out += [files[3].topei(), aia.rd(M_BASE, a.MMSIADDRCFGH)]
        return out
