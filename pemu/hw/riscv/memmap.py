"""Where each RISC-V board puts its devices: one table per board, as QEMU's ``virt_memmap[]``.

A board is a table: the board file creates each device at its entry, and the device
tree (virt_fdt.py) describes each device from the same entry, so an address or an
interrupt number is written once.  The values are QEMU's (tests compare pemu's guests
and device trees with QEMU's), for the devices pemu builds.

An entry with size 0 is sized when the machine is made (``MemoryMap.sized``): DRAM
by ``-m`` and, on pemu's virt, the PLIC by the number of harts (only the contexts of
the harts present are mapped), and the IMSIC windows by the number of harts.  The virt
table lists both interrupt-controller layouts (PLIC, or APLIC and IMSICs with
``aia=``); the machine drops the one it does not build (``MemoryMap.without``).
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


# QEMU's hw/riscv/virt.c map, for the devices pemu's virt creates.
VIRT_MEMMAP = MemoryMap({
    "mrom": MemMapEntry(0x0000_1000, 0xF000),  # reset vector + fw_dynamic_info
    "test": MemMapEntry(0x0010_0000, 0x1000),  # SiFive test finisher
    "rtc": MemMapEntry(0x0010_1000, 0x1000, irq=11),  # goldfish RTC
    "clint": MemMapEntry(0x0200_0000, 0x10000),  # ACLINT MSWI + MTIMER
    "plic": MemMapEntry(0x0C00_0000, 0),  # sized by the harts' contexts
    # aia=aplic[-imsic] instead of the PLIC: APLIC domains of a fixed size (QEMU's, for
    # its largest hart count) and IMSIC files, one 4 KiB page per hart
    "aplic_m": MemMapEntry(0x0C00_0000, 0x8000),
    "aplic_s": MemMapEntry(0x0D00_0000, 0x8000),
    "imsic_m": MemMapEntry(0x2400_0000, 0),
    "imsic_s": MemMapEntry(0x2800_0000, 0),
    "uart0": MemMapEntry(0x1000_0000, 0x100, irq=10),  # 16550A
    "virtio": MemMapEntry(0x1000_1000, 0x1000, irq=1, count=8),  # virtio-mmio slots
    "pcie_pio": MemMapEntry(0x0300_0000, 0x10000),  # PCI I/O ports 0..0xffff
    # ECAM: 256 buses; INTA..INTD of the host bridge on PLIC sources 32..35
    "pcie_ecam": MemMapEntry(0x3000_0000, 0x1000_0000, irq=32, count=1),
    "pcie_mmio": MemMapEntry(0x4000_0000, 0x4000_0000),  # 32-bit BARs, bus address = CPU
    "dram": MemMapEntry(0x8000_0000, 0),  # -m
    # 64-bit BARs; QEMU moves it above RAM when RAM reaches it (``pcie_high_above``)
    "pcie_mmio_high": MemMapEntry(0x4_0000_0000, 0x4_0000_0000),
})
PCI_INTX_LINES = 4  # consecutive PLIC sources from pcie_ecam's irq


def pcie_high_above(mm: MemoryMap) -> MemoryMap:
    """QEMU's placement of the high PCIe window: at its table address unless RAM
    reaches it, then at the first multiple of its size above RAM."""
    high, dram = mm["pcie_mmio_high"], mm["dram"]
    if dram.end <= high.base:
        return mm
    base = (dram.end + high.size - 1) // high.size * high.size
    return MemoryMap({**mm, "pcie_mmio_high": replace(high, base=base)})

# QEMU's hw/riscv/spike.c map, for the devices pemu's spike creates (HTIF is found
# through the program's tohost symbol, not at a fixed address).
SPIKE_MEMMAP = MemoryMap({
    "clint": MemMapEntry(0x0200_0000, 0x10000),
    "dram": MemMapEntry(0x8000_0000, 0),
})
