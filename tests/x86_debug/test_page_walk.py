"""The debugger's x86 page walk over tables laid out by hand in a bytearray, per the
Intel SDM's entry formats: 5-level (LA57), 4-level with 1 GiB/2 MiB/4 KiB pages, PAE,
32-bit with 4 MiB pages, paging off, and every way a walk stops."""

from __future__ import annotations

import struct

import pytest

from pemu.accel.kvm.page_walk import (
    CR0_PG,
    CR4_LA57,
    CR4_PAE,
    CR4_PSE,
    EFER_LMA,
    NotMapped,
    translate,
)

P, RW, PS = 1, 2, 0x80


class Mem:
    def __init__(self, size: int = 1 << 22) -> None:
        self.data = bytearray(size)

    def q(self, addr: int, value: int) -> None:
        struct.pack_into("<Q", self.data, addr, value)

    def d(self, addr: int, value: int) -> None:
        struct.pack_into("<I", self.data, addr, value)

    def read(self, addr: int, size: int) -> bytes:
        return bytes(self.data[addr:addr + size])


def _idx(vaddr: int, shift: int) -> int:
    return (vaddr >> shift) & 0x1FF


def test_five_level_walk_to_a_4k_page():
    m = Mem()
    va = 0xFF5B_CDEF_1234_5678
    tables = [0x1000, 0x2000, 0x3000, 0x4000, 0x5000]
    for level, shift in enumerate([48, 39, 30, 21]):
        m.q(tables[level] + _idx(va, shift) * 8, tables[level + 1] | P | RW)
    m.q(tables[4] + _idx(va, 12) * 8, 0x0007_6543_2000 | P)
    lma = EFER_LMA
    assert translate(va, CR0_PG, 0x1000, CR4_PAE | CR4_LA57, lma, m.read) == 0x76543_2678
    # the same address is not canonical with 4 levels
    with pytest.raises(NotMapped, match="not canonical"):
        translate(va, CR0_PG, 0x1000, CR4_PAE, lma, m.read)


def test_four_level_large_pages_and_missing_entries():
    m = Mem()
    m.q(0x1000 + 0 * 8, 0x2000 | P)  # PML4[0] -> PDPT
    m.q(0x2000 + 1 * 8, (3 << 30) | P | PS)  # PDPT[1]: 1 GiB page at 3 GiB
    m.q(0x2000 + 0 * 8, 0x3000 | P)  # PDPT[0] -> PD
    m.q(0x3000 + 5 * 8, (7 << 21) | P | PS)  # PD[5]: 2 MiB page at 14 MiB
    regs = (CR0_PG, 0x1000, CR4_PAE, EFER_LMA)
    assert translate((1 << 30) + 0x12345, *regs, m.read) == (3 << 30) + 0x12345
    assert translate((5 << 21) + 0xABCDE, *regs, m.read) == (7 << 21) + 0xABCDE
    with pytest.raises(NotMapped, match="PD entry"):
        translate(6 << 21, *regs, m.read)
    with pytest.raises(NotMapped, match="PML4 entry"):
        translate(1 << 39, *regs, m.read)


def test_pae_and_32bit_paging_and_paging_off():
    m = Mem()
    m.q(0x1000 + 2 * 8, 0x2000 | P)  # PDPTE[2] (2-3 GiB)
    m.q(0x2000 + 3 * 8, 0x3000 | P)  # PD[3] -> PT
    m.q(0x3000 + 4 * 8, 0x55000 | P)  # PT[4]
    va = (2 << 30) | (3 << 21) | (4 << 12) | 0x321
    assert translate(va, CR0_PG, 0x1000, CR4_PAE, 0, m.read) == 0x55321
    # 32-bit paging: one 4 MiB page (PSE) and one 4 KiB page
    m.d(0x8000 + 1 * 4, (0x0C << 22) | P | PS)
    m.d(0x8000 + 2 * 4, 0x9000 | P)
    m.d(0x9000 + 7 * 4, 0x77000 | P)
    assert translate((1 << 22) | 0x1234, CR0_PG, 0x8000, CR4_PSE, 0, m.read) == (
        (0x0C << 22) | 0x1234)
    assert translate((2 << 22) | (7 << 12) | 0x10, CR0_PG, 0x8000, CR4_PSE, 0, m.read) == (
        0x77010)
    assert translate(0x12345678, 0, 0, 0, 0, m.read) == 0x12345678
