"""RISC-V address translation as the softmmu asks for it (accel/tcg/softmmu.GuestMMU).

The four MMU indexes are the data-access regimes a block can have: U, S, S with SUM
(S-mode may touch user pages) and M (no translation).  A fetch uses the index equal to
the privilege (U 0, S 1, M 3).  M-mode code with MPRV set translates its data with
MPP's privilege: its blocks use ``MMU_DYNAMIC`` and the regime is read per access.

With H, V=1 code (VS/VU) translates in two stages (mmu_hyp.py) in an address space of
its own: the space key then names vsatp and hgatp, so the TLB sets of V=0 and V=1
never mix, and the same MMU indexes mean VU, VS and VS with vsstatus.SUM there.
"""

from __future__ import annotations

import struct

from pemu.accel.tcg.softmmu import (
    MMU_DYNAMIC,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PERM_ALL,
    PERM_R,
)
from pemu.memory.address_space import AddressSpace, RAMBlock
from pemu.target.riscv.exceptions import RiscvTrap
from pemu.target.riscv.isa import DEFAULT_ISA, RiscvIsa
from pemu.target.riscv.mmu import (
    ACCESS_FAULT,
    PMP,
    PMP_R,
    PMP_W,
    PMP_X,
    PRV_M,
    PRV_S,
    PRV_U,
    SATP_LEVELS,
    SATP_PPN_MASK,
    WALK_AD_FAULT,
    WALK_NAPOT,
    WALK_PBMT,
    walk,
)
from pemu.target.riscv.mmu_hyp import TwoStage
from pemu.target.riscv.priv import (
    FLAG_MPRV,
    FLAG_SUM,
    MENVCFG_ADUE,
    MENVCFG_PBMTE,
    MSTATUS_MXR,
    PrivState,
)

MMU_U, MMU_S, MMU_S_SUM, MMU_M = 0, 1, 2, 3
PHYS_LIMIT = 1 << 56  # RV64 physical addresses are 56 bits
SATP_ASID_SHIFT = 44
ASID_MASK = 0xFFFF
VIRT_KEY = 1 << 128  # tags the address-space keys of V=1 (H)

# MMU index -> (privilege, SUM) it translates with
_MMU_PRIV = {MMU_U: (PRV_U, False), MMU_S: (PRV_S, False), MMU_S_SUM: (PRV_S, True),
             MMU_M: (PRV_M, False)}


def mmu_index(flags: int) -> int:
    """The MMU index that data accesses of a block with these flags use."""
    if flags & FLAG_MPRV:
        return MMU_DYNAMIC
    priv = flags & 3
    if priv == PRV_M:
        return MMU_M
    if priv == PRV_S:
        return MMU_S_SUM if flags & FLAG_SUM else MMU_S
    return MMU_U


def fetch_index(flags: int) -> int:
    """The execute TLB index of a block's code: its privilege."""
    return flags & 3


def fetch_fault(paddr: int) -> RiscvTrap:
    """Code at ``paddr`` is not in RAM: an instruction access fault."""
    return RiscvTrap(ACCESS_FAULT[2], paddr)


