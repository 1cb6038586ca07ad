"""Put an x86 vCPU straight into real, 32-bit protected or 64-bit long mode.

Boot loaders (Linux 64-bit boot protocol, PVH, multiboot) hand over in a defined CPU
mode with flat segments, so the board sets the special registers directly instead of
running firmware.  These helpers fill a ``KvmSregs`` and, for long mode, write identity
page tables into guest RAM.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pemu.accel.kvm.abi import KvmSegment, KvmSregs

CR0_PE = 1 << 0
CR0_ET = 1 << 4
CR0_NE = 1 << 5
CR0_PG = 1 << 31
CR4_PAE = 1 << 5
EFER_LME = 1 << 8
EFER_LMA = 1 << 10

# Segment descriptor types (S=1): code execute/read accessed, data read/write accessed.
CODE_TYPE = 0xB
DATA_TYPE = 0x3
TSS_BUSY_TYPE = 0xB

# Selectors of the GDT below.  Linux's boot protocol names 0x10 __BOOT_CS and 0x18
# __BOOT_DS; PVH and multiboot only need "a flat segment", so one table serves all.
SEL_CODE32 = 0x08
SEL_CODE64 = 0x10
SEL_DATA = 0x18
SEL_TSS = 0x20


def _seg(selector: int, type_: int, *, l: int = 0, db: int = 1, s: int = 1) -> KvmSegment:
    return KvmSegment(base=0, limit=0xFFFF_FFFF, selector=selector, type=type_, present=1,
                      dpl=0, db=db, s=s, l=l, g=1, avl=0, unusable=0)


def gdt_entry(seg: KvmSegment) -> int:
    """Encode a KvmSegment as an 8-byte GDT descriptor (limit in 4 KiB pages when g)."""
    limit = seg.limit >> 12 if seg.g else seg.limit
    flags = (seg.g << 3) | (seg.db << 2) | (seg.l << 1) | seg.avl
    access = (seg.present << 7) | (seg.dpl << 5) | (seg.s << 4) | seg.type
    return ((limit & 0xFFFF) | ((seg.base & 0xFFFFFF) << 16) | (access << 40)
            | (((limit >> 16) & 0xF) << 48) | (flags << 52) | (((seg.base >> 24) & 0xFF) << 56))


def flat_gdt() -> bytes:
    """Null, code32, code64, data, and an empty TSS slot: the table loaded into GDTR."""
    entries = [0, gdt_entry(_seg(SEL_CODE32, CODE_TYPE)),
               gdt_entry(_seg(SEL_CODE64, CODE_TYPE, l=1, db=0)),
               gdt_entry(_seg(SEL_DATA, DATA_TYPE)), 0]
    return b"".join(struct.pack("<Q", e) for e in entries)


def set_real_mode(sregs: KvmSregs, cs_selector: int = 0) -> None:
    """Real mode with CS = cs_selector (base selector*16) and the other segments 0."""
    for name in ("ds", "es", "fs", "gs", "ss"):
        seg = getattr(sregs, name)
        seg.selector, seg.base, seg.limit = 0, 0, 0xFFFF
    sregs.cs.selector, sregs.cs.base, sregs.cs.limit = cs_selector, cs_selector << 4, 0xFFFF
    sregs.cr0 &= ~(CR0_PE | CR0_PG)


def _common_protected(sregs: KvmSregs, gdt_base: int) -> None:
    sregs.gdt.base, sregs.gdt.limit = gdt_base, len(flat_gdt()) - 1
    sregs.idt.base, sregs.idt.limit = 0, 0
    data = _seg(SEL_DATA, DATA_TYPE)
    for name in ("ds", "es", "fs", "gs", "ss"):
        setattr(sregs, name, data)
    # VMX refuses entry with an unusable TR, so give it a minimal busy 64-bit TSS.
    sregs.tr = KvmSegment(base=0, limit=0x67, selector=SEL_TSS, type=TSS_BUSY_TYPE,
                          present=1, s=0, g=0, db=0)
    sregs.ldt = KvmSegment(selector=0, type=0x2, present=1, limit=0xFFFF, s=0)


def set_protected_mode(sregs: KvmSregs, gdt_base: int) -> None:
    """32-bit flat protected mode, paging off (PVH, multiboot, Linux 32-bit entry)."""
    _common_protected(sregs, gdt_base)
    sregs.cs = _seg(SEL_CODE32, CODE_TYPE)
    sregs.cr0 = (sregs.cr0 | CR0_PE | CR0_ET) & ~CR0_PG
    sregs.cr4 &= ~CR4_PAE
    sregs.efer &= ~(EFER_LME | EFER_LMA)


def set_long_mode(sregs: KvmSregs, gdt_base: int, pml4: int) -> None:
    """64-bit mode with paging through identity tables at ``pml4``."""
    _common_protected(sregs, gdt_base)
    sregs.cs = _seg(SEL_CODE64, CODE_TYPE, l=1, db=0)
    sregs.cr3 = pml4
    sregs.cr4 |= CR4_PAE
    sregs.cr0 |= CR0_PE | CR0_ET | CR0_PG
    sregs.efer |= EFER_LME | EFER_LMA


PAGE_TABLES_SIZE = 0x6000  # PML4 + PDPT + 4 page directories of 2 MiB pages


def identity_page_tables(base: int, write: Callable[[int, bytes], None]) -> int:
    """Identity-map the low 4 GiB with 2 MiB pages; tables occupy PAGE_TABLES_SIZE bytes
    from ``base`` (page aligned).  Returns the PML4 address for CR3."""
    present_rw = 0x3
    pml4, pdpt, pds = base, base + 0x1000, base + 0x2000
    write(pml4, struct.pack("<Q", pdpt | present_rw).ljust(0x1000, b"\0"))
    write(pdpt, b"".join(struct.pack("<Q", (pds + i * 0x1000) | present_rw)
                         for i in range(4)).ljust(0x1000, b"\0"))
    page_size_bit = 0x80
    write(pds, b"".join(struct.pack("<Q", (i << 21) | present_rw | page_size_bit)
                        for i in range(4 * 512)))
    return pml4


LONG_MODE_SCRATCH = 0x1000 + PAGE_TABLES_SIZE  # what enter_long_mode writes from ``base``


def enter_long_mode(sregs: KvmSregs, write: Callable[[int, bytes], None], base: int) -> None:
    """64-bit mode for a small test or probe guest: the flat GDT at ``base`` (page
    aligned), identity page tables after it (LONG_MODE_SCRATCH bytes in all).  Code
    that cannot import the target (accel/kvm's probes) receives this function."""
    write(base, flat_gdt())
    set_long_mode(sregs, base, identity_page_tables(base + 0x1000, write))
