"""The guest physical memory map, as e820 entries (Linux zero page, PVH, multiboot)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

E820_RAM = 1
E820_RESERVED = 2
E820_ACPI = 3
E820_NVS = 4

# The legacy PC holes a board keeps out of usable RAM: the EBDA page where the MP table
# lives, and the VGA/BIOS area 0xa0000-0xfffff.
EBDA_START = 0x9FC00
LOW_RAM_END = 0xA0000
HIGH_MEMORY = 0x100000


@dataclass(frozen=True)
class E820Entry:
    addr: int
    size: int
    type: int

    def pack(self) -> bytes:
        """The 20-byte boot_params.e820_table entry (addr u64, size u64, type u32)."""
        return struct.pack("<QQI", self.addr, self.size, self.type)


def memory_map(ram_ranges: list[tuple[int, int]]) -> list[E820Entry]:
    """e820 entries for RAM given as (base, size): the first range must start at 0 and
    cover at least 1 MiB; its first MiB is split around the PC holes."""
    if not ram_ranges or ram_ranges[0][0] != 0 or ram_ranges[0][1] < HIGH_MEMORY:
        raise ValueError("x86 guests need RAM from 0 to at least 1 MiB")
    entries = [E820Entry(0, EBDA_START, E820_RAM),
               E820Entry(EBDA_START, LOW_RAM_END - EBDA_START, E820_RESERVED),
               E820Entry(0xF0000, 0x10000, E820_RESERVED)]
    base, size = ram_ranges[0]
    if size > HIGH_MEMORY:
        entries.append(E820Entry(HIGH_MEMORY, size - HIGH_MEMORY, E820_RAM))
    entries += [E820Entry(b, s, E820_RAM) for b, s in ram_ranges[1:]]
    return entries
