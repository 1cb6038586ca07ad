"""The VMSAv8-64 stage 1 translation of the EL1&0 regime, as a softmmu ``GuestMMU``.

MMU indexes: 0 = EL0, 1 = EL1 (the block flags' exception level).  Granules of 4 KiB
and 64 KiB (16 KiB too), input addresses up to 48 bits split between TTBR0 (bit 55
clear) and TTBR1 (set) by T0SZ/T1SZ, top-byte-ignore, EPD0/EPD1, hierarchical
APTable/UXNTable/PXNTable, block and page descriptors, AP/UXN/PXN/AF.  The access flag
is not managed by hardware (no FEAT_HAFDBS): AF = 0 faults.  MAIR/shareability change
nothing (every access is coherent).

An address-space key names the TTBR0 table and the ASID in use, so that Linux's
context switches (TTBR0 and, with TCR.A1, TTBR1's ASID) switch TLB sets instead of
flushing; any other change of regime (SCTLR.M, TCR, TTBR1's table) flushes them all.
A leaf with nG = 0 is global (PERM_GLOBAL): the vCPU finds the blocks translated from
it in every address space (softmmu.SoftMMU.global_exec), not once per process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pemu.accel.tcg.softmmu import (
    ACCESS_EXEC,
    ACCESS_WRITE,
    PERM_ALL,
    PERM_GLOBAL,
    PERM_R,
    PERM_W,
    PERM_X,
)
from pemu.memory.address_space import AddressSpace, RAMBlock
from pemu.target.aarch64.exceptions import Aarch64Trap, abort_trap

if TYPE_CHECKING:
    from pemu.target.aarch64.system_cpu import Aarch64CPU

PA_MASK = (1 << 48) - 1
MMU_OFF_KEY = 1  # no TTBR0 base has bit 0 set
SCTLR_M, SCTLR_WXN = 1 << 0, 1 << 19
DESC_NG = 1 << 11  # not global: the mapping belongs to the ASID in use
# TCR_EL1 fields
TCR_EPD0, TCR_EPD1, TCR_A1 = 1 << 7, 1 << 23, 1 << 22
TCR_AS, TCR_TBI0, TCR_TBI1 = 1 << 36, 1 << 37, 1 << 38
# fault status codes (DFSC/IFSC) by kind; the level is added
FSC_TRANSLATION, FSC_ACCESS_FLAG, FSC_PERMISSION = 0x04, 0x08, 0x0C
FSC_EXTERNAL = 0x10
# granule sizes (log2) by TG0 and by TG1
TG0_BITS = {0: 12, 1: 16, 2: 14}
TG1_BITS = {1: 14, 2: 12, 3: 16}


class Aarch64MMU:
    """One CPU's stage 1 walks (the softmmu's ``GuestMMU``)."""

    def __init__(self, cpu: Aarch64CPU, space: AddressSpace, dram: RAMBlock) -> None:
        self.cpu = cpu
        self.space = space
        self.dram = dram

    # -- address-space keys ---------------------------------------------------------------
    def space_key(self) -> int:
        regs = self.cpu.regs
        if not regs.get("SCTLR_EL1", 0) & SCTLR_M:
            return MMU_OFF_KEY
        return (regs.get("TTBR0_EL1", 0) & PA_MASK & ~1) | self.asid() << 48

    def asid(self) -> int:
        regs = self.cpu.regs
        tcr = regs.get("TCR_EL1", 0)
        ttbr = regs.get("TTBR1_EL1", 0) if tcr & TCR_A1 else regs.get("TTBR0_EL1", 0)
        return ttbr >> 48 if tcr & TCR_AS else ttbr >> 48 & 0xFF

    def space_asid(self, key: int) -> int:
        return key >> 48

    def data_index(self) -> int:
        return self.cpu.el

    def allows(self, paddr: int, size: int, perm: int, idx: int) -> bool:
        return paddr + size - 1 <= PA_MASK

    def page_allows(self, page: int, perm: int, idx: int) -> bool:
        return True

    def access_fault(self, access: int, vaddr: int) -> BaseException:
        """No device or RAM at the physical address: a synchronous external abort."""
        return abort_trap(self.cpu.el, access, vaddr, FSC_EXTERNAL)

    # -- the walk -------------------------------------------------------------------------
    def translate(self, vaddr: int, access: int, idx: int) -> tuple[int, int, int]:
        cpu = self.cpu
        regs = cpu.regs
        sctlr = regs.get("SCTLR_EL1", 0)
        if not sctlr & SCTLR_M:
            if vaddr > PA_MASK:
                raise abort_trap(cpu.el, access, vaddr, 0x00)  # address size, level 0
            return vaddr, PERM_ALL, 12
        perms, paddr, shift = self.walk(vaddr, access, idx)
        needed = PERM_X if access == ACCESS_EXEC else PERM_W if access == ACCESS_WRITE \
            else PERM_R
        if not perms & needed:
            raise abort_trap(cpu.el, access, vaddr, FSC_PERMISSION + self.last_level)
        return paddr, perms, shift

    def walk(self, vaddr: int, access: int, idx: int) -> tuple[int, int, int]:
        """(perms for ``idx``, paddr, block shift); raises translation and access flag
        faults.  ``last_level``: the level of the leaf (for a permission fault)."""
        cpu = self.cpu
        regs = cpu.regs
        tcr = regs.get("TCR_EL1", 0)
        upper = vaddr >> 55 & 1
        if upper:
            tsz, tg, epd, tbi = tcr >> 16 & 63, TG1_BITS.get(tcr >> 30 & 3, 12), \
                tcr & TCR_EPD1, tcr & TCR_TBI1
            ttbr = regs.get("TTBR1_EL1", 0)
        else:
            tsz, tg, epd, tbi = tcr & 63, TG0_BITS.get(tcr >> 14 & 3, 12), \
                tcr & TCR_EPD0, tcr & TCR_TBI0
            ttbr = regs.get("TTBR0_EL1", 0)
        tsz = min(max(tsz, 16), 39)
        ia_bits = 64 - tsz
        top_bits = 56 if tbi else 64
        top = vaddr >> ia_bits & ((1 << (top_bits - ia_bits)) - 1)
        if epd or top != (((1 << (top_bits - ia_bits)) - 1) if upper else 0):
            self.last_level = 0
            raise abort_trap(cpu.el, access, vaddr, FSC_TRANSLATION)
        stride = tg - 3
        level = 4 - (ia_bits - tg + stride - 1) // stride
        table = ttbr & PA_MASK & ~1
        ap_table = xn_table = pxn_table = 0
        while True:
            shift = tg + stride * (3 - level)
            bits = min(stride, ia_bits - shift)
            index = vaddr >> shift & ((1 << bits) - 1)
            desc = self._read_desc(table + index * 8, vaddr, access)
            self.last_level = level
            if not desc & 1 or (level == 3 and not desc & 2):
                raise abort_trap(cpu.el, access, vaddr, FSC_TRANSLATION + level)
            if level < 3 and desc & 2:  # a table
                ap_table |= desc >> 61 & 3
                xn_table |= desc >> 60 & 1
                pxn_table |= desc >> 59 & 1
                table = desc & PA_MASK & ~((1 << tg) - 1)
                level += 1
                continue
            if level < 3 and (level == 0 or (tg != 12 and level == 1)):
                raise abort_trap(cpu.el, access, vaddr, FSC_TRANSLATION + level)  # no block
            break
        if not desc & (1 << 10):
            raise abort_trap(cpu.el, access, vaddr, FSC_ACCESS_FLAG + level)
        ap = desc >> 6 & 3
        el0_access = bool(ap & 1) and not ap_table & 1
        read_only = bool(ap & 2) or bool(ap_table & 2)
        uxn = desc >> 54 & 1 or xn_table
        pxn = desc >> 53 & 1 or pxn_table
        if idx == 0:
            perms = 0
            if el0_access:
                perms = PERM_R | (0 if read_only else PERM_W) | (0 if uxn else PERM_X)
        else:
            perms = PERM_R | (0 if read_only else PERM_W)
            # memory EL0 may write is never executable at EL1
            if not pxn and not (el0_access and not read_only):
                perms |= PERM_X
        if perms & PERM_W and regs.get("SCTLR_EL1", 0) & SCTLR_WXN:
            perms &= ~PERM_X
        if not desc & DESC_NG:
            # the same in every address space (the kernel's pages): code found here is
            # found from every process through the vCPU's global jump cache
            perms |= PERM_GLOBAL
        out = desc & PA_MASK & ~((1 << shift) - 1)
        return perms, out | (vaddr & ((1 << shift) - 1)), shift

    def _read_desc(self, paddr: int, vaddr: int, access: int) -> int:
        dram = self.dram
        off = paddr - dram.base
        if 0 <= off <= dram.size - 8:
            return int.from_bytes(dram.view[off:off + 8], "little")
        region = self.space.find(paddr, 8)
        if isinstance(region, RAMBlock):
            o = paddr - region.base
            return int.from_bytes(region.view[o:o + 8], "little")
        # a walk outside RAM: synchronous external abort on the walk (level 0 form)
        raise abort_trap(self.cpu.el, access, vaddr, 0x14)

    def probe(self, vaddr: int, access: int, idx: int) -> tuple[int, int] | Aarch64Trap:
        """AT S1Ex{R,W}: (paddr, perms) or the fault it would take."""
        try:
            paddr, perms, _ = self.translate(vaddr, access, idx)
        except Aarch64Trap as e:
            return e
        return paddr, perms


__all__ = ["Aarch64MMU", "MMU_OFF_KEY", "SCTLR_M"]
