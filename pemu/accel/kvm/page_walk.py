"""A debugger's x86 page walk: guest-virtual to guest-physical through the guest's tables.

The monitor (``x``, ``memsave``) and the gdb stub read memory by virtual address while
the vCPUs are paused.  This walk reads the tables through ``read_phys`` and changes
nothing: no accessed/dirty bits, no TLB, no fault injected.  It covers every x86 paging
mode: none (CR0.PG clear), 32-bit (4 KiB and 4 MiB pages), PAE (3 levels), and IA-32e
with 4 levels or, with CR4.LA57, 5 levels (1 GiB and 2 MiB large pages).

Facts from the Intel SDM vol. 3A, chapter 4 (paging): entry formats, PS bits, the
CR3 masks and the canonical-address rule.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

CR0_PG = 1 << 31
CR4_PSE = 1 << 4
CR4_PAE = 1 << 5
CR4_LA57 = 1 << 12
EFER_LMA = 1 << 10

PRESENT = 1
PAGE_SIZE_BIT = 1 << 7
ADDR_MASK_64 = 0x000F_FFFF_FFFF_F000  # bits 51:12 of a 64-bit entry

ReadPhys = Callable[[int, int], bytes]


class NotMapped(Exception):
    """The virtual address has no translation (the message says at which level)."""


def _entry64(read_phys: ReadPhys, addr: int) -> int:
    return struct.unpack("<Q", read_phys(addr, 8))[0]


def translate(vaddr: int, cr0: int, cr3: int, cr4: int, efer: int,
              read_phys: ReadPhys) -> int:
    """Physical address of ``vaddr``; raises NotMapped."""
    if not cr0 & CR0_PG:
        return vaddr & 0xFFFF_FFFF if not efer & EFER_LMA else vaddr
    if efer & EFER_LMA:
        return _walk_ia32e(vaddr, cr3, bool(cr4 & CR4_LA57), read_phys)
    if cr4 & CR4_PAE:
        return _walk_pae(vaddr & 0xFFFF_FFFF, cr3, read_phys)
    return _walk_32bit(vaddr & 0xFFFF_FFFF, cr3, bool(cr4 & CR4_PSE), read_phys)


def _walk_ia32e(vaddr: int, cr3: int, la57: bool, read_phys: ReadPhys) -> int:
    bits = 57 if la57 else 48
    top = vaddr >> (bits - 1)
    if top not in (0, (1 << (65 - bits)) - 1):
        raise NotMapped(f"0x{vaddr:x} is not canonical for {bits}-bit addresses")
    table = cr3 & ADDR_MASK_64
    # shift of the index at each level: PML5 48, PML4 39, PDPT 30, PD 21, PT 12
    shifts = [48, 39, 30, 21, 12] if la57 else [39, 30, 21, 12]
    names = {48: "PML5", 39: "PML4", 30: "PDPT", 21: "PD", 12: "PT"}
    for shift in shifts:
        entry = _entry64(read_phys, table + ((vaddr >> shift) & 0x1FF) * 8)
        if not entry & PRESENT:
            raise NotMapped(f"0x{vaddr:x}: {names[shift]} entry not present")
        if shift in (30, 21) and entry & PAGE_SIZE_BIT:
            base = entry & ADDR_MASK_64 & ~((1 << shift) - 1)
            return base | (vaddr & ((1 << shift) - 1))
        table = entry & ADDR_MASK_64
    return table | (vaddr & 0xFFF)


def _walk_pae(vaddr: int, cr3: int, read_phys: ReadPhys) -> int:
    pdpte = _entry64(read_phys, (cr3 & 0xFFFF_FFE0) + (vaddr >> 30) * 8)
    if not pdpte & PRESENT:
        raise NotMapped(f"0x{vaddr:x}: PDPT entry not present")
    pde = _entry64(read_phys, (pdpte & ADDR_MASK_64) + ((vaddr >> 21) & 0x1FF) * 8)
    if not pde & PRESENT:
        raise NotMapped(f"0x{vaddr:x}: PD entry not present")
    if pde & PAGE_SIZE_BIT:
        return (pde & ADDR_MASK_64 & ~0x1F_FFFF) | (vaddr & 0x1F_FFFF)
    pte = _entry64(read_phys, (pde & ADDR_MASK_64) + ((vaddr >> 12) & 0x1FF) * 8)
    if not pte & PRESENT:
        raise NotMapped(f"0x{vaddr:x}: PT entry not present")
    return (pte & ADDR_MASK_64) | (vaddr & 0xFFF)


def _walk_32bit(vaddr: int, cr3: int, pse: bool, read_phys: ReadPhys) -> int:
    pde = struct.unpack("<I", read_phys((cr3 & 0xFFFF_F000) + (vaddr >> 22) * 4, 4))[0]
    if not pde & PRESENT:
        raise NotMapped(f"0x{vaddr:x}: page directory entry not present")
    if pse and pde & PAGE_SIZE_BIT:
        # 4 MiB page: bits 31:22 of the address, and bits 39:32 from PDE bits 20:13
        high = ((pde >> 13) & 0xFF) << 32
        return high | (pde & 0xFFC0_0000) | (vaddr & 0x3F_FFFF)
    pte = struct.unpack("<I", read_phys((pde & 0xFFFF_F000) + ((vaddr >> 12) & 0x3FF) * 4,
                                        4))[0]
    if not pte & PRESENT:
        raise NotMapped(f"0x{vaddr:x}: page table entry not present")
    return (pte & 0xFFFF_F000) | (vaddr & 0xFFF)
