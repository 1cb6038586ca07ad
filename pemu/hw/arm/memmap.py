"""QEMU's Arm ``virt`` memory map (hw/arm/virt.c's base_memmap and extended_memmap),
for the devices pemu's virt builds.  ``irq`` is the SPI number (GIC INTID = 32 + irq),
as the device tree writes it.  The same ``MemoryMap`` table type as the RISC-V boards
(hw/memmap.py).

With ``highmem=on`` (the default) the PCIe ECAM (256 buses) and the 64-bit MMIO window
sit above 256 GiB, where QEMU puts them when RAM ends below 255 GiB (pemu's -m limit);
with ``highmem=off`` the low ECAM (16 buses) and no 64-bit window.
"""

from __future__ import annotations

from pemu.hw.memmap import MemMapEntry, MemoryMap

VIRT_MEMMAP = MemoryMap({
    "gic_dist": MemMapEntry(0x0800_0000, 0x1_0000),
    "gic_cpu": MemMapEntry(0x0801_0000, 0x1_0000),  # GICv2 CPU interface
    # GICv2m MSI frame: MSIs become SPIs 48..111 (INTIDs 80..143; irq = the first)
    "gic_v2m": MemMapEntry(0x0802_0000, 0x1000, irq=48),
    "gic_redist": MemMapEntry(0x080A_0000, 0xF6_0000),  # GICv3: 0x20000 per CPU (123)
    "uart": MemMapEntry(0x0900_0000, 0x1000, irq=1),  # PL011
    "rtc": MemMapEntry(0x0901_0000, 0x1000, irq=2),  # PL031
    "virtio": MemMapEntry(0x0A00_0000, 0x200, irq=16, count=32),  # virtio-mmio
    # PCIe: 32-bit BARs (bus address = CPU's), I/O ports from bus address 0, the low
    # ECAM; INTA..INTD on SPIs 3..6
    "pcie_mmio": MemMapEntry(0x1000_0000, 0x2EFF_0000),
    "pcie_pio": MemMapEntry(0x3EFF_0000, 0x1_0000),
    "pcie_ecam_low": MemMapEntry(0x3F00_0000, 0x100_0000, irq=3),
    "dram": MemMapEntry(0x4000_0000, 0),  # sized by -m
    "pcie_ecam_high": MemMapEntry(0x40_1000_0000, 0x1000_0000, irq=3),
    "pcie_mmio_high": MemMapEntry(0x80_0000_0000, 0x80_0000_0000),  # 64-bit BARs
})
GICV2M_SPIS = 64
MAX_RAM = 255 << 30  # RAM below the high regions (QEMU's LEGACY_RAMLIMIT)


def machine_memmap(ram_size: int, highmem: bool) -> MemoryMap:
    """The table of one machine: DRAM sized, one ECAM kept as ``pcie_ecam``."""
    mm = VIRT_MEMMAP.sized(dram=ram_size)
    ecam = mm["pcie_ecam_high" if highmem else "pcie_ecam_low"]
    drop = ("pcie_ecam_high", "pcie_ecam_low") + (() if highmem else ("pcie_mmio_high",))
    return MemoryMap({**mm.without(*drop), "pcie_ecam": ecam})


# the generic timer's PPIs (INTIDs), as QEMU's virt wires them
PPI_TIMER_SEC, PPI_TIMER_HYP, PPI_TIMER_VIRT, PPI_TIMER_PHYS = 29, 26, 27, 30
SPI_BASE = 32

__all__ = ["GICV2M_SPIS", "MAX_RAM", "PPI_TIMER_HYP", "PPI_TIMER_PHYS", "PPI_TIMER_SEC",
           "PPI_TIMER_VIRT", "SPI_BASE", "VIRT_MEMMAP", "machine_memmap"]
