"""Where BARs appear: a bus address map per space (I/O, memory), and the CPU windows
onto it that the board maps in its AddressSpace.

The host bridge owns fixed windows (QEMU virt: PIO, 32-bit MMIO, 64-bit MMIO); each
is one MMIO region of the board, and accesses inside it are dispatched to whichever
BAR the guest placed there.  Remapping a BAR therefore only rebuilds this map; the
board's AddressSpace (and the TLBs that cache its regions) never change.  An access
that hits no BAR reads all ones and drops writes (a master abort).
"""

from __future__ import annotations

import bisect

from pemu.memory.address_space import MMIOHandler


class BarMap:
    """Sorted, non-overlapping (start, size, handler) ranges of one bus address space."""

    def __init__(self) -> None:
        # (starts, ranges) replaced as one tuple: a vCPU looking up while another
        # thread remaps sees the old map or the new one, never half of each
        self._map: tuple[list[int], list[tuple[int, int, MMIOHandler]]] = ([], [])

    def rebuild(self, ranges: list[tuple[int, int, MMIOHandler]]) -> None:
        kept: list[tuple[int, int, MMIOHandler]] = []
        for start, size, handler in sorted(ranges, key=lambda r: r[0]):
            if kept and start < kept[-1][0] + kept[-1][1]:
                continue  # overlapping BARs: the lower one decodes (the guest's mistake)
            kept.append((start, size, handler))
        self._map = ([r[0] for r in kept], kept)

    def lookup(self, addr: int, size: int) -> tuple[MMIOHandler, int] | None:
        starts, ranges = self._map
        i = bisect.bisect_right(starts, addr) - 1
        if i < 0:
            return None
        start, length, handler = ranges[i]
        if addr + size > start + length:
            return None
        return handler, addr - start

    def ranges(self) -> list[tuple[int, int, MMIOHandler]]:
        return list(self._map[1])


class AddressWindow:
    """An MMIO handler for the CPU window ``[cpu_base, +size)`` onto bus addresses
    starting at ``bus_base``."""

    def __init__(self, bars: BarMap, bus_base: int) -> None:
        self.bars = bars
        self.bus_base = bus_base

    def mmio_read(self, offset: int, size: int) -> int:
        hit = self.bars.lookup(self.bus_base + offset, size)
        if hit is None:
            return (1 << (8 * size)) - 1
        handler, off = hit
        return handler.mmio_read(off, size)

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        hit = self.bars.lookup(self.bus_base + offset, size)
        if hit is not None:
            handler, off = hit
            handler.mmio_write(off, size, value)