class RiscvMMU:
    """One hart's page walks and PMP checks, for the softmmu."""

    def __init__(self, ps: PrivState, pmp: PMP, space: AddressSpace, dram: RAMBlock,
                 isa: RiscvIsa = DEFAULT_ISA) -> None:
        self.ps = ps
        self._napot = WALK_NAPOT if isa.has("svnapot") else 0
        self._pbmt = isa.has("svpbmt")
        self._svade = isa.has("svade")
        self._svadu = isa.has("svadu")
        self.pmp = pmp
        self.space = space
        self.dram = dram
        self._dram_base = dram.base
        self._dram_view = dram.view
        self._u64 = struct.Struct("<Q")
        self.walks = 0
        # native_walk_ranges, computed once per PMP configuration
        self._walk_rules: list | None = None
        self._walk_ranges: tuple[tuple[int, int], ...] = ()
        self.two_stage = TwoStage(ps, self._pte_load, self._pte_store, self._pte_allowed,
                                  self._walk_ext)

    # -- GuestMMU ---------------------------------------------------------------------
    def space_key(self) -> int:
        ps = self.ps
        if ps.space_virt:  # beyond any satp value: V=1 spaces are never V=0 ones
            return VIRT_KEY | ps.hyp.hgatp << 64 | ps.hyp.vsatp
        return ps.satp

    @staticmethod
    def space_asid(key: int) -> int:
        return (key >> SATP_ASID_SHIFT) & ASID_MASK

    def translate(self, vaddr: int, access: int, idx: int) -> tuple[int, int, int]:
        ps = self.ps
        priv, sum_ = _MMU_PRIV[idx]
        if ps.space_virt and priv != PRV_M:
            self.walks += 1
            return self.two_stage.translate(vaddr, access, priv, sum_)
        if priv == PRV_M or not ps.satp >> 60:
            return vaddr, PERM_ALL, PAGE_SHIFT
        self.walks += 1
        t = walk(ps.satp, vaddr, access, priv, sum_, bool(ps.mstatus & MSTATUS_MXR),
                 self._pte_load, self._pte_store, self._pte_allowed, self._walk_ext())
        return t.paddr, t.perms, t.shift

    @staticmethod
    def native_walk_root(key: int) -> tuple[int, int] | None:
        """(levels, root table) of a V=0 Sv39/48/57 space for the native walker."""
        if key >> 64:
            return None  # H's V=1 spaces: two stages, Python's
        levels = SATP_LEVELS.get(key >> 60)
        if levels is None:
            return None
        return levels, (key & SATP_PPN_MASK) << PAGE_SHIFT

    def native_walk_ranges(self) -> tuple[tuple[int, int], ...]:
        """Physical ranges whose whole pages PMP lets S and U read, write and
        execute (the native walker reads PTEs, fills data and code TLB entries)."""
        rules = self.pmp.rules
        if rules is self._walk_rules:
            return self._walk_ranges
        self._walk_rules = rules
        # between two consecutive rule edges every whole page has the same verdict;
        # a page across an edge is left out (the ranges are not merged for that)
        edges = sorted({0, PHYS_LIMIT, *(e for lo, hi, _p, _l in rules for e in (lo, hi)
                                         if e < PHYS_LIMIT)})
        ranges = []
        for lo, hi in zip(edges, edges[1:], strict=False):
            page = (lo + PAGE_MASK) & ~PAGE_MASK
            if page + PAGE_SIZE <= hi and all(self.pmp.page_allows(page, perm, PRV_S)
                                              for perm in (PMP_R, PMP_W, PMP_X)):
                ranges.append((lo, hi))
        self._walk_ranges = tuple(ranges)
        return self._walk_ranges

    def _walk_ext(self) -> int:
        """The WALK_* bits: the extensions, and what menvcfg enables of them now."""
        ext = self._napot
        menvcfg = self.ps.menvcfg
        if self._pbmt and menvcfg & MENVCFG_PBMTE:
            ext |= WALK_PBMT
        # without either extension the walk sets A/D itself, as QEMU 7.2's rv64 does
        if self._svade and not (self._svadu and menvcfg & MENVCFG_ADUE):
            ext |= WALK_AD_FAULT
        return ext

    def allows(self, paddr: int, size: int, perm: int, idx: int) -> bool:
        return paddr < PHYS_LIMIT and self.pmp.allows(paddr, size, perm, _MMU_PRIV[idx][0])

    def page_allows(self, page: int, perm: int, idx: int) -> bool:
        return self.pmp.page_allows(page, perm, _MMU_PRIV[idx][0])

    @staticmethod
    def access_fault(access: int, vaddr: int) -> RiscvTrap:
        return RiscvTrap(ACCESS_FAULT[access], vaddr)

    def data_index(self) -> int:
        priv, sum_ = self.ps.data_priv()
        if priv == PRV_M:
            return MMU_M
        if priv == PRV_S:
            return MMU_S_SUM if sum_ else MMU_S
        return MMU_U

    # -- page-table memory ------------------------------------------------------------
    def _pte_load(self, paddr: int) -> int:
        off = paddr - self._dram_base
        if 0 <= off <= self.dram.size - 8:
            return self._u64.unpack_from(self._dram_view, off)[0]
        return self.space.load(paddr, 8)

    def _pte_store(self, paddr: int, value: int) -> None:
        off = paddr - self._dram_base
        if 0 <= off <= self.dram.size - 8:
            self._u64.pack_into(self._dram_view, off, value)
            self.dram.note_write(off, 8)  # A/D updates are guest writes too (migration, fence.i)
        else:
            self.space.store(paddr, 8, value)

    def _pte_allowed(self, paddr: int) -> bool:
        return self.pmp.allows(paddr, 8, PERM_R, PRV_S)


__all__ = ["ASID_MASK", "MMU_M", "MMU_S", "MMU_S_SUM", "MMU_U", "RiscvMMU", "fetch_fault",
           "fetch_index", "mmu_index"]
