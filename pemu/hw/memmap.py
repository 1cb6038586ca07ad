"""A board's memory map as a table, as QEMU's ``memmap[]`` arrays: name -> window
(base, size, wired interrupt, slot count), for every architecture's boards
(hw/riscv/memmap.py, hw/arm/memmap.py hold the tables).

A board is a table: the board file creates each device at its entry, and the device
tree describes each device from the same entry, so an address or an interrupt number
is written once.  An entry with size 0 is sized when the machine is made
(``MemoryMap.sized``, e.g. DRAM by ``-m``); a machine drops the entries of devices it
does not build (``MemoryMap.without``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class MemMapEntry:
    """One device window; ``irq`` is its wired interrupt source, the same number on the
    PLIC and on the APLIC (None: no wired interrupt).  A
    window of ``count`` identical slots (virtio-mmio) holds slot n at
    ``base + n * size`` on source ``irq + n``."""

    base: int
    size: int
    irq: int | None = None
    count: int = 1

    def slot(self, n: int) -> MemMapEntry:
        if not 0 <= n < self.count:
            raise IndexError(f"slot {n} of {self.count}")
        irq = None if self.irq is None else self.irq + n
        return MemMapEntry(self.base + n * self.size, self.size, irq)

    @property
    def end(self) -> int:
        return self.base + self.size * self.count


class MemoryMap(Mapping[str, MemMapEntry]):
    """A board's table: name -> entry, in address order for listings."""

    def __init__(self, entries: Mapping[str, MemMapEntry]) -> None:
        self._entries = dict(sorted(entries.items(), key=lambda kv: kv[1].base))

    def __getitem__(self, name: str) -> MemMapEntry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def without(self, *names: str) -> MemoryMap:
        """The same table less the entries of devices this machine does not create."""
        return MemoryMap({k: v for k, v in self._entries.items() if k not in names})

    def sized(self, **sizes: int) -> MemoryMap:
        """The same table with the entries left open (size 0) given their size."""
        out = dict(self._entries)
        for name, size in sizes.items():
            if out[name].size != 0:
                raise ValueError(f"memory map entry '{name}' has a fixed size")
            out[name] = replace(out[name], size=size)
        return MemoryMap(out)



__all__ = ["MemMapEntry", "MemoryMap"]
