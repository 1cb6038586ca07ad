"""Physical Region Descriptor tables: a command's data buffers as memoryviews of guest
RAM.  An entry is {data base u64, reserved u32, byte count - 1 (bits 21:0), I (bit
31)}; the count must be even (bit 0 of the field set) and the base word aligned.  A bad
entry or one outside RAM is an ``AtaError`` (the port's task file error), never a host
exception."""

from __future__ import annotations

import struct

from pemu.hw.ahci.ata import AtaError
from pemu.hw.ahci.regs import CT_PRDT, PRD_SIZE
from pemu.memory.address_space import AddressSpace, GuestMemoryError

_ENTRY = struct.Struct("<QII")
DBC_MASK = 0x3FFFFF


def prd_views(space: AddressSpace, table: int, count: int) -> list[memoryview]:
    if not count:
        return []
    try:
        raw = space.read(table + CT_PRDT, count * PRD_SIZE)
    except GuestMemoryError:
        raise AtaError(why="PRD table outside RAM") from None
    views = []
    for i in range(count):
        base, _reserved, dw3 = _ENTRY.unpack_from(raw, i * PRD_SIZE)
        size = (dw3 & DBC_MASK) + 1
        if base & 1 or size & 1:
            raise AtaError(why=f"PRD {i}: odd address or byte count")
        try:
            views.append(space.view(base, size))
        except GuestMemoryError:
            raise AtaError(why=f"PRD {i}: {base:#x}+{size:#x} outside RAM") from None
    return views
