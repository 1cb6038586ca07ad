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

from dataclasses import replace

from pemu.hw.memmap import MemMapEntry, MemoryMap

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
__all__ = ["PCI_INTX_LINES", "SPIKE_MEMMAP", "VIRT_MEMMAP", "MemMapEntry", "MemoryMap",
           "pcie_high_above"]


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
