"""Base address registers: what a device declares, and the address the guest gave it.

A BAR's size is a power of two; the guest sizes it the usual way (write all ones, read
back: the address bits below the size read as zero because ``wmask`` keeps them
read-only) and then programs an address.  The type bits (I/O, 64-bit, prefetchable)
are read-only.  A 64-bit BAR takes two slots, the upper half in the next one.
"""

from __future__ import annotations

from dataclasses import dataclass

from pemu.hw.pci.config import BAR0, ConfigSpace
from pemu.memory.address_space import MMIOHandler

BAR_IO = "io"
BAR_MEM32 = "mem32"
BAR_MEM64 = "mem64"

BAR_SPACE_IO = 0x1
BAR_MEM_TYPE_64 = 0x4
BAR_MEM_PREFETCH = 0x8
UNMAPPED = None


@dataclass
class Bar:
    """One declared BAR; ``handler`` answers accesses at offsets inside it."""

    index: int
    size: int
    kind: str
    handler: MMIOHandler
    prefetchable: bool = False

    @property
    def is_io(self) -> bool:
        return self.kind == BAR_IO

    @property
    def type_bits(self) -> int:
        if self.is_io:
            return BAR_SPACE_IO
        bits = BAR_MEM_TYPE_64 if self.kind == BAR_MEM64 else 0
        return bits | (BAR_MEM_PREFETCH if self.prefetchable else 0)

    def install(self, config: ConfigSpace) -> None:
        """Type bits read-only, the address bits at and above the size writable."""
        if self.size & (self.size - 1) or self.size < (4 if self.is_io else 16):
            raise ValueError(f"BAR{self.index}: size 0x{self.size:x} is not a power of "
                             "two of at least 4 (I/O) or 16 (memory) bytes")
        off = BAR0 + 4 * self.index
        config.set(off, 4, self.type_bits)
        low_bits = 0x3 if self.is_io else 0xF
        config.set_wmask(off, 4, ~(self.size - 1) & ~low_bits & 0xFFFFFFFF)
        if self.kind == BAR_MEM64:
            config.set(off + 4, 4, 0)
            config.set_wmask(off + 4, 4, (~(self.size - 1) >> 32) & 0xFFFFFFFF)

    def address(self, config: ConfigSpace) -> int:
        """The bus address the guest programmed (type bits dropped)."""
        off = BAR0 + 4 * self.index
        low = config.get(off, 4)
        if self.is_io:
            return low & ~0x3
        addr = low & ~0xF
        if self.kind == BAR_MEM64:
            addr |= config.get(off + 4, 4) << 32
        return addr
