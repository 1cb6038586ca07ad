"""MSI-X (PCI 3.0 6.8.2): the capability, the vector table and the pending bit array.

The table and PBA live in a memory BAR; ``MSIX`` is the MMIO handler for that part of
the BAR (``table_offset``/``pba_offset`` inside it).  Each table entry is address
(64-bit), data and vector control (bit 0: masked).  A vector fires only when MSI-X is
enabled and neither the function nor the vector is masked; otherwise its PBA bit is
set and it fires when the mask goes away.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.hw.pci.capability import CAP_ID_MSIX, CapabilityAllocator
from pemu.hw.pci.config import ConfigSpace, overlaps

FLAGS = 2
TABLE = 4
PBA = 8
SIZE = 12
FLAG_ENABLE = 0x8000
FLAG_MASKALL = 0x4000
ENTRY_SIZE = 16
ENTRY_CTRL = 12
CTRL_MASKED = 1

Sender = Callable[[int, int], None]


class MSIX:
    def __init__(self, config: ConfigSpace, caps: CapabilityAllocator, vectors: int,
                 bar: int, table_offset: int, pba_offset: int, send: Sender) -> None:
        if not 1 <= vectors <= 2048:
            raise ValueError(f"MSI-X: {vectors} vectors (1..2048)")
        self.config = config
        self.vectors = vectors
        self.bar = bar
        self.table_offset = table_offset
        self.pba_offset = pba_offset
        self.send = send
        self.offset = off = caps.add(CAP_ID_MSIX, SIZE)
        config.set(off + FLAGS, 2, vectors - 1)
        config.set_wmask(off + FLAGS, 2, FLAG_ENABLE | FLAG_MASKALL)
        config.set(off + TABLE, 4, table_offset | bar)
        config.set(off + PBA, 4, pba_offset | bar)
        self.table = bytearray(vectors * ENTRY_SIZE)
        self.pending = bytearray((vectors + 63) // 64 * 8)
        self.reset()

    @property
    def region_size(self) -> int:
        """How much of the BAR the table and PBA cover (from offset 0)."""
        return max(self.table_offset + len(self.table), self.pba_offset + len(self.pending))

    def reset(self) -> None:
        cfg = self.config
        cfg.set(self.offset + FLAGS, 2, self.vectors - 1)
        masked_entry = bytes(ENTRY_CTRL) + CTRL_MASKED.to_bytes(4, "little")
        self.table[:] = masked_entry * self.vectors  # all masked at reset (spec 6.8.2.9)
        self.pending[:] = bytes(len(self.pending))

    # -- state -----------------------------------------------------------------------------
    @property
    def _flags(self) -> int:
        return self.config.get(self.offset + FLAGS, 2)

    @property
    def enabled(self) -> bool:
        return bool(self._flags & FLAG_ENABLE)

    @property
    def function_masked(self) -> bool:
        return bool(self._flags & FLAG_MASKALL)

    def vector_masked(self, vector: int) -> bool:
        return bool(self.table[vector * ENTRY_SIZE + ENTRY_CTRL] & CTRL_MASKED)

    def is_pending(self, vector: int) -> bool:
        return bool(self.pending[vector // 8] & (1 << (vector % 8)))

    def _set_pending(self, vector: int, on: bool) -> None:
        if on:
            self.pending[vector // 8] |= 1 << (vector % 8)
        else:
            self.pending[vector // 8] &= ~(1 << (vector % 8)) & 0xFF

    def message(self, vector: int) -> tuple[int, int]:
        e = self.table[vector * ENTRY_SIZE:(vector + 1) * ENTRY_SIZE]
        return int.from_bytes(e[0:8], "little"), int.from_bytes(e[8:12], "little")

    # -- interrupts -------------------------------------------------------------------------
    def notify(self, vector: int) -> None:
        """Fire ``vector`` (or leave it pending while masked); ignores bad vectors."""
        if not self.enabled or not 0 <= vector < self.vectors:
            return
        if self.function_masked or self.vector_masked(vector):
            self._set_pending(vector, True)
            return
        self.send(*self.message(vector))

    def _deliver_unmasked(self) -> None:
        if not self.enabled or self.function_masked:
            return
        for vector in range(self.vectors):
            if self.is_pending(vector) and not self.vector_masked(vector):
                self._set_pending(vector, False)
                self.send(*self.message(vector))

    def config_written(self, offset: int, size: int) -> None:
        if overlaps(offset, size, self.offset + FLAGS, 2):
            self._deliver_unmasked()

    # -- the table and PBA in the BAR -------------------------------------------------------
    def mmio_read(self, offset: int, size: int) -> int:
        for base, data in ((self.table_offset, self.table), (self.pba_offset, self.pending)):
            if base <= offset and offset + size <= base + len(data):
                o = offset - base
                return int.from_bytes(data[o:o + size], "little")
        return 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        o = offset - self.table_offset
        if not (0 <= o and o + size <= len(self.table)):
            return  # the PBA is read-only
        self.table[o:o + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        self._deliver_unmasked()
